"""The language server keeps answering, correctly, whatever it is sent (pytest-lsp, VS Code's capabilities).

- an edit storm: hundreds of random incremental edits sent without waiting, then the original text;
  the last diagnostics published are those of the last version, and equal a fresh check's;
- random garbage documents, deeply nested brackets, NULs, lone surrogates, changes to documents never
  opened, out-of-range positions: every one answered, none fatal.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from lsp_client import ERRORS, ROOT, change_document, open_document, published
from lsprotocol import types
from pytest_lsp import LanguageClient

from mdl.compiler.check import analyze

TOKENS = ["{", "}", "(", ")", "[", "]", "->", "=", "+", ",", ":", "\n", " ", "    ", "x", "model", "block",
          "repeat", "output", "input", "int[B, 4, 4]", "linear(out=4)", "\"", "#", "1e9", "0.5", "é", "ß",
          "Δx", "语", "😀", "\t", "\r\n", "@", "$", "import", "stdlib.blocks", "9" * 40]


def utf16_position(text: str, offset: int) -> types.Position:
    """The LSP position (UTF-16 columns, as VS Code counts) of a character offset."""
    line = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    return types.Position(line, len(text[start:offset].encode("utf-16-le")) // 2)


def random_edit(rng: random.Random, text: str) -> tuple[int, int, str]:
    """A deletion, an insertion of random tokens, or a replacement: (start, end, new text)."""
    start = rng.randrange(len(text) + 1)
    kind = rng.random()
    end = min(len(text), start + rng.randrange(1, 30)) if kind < 0.6 else start
    inserted = "" if kind < 0.3 else "".join(rng.choice(TOKENS) for _ in range(rng.randrange(1, 5)))
    # never split "\r\n": the client and the server would then disagree on the lines
    while 0 < start < len(text) and text[start - 1] == "\r" and text[start] == "\n":
        start -= 1
    while 0 < end < len(text) and text[end - 1] == "\r" and text[end] == "\n":
        end += 1
    return start, max(start, end), inserted


def summary(diagnostics) -> list[tuple[str, int]]:
    return sorted((d.code, d.range.start.line) for d in diagnostics)


@pytest.mark.asyncio
async def test_edit_storm_ends_with_the_last_version_published(client: LanguageClient) -> None:
    path = ROOT / "examples" / "moe_2048.mdl"
    original = path.read_text(encoding="utf-8")
    uri = open_document(client, path)
    assert not (await published(client, uri, 1)).diagnostics
    rng = random.Random(2048)
    text, version = original, 1
    for _ in range(300):
        start, end, inserted = random_edit(rng, text)
        version += 1
        change_document(client, uri, version, inserted,
                        types.Range(utf16_position(text, start), utf16_position(text, end)))
        text = text[:start] + inserted + text[end:]
    # the server's text is the client's: the storm's last version is checked as a fresh check would
    storm = await published(client, uri, version)
    expected = [d for d in analyze(text.replace("\r\n", "\n"), str(path)).diagnostics if d.span.file == str(path)]
    assert {d.code for d in storm.diagnostics} == {d.code for d in expected}
    version += 1
    change_document(client, uri, version, original)
    final = await published(client, uri, version)
    assert not final.diagnostics
    await asyncio.sleep(0.3)  # anything still on its way
    versions = [p.version for p in client.publications if p.uri == uri]
    assert versions == sorted(versions) and versions[-1] == version  # never an older version over a newer
    assert len(versions) < 300  # the storm was checked in batches, not once per keystroke
    # still answering requests on the restored text
    edits = await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        options=types.FormattingOptions(tab_size=4, insert_spaces=True)))
    assert edits  # moe_2048.mdl is not in canonical format
    if client.initialize_result.capabilities.hover_provider:  # while hover.py is being written
        await client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(10, 10)))


def garbage(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(1, 400)))
    if kind == 1:
        return "".join(rng.choice("{}()[]<>->=,") for _ in range(rng.randrange(1, 400)))
    if kind == 2:
        return "model M {\n  x = " + "(" * rng.randrange(100, 3000) + "\n}"
    if kind == 3:
        return "".join(rng.choice(TOKENS) for _ in range(rng.randrange(1, 200)))
    return "\x00\ud800" + "x" * rng.randrange(1, 10_000) + "\ufeff"


@pytest.mark.asyncio
async def test_garbage_never_stops_the_server(client: LanguageClient, tmp_path) -> None:
    rng = random.Random(7)
    uris = [open_document(client, tmp_path / f"garbage_{i}.mdl", garbage(rng)) for i in range(25)]
    for uri in uris:
        await published(client, uri, 1)
    # a change to a document never opened, positions beyond the end, a code action out of range
    change_document(client, (tmp_path / "never_opened.mdl").as_uri(), 2, "x",
                    types.Range(types.Position(5, 0), types.Position(9, 9)))
    change_document(client, uris[0], 2, "}}}", types.Range(types.Position(900, 3), types.Position(999, 99)))
    await published(client, uris[0], 2)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uris[1]),
        range=types.Range(types.Position(10_000, 0), types.Position(20_000, 5)),
        context=types.CodeActionContext(diagnostics=[])))
    assert not actions
    # and a real file still gets its right diagnostic afterwards
    uri = open_document(client, ERRORS / "missing_input.mdl")
    assert "E0301" in {d.code for d in (await published(client, uri, 1)).diagnostics}
    assert not [m for m in client.messages if m.type == types.MessageType.Error]  # no pop-ups
