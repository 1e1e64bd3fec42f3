"""Helpers of the language-server tests (`from lsp_client import ...`) and the `client` fixture's setup.

pytest-lsp keeps only the latest diagnostics of each document, without their version; `initialize`
also records every `publishDiagnostics` in order (`client.publications`), and `published` waits for
the publication of a given version. tests/conftest.py's `client` fixture starts `python -m mdl.lsp`
and initializes it with VS Code's client capabilities.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

ROOT = Path(__file__).resolve().parent.parent
ERRORS = ROOT / "examples" / "errors"
SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "mdl.lsp"])


# ------------------------------------------------------------------------------------------- helpers


def record_publications(client: LanguageClient) -> list[types.PublishDiagnosticsParams]:
    """Every `publishDiagnostics` the client receives from now on, in order (pytest-lsp's own handler
    still runs, so `client.diagnostics` stays up to date)."""
    if not hasattr(client, "publications"):
        features = client.protocol.fm.features
        previous = features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]
        client.publications = []

        def recording(params: types.PublishDiagnosticsParams) -> None:
            client.publications.append(params)
            previous(params)

        features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = recording
    return client.publications


async def initialize(client: LanguageClient) -> None:
    client.initialize_result = await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=ROOT.as_uri()))
    record_publications(client)


async def published(client: LanguageClient, uri: str, version: int | None = None, *, after: int = 0,
                    timeout: float = 15.0) -> types.PublishDiagnosticsParams:
    """The first publication for `uri` (of `version`, when given) among those from index `after` on."""
    deadline = time.monotonic() + timeout
    while True:
        for params in client.publications[after:]:
            if params.uri == uri and (version is None or params.version == version):
                return params
        if time.monotonic() > deadline:
            seen = [(p.uri.rsplit("/", 1)[-1], p.version) for p in client.publications]
            raise AssertionError(f"no diagnostics published for {uri} version {version}; got {seen}")
        await asyncio.sleep(0.01)


def open_document(client: LanguageClient, path: Path, text: str | None = None, version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri=uri, language_id="mdl", version=version,
        text=path.read_text(encoding="utf-8") if text is None else text)))
    return uri


def change_document(client: LanguageClient, uri: str, version: int, text: str,
                    range_: types.Range | None = None) -> None:
    """A didChange: the whole text, or `text` replacing `range_` (an incremental change)."""
    change = (types.TextDocumentContentChangeWholeDocument(text=text) if range_ is None
              else types.TextDocumentContentChangePartial(range=range_, text=text))
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(uri=uri, version=version), [change]))


def open_with_text(client: LanguageClient, path: Path, text: str | None = None) -> tuple[str, str]:
    """Open `path` (or `text` under its URI) as version 1: (uri, text)."""
    text = path.read_text(encoding="utf-8") if text is None else text
    return open_document(client, path, text), text
