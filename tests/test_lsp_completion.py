"""The language server end to end (pytest-lsp, VS Code's client capabilities): completion and
signature help."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from mdl.compiler.experiment import DEVICES, KEYS, PPO_ARGS
from mdl.compiler.primitives import PRIMITIVES

ROOT = Path(__file__).resolve().parent.parent
MOE = ROOT / "examples" / "moe_2048.mdl"


_version = 0


def _edit(client: LanguageClient, old: str, new: str) -> tuple[str, types.Position]:
    """Open the MoE example with `old` replaced by `new`, where `|` in `new` marks the cursor."""
    global _version
    _version += 1
    text = MOE.read_text(encoding="utf-8").replace(old, new, 1)
    offset = text.index("|")
    text = text.replace("|", "", 1)
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri=MOE.as_uri(), language_id="mdl", version=_version, text=text)))
    line = text.count("\n", 0, offset)
    return text, types.Position(line, offset - (text.rfind("\n", 0, offset) + 1))


async def _labels(client: LanguageClient, position: types.Position) -> list[str]:
    result = await client.text_document_completion_async(types.CompletionParams(
        types.TextDocumentIdentifier(MOE.as_uri()), position))
    items = result.items if isinstance(result, types.CompletionList) else result or []
    return [i.label for i in items]


@pytest.mark.asyncio
async def test_completion_in_context(client: LanguageClient) -> None:
    # After `->`: primitives and blocks (the file's own and stdlib's).
    _, pos = _edit(client, "    h = x -> layer_norm", "    h = x -> |layer_norm")
    labels = await _labels(client, pos)
    assert set(PRIMITIVES) <= set(labels) and {"encoder_layer", "transformer_layer"} <= set(labels)

    # Inside a call's parens: the keyword arguments not given yet.
    _, pos = _edit(client, "moe(experts=experts, top_k=top_k,", "moe(experts=experts, top_k=top_k, |")
    labels = await _labels(client, pos)
    assert {"hidden=", "act=", "capacity=", "balance="} <= set(labels) and "experts=" not in labels

    # A choice argument's values.
    _, pos = _edit(client, 'pos_encoding(kind="learned")', "pos_encoding(kind=|)")
    assert {'"learned"', '"sinusoidal"'} <= set(await _labels(client, pos))

    # An experiment body: its keys, and the values of `device`, `export`, `algo`'s arguments.
    _, pos = _edit(client, "    seeds = [1, 2, 3]", "    |\n    seeds = [1, 2, 3]")
    assert set(await _labels(client, pos)) == set(KEYS)
    _, pos = _edit(client, "    seeds = [1, 2, 3]", "    device = |\n    seeds = [1, 2, 3]")
    assert set(await _labels(client, pos)) == set(DEVICES)
    _, pos = _edit(client, "export = [onnx, pt]", "export = [onnx, |]")
    assert {"pt", "py", "json"} <= set(await _labels(client, pos))
    _, pos = _edit(client, "algo = ppo(lr=3e-4,", "algo = ppo(lr=3e-4, |")
    labels = await _labels(client, pos)
    assert {f"{a.name}=" for a in PPO_ARGS if a.name != "lr"} <= set(labels) and "lr=" not in labels

    # After `import `: the stdlib modules.
    _, pos = _edit(client, "import stdlib.blocks", "import |")
    assert "stdlib.blocks" in await _labels(client, pos)


@pytest.mark.asyncio
async def test_signature_help_marks_the_active_parameter(client: LanguageClient) -> None:
    _, pos = _edit(client, "moe(experts=experts, top_k=top_k,", "moe(experts=experts, top_k=top_k, act=|")
    result = await client.text_document_signature_help_async(types.SignatureHelpParams(
        types.TextDocumentIdentifier(MOE.as_uri()), pos))
    assert result is not None
    sig = result.signatures[result.active_signature or 0]
    assert sig.label == PRIMITIVES["moe"].signature()
    assert sig.parameters[result.active_parameter].label == 'act="gelu"'

    # A block call written with the pipe: the piped value is the first (tensor) parameter.
    _, pos = _edit(client, "x = encoder_layer(x, heads=4, experts=experts)", "x = x -> encoder_layer(heads=4, |")
    result = await client.text_document_signature_help_async(types.SignatureHelpParams(
        types.TextDocumentIdentifier(MOE.as_uri()), pos))
    assert result is not None and result.signatures[0].label.startswith("block encoder_layer(")
    assert result.signatures[0].parameters[result.active_parameter].label == "experts: int"
