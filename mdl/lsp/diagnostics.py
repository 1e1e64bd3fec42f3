"""Diagnostics pushed to the editor: the front end's, as `mdlc check` reports them.

Published on open, change and save for the version they were computed from (a result for an older
version is dropped, never published over a newer one); closing a document clears its diagnostics; a
change to a file re-checks the open documents that import it. Each diagnostic carries its code, its
labels as related information, and its help at the end of the message.
"""

from __future__ import annotations

import asyncio

from lsprotocol import types
from pygls.uris import to_fs_path

from mdl.lsp.document import to_lsp
from mdl.lsp.server import MdlServer


def publish(server: MdlServer, uri: str, version: int | None = None) -> bool:
    """Analyse the current text of `uri` and publish its diagnostics, unless the document moved on.

    `version`: the version the caller was notified about; nothing is published when the document is
    already past it (a later notification publishes). Never publishes a version older than one
    already published for `uri`. Returns whether it published.
    """
    document = server.workspace.text_documents.get(uri)
    if document is None or (version is not None and document.version != version):
        return False  # closed, or an edit arrived meanwhile
    snapshot = server.snapshot(uri)
    current = server.workspace.text_documents.get(uri)
    if current is None or current.version != snapshot.version:
        return False
    last = server.published.get(uri)
    if last is not None and snapshot.version is not None and snapshot.version < last:
        return False
    server.published[uri] = snapshot.version
    server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
        uri=uri, version=snapshot.version,
        diagnostics=[to_lsp(snapshot, d) for d in snapshot.analysis.diagnostics]))
    return True


def republish_importers(server: MdlServer, uri: str) -> None:
    """Re-check the open documents that import the file of `uri` (its text or its file changed)."""
    if not uri.startswith("file:"):
        return
    for importer in server.open_importers(to_fs_path(uri)):
        server.forget(importer)
        publish(server, importer)


# How long a change waits before it is checked. pygls reads stdin in a worker thread, one message per
# turn of the event loop, so without a pause every edit of a burst (typing, a paste in many pieces, a
# client replaying edits) would be checked, each at the full cost of a check; after a 1 ms pause the
# edits already sent have been read and only the last version is checked (edits that arrive during a
# check are read while it runs). 1 ms of the 100 ms budget (5 ms measured 108 ms against 96 ms).
SETTLE_S = 0.001


async def _settle() -> None:
    """Let the notifications already on their way be read first (a burst of edits is checked once)."""
    await asyncio.sleep(SETTLE_S)


def register(server: MdlServer) -> None:
    async def opened_or_changed(ls: MdlServer, params: types.DidOpenTextDocumentParams
                                | types.DidChangeTextDocumentParams) -> None:
        document = params.text_document
        await _settle()
        if publish(ls, document.uri, document.version):
            republish_importers(ls, document.uri)

    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(server.guarded(opened_or_changed))
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(server.guarded(opened_or_changed))

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    @server.guarded
    def did_save(ls: MdlServer, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.forget(uri)  # its own imports may have been saved meanwhile
        publish(ls, uri)
        republish_importers(ls, uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @server.guarded
    def did_close(ls: MdlServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.forget(uri)
        ls.published.pop(uri, None)
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        republish_importers(ls, uri)  # they read the file on disk again, not the closed buffer
