"""The language server end to end (pytest-lsp, VS Code's client capabilities): definition, references, rename."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsp_client import open_with_text as _open
from lsprotocol import types
from pytest_lsp import LanguageClient

from mdl.compiler.check import analyze

ROOT = Path(__file__).resolve().parent.parent


def _at(text: str, needle: str, nth: int = 0, into: int = 1) -> types.Position:
    """The position `into` characters inside the `nth` occurrence of `needle` (ASCII test files)."""
    offset = -1
    for _ in range(nth + 1):
        offset = text.index(needle, offset + 1)
    offset += into
    line = text.count("\n", 0, offset)
    return types.Position(line, offset - (text.rfind("\n", 0, offset) + 1))


def _text_at(path: Path, rng: types.Range) -> str:
    lines = path.read_text(encoding="utf-8").split("\n")
    assert rng.start.line == rng.end.line
    return lines[rng.start.line][rng.start.character:rng.end.character]


def _apply(text: str, edits: list[types.TextEdit]) -> str:
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    spans = sorted(((starts[e.range.start.line] + e.range.start.character,
                     starts[e.range.end.line] + e.range.end.character, e.new_text) for e in edits), reverse=True)
    for start, end, new in spans:
        text = text[:start] + new + text[end:]
    return text


@pytest.mark.asyncio
async def test_definition_across_a_file_import_and_into_the_stdlib(client: LanguageClient) -> None:
    path = ROOT / "examples" / "uses_file_import.mdl"
    uri, text = _open(client, path)
    lib = ROOT / "examples" / "lib" / "layers.mdl"
    # `layers.encoder(...)`: the block in lib/layers.mdl
    [loc] = await client.text_document_definition_async(types.DefinitionParams(
        types.TextDocumentIdentifier(uri), _at(text, "layers.encoder", into=9)))
    assert loc.uri == lib.as_uri() and _text_at(lib, loc.range) == "encoder"
    # `layers.WIDTH`: the const; `heads=` of `layers.encoder`: the block's parameter
    [loc] = await client.text_document_definition_async(types.DefinitionParams(
        types.TextDocumentIdentifier(uri), _at(text, "layers.WIDTH", into=8)))
    assert loc.uri == lib.as_uri() and _text_at(lib, loc.range) == "WIDTH" and loc.range.start.line == 2
    [loc] = await client.text_document_definition_async(types.DefinitionParams(
        types.TextDocumentIdentifier(uri), _at(text, "heads=8")))
    assert loc.uri == lib.as_uri() and _text_at(lib, loc.range) == "heads"
    # the import's path: the file itself
    [loc] = await client.text_document_definition_async(types.DefinitionParams(
        types.TextDocumentIdentifier(uri), _at(text, '"lib/layers.mdl"', into=3)))
    assert loc.uri == lib.as_uri() and loc.range.start == types.Position(0, 0)
    # a binding: its first binding in the model
    [loc] = await client.text_document_definition_async(types.DefinitionParams(
        types.TextDocumentIdentifier(uri), _at(text, "h -> linear", into=0)))
    assert loc.uri == uri and loc.range.start.line == _at(text, "h = x").line

    stdlib_user = ROOT / "examples" / "transformer_2048.mdl"
    uri2, text2 = _open(client, stdlib_user)
    blocks = ROOT / "mdl" / "stdlib" / "blocks.mdl"
    [loc] = await client.text_document_definition_async(types.DefinitionParams(
        types.TextDocumentIdentifier(uri2), _at(text2, "transformer_layer(x")))
    assert Path(types.Location(loc.uri, loc.range).uri.removeprefix("file://")).resolve() == blocks.resolve()
    assert _text_at(blocks, loc.range) == "transformer_layer"
    # a primitive has no definition
    assert not await client.text_document_definition_async(types.DefinitionParams(
        types.TextDocumentIdentifier(uri2), _at(text2, "layer_norm")))


@pytest.mark.asyncio
async def test_references_of_a_binding_and_of_an_imported_block(client: LanguageClient) -> None:
    path = ROOT / "examples" / "uses_file_import.mdl"
    uri, text = _open(client, path)
    refs = await client.text_document_references_async(types.ReferenceParams(text_document=types.TextDocumentIdentifier(uri), position=_at(text, "h = x", into=0), context=types.ReferenceContext(include_declaration=True)))
    assert sorted(r.range.start.line for r in refs) == [9, 10, 11]
    assert all(r.uri == uri for r in refs)
    refs = await client.text_document_references_async(types.ReferenceParams(text_document=types.TextDocumentIdentifier(uri), position=_at(text, "layers.ffn", into=8), context=types.ReferenceContext(include_declaration=True)))
    lib = (ROOT / "examples" / "lib" / "layers.mdl").as_uri()
    assert {r.uri for r in refs} == {uri, lib}  # the use here and the declaration in the library


@pytest.mark.asyncio
async def test_rename_a_binding_and_a_block_still_compiles(client: LanguageClient, tmp_path: Path) -> None:
    source = (ROOT / "examples" / "moe_2048.mdl").read_text(encoding="utf-8")
    path = tmp_path / "moe.mdl"
    path.write_text(source, encoding="utf-8")
    uri, text = _open(client, path)
    before = analyze(text, str(path))
    assert before.ok

    prepared = await client.text_document_prepare_rename_async(types.PrepareRenameParams(
        types.TextDocumentIdentifier(uri), _at(text, "h = x", into=0)))
    assert prepared is not None
    edit = await client.text_document_rename_async(types.RenameParams(
        types.TextDocumentIdentifier(uri), _at(text, "h = x", into=0), "summary"))
    text = _apply(text, edit.changes[uri])
    assert "summary = x" in text and "output value = summary -> linear" in text

    edit = await client.text_document_rename_async(types.RenameParams(
        types.TextDocumentIdentifier(uri), _at(text, "block encoder_layer", into=8), "moe_encoder"))
    text = _apply(text, edit.changes[uri])
    assert "block moe_encoder(" in text and "x = moe_encoder(x" in text and "encoder_layer" not in text

    after = analyze(text, str(path))
    assert after.diagnostics == [] or not any(d.is_error for d in after.diagnostics)
    assert [d.code for d in after.diagnostics] == [d.code for d in before.diagnostics]
    assert sorted(after.graphs) == sorted(before.graphs)
    g0, g1 = before.graphs["Moe2048"], after.graphs["Moe2048"]
    assert len(g0.nodes) == len(g1.nodes)


@pytest.mark.asyncio
async def test_rename_refuses_keywords_primitives_stdlib_and_collisions(client: LanguageClient) -> None:
    uri, text = _open(client, ROOT / "examples" / "transformer_2048.mdl")
    for needle in ("model Transformer", "layer_norm", "transformer_layer(x", "input board"):
        assert await client.text_document_prepare_rename_async(types.PrepareRenameParams(
            types.TextDocumentIdentifier(uri), _at(text, needle))) is None, needle
    for new in ("x", "2x", "repeat", "linear", "D"):  # a binding, not a name, a keyword, a primitive, a const
        with pytest.raises(Exception, match=r"already|not a valid|keyword|primitive"):
            await client.text_document_rename_async(types.RenameParams(
                types.TextDocumentIdentifier(uri), _at(text, "h = x", into=0), new))


@pytest.mark.asyncio
async def test_a_broken_document_still_answers(client: LanguageClient) -> None:
    text = "const D = 4\nmodel M {\n    input b: int[B, D]\n    y = = 3\n    x = b -> linear(out=D)\n}\n"
    uri, _ = _open(client, ROOT / "examples" / "scratch_broken.mdl", text)
    [loc] = await client.text_document_definition_async(types.DefinitionParams(
        types.TextDocumentIdentifier(uri), _at(text, "D)")))
    assert loc.range.start == types.Position(0, 6)
    worse = "const D = 4\nmodel M {\n    input b: int[B, D]\n    x = b -> linear(out=D\n    y = = 3\n"
    uri, _ = _open(client, ROOT / "examples" / "scratch_worse.mdl", worse)
    for pos in (types.Position(0, 6), types.Position(3, 8), types.Position(40, 0)):
        await client.text_document_definition_async(types.DefinitionParams(types.TextDocumentIdentifier(uri), pos))
        await client.text_document_references_async(types.ReferenceParams(
            text_document=types.TextDocumentIdentifier(uri), position=pos,
            context=types.ReferenceContext(include_declaration=True)))
        await client.text_document_prepare_rename_async(types.PrepareRenameParams(
            types.TextDocumentIdentifier(uri), pos))
