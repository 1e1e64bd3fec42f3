"""The language server end to end (pytest-lsp, VS Code's client capabilities): formatting, quick fixes."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsp_client import ERRORS, ROOT, change_document, open_document, published
from lsprotocol import types
from pytest_lsp import LanguageClient

from mdl.dsl.format import format_source


def apply(text: str, edits: list[types.TextEdit]) -> str:
    """Apply non-overlapping LSP edits (ASCII text: UTF-16 columns are characters) to `text`."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(position: types.Position) -> int:
        return min(starts[min(position.line, len(lines))] + position.character, len(text))

    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[:offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end):]
    return text


def workspace_edits(edit: types.WorkspaceEdit, uri: str) -> list[types.TextEdit]:
    if edit.document_changes:
        return [e for change in edit.document_changes if change.text_document.uri == uri for e in change.edits]
    return list(edit.changes[uri])


async def formatting(client: LanguageClient, uri: str) -> list[types.TextEdit] | None:
    return await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        options=types.FormattingOptions(tab_size=4, insert_spaces=True)))


@pytest.mark.asyncio
async def test_formatting_a_real_example_is_mdlc_fmt(client: LanguageClient) -> None:
    path = ROOT / "examples" / "fast_2048.mdl"
    # badly formatted: every line's indentation doubled and trailing blanks added
    text = "".join(("  " * (len(line) - len(line.lstrip())) + line.strip() + "   \n") if line.strip() else "\n"
                   for line in path.read_text(encoding="utf-8").splitlines())
    uri = open_document(client, path, text)
    edits = await formatting(client, uri)
    assert edits and apply(text, edits) == format_source(text)
    # already formatted: nothing to do
    change_document(client, uri, 2, format_source(text))
    assert not await formatting(client, uri)


@pytest.mark.asyncio
async def test_no_formatting_on_a_syntax_error(client: LanguageClient) -> None:
    uri = open_document(client, ERRORS / "missing_closing_brace.mdl")
    assert not await formatting(client, uri)


async def quick_fix(client: LanguageClient, path: Path, code: str) -> types.CodeAction:
    """Ask for code actions on the `code` diagnostic, apply the quick fix, and see the error go away."""
    text = path.read_text(encoding="utf-8")
    uri = open_document(client, path)
    (diagnostic,) = [d for d in (await published(client, uri, 1)).diagnostics if d.code == code]
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=diagnostic.range,
        context=types.CodeActionContext(diagnostics=[diagnostic],
                                        trigger_kind=types.CodeActionTriggerKind.Invoked)))
    (action,) = [a for a in actions if a.diagnostics and a.diagnostics[0].code == code]
    assert action.kind == types.CodeActionKind.QuickFix and action.is_preferred
    assert action.diagnostics[0].range == diagnostic.range
    fixed = apply(text, workspace_edits(action.edit, uri))
    assert fixed != text
    change_document(client, uri, 2, fixed)
    after = await published(client, uri, 2)
    assert code not in {d.code for d in after.diagnostics}, (action.title, after.diagnostics)
    return action


@pytest.mark.asyncio
async def test_quick_fix_did_you_mean_primitive(client: LanguageClient) -> None:
    action = await quick_fix(client, ERRORS / "unknown_primitive.mdl", "E0102")
    assert "layer_norm" in action.title
    assert action.edit.document_changes[0].text_document.version == 1  # VS Code refuses a stale edit


@pytest.mark.asyncio
async def test_quick_fix_valid_heads_value(client: LanguageClient) -> None:
    await quick_fix(client, ERRORS / "heads_not_dividing_width.mdl", "E0203")


@pytest.mark.asyncio
async def test_quick_fix_unknown_experiment_key(client: LanguageClient) -> None:
    await quick_fix(client, ERRORS / "unknown_experiment_key.mdl", "E0401")


@pytest.mark.asyncio
async def test_no_quick_fix_away_from_the_diagnostic(client: LanguageClient) -> None:
    uri = open_document(client, ERRORS / "unknown_primitive.mdl")
    await published(client, uri, 1)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(types.Position(0, 0), types.Position(0, 1)),
        context=types.CodeActionContext(diagnostics=[])))
    assert not actions
