"""The language server end to end (pytest-lsp, VS Code's client capabilities): outline, folding, semantic tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsp_client import open_with_text as _open
from lsprotocol import types
from pytest_lsp import LanguageClient

from mdl.lsp.symbols import decode

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.asyncio
async def test_document_symbols_outline_the_file(client: LanguageClient) -> None:
    uri, _ = _open(client, ROOT / "examples" / "moe_2048.mdl")
    symbols = await client.text_document_document_symbol_async(types.DocumentSymbolParams(
        types.TextDocumentIdentifier(uri)))
    top = {s.name: s for s in symbols}
    assert top["Moe2048"].kind == types.SymbolKind.Class and top["D"].kind == types.SymbolKind.Constant
    assert top["encoder_layer"].kind == types.SymbolKind.Function
    assert top["moe_2048"].kind == types.SymbolKind.Event
    children = [c.name for c in top["Moe2048"].children]
    assert children[:4] == ["d", "layers", "experts", "board"] and "policy" in children and "value" in children
    assert children.count("x") == 1  # rebindings fold into the first binding


@pytest.mark.asyncio
async def test_folding_ranges_cover_bodies_and_comment_runs(client: LanguageClient) -> None:
    uri, text = _open(client, ROOT / "examples" / "transformer_2048.mdl")
    ranges = await client.text_document_folding_range_async(types.FoldingRangeParams(
        types.TextDocumentIdentifier(uri)))
    lines = text.split("\n")
    model = next(i for i, line in enumerate(lines) if line.startswith("model "))
    close = next(i for i in range(model, len(lines)) if lines[i] == "}")
    assert any(r.start_line == model and r.end_line == close - 1 for r in ranges)
    repeat = next(i for i, line in enumerate(lines) if "repeat" in line and "{" in line)
    assert any(r.start_line == repeat for r in ranges)
    assert any(r.kind == types.FoldingRangeKind.Comment and r.start_line == 0 and r.end_line >= 1 for r in ranges)


@pytest.mark.asyncio
async def test_semantic_tokens_decode_to_known_tokens(client: LanguageClient) -> None:
    uri, text = _open(client, ROOT / "examples" / "transformer_2048.mdl")
    result = await client.text_document_semantic_tokens_full_async(types.SemanticTokensParams(
        types.TextDocumentIdentifier(uri)))
    tokens = {(line, col): (length, kind, mods) for line, col, length, kind, mods in decode(result.data)}
    lines = text.split("\n")

    def at(needle: str) -> tuple[int, int]:
        line = next(i for i, s in enumerate(lines) if needle in s)
        return line, lines[line].index(needle)

    assert tokens[at("# examples")][1] == "comment"
    assert tokens[at("import")][:2] == (6, "keyword")
    assert tokens[at("Transformer2048(d")][:3] == (15, "type", ["declaration"])
    assert tokens[at("d: int")][1] == "parameter"
    assert tokens[at("transformer_layer(x")][1:] == ("class", ["defaultLibrary"])
    assert tokens[at("layer_norm")][1:] == ("function", ["defaultLibrary"])
    assert tokens[at("heads=heads")][1] == "property"
    assert tokens[at("= 64")] == (1, "operator", [])
    assert tokens[at("64")][:2] == (2, "number")
    assert tokens[at("x = board")][:3] == (1, "variable", ["declaration"])
    assert tokens[at("i {")][1:] == ("variable", ["declaration", "readonly"])
    legend = client.initialize_result.capabilities.semantic_tokens_provider.legend
    assert {"keyword", "function", "class", "type", "variable", "parameter", "number", "string", "comment",
            "operator", "property"} <= set(legend.token_types)


@pytest.mark.asyncio
async def test_non_ascii_and_broken_text_still_answer(client: LanguageClient) -> None:
    text = '# ünïcode 😀 comment\nconst D = 4  # 😀\nmodel M {\n    input b: int[B, D]\n    y = = 3\n    x = "😀"\n'
    uri, _ = _open(client, ROOT / "examples" / "scratch_symbols.mdl", text)
    result = await client.text_document_semantic_tokens_full_async(types.SemanticTokensParams(
        types.TextDocumentIdentifier(uri)))
    decoded = decode(result.data)
    assert (0, 0, 20, "comment", []) in decoded  # 19 characters, 😀 is two UTF-16 units
    assert (1, 13, 4, "comment", []) in decoded
    await client.text_document_document_symbol_async(types.DocumentSymbolParams(types.TextDocumentIdentifier(uri)))
    await client.text_document_folding_range_async(types.FoldingRangeParams(types.TextDocumentIdentifier(uri)))
