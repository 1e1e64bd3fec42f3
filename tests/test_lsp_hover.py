"""The language server end to end (pytest-lsp, VS Code's client capabilities): hover."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

import mdl
from mdl.compiler import cost

ROOT = Path(__file__).resolve().parent.parent
MOE = ROOT / "examples" / "moe_2048.mdl"


def _at(text: str, needle: str, delta: int = 1) -> types.Position:
    offset = text.index(needle) + delta
    line = text.count("\n", 0, offset)
    return types.Position(line, offset - (text.rfind("\n", 0, offset) + 1))


async def _hover(client: LanguageClient, text: str, needle: str, delta: int = 1) -> str:
    result = await client.text_document_hover_async(types.HoverParams(
        types.TextDocumentIdentifier(MOE.as_uri()), _at(text, needle, delta)))
    assert result is not None, needle
    return result.contents.value


@pytest.mark.asyncio
async def test_hover_shows_signatures_shapes_and_the_compilers_figures(client: LanguageClient) -> None:
    text = MOE.read_text(encoding="utf-8")
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri=MOE.as_uri(), language_id="mdl", version=1, text=text)))
    compiled = mdl.compile_file(MOE)

    # A primitive: signature with defaults and ranges, its doc, and this call's node figures.
    attention = await _hover(client, text, "attention(heads=heads)")
    assert "attention(x, heads, dropout=0.0)" in attention and "Multi-head self-attention." in attention
    assert "[0, 1)" in attention and "**params** 66,048" in attention

    # A block call: the block's signature and that call's subtotal (cost.block_costs).
    call = await _hover(client, text, "encoder_layer(x, heads=4")
    assert "block encoder_layer(x, heads: int, experts: int, top_k: int = 2)" in call
    (per_call,) = {c.params for c in cost.block_costs(compiled.ir)}
    assert f"**params** {per_call:,}" in call

    # A binding: its type and shape from the IR node it became.
    h = await _hover(client, text, "h = x")
    assert "h: float[B, 128]" in h
    policy = await _hover(client, text, "policy = h")
    assert "policy: float[B, 4]" in policy and "**params** 516" in policy

    # The model header: the total `mdlc compile` prints.
    model = await _hover(client, text, "Moe2048(d: int")
    assert f"**params** {compiled.params:,}" in model and "1,192,837" in model


@pytest.mark.asyncio
async def test_hover_on_a_document_with_a_syntax_error_still_answers(client: LanguageClient) -> None:
    text = MOE.read_text(encoding="utf-8").replace("    h = x -> layer_norm", "    h = x -> -> layer_norm")
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri=MOE.as_uri(), language_id="mdl", version=1, text=text)))
    assert "layer_norm(x, eps=" in await _hover(client, text, "layer_norm -> attention")
