"""Go to definition, find references and rename, over one index of every name in a document.

`snapshot.names()` is the compiler's name index of the document (mdl.compiler.nameindex, built on
first use and kept on the snapshot's analysis): each occurrence of a name, whether it declares the
name, and the symbol it means, keyed by the file that defines it.

Rename edits this document and the other open documents that use the symbol. It refuses keywords,
primitives, names defined in other files or in the stdlib (an edit there could break files that are
not open; the stdlib is read-only), and a new name that is not an identifier, is a keyword or a
primitive, or is already a name where the symbol is used.
"""

from __future__ import annotations

import re
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.workspace import TextDocument

from mdl.compiler.nameindex import Index, Occurrence, Target, document_key, is_library_file
from mdl.compiler.primitives import BUILTINS, PRIMITIVES
from mdl.dsl import ast
from mdl.dsl.parser import KEYWORDS

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    idx = snapshot.names()
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
        for o in snap.names().occurrences:
            if o.key == key:
                yield snap, o


def references(server, uri: str, position: types.Position, include_declaration: bool) -> list[types.Location] | None:
    snapshot = server.snapshot(uri)
    occ = snapshot.names().at(snapshot.to_offset(position))
    if occ is None or occ.key is None:
        return None
    out, seen = [], set()
    for snap, o in _occurrences(server, uri, occ.key):
        if o.declaration and not include_declaration:
            continue
        if (snap.uri, o.start) not in seen:
            seen.add((snap.uri, o.start))
            out.append(types.Location(snap.uri, snap.to_range(ast.Span(None, 1, 1, 1, 1, o.start, o.end))))
    target = snapshot.names().targets.get(occ.key)
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
    occ = snapshot.names().at(snapshot.to_offset(position))
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
    idx = snapshot.names()
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


__all__ = ["definition", "prepare_rename", "references", "register",
           "rename"]
