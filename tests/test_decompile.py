"""`mdlc decompile`'s core: a graph IR back to a design whose compilation has the same architecture hash.

Every example and stdlib template round-trips; so do random designs from mdl.testing.strategies, and
decompiling is idempotent (the decompiled design decompiles to itself). Malformed IR is a
DecompileError, never a raw exception.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from mdl.compiler.api import architecture_hash, compile_source
from mdl.compiler.check import analyze
from mdl.compiler.decompile import DecompileError, decompile
from mdl.dsl.format import format_source
from mdl.testing.strategies import designs

ROOT = Path(__file__).resolve().parent.parent
DESIGNS = sorted((ROOT / "examples").glob("*.mdl")) + sorted((ROOT / "mdl" / "stdlib" / "templates").glob("*.mdl"))


def graphs_of(path: Path):
    analysis = analyze(path.read_text(encoding="utf-8"), str(path))
    assert analysis.ok, path
    graphs = {name: g for name, g in analysis.graphs.items() if g is not None}
    assert graphs, path
    return graphs


def round_trip(graph, name: str | None = None) -> str:
    text = decompile(graph, name)
    again = compile_source(text)
    assert architecture_hash(again.ir) == architecture_hash(graph), text
    assert format_source(text) == text
    return text


@pytest.mark.parametrize("path", DESIGNS, ids=lambda p: p.name)
def test_examples_and_templates_round_trip(path):
    for name, graph in graphs_of(path).items():
        text = round_trip(graph)
        assert text.startswith("# Decompiled")
        assert f"model {name}" in text
        # the checkpoint's form of the IR (JSON dict) gives the same design
        assert decompile(graph.to_json()) == text
        assert decompile(compile_source(text).ir) == text


def test_names_and_structure_are_kept():
    graph = compile_source((ROOT / "examples" / "moe_2048.mdl").read_text(encoding="utf-8"), "Moe2048").ir
    text = round_trip(graph, "Imported")
    assert "model Imported(layers: int = 2)" in text
    assert "block encoder_layer(" in text
    assert "repeat layers" in text
    assert "import" not in text  # blocks are written out, stdlib ones included


def test_loop_variable_and_block_parameters():
    src = """
block widen(x, w: int) {
    return x -> linear(out=w) -> relu
}
model M {
    input obs: float[B, 8]
    x = obs
    repeat 3 as i {
        x = widen(x, w=16 + 8 * i)
    }
    h = x -> widen(w=8)
    output policy = h -> linear(out=2)
    output value = x -> linear(out=1)
}
"""
    text = round_trip(compile_source(src).ir)
    assert " as i" in text and "out: int" in text


def test_output_order_and_renamed_outputs():
    src = """
model M {
    input a: float[B, 4]
    h = a -> linear(out=8)
    output value = h
    output policy = h -> linear(out=2)
    output aux_x = a -> relu
}
"""
    round_trip(compile_source(src).ir)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(designs().map(lambda d: d.source))
def test_random_designs_round_trip(source):
    graph = compile_source(source).ir
    text = round_trip(graph)
    assert decompile(compile_source(text).ir) == text  # idempotent


def malformed():
    good = compile_source((ROOT / "mdl" / "stdlib" / "templates" / "research.mdl").read_text(encoding="utf-8")).ir
    base = good.to_json()

    def edit(fn):
        d = copy.deepcopy(base)
        fn(d)
        return d

    return [
        None, 3, "graph", [], {},
        edit(lambda d: d.pop("nodes")),
        edit(lambda d: d.pop("outputs")),
        edit(lambda d: d.update(nodes="x")),
        edit(lambda d: d["nodes"][1].pop("op")),
        edit(lambda d: d["nodes"][1].update(op="conv2d")),
        edit(lambda d: d["nodes"][1].update(inputs=[7])),
        edit(lambda d: d["nodes"][1].update(inputs=None)),
        edit(lambda d: d["nodes"][1].update(attrs=[1])),
        edit(lambda d: d["nodes"][1].update(shape="B")),
        edit(lambda d: d["nodes"][1].update(dtype="complex")),
        edit(lambda d: d["nodes"][1].update(name=None)),
        edit(lambda d: d["nodes"][1].update(scope=5)),
        edit(lambda d: d["nodes"][1]["attrs"].update(out="wide")),
        edit(lambda d: d["nodes"][1]["attrs"].pop("out")),
        edit(lambda d: d["nodes"][1]["attrs"].update(bogus=1)),
        edit(lambda d: d["nodes"][1].update(name="policy")),
        edit(lambda d: d["nodes"][1].update(shape=[None])),
        edit(lambda d: d["nodes"].__setitem__(1, 5)),
        edit(lambda d: d["outputs"].update(policy=99)),
        edit(lambda d: d["outputs"].update({"not a name": 1})),
        edit(lambda d: d["inputs"].update(obs=1)),
        edit(lambda d: d.update(calls=[{"path": 1}])),
        edit(lambda d: d.update(args=[])),
        edit(lambda d: d.update(model=7)),
    ]


@pytest.mark.parametrize("bad", malformed(), ids=lambda d: type(d).__name__)
def test_malformed_ir_is_a_decompile_error(bad):
    with pytest.raises(DecompileError) as info:
        decompile(bad)
    assert info.value.message
