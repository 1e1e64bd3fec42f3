"""The language's name scoping, written once: `ScopeWalker`, and the checker's name pass over it.

Inside a block or model the parameters, inputs, bindings, outputs and `repeat ... as i` variables are
local to that item and visible from where they are bound on; every other name resolves through the
module scope (this file's definitions, then unqualified imports; `alias.NAME` through an import).
`ScopeWalker` walks a body in that order, keeping what is bound, and hands each declaration and each
use to its subclass: `check_names` (below) reports the names and callees that resolve to nothing, and
mdl.compiler.nameindex records every occurrence for the editor.

Elaboration finds unknown names too, but only in code a model actually runs; this pass also covers
the blocks of the checked file that nothing calls yet, so a typo in an unused block is still shown.
"""

from __future__ import annotations

from typing import Any

from mdl.compiler.calls import takes_symbols, unknown_block, unknown_name
from mdl.compiler.primitives import BUILTINS, PRIMITIVES
from mdl.compiler.resolve import ModuleScope
from mdl.dsl import ast
from mdl.dsl.diagnostics import Diagnostic


class ScopeWalker:
    """Walks statements and expressions in scoping order; `bound` maps each local name to what the
    subclass's `declare` made of it."""

    def __init__(self, scope: ModuleScope):
        self.scope = scope

    # what a subclass sees
    def declare(self, name: str, start: int, kind: str, bound: dict[str, Any], item) -> None:
        bound.setdefault(name, name)

    def use(self, name: str, span: ast.Span, bound: dict[str, Any], call: bool, symbols: bool) -> Any:
        """A name read at `span` (`call`: as a callee); returns what it resolved to, for `keyword`."""
        return None

    def keyword(self, k: ast.Keyword, callee: Any) -> None:
        """The `name=` of a call whose callee `use` resolved to `callee`."""

    def keyword_symbols(self, func: str, name: str, symbols: bool) -> bool:
        """Whether bare names in the value of `func(name=...)` are symbolic dims."""
        return symbols

    def input_declared(self, stmt: ast.Input, bound: dict[str, Any], item) -> None:
        self.declare(stmt.name, stmt.name_span.start, "local", bound, item)

    def loop_declared(self, stmt: ast.Repeat, bound: dict[str, Any], item) -> None:
        self.declare(stmt.var, stmt.span.start, "loop", bound, item)

    def quantity(self, e: ast.Quantity) -> None:
        """A number with a unit (`2M steps`): no name to resolve, but a unit to see."""

    # the walk
    def body(self, body: tuple[ast.Stmt, ...], bound: dict[str, Any], item) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Input):
                self.input_declared(stmt, bound, item)
                for d in stmt.dims:
                    self.expr(d, bound, item, symbols=True)
            elif isinstance(stmt, ast.Assign | ast.Output):
                self.expr(stmt.value, bound, item)
                self.declare(stmt.name, stmt.name_span.start, "local", bound, item)
            elif isinstance(stmt, ast.Return):
                self.expr(stmt.value, bound, item)
            elif isinstance(stmt, ast.Repeat):
                self.expr(stmt.count, bound, item)
                if stmt.var:
                    self.loop_declared(stmt, bound, item)
                self.body(stmt.body, bound, item)

    def expr(self, e: ast.Expr, bound: dict[str, Any], item, symbols: bool = False) -> None:
        if isinstance(e, ast.Name):
            self.use(e.id, e.span, bound, False, symbols)
        elif isinstance(e, ast.BinOp):
            self.expr(e.left, bound, item, symbols)
            self.expr(e.right, bound, item, symbols)
        elif isinstance(e, ast.Neg):
            self.expr(e.operand, bound, item, symbols)
        elif isinstance(e, ast.List):
            for x in e.items:
                self.expr(x, bound, item, symbols)
        elif isinstance(e, ast.Pipe):
            self.expr(e.value, bound, item, symbols)
            self.expr(e.call, bound, item, symbols)
        elif isinstance(e, ast.Call):
            callee = self.use(e.func, e.func_span, bound, True, False)
            for a in e.args:
                self.expr(a, bound, item, symbols)
            for k in e.kwargs:
                self.keyword(k, callee)
                self.expr(k.value, bound, item, self.keyword_symbols(e.func, k.name, symbols))
        elif isinstance(e, ast.Quantity):
            self.quantity(e)


class _NameChecker(ScopeWalker):
    def __init__(self, scope: ModuleScope, out: list[Diagnostic]):
        super().__init__(scope)
        self.out = out

    def keyword_symbols(self, func: str, name: str, symbols: bool) -> bool:
        return takes_symbols(func, name)

    def use(self, name: str, span: ast.Span, bound: dict[str, Any], call: bool, symbols: bool) -> Any:
        scope = self.scope
        if name in bound or scope.lookup(name) is not None or scope.from_failed_import(name):
            return None  # a failed import is reported already
        if call and name not in PRIMITIVES and name not in BUILTINS:
            self.out.append(unknown_block(name, span, scope))
        elif not call and not symbols and name not in PRIMITIVES:
            self.out.append(unknown_name(name, span, [*bound, *scope.visible_names()]))
        return None


def check_names(scope: ModuleScope, diagnostics: list[Diagnostic]) -> None:
    checker = _NameChecker(scope, diagnostics)
    for item in scope.module.items:
        if isinstance(item, ast.Block | ast.Model) and scope.definitions.get(item.name) is item:
            bound = {p.name: p.name for p in item.params}
            for p in item.params:
                if p.default is not None:
                    checker.expr(p.default, dict(bound), item)
            checker.body(item.body, bound, item)
