"""The language server end to end (pytest-lsp, VS Code's client capabilities): diagnostics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lsp_client import ERRORS, change_document, open_document, published
from lsprotocol import types
from pytest_lsp import LanguageClient


def expectations(path: Path) -> list[tuple[str, int]]:
    """The `# expect: CODE line N` headers of an example that are about the file itself."""
    found = re.findall(r"^# expect: (\w+) line (\d+)\s*$", path.read_text(encoding="utf-8"), re.M)
    return [(code, int(line)) for code, line in found]


# --------------------------------------------------------------------------------------------- tests


@pytest.mark.asyncio
async def test_an_error_is_published_on_its_line(client: LanguageClient) -> None:
    path = ERRORS / "missing_input.mdl"  # expect: E0301 line 4
    uri = open_document(client, path)
    params = await published(client, uri, 1)
    found = [d for d in params.diagnostics if d.code == "E0301"]
    assert [d.range.start.line for d in found] == [3] and found[0].source == "mdl"
    assert found[0].severity == types.DiagnosticSeverity.Error and "\nhelp: " in found[0].message


EXAMPLES = ["argument_given_twice", "heads_not_dividing_width", "unknown_primitive", "missing_closing_brace",
            "unknown_name", "residual_shape_mismatch", "unknown_experiment_key", "width_not_multiple_of_8",
            "imported_file_has_errors", "unterminated_string"]


@pytest.mark.asyncio
async def test_each_expected_diagnostic_is_on_its_line(client: LanguageClient) -> None:
    """Several examples/errors files open at once: each `# expect:` header's code on its line
    (LSP lines are 0-based), with the version of the document it was computed from."""
    uris = {name: open_document(client, ERRORS / f"{name}.mdl", version=7) for name in EXAMPLES}
    for name, uri in uris.items():
        params = await published(client, uri, 7)
        got = {(d.code, d.range.start.line + 1) for d in params.diagnostics}
        for expected in expectations(ERRORS / f"{name}.mdl"):
            assert expected in got, (name, expected, got)


@pytest.mark.asyncio
async def test_warnings_and_errors_and_related_information(client: LanguageClient) -> None:
    warning = await published(client, open_document(client, ERRORS / "width_not_multiple_of_8.mdl"), 1)
    assert {d.severity for d in warning.diagnostics if d.code.startswith("W")} == {
        types.DiagnosticSeverity.Warning}
    assert all(d.severity == types.DiagnosticSeverity.Error for d in warning.diagnostics
               if d.code.startswith("E"))
    # `head` defined twice: the first definition is a label -> related information in the same file.
    path = ERRORS / "defined_twice.mdl"
    twice = await published(client, open_document(client, path), 1)
    (error,) = [d for d in twice.diagnostics if d.code == "E0107"]
    (related,) = error.related_information
    assert related.location.uri == path.as_uri() and related.message == "first defined here"
    assert related.location.range.start.line < error.range.start.line


@pytest.mark.asyncio
async def test_published_on_change_and_save_and_cleared_on_close(client: LanguageClient) -> None:
    path = ERRORS / "unknown_primitive.mdl"
    text = path.read_text(encoding="utf-8")
    uri = open_document(client, path)
    assert any(d.code == "E0102" for d in (await published(client, uri, 1)).diagnostics)
    # an incremental change fixing the misspelling (the quick fix's edit, typed by hand)
    (line_no, line), = [(i, s) for i, s in enumerate(text.splitlines()) if "-> layernorm" in s]
    wrong = re.search("layernorm", line)
    change_document(client, uri, 2, "layer_norm",
                    types.Range(types.Position(line_no, wrong.start()), types.Position(line_no, wrong.end())))
    fixed = await published(client, uri, 2)
    assert not [d for d in fixed.diagnostics if d.severity == types.DiagnosticSeverity.Error]
    # save re-publishes (same version)
    after = len(client.publications)
    client.text_document_did_save(types.DidSaveTextDocumentParams(types.TextDocumentIdentifier(uri=uri)))
    assert (await published(client, uri, 2, after=after)).diagnostics == fixed.diagnostics
    after = len(client.publications)
    client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=uri)))
    assert not (await published(client, uri, after=after)).diagnostics


LIB = """\
block ffn(x, hidden: int) {
    x = x -> linear(out=hidden) -> relu
    return x
}
"""

MAIN = """\
import "lib.mdl" as lib

model Flat2048 {
    input board: int[B, 4, 4]
    h = board -> embedding(vocab=16, dim=32) -> flatten -> lib.ffn(hidden=64)
    output policy = h -> linear(out=4)
    output value = h -> linear(out=1)
}
"""


@pytest.mark.asyncio
async def test_editing_an_imported_file_rechecks_its_importers(client: LanguageClient, tmp_path: Path) -> None:
    (tmp_path / "lib.mdl").write_text(LIB, encoding="utf-8")
    (tmp_path / "main.mdl").write_text(MAIN, encoding="utf-8")
    main = open_document(client, tmp_path / "main.mdl")
    assert not (await published(client, main, 1)).diagnostics
    after = len(client.publications)
    lib = open_document(client, tmp_path / "lib.mdl")
    await published(client, lib, 1, after=after)
    await published(client, main, 1, after=after)  # opening an import re-checks its importers
    # rename the block's parameter in the unsaved buffer: main's `hidden=64` is now an unknown argument
    after = len(client.publications)
    change_document(client, lib, 2, LIB.replace("hidden", "width"))
    assert not (await published(client, lib, 2, after=after)).diagnostics
    changed = await published(client, main, 1, after=after)
    assert "E0103" in {d.code for d in changed.diagnostics}, changed.diagnostics
    # closing the unsaved buffer: main reads the file on disk again
    after = len(client.publications)
    client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=lib)))
    assert not (await published(client, main, 1, after=after)).diagnostics
    # edited and saved: main is re-checked on the save too
    after = len(client.publications)
    lib = open_document(client, tmp_path / "lib.mdl", version=3)
    await published(client, main, 1, after=after)
    change_document(client, lib, 4, LIB.replace("hidden", "width"))
    await published(client, lib, 4, after=after)
    (tmp_path / "lib.mdl").write_text(LIB.replace("hidden", "width"), encoding="utf-8")
    after = len(client.publications)
    client.text_document_did_save(types.DidSaveTextDocumentParams(types.TextDocumentIdentifier(uri=lib)))
    assert "E0103" in {d.code for d in (await published(client, main, 1, after=after)).diagnostics}
