"""The name index of a document: every occurrence of a name, whether it declares it, and what it means.

`build_index(text, scope, key)` walks the syntax tree with the front end's scope (`Analysis.scope`)
and records each occurrence of a name: where it is, whether it declares the name, and the symbol it
means. A symbol is keyed by the file that defines it (its resolved path), so `layers.encoder` in one
file and `block encoder` in `lib/layers.mdl` are the same symbol, and the stdlib's blocks are keyed by
the files under `mdl/stdlib/`. Scoping is mdl.compiler.names' (`ScopeWalker`, which the checker's
name pass uses too): inside a block or model the parameters, inputs, bindings, outputs and
`repeat ... as i` variables are local to that item, visible from where they are bound on (rebinding a
name keeps the same symbol: every binding of `x` in one body is one variable); other names resolve
through the module scope (this file's definitions, then unqualified imports; `alias.NAME` through a
file or `as` import). A keyword argument of a call to a block or model refers to that callee's
parameter.

The analysis builds the index on first use and keeps it (`Analysis.name_index`): the language
server's definition, references, rename and semantic tokens read the same one, and it goes when the
document's analysis does.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from mdl.compiler.experiment import PPO_ARGS
from mdl.compiler.names import ScopeWalker
from mdl.compiler.primitives import BUILTINS, PRIMITIVES
from mdl.compiler.resolve import ModuleScope
from mdl.dsl import ast
from mdl.dsl.parser import Token, tokenize


@dataclass(frozen=True, slots=True)
class Target:
    """Where a symbol is declared: a file (resolved path; None for an unsaved document) and offsets."""

    file: str | None
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One name in the document. `key` is None for names that mean no symbol (symbolic dims, units)."""

    start: int
    end: int
    key: tuple | None
    kind: str  # const block model experiment param argument (a `name=` naming a parameter) local loop namespace ...
    declaration: bool = False
    library: bool = False  # defined in the stdlib or a primitive


@dataclass
class Index:
    file: str | None  # this document's key
    occurrences: list[Occurrence] = field(default_factory=list)
    targets: dict[tuple, Target] = field(default_factory=dict)
    kinds: dict[tuple, str] = field(default_factory=dict)
    owners: dict[tuple, ast.Block | ast.Model | None] = field(default_factory=dict)  # locals -> their item
    tokens: list[Token] = field(default_factory=list)
    comments: list[ast.Comment] = field(default_factory=list)

    def at(self, offset: int) -> Occurrence | None:
        """The occurrence under `offset` (a cursor just after a name counts)."""
        starts = [o.start for o in self.occurrences]
        i = bisect.bisect_right(starts, offset) - 1
        for j in (i, i - 1):
            if 0 <= j < len(self.occurrences):
                o = self.occurrences[j]
                if o.start <= offset <= o.end:
                    return o
        return None


# ----------------------------------------------------------------------------------------- file keys


@functools.cache
def stdlib_root() -> Path:
    return Path(str(resources.files("mdl.stdlib"))).resolve()


def file_key(scope: ModuleScope, root: ModuleScope, root_key: str | None) -> str | None:
    """The resolved path of the file a scope was read from (the stdlib's by its package path)."""
    if scope is root:
        return root_key
    path = scope.path
    if path is None:
        return None
    p = Path(path)
    if not p.is_absolute() and path.startswith("stdlib/") and not p.exists():
        return str(stdlib_root().joinpath(*Path(path).parts[1:]))
    return str(p.resolve())


def is_library_file(key: str | None) -> bool:
    return key is not None and Path(key).is_relative_to(stdlib_root())


def document_key(path: str | None, uri: str) -> str:
    return str(Path(path).resolve()) if path else uri


# ------------------------------------------------------------------------------------------- indexing


