"""Go to definition, find references and rename, over one index of every name in a document.

`index(snapshot)` walks the document's syntax tree with the front end's scope (`Analysis.scope`) and
records each occurrence of a name: where it is, whether it declares the name, and the symbol it means.
A symbol is keyed by the file that defines it (its resolved path), so `layers.encoder` in one file
and `block encoder` in `lib/layers.mdl` are the same symbol, and the stdlib's blocks are keyed by the
files under `mdl/stdlib/`. Scoping follows `mdl.compiler.names`: inside a block or model the
parameters, inputs, bindings, outputs and `repeat ... as i` variables are local to that item, visible
from where they are bound on (rebinding a name keeps the same symbol: every binding of `x` in one
body is one variable); other names resolve through the module scope (this file's definitions, then
unqualified imports; `alias.NAME` through a file or `as` import). A keyword argument of a call to a
block or model refers to that callee's parameter.

Rename edits this document and the other open documents that use the symbol. It refuses keywords,
primitives, names defined in other files or in the stdlib (an edit there could break files that are
not open; the stdlib is read-only), and a new name that is not an identifier, is a keyword or a
primitive, or is already a name where the symbol is used.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.workspace import TextDocument

from mdl.compiler.experiment import PPO_ARGS
from mdl.compiler.primitives import BUILTINS, PRIMITIVES
from mdl.compiler.resolve import ModuleScope
from mdl.dsl import ast
from mdl.dsl.parser import KEYWORDS, Token, tokenize

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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


class _Indexer:
    def __init__(self, text: str, scope: ModuleScope, key: str | None):
        self.text = text
        self.scope = scope
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
        owner = item.name_span.start
        bound: dict[str, tuple] = {}

        def declare(name: str, start: int, kind: str) -> None:
            key = bound.get(name) or ("local", self.out.file, owner, name)
            bound[name] = key
            self.out.owners.setdefault(key, item)
            self.add(start, name, key, kind, True, target=Target(self.out.file, start, start + len(name)))

        for p in item.params:
            declare(p.name, p.span.start, "param")
            if p.type is not None:
                self.type_ann(p.type)
        for p in item.params:
            if p.default is not None:
                self.expr(p.default, {}, None)  # defaults are evaluated in the module scope
        self.body(item.body, bound, declare, item)

    def type_ann(self, ann: ast.TypeAnn) -> None:
        self.add(ann.span.start, ann.name, None, "type")
        for d in ann.dims or ():
            self.expr(d, {}, None, symbols=True)

    def body(self, body: tuple[ast.Stmt, ...], bound: dict, declare, item) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Input):
                declare(stmt.name, stmt.name_span.start, "local")
                colon = self.token_after(stmt.name_span.end, stmt.span.end, ("NAME",))
                if colon is not None and colon.value == stmt.dtype:
                    self.add(colon.start_pos, stmt.dtype, None, "type")
                for d in stmt.dims:
                    self.expr(d, bound, item, symbols=True)
            elif isinstance(stmt, ast.Assign | ast.Output):
                self.expr(stmt.value, bound, item)
                declare(stmt.name, stmt.name_span.start, "local")
            elif isinstance(stmt, ast.Return):
                self.expr(stmt.value, bound, item)
            elif isinstance(stmt, ast.Repeat):
                self.expr(stmt.count, bound, item)
                if stmt.var:
                    as_tok = self.token_after(stmt.count.span.end, stmt.span.end, ("AS", "LBRACE"))
                    tok = self.token_after(as_tok.end_pos, stmt.span.end, ("NAME",)) if as_tok and as_tok.type == "AS" else None
                    if tok is not None and tok.value == stmt.var:
                        declare(stmt.var, tok.start_pos, "loop")
                self.body(stmt.body, bound, declare, item)

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

    def reference(self, name: str, start: int, bound: dict, call: bool, symbols: bool = False):
        """Record a (possibly qualified) name used at `start`; returns the definition it resolves to."""
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

    def expr(self, e: ast.Expr, bound: dict, item, symbols: bool = False) -> None:
        if isinstance(e, ast.Name):
            self.reference(e.id, e.span.start, bound, False, symbols)
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
            callee = self.reference(e.func, e.func_span.start, bound, True)
            for a in e.args:
                self.expr(a, bound, item, symbols)
            for k in e.kwargs:
                self.keyword(k, callee)
                self.expr(k.value, bound, item, symbols)
        elif isinstance(e, ast.Quantity):
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
            if isinstance(entry, ast.Sweep):
                for e in entry.entries:
                    self.sweep_key(e, model)
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


def index(snapshot) -> Index:
    """The name index of a snapshot (cached on it per version)."""
    cached = _CACHE.get(snapshot.uri)
    if cached is not None and cached[0] is snapshot:
        return cached[1]
    key = document_key(snapshot.path, snapshot.uri)
    scope = snapshot.analysis.scope
    if scope is None:
        out = Index(key)
        with contextlib.suppress(RecursionError):
            out.tokens = tokenize(snapshot.text, out.comments, None)
    else:
        out = _Indexer(snapshot.text, scope, key).run()
    _CACHE[snapshot.uri] = (snapshot, out)
    return out


_CACHE: dict[str, tuple[object, Index]] = {}


# ----------------------------------------------------------------------------------- other files' text


def _other_document(server, file: str) -> TextDocument:
    """A position-codec view of another file: the open document when it is open, else the file on disk."""
    uri = Path(file).as_uri()
    doc = server.workspace.text_documents.get(uri)
    if doc is not None:
        return doc
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    return TextDocument(uri, text, position_codec=server.workspace.position_codec)


def location(server, snapshot, target: Target) -> types.Location:
    here = document_key(snapshot.path, snapshot.uri)
    if target.file is None or target.file == here:
        return types.Location(snapshot.uri, snapshot.to_range(ast.Span(None, 1, 1, 1, 1, target.start, target.end)))
    doc = _other_document(server, target.file)
    n = len(doc.source)
    return types.Location(doc.uri, types.Range(doc.client_position_at_offset(min(target.start, n)),
                                               doc.client_position_at_offset(min(target.end, n))))


# ------------------------------------------------------------------------------------------ features


def definition(server, uri: str, position: types.Position) -> list[types.Location] | None:
    snapshot = server.snapshot(uri)
    idx = index(snapshot)
    occ = idx.at(snapshot.to_offset(position))
    if occ is None or occ.key is None:
        return None
    key = occ.key
    if key[0] == "namespace" and not occ.declaration:
        key = ("namespace-file", *key[1:])  # `layers` in `layers.encoder`: the imported file
    target = idx.targets.get(key)
    if target is None:
        return None
    return [location(server, snapshot, target)]


def _open_snapshots(server, uri: str):
    yield server.snapshot(uri)
    for other in list(server.workspace.text_documents):
        if other != uri and other.endswith(".mdl"):
            try:
                yield server.snapshot(other)
            except Exception:  # a document that cannot be read adds no references
                continue


def _occurrences(server, uri: str, key: tuple):
    for snap in _open_snapshots(server, uri):
        for o in index(snap).occurrences:
            if o.key == key:
                yield snap, o


def references(server, uri: str, position: types.Position, include_declaration: bool) -> list[types.Location] | None:
    snapshot = server.snapshot(uri)
    occ = index(snapshot).at(snapshot.to_offset(position))
    if occ is None or occ.key is None:
        return None
    out, seen = [], set()
    for snap, o in _occurrences(server, uri, occ.key):
        if o.declaration and not include_declaration:
            continue
        if (snap.uri, o.start) not in seen:
            seen.add((snap.uri, o.start))
            out.append(types.Location(snap.uri, snap.to_range(ast.Span(None, 1, 1, 1, 1, o.start, o.end))))
    target = index(snapshot).targets.get(occ.key)
    if include_declaration and target is not None and occ.key[0] != "namespace":
        loc = location(server, snapshot, target)  # the declaration, also in a file that is not open
        if not any(x.uri == loc.uri and x.range == loc.range for x in out):
            out.append(loc)
    return out


_RENAMABLE = {"const", "block", "model", "experiment", "param", "argument", "local", "loop", "namespace"}


def _renamable(snapshot, occ: Occurrence | None) -> str | None:
    """Why the occurrence cannot be renamed, or None when it can."""
    if occ is None:
        return "there is no name here to rename"
    if occ.kind in ("primitive", "builtin"):
        return f"`{snapshot.text[occ.start:occ.end]}` is a primitive and cannot be renamed"
    if occ.key is None or occ.kind not in _RENAMABLE:
        return "only blocks, models, consts, experiments, parameters, bindings and import aliases can be renamed"
    here = document_key(snapshot.path, snapshot.uri)
    file = occ.key[1]
    if occ.library or is_library_file(file):
        return "names defined in the standard library cannot be renamed"
    if file != here:
        return "this name is defined in another file: rename it there"
    return None


def prepare_rename(server, uri: str, position: types.Position):
    snapshot = server.snapshot(uri)
    occ = index(snapshot).at(snapshot.to_offset(position))
    if _renamable(snapshot, occ) is not None:
        return None
    text = snapshot.text[occ.start:occ.end]
    return types.PrepareRenamePlaceholder(snapshot.to_range(ast.Span(None, 1, 1, 1, 1, occ.start, occ.end)), text)


def _collision(snapshot, idx: Index, occ: Occurrence, new: str) -> str | None:
    if not _IDENT.fullmatch(new):
        return f"`{new}` is not a valid name: names are letters, digits and `_`, not starting with a digit"
    if new in KEYWORDS:
        return f"`{new}` is a keyword"
    if new in PRIMITIVES or new in BUILTINS:
        return f"`{new}` is a primitive"
    scope = snapshot.analysis.scope
    if scope is None:
        return None
    key = occ.key
    taken = f"`{new}` is already defined"
    if key[0] == "experiment":
        return taken if new in scope.experiments else None
    if key[0] == "namespace":
        return taken if new in scope.namespaces or new in scope.definitions else None
    if key[0] == "global":
        if new in scope.definitions or new in scope.namespaces or scope.lookup(new) is not None:
            return taken
        # a local of that name where the symbol is used would capture the use
        for other_key, item in idx.owners.items():
            if other_key[3] == new and other_key[1] == idx.file and any(
                    o.key == key and item.span.start <= o.start < item.span.end for o in idx.occurrences):
                return f"`{new}` is already a name inside `{item.name}`"
        return None
    # a local: the item's other locals, and module names it could shadow
    item = idx.owners.get(key)
    if any(k[0] == "local" and k[2] == key[2] and k[3] == new for k in idx.owners):
        return f"`{new}` is already a name inside `{item.name if item else 'this body'}`"
    if scope.lookup(new) is not None or new in scope.namespaces:
        return f"`{new}` is already defined in this file or its imports"
    return None


def rename(server, uri: str, position: types.Position, new_name: str) -> types.WorkspaceEdit:
    snapshot = server.snapshot(uri)
    idx = index(snapshot)
    occ = idx.at(snapshot.to_offset(position))
    why = _renamable(snapshot, occ) or _collision(snapshot, idx, occ, new_name)
    if why is not None:
        raise JsonRpcInvalidParams(why)
    changes: dict[str, list[types.TextEdit]] = {}
    for snap, o in _occurrences(server, uri, occ.key):
        rng = snap.to_range(ast.Span(None, 1, 1, 1, 1, o.start, o.end))
        edits = changes.setdefault(snap.uri, [])
        if all(e.range != rng for e in edits):
            edits.append(types.TextEdit(rng, new_name))
    return types.WorkspaceEdit(changes=changes)


def register(server) -> None:
    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def _definition(ls, params: types.DefinitionParams):
        try:
            return definition(ls, params.text_document.uri, params.position)
        except RecursionError:
            return None

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    def _references(ls, params: types.ReferenceParams):
        try:
            return references(ls, params.text_document.uri, params.position, params.context.include_declaration)
        except RecursionError:
            return None

    @server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
    def _prepare_rename(ls, params: types.PrepareRenameParams):
        try:
            return prepare_rename(ls, params.text_document.uri, params.position)
        except RecursionError:
            return None

    @server.feature(types.TEXT_DOCUMENT_RENAME, types.RenameOptions(prepare_provider=True))
    def _rename(ls, params: types.RenameParams):
        return rename(ls, params.text_document.uri, params.position, params.new_name)


__all__ = ["Index", "Occurrence", "Target", "definition", "index", "prepare_rename", "references", "register",
           "rename"]
