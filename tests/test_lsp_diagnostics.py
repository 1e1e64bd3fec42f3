"""The language server end to end (pytest-lsp, VS Code's client capabilities): diagnostics."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

ROOT = Path(__file__).resolve().parent.parent


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "mdl.lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=ROOT.as_uri()))
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio
async def test_an_error_is_published_on_its_line(client: LanguageClient) -> None:
    path = ROOT / "examples" / "errors" / "missing_input.mdl"  # expect: E0301 line 4
    text = path.read_text(encoding="utf-8")
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri=path.as_uri(), language_id="mdl", version=1, text=text)))
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    published = [d for d in client.diagnostics[path.as_uri()] if d.code == "E0301"]
    assert [d.range.start.line for d in published] == [3] and published[0].source == "mdl"
    assert published[0].severity == types.DiagnosticSeverity.Error and "\nhelp: " in published[0].message
