"""Generic walks over the syntax tree of `mdl.dsl.ast`: the expressions inside an expression, the
statements of a body (into `repeat` bodies), the expressions of a statement or of a whole item.

The language server's hover, inlay hints, completion and position lookups all walk the tree through
these, so a new expression or statement form is taught to every walk here, once.
"""

from __future__ import annotations

from collections.abc import Iterator

from mdl.dsl import ast


def iter_exprs(expr: ast.Expr | None) -> Iterator[ast.Expr]:
    """`expr` and every expression inside it, outermost first."""
    if expr is None:
        return
    yield expr
    if isinstance(expr, ast.Call):
        for a in expr.args:
            yield from iter_exprs(a)
        for k in expr.kwargs:
            yield from iter_exprs(k.value)
    elif isinstance(expr, ast.Pipe):
        yield from iter_exprs(expr.value)
        yield from iter_exprs(expr.call)
    elif isinstance(expr, ast.BinOp):
        yield from iter_exprs(expr.left)
        yield from iter_exprs(expr.right)
    elif isinstance(expr, ast.Neg):
        yield from iter_exprs(expr.operand)
    elif isinstance(expr, ast.List):
        for i in expr.items:
            yield from iter_exprs(i)


def iter_stmts(body) -> Iterator[ast.Stmt]:
    """Every statement of a body, `repeat` bodies included."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.Repeat):
            yield from iter_stmts(stmt.body)


def stmt_exprs(stmt) -> list[ast.Expr]:
    if isinstance(stmt, ast.Assign | ast.Output | ast.Return):
        return [stmt.value]
    if isinstance(stmt, ast.Repeat):
        return [stmt.count]
    if isinstance(stmt, ast.Input):
        return list(stmt.dims)
    return []


def item_exprs(item) -> Iterator[ast.Expr]:
    """Every expression in a top-level item."""
    if isinstance(item, ast.Const):
        yield from iter_exprs(item.value)
    elif isinstance(item, ast.Block | ast.Model):
        for p in item.params:
            yield from iter_exprs(p.default)
        for stmt in iter_stmts(item.body):
            for e in stmt_exprs(stmt):
                yield from iter_exprs(e)
    elif isinstance(item, ast.Experiment):
        for entry in item.entries:
            for e in entry.entries if isinstance(entry, ast.Section) else (entry,):
                yield from iter_exprs(e.value)
