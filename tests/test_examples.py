"""The files under examples/ and the error reference in docs/errors.md.

- Every design in examples/ (outside examples/errors/) and every stdlib template checks with no
  diagnostics at all, not even a warning.
- `mdlc compile --json` on the LANGUAGE.md example reports its parameter count and shapes.
- Each file in examples/errors/ starts with `# expect: CODE line N` lines (`... in lib/FILE.mdl` when the
  diagnostic is in an imported file) and a comment saying what the mistake is; checking it reports
  each expected code on its line, with a message and a help line.
- Every code the compiler emits has a `## CODE: title` section in docs/errors.md and an example in
  examples/errors/, and every documented code is emitted somewhere.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mdl.cli import main
from mdl.compiler.check import check_source
from mdl.dsl.diagnostics import Diagnostic

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ERRORS = EXAMPLES / "errors"
DOCS = ROOT / "docs" / "errors.md"
TEMPLATES = ROOT / "mdl" / "stdlib" / "templates"

CODE = re.compile(r'"([EW]\d{4})"')
EXPECT = re.compile(r"^# expect: ([EW]\d{4}) line (\d+)(?: in (\S+))?$")
HEADING = re.compile(r"^## ([EW]\d{4}): (\S.*)$", re.MULTILINE)

GOOD = sorted(p for p in EXAMPLES.rglob("*.mdl") if ERRORS not in p.parents)
BAD = sorted(ERRORS.glob("*.mdl"))


def check(path: Path) -> list[Diagnostic]:
    return check_source(path.read_text(encoding="utf-8"), str(path))


def shown(diagnostics: list[Diagnostic]) -> list[str]:
    """Diagnostics as one line each, so that a failure says what was found."""
    return [f"{d.span}: {d.severity}[{d.code}] {d.message} (help: {d.help})" for d in diagnostics]


def expectations(path: Path) -> list[tuple[str, int, Path]]:
    """The `# expect:` lines at the top of an error example: (code, line, file the span is in)."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = EXPECT.match(line)
        if m is None:
            break
        found.append((m[1], int(m[2]), (path.parent / (m[3] or path.name)).resolve()))
    return found


def emitted_codes() -> set[str]:
    """Every diagnostic code written as a string literal in the package's source."""
    return {code for src in (ROOT / "mdl").rglob("*.py") for code in CODE.findall(src.read_text(encoding="utf-8"))}


def documented() -> dict[str, str]:
    """docs/errors.md sections: code -> the text under its heading."""
    text = DOCS.read_text(encoding="utf-8")
    heads = list(HEADING.finditer(text))
    return {h[1]: text[h.end(): nxt.start() if nxt else len(text)]
            for h, nxt in zip(heads, [*heads[1:], None], strict=True)}


# ------------------------------------------------------------------------------------ good examples
def test_the_examples_are_found() -> None:
    names = {p.relative_to(EXAMPLES).as_posix() for p in GOOD}
    assert {"moe_2048.mdl", "cartpole_mlp.mdl", "fast_2048.mdl", "transformer_2048.mdl",
            "uses_file_import.mdl", "lib/layers.mdl"} <= names
    assert len(BAD) >= 50


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_example_checks_clean(path: Path) -> None:
    assert shown(check(path)) == []


@pytest.mark.parametrize("path", sorted(TEMPLATES.glob("*.mdl")), ids=lambda p: p.name)
def test_stdlib_template_checks_clean(path: Path) -> None:
    assert shown(check(path)) == []


def test_compile_json_of_the_language_example(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compile", str(EXAMPLES / "moe_2048.mdl"), "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    summary = json.loads(out)
    assert summary["params"] == 1192837
    assert summary["inputs"] == {"board": ["B", 4, 4]}
    assert summary["outputs"] == {"policy": ["B", 4], "value": ["B", 1]}


# ----------------------------------------------------------------------------------- error examples
@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_error_example_reports_what_it_expects(path: Path) -> None:
    expected = expectations(path)
    assert expected, f"{path.name} must start with `# expect: CODE line N`"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[len(expected)].startswith("# "), "the expect lines are followed by a comment on the mistake"
    for _, _, file in expected:
        assert file.is_file(), f"{file} does not exist"
    diagnostics = check(path)
    for d in diagnostics:
        assert d.message.strip(), f"{d.code} at {d.span} has no message"
    for code, line, file in expected:
        hits = [d for d in diagnostics
                if d.code == code and d.span.line == line and Path(d.span.file).resolve() == file]
        assert hits, f"no {code} on line {line} of {file.name}; got:\n" + "\n".join(shown(diagnostics))
        assert all(d.help and d.help.strip() for d in hits), f"{code} on line {line} has no help"


INTERNAL = re.compile(r"E09\d\d")  # compiler bugs caught by self-checks: no design should produce them


def test_every_code_has_an_error_example() -> None:
    shown_by_examples = {code for path in BAD for code, _, _ in expectations(path)}
    user_codes = {c for c in emitted_codes() if not INTERNAL.fullmatch(c)}
    assert sorted(user_codes - shown_by_examples) == []


# ------------------------------------------------------------------------------------ docs/errors.md
def test_every_emitted_code_is_documented() -> None:
    assert sorted(emitted_codes() - set(documented())) == []


def test_every_documented_code_is_emitted() -> None:
    assert sorted(set(documented()) - emitted_codes()) == []


def test_error_docs_are_in_order_and_complete() -> None:
    codes = HEADING.findall(DOCS.read_text(encoding="utf-8"))
    assert [c for c, _ in codes] == sorted({c for c, _ in codes}), "one section per code, in order"
    for code, body in documented().items():
        assert "```mdl" in body, f"{code} has no example"
        assert "**Fix:**" in body, f"{code} does not say how to fix it"
