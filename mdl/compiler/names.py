"""A static pass over every block and model body: names and callees must resolve.

Elaboration finds these too, but only in code a model actually runs; this pass also covers the blocks
of the checked file that nothing calls yet, so a typo in an unused block is still shown.
"""

from __future__ import annotations

from mdl.compiler.calls import takes_symbols, unknown_block, unknown_name
from mdl.compiler.primitives import BUILTINS, PRIMITIVES
from mdl.compiler.resolve import ModuleScope
from mdl.dsl import ast
from mdl.dsl.diagnostics import Diagnostic


def check_names(scope: ModuleScope, diagnostics: list[Diagnostic]) -> None:
    for item in scope.module.items:
        if isinstance(item, ast.Block | ast.Model) and scope.definitions.get(item.name) is item:
            bound = {p.name for p in item.params}
            for p in item.params:
                if p.default is not None:
                    _expr(p.default, scope, bound, diagnostics, symbols=False)
            _body(item.body, scope, bound, diagnostics)


def _body(body: tuple[ast.Stmt, ...], scope: ModuleScope, bound: set[str], out: list[Diagnostic]) -> None:
    for stmt in body:
        if isinstance(stmt, ast.Input):
            for d in stmt.dims:
                _expr(d, scope, bound, out, symbols=True)
            bound.add(stmt.name)
        elif isinstance(stmt, ast.Assign | ast.Output):
            _expr(stmt.value, scope, bound, out, symbols=False)
            bound.add(stmt.name)
        elif isinstance(stmt, ast.Return):
            _expr(stmt.value, scope, bound, out, symbols=False)
        elif isinstance(stmt, ast.Repeat):
            _expr(stmt.count, scope, bound, out, symbols=False)
            if stmt.var:
                bound.add(stmt.var)
            _body(stmt.body, scope, bound, out)


def _expr(e: ast.Expr, scope: ModuleScope, bound: set[str], out: list[Diagnostic], symbols: bool) -> None:
    if isinstance(e, ast.Name):
        if (e.id not in bound and scope.lookup(e.id) is None and not symbols and e.id not in PRIMITIVES
                and not scope.from_failed_import(e.id)):
            out.append(unknown_name(e.id, e.span, [*bound, *scope.visible_names()]))
    elif isinstance(e, ast.BinOp):
        _expr(e.left, scope, bound, out, symbols)
        _expr(e.right, scope, bound, out, symbols)
    elif isinstance(e, ast.Neg):
        _expr(e.operand, scope, bound, out, symbols)
    elif isinstance(e, ast.List):
        for item in e.items:
            _expr(item, scope, bound, out, symbols)
    elif isinstance(e, ast.Pipe):
        _expr(e.value, scope, bound, out, symbols)
        _expr(e.call, scope, bound, out, symbols)
    elif isinstance(e, ast.Call):
        known = (e.func in PRIMITIVES or e.func in BUILTINS or e.func in bound or scope.lookup(e.func) is not None
                 or scope.from_failed_import(e.func))  # the failed import is reported already
        if not known:
            out.append(unknown_block(e.func, e.func_span, scope))
        for a in e.args:
            _expr(a, scope, bound, out, symbols)
        for k in e.kwargs:
            _expr(k.value, scope, bound, out, takes_symbols(e.func, k.name))