class _Indexer(ScopeWalker):
    def __init__(self, text: str, scope: ModuleScope, key: str | None):
        super().__init__(scope)
        self.text = text
        self.out = Index(key)
        self.out.tokens = tokenize(text, self.out.comments, None)
        self._starts = [t.start_pos for t in self.out.tokens]

    # helpers
    def key_of(self, scope: ModuleScope) -> str | None:
        return file_key(scope, self.scope, self.out.file)

    def add(self, start: int, name: str, key: tuple | None, kind: str, declaration: bool = False,
            library: bool = False, target: Target | None = None) -> None:
        self.out.occurrences.append(Occurrence(start, start + len(name), key, kind, declaration, library))
        if key is not None:
            if kind != "argument":
                self.out.kinds.setdefault(key, kind)
            if target is not None and (declaration or key not in self.out.targets):
                self.out.targets.setdefault(key, target)

    def token_after(self, offset: int, end: int, types_: tuple[str, ...]) -> Token | None:
        i = bisect.bisect_left(self._starts, offset)
        while i < len(self.out.tokens) and self.out.tokens[i].start_pos < end:
            if self.out.tokens[i].type in types_:
                return self.out.tokens[i]
            i += 1
        return None

    def global_key(self, definition, defining: ModuleScope) -> tuple[tuple, Target, str, bool]:
        file = self.key_of(defining)
        kind = {ast.Const: "const", ast.Block: "block", ast.Model: "model"}.get(type(definition), "experiment")
        span = definition.name_span
        return ("global", file, definition.name), Target(file, span.start, span.end), kind, is_library_file(file)

    # the module
    def run(self) -> Index:
        for item in self.scope.module.items:
            try:
                self.item(item)
            except RecursionError:  # absurd nesting: index what came before
                break
        self.out.occurrences.sort(key=lambda o: o.start)
        return self.out

    def item(self, item: ast.Item) -> None:
        if isinstance(item, ast.Import):
            self.import_(item)
        elif isinstance(item, ast.Const):
            self.declare_global(item)
            self.expr(item.value, {}, None)
        elif isinstance(item, ast.Block | ast.Model):
            self.declare_global(item)
            self.body_item(item)
        elif isinstance(item, ast.Experiment):
            self.declare_global(item)
            self.experiment(item)

    def declare_global(self, item) -> None:
        key, target, kind, library = self.global_key(item, self.scope)
        if isinstance(item, ast.Experiment):
            key = ("experiment", key[1], item.name)
        self.add(item.name_span.start, item.name, key, kind, True, library, target)

    def import_(self, item: ast.Import) -> None:
        start, end = item.span.start, item.span.end
        if item.alias:
            imported = self.scope.namespaces.get(item.alias)
        else:
            wanted = f"stdlib/{'.'.join((item.module or '').split('.')[1:]).replace('.', '/')}.mdl"
            imported = next((s for s in self.scope.unqualified if s.path == wanted), None)
        imported_file = self.key_of(imported) if imported is not None else None
        file_target = Target(imported_file, 0, 0) if imported_file else None
        module_key = ("module", imported_file) if imported_file else None
        if item.path is not None:
            tok = self.token_after(start, end, ("STRING",))
            if tok is not None:
                self.add(tok.start_pos, tok.value, module_key, "module", target=file_target)
        elif item.module is not None:
            tok = self.token_after(start, end, ("NAME",))
            if tok is not None:
                self.add(tok.start_pos, item.module, module_key, "module", library=True, target=file_target)
        if item.alias:
            as_tok = self.token_after(start, end, ("AS",))
            tok = self.token_after(as_tok.end_pos, end, ("NAME",)) if as_tok else None
            if tok is not None and tok.value == item.alias:
                key = ("namespace", self.out.file, item.alias)
                self.add(tok.start_pos, item.alias, key, "namespace", True,
                         target=Target(self.out.file, tok.start_pos, tok.end_pos))
                if file_target is not None:
                    self.out.targets[("namespace-file", self.out.file, item.alias)] = file_target

    def body_item(self, item: ast.Block | ast.Model) -> None:
        bound: dict[str, tuple] = {}
        for p in item.params:
            self.declare(p.name, p.span.start, "param", bound, item)
            if p.type is not None:
                self.type_ann(p.type)
        for p in item.params:
            if p.default is not None:
                self.expr(p.default, {}, None)  # defaults are evaluated in the module scope
        self.body(item.body, bound, item)

    def declare(self, name: str, start: int, kind: str, bound: dict, item) -> None:
        key = bound.get(name) or ("local", self.out.file, item.name_span.start, name)
        bound[name] = key
        self.out.owners.setdefault(key, item)
        self.add(start, name, key, kind, True, target=Target(self.out.file, start, start + len(name)))

    def type_ann(self, ann: ast.TypeAnn) -> None:
        self.add(ann.span.start, ann.name, None, "type")
        for d in ann.dims or ():
            self.expr(d, {}, None, symbols=True)

    def input_declared(self, stmt: ast.Input, bound: dict, item) -> None:
        self.declare(stmt.name, stmt.name_span.start, "local", bound, item)
        colon = self.token_after(stmt.name_span.end, stmt.span.end, ("NAME",))
        if colon is not None and colon.value == stmt.dtype:
            self.add(colon.start_pos, stmt.dtype, None, "type")

    def loop_declared(self, stmt: ast.Repeat, bound: dict, item) -> None:
        as_tok = self.token_after(stmt.count.span.end, stmt.span.end, ("AS", "LBRACE"))
        tok = self.token_after(as_tok.end_pos, stmt.span.end, ("NAME",)) if as_tok and as_tok.type == "AS" else None
        if tok is not None and tok.value == stmt.var:
            self.declare(stmt.var, tok.start_pos, "loop", bound, item)

    def qualified(self, name: str, start: int) -> tuple[str, int] | None:
        """For `alias.NAME`: record the alias and return (NAME, its offset); None when not an alias."""
        head, _, rest = name.partition(".")
        ns = self.scope.namespaces.get(head)
        if ns is None:
            return None
        key = ("namespace", self.out.file, head)
        self.add(start, head, key, "namespace")
        tok = self.token_after(start + len(head), start + len(name) + 64, ("NAME",))
        return rest, tok.start_pos if tok is not None and tok.value == rest.split(".")[0] else start + len(head) + 1

    def use(self, name: str, span: ast.Span, bound: dict, call: bool, symbols: bool):
        """Record a (possibly qualified) name used at `span`; returns the definition it resolves to."""
        start = span.start
        if "." not in name and name in bound:
            key = bound[name]
            self.add(start, name, key, self.out.kinds.get(key, "local"))
            return None
        if "." not in name and (name in PRIMITIVES or name in BUILTINS):
            kind = "primitive" if name in PRIMITIVES else "builtin"
            self.add(start, name, (kind, name), kind, library=True)
            return None
        found = self.scope.lookup(name)
        if "." in name:
            member = self.qualified(name, start)
            if member is None:
                self.add(start, name, None, "function" if call else "unknown")
                return None
            name, start = member
        if found is None:
            self.add(start, name, None, "function" if call else ("symbol" if symbols else "unknown"))
            return None
        definition, defining = found
        key, target, kind, library = self.global_key(definition, defining)
        self.add(start, name, key, kind, library=library, target=target)
        return definition, defining

    def quantity(self, e: ast.Quantity) -> None:
        unit = self.token_after(e.span.start + 1, e.span.end, ("NAME",))
        if unit is not None:
            self.add(unit.start_pos, unit.value, None, "unit")

    def keyword(self, k: ast.Keyword, callee) -> None:
        """`name=` of a call: the callee's parameter when the callee is a block or model."""
        if callee is not None:
            definition, defining = callee
            if isinstance(definition, ast.Block | ast.Model):
                param = next((p for p in definition.params if p.name == k.name), None)
                if param is not None:
                    file = self.key_of(defining)
                    key = ("local", file, definition.name_span.start, k.name)
                    self.out.owners.setdefault(key, definition)
                    self.add(k.name_span.start, k.name, key, "argument", library=is_library_file(file),
                             target=Target(file, param.span.start, param.span.start + len(k.name)))
                    return
        self.add(k.name_span.start, k.name, None, "property")

    def experiment(self, exp: ast.Experiment) -> None:
        model = None
        for entry in exp.entries:
            if isinstance(entry, ast.Entry):
                if entry.key != "model":
                    self.add(entry.key_span.start, entry.key, None, "property")
                self.expr(entry.value, {}, None)
                if entry.key == "model" and isinstance(entry.value, ast.Call):
                    found = self.scope.lookup(entry.value.func)
                    model = found if found is not None and isinstance(found[0], ast.Model) else None
        for entry in exp.entries:
            if isinstance(entry, ast.Section):
                for e in entry.entries:
                    if entry.kind == "sweep":
                        self.sweep_key(e, model)
                    else:  # a limit's key names a cost, never a parameter
                        self.add(e.key_span.start, e.key, None, "property")
                    self.expr(e.value, {}, None)

    def sweep_key(self, e: ast.Entry, model) -> None:
        """`experts` / `model.experts` in a sweep: the experiment's model's parameter where it has one."""
        head, dot, rest = e.key.rpartition(".")
        start = e.key_span.start + (len(head) + 1 if dot else 0)
        if head and head != "model" and head != "":
            self.add(e.key_span.start, e.key, None, "property")
            return
        if model is not None:
            definition, defining = model
            param = next((p for p in definition.params if p.name == rest), None)
            if param is not None and (head == "model" or rest not in _ALGO_KEYS):
                file = self.key_of(defining)
                key = ("local", file, definition.name_span.start, rest)
                self.out.owners.setdefault(key, definition)
                self.add(start, rest, key, "argument", target=Target(file, param.span.start, param.span.start + len(rest)))
                return
        self.add(start, rest, None, "property")


_ALGO_KEYS = frozenset(a.name for a in PPO_ARGS)


def build_index(text: str, scope: ModuleScope | None, key: str | None) -> Index:
    """The name index of `text` (analysed into `scope`; None when it did not parse: tokens only)."""
    if scope is None:
        out = Index(key)
        with contextlib.suppress(RecursionError):
            out.tokens = tokenize(text, out.comments, None)
        return out
    return _Indexer(text, scope, key).run()
