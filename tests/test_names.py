"""One name index and one scoping walk (issue 13): the checker's name pass and the editor's index are
both `ScopeWalker`s, and the index lives on the analysis it was built from."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdl.compiler.check import analyze

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.mdl"))

TYPOS = """
block unused(x, width: int) {
    h = x -> linear(out=widht) -> relu
    return h -> lienar(out=width)
}

model Small {
    input obs: float[B, 4]
    h = obs -> linear(out=8)
    output policy = h -> linear(out=2)
    output value = h -> linear(out=1)
}
"""


def test_each_unknown_name_the_checker_reports_is_an_unresolved_occurrence_of_the_index() -> None:
    analysis = analyze(TYPOS)
    reported = [d for d in analysis.diagnostics if d.code in ("E0101", "E0102")]
    assert [d.code for d in reported] == ["E0101", "E0102"]
    index = analysis.name_index(TYPOS)
    for d in reported:
        occurrence = index.at(d.span.start)
        assert occurrence is not None and occurrence.key is None, d
        assert TYPOS[occurrence.start:occurrence.end] in ("widht", "lienar")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_local_of_the_index_is_declared_before_it_is_read(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    analysis = analyze(text, str(path))
    index = analysis.name_index(text, str(path))
    assert analysis.name_index(text, str(path)) is index  # built once, kept on the analysis
    first: dict[tuple, bool] = {}
    for o in index.occurrences:
        if o.key is not None and o.key[0] == "local" and o.kind != "argument":
            first.setdefault(o.key, o.declaration)
    assert first and all(first.values())
