"""Diagnostics pushed to the editor: the front end's, as `mdlc check` reports them.

Published on open, change and save for the version they were computed from (a result for an older
version is dropped, never published over a newer one); closing a document clears its diagnostics; a
change to a file re-checks the open documents that import it. Each diagnostic carries its code, its
labels as related information, and its help at the end of the message.
"""

from __future__ import annotations

from lsprotocol import types

from mdl.compiler.diagnostics import Diagnostic, Severity
from mdl.lsp.server import MdlServer, Snapshot

SOURCE = "mdl"


def to_lsp(snapshot: Snapshot, diagnostic: Diagnostic) -> types.Diagnostic:
    """One front-end diagnostic as an LSP diagnostic of `snapshot`'s document."""
    message = diagnostic.message + (f"\nhelp: {diagnostic.help}" if diagnostic.help else "")
    related = [types.DiagnosticRelatedInformation(
        types.Location(snapshot.uri, snapshot.to_range(label.span)), label.message)
        for label in diagnostic.labels if _here(snapshot, label.span.file)]
    return types.Diagnostic(
        range=snapshot.to_range(diagnostic.span) if _here(snapshot, diagnostic.span.file)
        else types.Range(types.Position(0, 0), types.Position(0, 0)),
        message=message, code=diagnostic.code, source=SOURCE,
        severity=types.DiagnosticSeverity.Error if diagnostic.severity is Severity.ERROR
        else types.DiagnosticSeverity.Warning,
        related_information=related or None)


def _here(snapshot: Snapshot, file: str | None) -> bool:
    return file is None or file == snapshot.path


def publish(server: MdlServer, uri: str) -> None:
    """Analyse the current text of `uri` and publish its diagnostics, unless the document moved on."""
    snapshot = server.snapshot(uri)
    if server.workspace.get_text_document(uri).version != snapshot.version:
        return  # an edit arrived meanwhile; its own notification publishes
    server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
        uri=uri, version=snapshot.version,
        diagnostics=[to_lsp(snapshot, d) for d in snapshot.analysis.diagnostics]))


def register(server: MdlServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: MdlServer, params: types.DidOpenTextDocumentParams) -> None:
        publish(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: MdlServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        publish(ls, uri)
        path = ls.snapshot(uri).path
        if path is not None:
            for importer in ls.open_importers(path):
                ls.forget(importer)
                publish(ls, importer)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: MdlServer, params: types.DidSaveTextDocumentParams) -> None:
        publish(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: MdlServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.forget(params.text_document.uri)
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))
