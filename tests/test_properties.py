"""Laws of the front end as property tests, and fuzzing.

- Generated designs (mdl.testing.strategies.designs) check with no diagnostics at all and compile to what they were
  built to be: the parameter count, shapes and graph nodes worked out independently while generating.
- `parse` never raises, and has nothing to say about a valid design.
- No input makes the checker raise: mutations of real files and of generated designs, token soup,
  random unicode, and a deterministic torture list. Every diagnostic is a well-formed value whose span
  lies inside the text.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdl.compiler import shapes
from mdl.compiler.api import compile_source
from mdl.compiler.check import check_source
from mdl.compiler.primitives import PRIMITIVES
from mdl.compiler.render import render_diagnostic
from mdl.dsl.ast import Span
from mdl.dsl.diagnostics import Diagnostic, Severity
from mdl.dsl.parser import parse
from mdl.testing.strategies import designs

ROOT = Path(__file__).resolve().parent.parent
REAL_FILES = [ROOT / "examples" / "moe_2048.mdl", ROOT / "mdl" / "stdlib" / "blocks.mdl",
              *sorted((ROOT / "mdl" / "stdlib" / "templates").glob("*.mdl"))]
REAL_TEXTS = [p.read_text(encoding="utf-8") for p in REAL_FILES]

SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
           HealthCheck.large_base_example]
# MDL_FUZZ_SCALE=20 runs every randomized test 20 times longer, for a deeper search than CI's.
SCALE = int(os.environ.get("MDL_FUZZ_SCALE", "1"))
FUZZ_EXAMPLES = 1500 * SCALE


# ------------------------------------------------------------------------------------------ helpers
def check_well_formed(text: str, diagnostics: object, ordered: bool = True) -> None:
    """Diagnostics are Diagnostic values with a code, a message and spans inside the text they talk about;
    `ordered`: those about the text itself come sorted by place (as `check_source` promises)."""
    assert isinstance(diagnostics, list)
    lines = text.count("\n") + 1
    if ordered:
        places = [(d.span.line, d.span.column) for d in diagnostics if d.span.file is None]
        assert places == sorted(places)
    for d in diagnostics:
        assert isinstance(d, Diagnostic), d
        assert re.fullmatch(r"[EW]\d{4}", d.code), d
        assert d.severity in (Severity.ERROR, Severity.WARNING)
        assert isinstance(d.message, str) and d.message, d
        spans = [d.span, *(lab.span for lab in d.labels)]
        if d.fix is not None:
            spans += [e.span for e in d.fix.edits]
        for s in spans:
            assert isinstance(s, Span)
            assert s.line >= 1 and s.column >= 1 and s.end_line >= s.line, (d, s)
            if s.file is None:  # a span in `text` itself (spans in imported files carry their path)
                assert s.line <= lines + 1 and s.end_line <= lines + 1, (d, s, lines)


def check_never_raises(text: str) -> list[Diagnostic]:
    diagnostics = check_source(text)
    check_well_formed(text, diagnostics)
    return diagnostics


def render_all(text: str, diagnostics: list[Diagnostic]) -> None:
    """What `mdlc check` prints, in both forms, must not raise either."""
    for d in diagnostics:
        render_diagnostic(d, lambda f: text if f is None else None)
        json.dumps(d.to_json())


# -------------------------------------------------------------------------- generated designs
@settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=SLOW_OK)
@given(designs())
def test_generated_models_compile_to_what_they_were_built_to_be(m) -> None:
    assert check_source(m.source) == [], m.source
    compiled = compile_source(m.source)
    assert compiled.name == m.name
    assert compiled.params == m.params
    assert compiled.inputs == m.inputs
    assert compiled.outputs == m.outputs
    got = Counter((n.op, n.params, n.type.dtype, tuple(n.type.shape)) for n in compiled.ir.nodes)
    assert got == Counter(m.nodes), (got - Counter(m.nodes), Counter(m.nodes) - got)


@settings(max_examples=100 * SCALE, deadline=None, suppress_health_check=SLOW_OK)
@given(designs().map(lambda d: d.source))
def test_generated_graphs_are_consistent(src: str) -> None:
    graph = compile_source(src).ir
    for i, node in enumerate(graph.nodes):
        assert node.id == i
        assert all(0 <= j < node.id for j in node.inputs), node
        assert all((isinstance(d, int) and d >= 1) or (isinstance(d, str) and d) for d in node.type.shape), node
        ins = [graph.nodes[j].type for j in node.inputs]
        if node.op == "input":
            assert not node.inputs and node.name in graph.inputs
        elif node.op in PRIMITIVES:
            # The recorded type is the shape rule applied to the recorded inputs.
            assert PRIMITIVES[node.op].output(ins, node.attrs) == node.type, node
        else:  # elementwise arithmetic
            assert node.op in ("add", "sub", "mul", "div") and len(ins) == 2, node
            assert shapes.broadcast(ins[0], ins[1], node.op).shape == node.type.shape
    assert set(graph.inputs.values()) <= set(range(len(graph.nodes)))
    assert set(graph.outputs.values()) <= set(range(len(graph.nodes)))
    assert "policy" in graph.outputs and "value" in graph.outputs
    names = [n.name for n in graph.nodes]
    assert len(set(names)) == len(names), "node names are unique"


def test_the_strategy_covers_every_primitive_and_form() -> None:
    """Across a few hundred designs the generator uses every primitive and every statement form."""
    primitives: set[str] = set()
    features: set[str] = set()

    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=SLOW_OK)
    @given(designs())
    def collect(m) -> None:
        primitives.update(m.primitives)
        features.update(m.features)

    collect()
    assert primitives == set(PRIMITIVES)
    assert features >= {"block", "block_call", "stdlib", "repeat", "repeat_as", "residual", "pipe", "direct_call"}


# ------------------------------------------------------------------------------------- parse laws
@settings(max_examples=500 * SCALE, deadline=None, suppress_health_check=SLOW_OK)
@given(st.text())
def test_parse_never_raises(text: str) -> None:
    module, diagnostics = parse(text)
    assert module.span.line == 1
    check_well_formed(text, diagnostics, ordered=False)


@settings(max_examples=100 * SCALE, deadline=None, suppress_health_check=SLOW_OK)
@given(designs().map(lambda d: d.source))
def test_valid_designs_parse_without_diagnostics(src: str) -> None:
    module, diagnostics = parse(src)
    assert diagnostics == []
    assert module.items


# ------------------------------------------------------------------------------------------- fuzzing
KEYWORDS = ["import", "as", "const", "block", "model", "experiment", "input", "output", "repeat", "return",
            "sweep", "true", "false", "none"]
PUNCTUATION = ["{", "}", "(", ")", "[", "]", "->", "=", ",", ";", "+", "-", "*", "/", ":", ".", "\n", "#"]
NUMBERS = ["0", "1", "-1", "4", "8", "16", "128", "3e-4", "0.5", "1_000", "2M", "100k", "1G", "9" * 5000,
           "1e999", "1e-999", "99999999999999999999", "2147483648", "0.0", "1e308", "00", "1__0"]
STRINGS = ['"learned"', '"sinusoidal"', '"gelu"', '""', '"a\\"b"', '"unterminated', '"x.mdl"', '"."',
           '"examples/moe_2048.mdl"', '"CartPole-v1"', "'single'", '"\\', '"\ud800"']
NAMES = [*PRIMITIVES, "x", "h", "y", "B", "T", "d", "D", "dim", "heads", "layers", "experts", "stdlib",
         "stdlib.blocks", "stdlib.nope", "transformer_layer", "moe_layer", "board", "policy", "value",
         "ppo", "game2048", "gym", "every", "steps", "min", "onnx", "int", "float", "str", "tensor", "lr",
         "Moe2048", "encoder_layer", "_", "a" * 300]
VOCABULARY = KEYWORDS + PUNCTUATION + NUMBERS + STRINGS + NAMES + ["2M steps", "10 min", "# comment\n"]
ODD_CHARS = ["\x00", "\u202e", "\u200f", "\u200b", "\ufeff", "😀", "\ud800", "\udfff", "\t", "\r", "\x0b", "\x0c",
             "\u2028", "\x85", "\u00a0", "é", "ℓ", "\x1b", "\\", "'", "`", '"', "$", "@", "!", "=", "&", "%"]


def _position(draw, text: str) -> int:
    return draw(st.integers(0, len(text)))


def _delete_span(draw, text: str) -> str:
    i = _position(draw, text)
    j = i + draw(st.one_of(st.integers(1, 12), st.integers(0, len(text))))
    return text[:i] + text[j:]


def _insert_tokens(draw, text: str) -> str:
    i = _position(draw, text)
    tokens = draw(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=6))
    sep = draw(st.sampled_from([" ", "", "\n"]))
    return text[:i] + sep.join(tokens) + text[i:]


def _insert_unicode(draw, text: str) -> str:
    i = _position(draw, text)
    odd = draw(st.one_of(st.sampled_from(ODD_CHARS), st.text(min_size=1, max_size=4)))
    return text[:i] + odd + text[i:]


def _duplicate_line(draw, text: str) -> str:
    lines = text.split("\n")
    k = draw(st.integers(0, len(lines) - 1))
    return "\n".join([*lines[: k + 1], lines[k], *lines[k + 1:]])


def _swap_lines(draw, text: str) -> str:
    lines = text.split("\n")
    a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
    lines[a], lines[b] = lines[b], lines[a]
    return "\n".join(lines)


def _truncate(draw, text: str) -> str:
    return text[: _position(draw, text)]


def _replace_word(draw, text: str) -> str:
    """Swap one number or name for another: the syntax usually survives, so elaboration is reached."""
    words = list(re.finditer(r"[A-Za-z_][A-Za-z0-9_.]*|[0-9][0-9_.eE]*[kMG]?", text))
    if not words:
        return text
    w = draw(st.sampled_from(words))
    new = draw(st.sampled_from(NUMBERS + NAMES + KEYWORDS + STRINGS + ["none", "true", "-1", "0", "3", "7"]))
    return text[: w.start()] + new + text[w.end():]


def _replace_number(draw, text: str) -> str:
    """Swap one number for an edge value: widths, heads, counts and dims out of range or of the wrong type."""
    numbers = list(re.finditer(r"(?<![A-Za-z_])[0-9][0-9_.eE]*[kMG]?", text))
    if not numbers:
        return text
    n = draw(st.sampled_from(numbers))
    new = draw(st.sampled_from(["0", "1", "2", "3", "7", "-1", "-2", "2147483647", "2147483648", "9" * 30, "1.5",
                                "1e999", "none", "true", '"x"', "[1, 2]", "[]", "B", "dim(x)", "4 * 0", "1 / 3"]))
    return text[: n.start()] + new + text[n.end():]


MUTATIONS = [_delete_span, _insert_tokens, _insert_unicode, _duplicate_line, _swap_lines, _truncate,
             _replace_word, _replace_number, _replace_number]


@st.composite
def mutated(draw, sources: st.SearchStrategy[str]) -> str:
    text = draw(sources)
    for _ in range(draw(st.integers(1, 3))):
        text = draw(st.sampled_from(MUTATIONS))(draw, text)
    return text


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=SLOW_OK)
@given(mutated(st.sampled_from(REAL_TEXTS)))
def test_no_mutation_of_a_real_file_makes_the_checker_raise(text: str) -> None:
    check_never_raises(text)


@settings(max_examples=600 * SCALE, deadline=None, suppress_health_check=SLOW_OK)
@given(mutated(designs().map(lambda d: d.source)))
def test_no_mutation_of_a_generated_design_makes_the_checker_raise(text: str) -> None:
    render_all(text, check_never_raises(text))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=SLOW_OK)
@given(st.lists(st.sampled_from(VOCABULARY + ODD_CHARS + [" ", "\n"]), max_size=60).map(" ".join))
def test_token_soup_never_makes_the_checker_raise(text: str) -> None:
    render_all(text, check_never_raises(text))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=SLOW_OK)
@given(st.one_of(st.text(), st.text(alphabet=st.characters(codec=None, categories=None)),
                 st.binary().map(lambda b: b.decode("utf-8", "surrogateescape"))))
def test_random_text_never_makes_the_checker_raise(text: str) -> None:
    check_never_raises(text)


# ---------------------------------------------------------------------------------- torture list
EXAMPLE = REAL_TEXTS[0]
MODEL = "model M {{\n    input x: float[B, 8]\n{body}\n    output policy = x -> linear(out=4)\n}}\n"
TORTURE = {
    "empty file": "",
    "only whitespace": " \t\n\n  \n",
    "only comments": "# one\n# two\n   # three",
    "only closing braces": "}" * 1000,
    "only opening braces": "{" * 1000,
    "5000 nested parens": "const A = " + "(" * 5000 + "1" + ")" * 5000,
    "5000 unclosed parens": "const A = " + "(" * 5000,
    "5000 nested brackets": "const A = " + "[" * 5000 + "]" * 5000,
    "5000 nested calls": "const A = " + "f(" * 5000 + ")" * 5000,
    "5000 unary minus": "const A = " + "-" * 5000 + "1",
    "deep parens in a model": MODEL.format(body="    x = " + "(" * 3000 + "x" + ")" * 3000),
    "100k-character sum": "const A = " + "1 + " * 25_000 + "1",
    "100k-character pipe": MODEL.format(body="    x = x" + " -> relu" * 12_500),
    "100k-character name": f"const {'a' * 100_000} = 1",
    "100k-character string": f'const S = "{"s" * 100_000}"',
    "100k-character comment": "#" + "c" * 100_000 + "\n" + EXAMPLE,
    "100k-character unterminated string": 'const S = "' + "s" * 100_000,
    "a billion repetitions": MODEL.format(body="    repeat 1000000000 { x = x -> relu }"),
    "100 million nodes": MODEL.format(body="    repeat 10000 { repeat 10000 { x = x -> relu } }"),
    "huge width": MODEL.format(body="    x = x -> linear(out=99999999999999999999)"),
    "width of 2**31": MODEL.format(body="    x = x -> linear(out=2147483648)"),
    "huge product": "const A = 99999999 * 99999999 * 99999999 * 99999999 * 99999999 * 99999999\n"
                    + MODEL.format(body="    x = x -> linear(out=A)"),
    "5000-digit number": "const A = " + "9" * 5000,
    "1e999": MODEL.format(body="    x = x -> dropout(p=1e999)"),
    "5000-digit exponent": "const A = 3e-" + "9" * 5000 + "\nconst B = 3e" + "9" * 5000 + "k\n",
    "5000-digit mantissa": "const A = " + "9" * 5000 + ".5e-3\nconst B = 0." + "0" * 5000 + "1M\n",
    "division by zero": MODEL.format(body="    x = x -> linear(out=8 / 0)"),
    "zero width input": "model M {\n    input x: float[B, 0]\n    output policy = x -> linear(out=4)\n}\n",
    "no dims": "model M {\n    input x: float[]\n    output policy = x -> linear(out=4)\n}\n",
    "a block calling itself": "block a(x) { return a(x) }\n" + MODEL.format(body="    x = a(x)"),
    "blocks calling each other": "block a(x) { return b(x) }\nblock b(x) { return a(x) }\n"
                                 + MODEL.format(body="    x = x -> a"),
    "a chain of 100 blocks": "".join(f"block b{i}(x) {{ return b{i + 1}(x) }}\n" for i in range(100))
                             + "block b100(x) { return x -> relu }\n" + MODEL.format(body="    x = b0(x)"),
    "a const referring to itself": "const A = A + 1\n" + MODEL.format(body="    x = x -> linear(out=A)"),
    "consts referring to each other": "const A = B\nconst B = C * 2\nconst C = A\n",
    "model calling itself": MODEL.format(body="    x = M(x)"),
    "windows line endings": EXAMPLE.replace("\n", "\r\n"),
    "old mac line endings": EXAMPLE.replace("\n", "\r"),
    "byte order mark": "\ufeff" + EXAMPLE,
    "NUL bytes": EXAMPLE.replace(" ", "\x00", 5),
    "lone surrogates": "const A = \ud800\n" + EXAMPLE + "\udfff",
    "right-to-left marks": EXAMPLE.replace("x", "\u202ex"),
    "emoji names": "const 😀 = 1\n" + MODEL.format(body="    x = x -> 😀"),
    "tabs": EXAMPLE.replace("    ", "\t"),
    "form feeds and vertical tabs": EXAMPLE.replace("\n", "\x0c\n\x0b"),
    "unicode line separators": EXAMPLE.replace("\n", "\u2028"),
    "an import of a directory": 'import "." as here\n',
    "an import of itself by path": 'import "examples/moe_2048.mdl" as m\nimport "tests/../examples/moe_2048.mdl" as n\n',
    "an import of a device": 'import "/dev/zero" as z\n',
    "an unknown stdlib module": "import stdlib.nope\nimport stdlib\nimport stdlib.blocks.x\n",
    "every keyword as a name": "\n".join(f"const {k} = 1" for k in KEYWORDS),
    "every primitive redefined": "\n".join(f"block {p}(x) {{ return x }}" for p in PRIMITIVES),
    "experiment with absurd values": EXAMPLE.replace("2M steps", "1e999 steps").replace("[1, 2, 3]", "[" * 50)
                                     .replace("envs=64", "envs=-1"),
    "experiment only": "experiment e { model = Nope(); env = gym(\"\\x00\", envs=0); budget = -1 min }\n",
    "reshape of everything": MODEL.format(body="    x = x -> reshape(shape=[B, -1, -1, 0, T, 99999999999])"),
    "dim out of range": MODEL.format(body="    x = x -> linear(out=dim(x, 99) + dim(x, -99) + dim(4))"),
    "statement after return": "block b(x) { return x; return x; x = x }\n" + MODEL.format(body="    x = b(x)"),
}


@pytest.mark.parametrize("text", TORTURE.values(), ids=TORTURE.keys())
def test_torture(text: str) -> None:
    diagnostics = check_never_raises(text)
    render_all(text, diagnostics)
    check_well_formed(text, parse(text)[1], ordered=False)


@pytest.mark.parametrize("text", [EXAMPLE.replace("\n", "\r\n"), "# only a comment\n", ""],
                         ids=["windows line endings", "only comments", "empty"])
def test_harmless_variants_check_clean(text: str) -> None:
    assert check_source(text) == []


def test_torture_cases_say_what_is_wrong() -> None:
    """A few torture cases, by the code they must produce (each one error, none a crash)."""
    codes = {name: {d.code for d in check_source(TORTURE[name])} for name in (
        "a billion repetitions", "100 million nodes", "huge width", "a block calling itself",
        "blocks calling each other", "a const referring to itself", "5000-digit number", "an import of a device")}
    assert codes["a billion repetitions"] == {"E0202"}
    assert codes["100 million nodes"] == {"E0215"}
    assert codes["huge width"] == {"E0202"}
    assert codes["a block calling itself"] == {"E0114"}
    assert codes["blocks calling each other"] == {"E0114"}
    assert codes["a const referring to itself"] == {"E0108"}
    assert codes["5000-digit number"] == {"E0005"}
    assert codes["an import of a device"] == {"E0110"}
