"""The language server end to end (pytest-lsp, VS Code's client capabilities): inlay hints.

The counts must be the compiler's: the model total of `mdl.compile_file` and the per-call subtotals of
`cost.block_costs`, the same figures `mdlc compile` prints.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

import mdl
from mdl.compiler import cost

ROOT = Path(__file__).resolve().parent.parent


def _open(client: LanguageClient, path: Path) -> str:
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri=path.as_uri(), language_id="mdl", version=1, text=path.read_text(encoding="utf-8"))))
    return path.as_uri()


async def _hints(client: LanguageClient, uri: str, start: int, end: int) -> list[types.InlayHint]:
    return await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=types.TextDocumentIdentifier(uri),
        range=types.Range(types.Position(start, 0), types.Position(end, 0)))) or []


@pytest.mark.asyncio
async def test_inlay_hints_show_the_compilers_counts_and_shapes(client: LanguageClient) -> None:
    path = ROOT / "examples" / "moe_2048.mdl"
    uri = _open(client, path)
    compiled = mdl.compile_file(path)
    per_call = {c.params for c in cost.block_costs(compiled.ir)}
    assert compiled.params == 1_192_837
    hints = await _hints(client, uri, 0, 40)
    by_line: dict[int, list[str]] = {}
    for h in hints:
        by_line.setdefault(h.position.line, []).append(h.label)
    assert f"{compiled.params:,} params" in by_line[11]  # model Moe2048(...) header
    (call,) = [lbl for lbl in by_line[15] if "params" in lbl]  # x = encoder_layer(...) in `repeat layers`
    assert call == f"{per_call.pop():,} params ×2" and not per_call
    assert ": float[B, 16, 128]" in by_line[13]  # x = board -> ... -> pos_encoding
    assert by_line[17] == [": float[B, 128]"]  # h = x -> layer_norm -> mean(dim=1)
    assert by_line[18] == [": float[B, 4]"] and by_line[19] == [": float[B, 1]"]  # policy, value

    # Only hints inside the requested range: lines 17..19 (0-based 17, 18) hold h and policy.
    some = await _hints(client, uri, 17, 19)
    assert sorted(h.position.line for h in some) == [17, 18]


@pytest.mark.asyncio
async def test_inlay_hints_for_each_call_of_a_varying_repeat(client: LanguageClient) -> None:
    path = ROOT / "examples" / "transformer_2048.mdl"
    uri = _open(client, path)
    compiled = mdl.compile_file(path)
    labels = {h.label for h in await _hints(client, uri, 0, 100)}
    assert f"{compiled.params:,} params" in labels
    layers = sorted(c.params for c in cost.block_costs(compiled.ir) if c.block == "transformer_layer")
    assert f"{layers[0]:,}–{layers[-1]:,} params" in labels
    for c in cost.block_costs(compiled.ir):
        if c.block != "transformer_layer":
            assert f"{c.params:,} params" in labels


@pytest.mark.asyncio
async def test_inlay_hints_on_a_broken_document_do_not_fail(client: LanguageClient) -> None:
    path = ROOT / "examples" / "moe_2048.mdl"
    text = path.read_text(encoding="utf-8").replace("output value = h -> linear(out=1)", "output value = h -> (")
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri=path.as_uri(), language_id="mdl", version=1, text=text)))
    hints = await _hints(client, path.as_uri(), 0, 40)
    assert all(isinstance(h.label, str) for h in hints)


@pytest.mark.asyncio
async def test_sweep_and_limits_hints_count_points_and_pruning_and_a_limit_that_prunes_all_is_an_error(
        client: LanguageClient, tmp_path: Path) -> None:
    from lsp_client import change_document, published

    text = (ROOT / "examples" / "moe_2048.mdl").read_text(encoding="utf-8").replace(
        "    sweep { lr = [1e-4, 3e-4]; experts = [4, 8] }",
        "    sweep { d = [64, 128, 256]; layers = [1, 2]; experts = [2, 4] }\n    limits { params = 600k }")
    path = tmp_path / "limits.mdl"
    path.write_text(text, encoding="utf-8")
    uri = _open(client, path)
    lines = text.splitlines()
    sweep_line = next(i for i, line in enumerate(lines) if line.strip().startswith("sweep {"))
    hints = await _hints(client, uri, sweep_line, sweep_line + 2)
    labels = {h.position.line: h.label for h in hints}
    assert labels[sweep_line] == "12 points, 6 over the limits"  # 6 have more than 600k (tests/test_search.py)
    assert labels[sweep_line + 1] == "prunes 6 of 12 points"
    assert not [d for d in (await published(client, uri, 1)).diagnostics if d.code == "E0416"]
    column = lines[sweep_line + 1].index("params")
    hover = await client.text_document_hover_async(types.HoverParams(
        types.TextDocumentIdentifier(uri), types.Position(sweep_line + 1, column + 2)))
    assert hover is not None and "(limit): parameters" in hover.contents.value
    change_document(client, uri, 2, text.replace("params = 600k", "params = 10k"))
    (found,) = [d for d in (await published(client, uri, 2)).diagnostics if d.code == "E0416"]
    assert found.range.start.line == sweep_line + 1 and "params = 85_701" in found.message
