"""Editing features: formatting (`mdlc fmt`'s formatter) and quick fixes (each diagnostic's `fix`).

- `textDocument/formatting`: one edit replacing the whole document with `format_source`'s output; no
  edit when the text is already formatted, and none on a text with syntax errors (the formatter
  would drop the broken statements; the diagnostics already say what is wrong).
- `textDocument/codeAction`: for every diagnostic of the current version that has a machine-applicable
  `fix` (a did-you-mean name, a valid `heads` value, a named argument, ...) and touches the requested
  range, a `quickfix` action with the fix's edits, the diagnostic attached, preferred (a diagnostic
  has at most one fix, so it is the one to apply). Fixes whose edits fall in another file (an
  imported one) are not offered.
"""

from __future__ import annotations

from lsprotocol import types

from mdl.dsl.ast import Span
from mdl.dsl.diagnostics import Diagnostic
from mdl.dsl.format import FormatError, format_source
from mdl.lsp.document import to_lsp
from mdl.lsp.server import MdlServer, Snapshot


def format_edits(snapshot: Snapshot) -> list[types.TextEdit] | None:
    """The edits that format the document, [] when it is formatted, None when it does not parse."""
    try:
        formatted = format_source(snapshot.text, snapshot.path)
    except FormatError:
        return None
    if formatted == snapshot.text:
        return []
    whole = snapshot.to_range(Span(snapshot.path, 1, 1, 1, 1, 0, len(snapshot.text)))
    return [types.TextEdit(range=whole, new_text=formatted)]


def quick_fixes(server: MdlServer, snapshot: Snapshot, requested: types.Range,
                only: list[str] | None = None) -> list[types.CodeAction]:
    """One quick fix per diagnostic with a `fix` whose span touches `requested`."""
    if only and not any(types.CodeActionKind.QuickFix.value.startswith(kind) for kind in only):
        return []
    start, end = snapshot.to_offset(requested.start), snapshot.to_offset(requested.end)
    actions: list[types.CodeAction] = []
    for diagnostic in snapshot.analysis.diagnostics:
        if diagnostic.fix is None or not _in_file(snapshot, diagnostic):
            continue
        if diagnostic.span.start > end or diagnostic.span.end < start:
            continue
        edits = [types.TextEdit(range=snapshot.to_range(e.span), new_text=e.new_text) for e in diagnostic.fix.edits]
        actions.append(types.CodeAction(
            title=diagnostic.fix.title, kind=types.CodeActionKind.QuickFix,
            diagnostics=[to_lsp(snapshot, diagnostic)], is_preferred=True,
            edit=_workspace_edit(server, snapshot, edits)))
    return actions


def _in_file(snapshot: Snapshot, diagnostic: Diagnostic) -> bool:
    files = {diagnostic.span.file, *(e.span.file for e in diagnostic.fix.edits)}
    return files <= {None, snapshot.path}


def _workspace_edit(server: MdlServer, snapshot: Snapshot, edits: list[types.TextEdit]) -> types.WorkspaceEdit:
    """A versioned `documentChanges` edit when the client takes one (it then refuses a stale edit)."""
    capabilities = server.client_capabilities
    workspace_edit = capabilities.workspace.workspace_edit if capabilities and capabilities.workspace else None
    if workspace_edit is not None and workspace_edit.document_changes and snapshot.version is not None:
        return types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(
            text_document=types.OptionalVersionedTextDocumentIdentifier(uri=snapshot.uri, version=snapshot.version),
            edits=edits)])
    return types.WorkspaceEdit(changes={snapshot.uri: edits})


def register(server: MdlServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    @server.guarded
    def formatting(ls: MdlServer, params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
        return format_edits(ls.snapshot(params.text_document.uri))

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    @server.guarded
    def code_action(ls: MdlServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        snapshot = ls.snapshot(params.text_document.uri)
        return quick_fixes(ls, snapshot, params.range, params.context.only) or None


__all__ = ["format_edits", "quick_fixes", "register"]
