"""Lowering: the IR becomes a torch.fx.GraphModule whose parameters, shapes and names are the IR's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.fx as fx
from hypothesis import HealthCheck, given, settings
from torch.fx.passes.shape_prop import ShapeProp

import mdl
from mdl.compiler import lower as lowering
from mdl.compiler.api import compile_file
from mdl.compiler.ir import Graph
from mdl.dsl.diagnostics import CompileError
from mdl.testing.strategies import Design, designs

ROOT = Path(__file__).resolve().parent.parent
DESIGNS = sorted(
    [p for p in (ROOT / "examples").rglob("*.mdl") if "errors" not in p.parts and "lib" not in p.parts]
    + list((ROOT / "mdl" / "stdlib" / "templates").glob("*.mdl")),
    key=str,
)

SMALL = """
model Small(width: int = 16) {
    input obs: float[B, 4]
    h = obs -> linear(out=width) -> tanh
    output policy = h -> linear(out=2)
    output value = h -> linear(out=1)
}
"""


def _real_shapes(gm: fx.GraphModule, graph: Graph, batch: int) -> list[tuple[str, list, list]]:
    """(node, IR shape with B=batch, real shape) for every IR node, from a real forward."""
    sizes = {sym: batch + 2 * k for k, sym in enumerate(lowering.example_sizes(graph))}
    inputs = lowering.example_inputs(graph, sizes)
    ShapeProp(gm).propagate(*inputs)
    rows = []
    for n in gm.graph.nodes:
        ir = n.meta.get("mdl_node")
        if ir is None:
            continue
        want = [d if isinstance(d, int) else sizes.get(d, d) for d in ir.type.shape]
        rows.append((ir.name, want, list(n.meta["tensor_meta"].shape)))
    return rows


@pytest.mark.parametrize("path", DESIGNS, ids=lambda p: p.name)
def test_static_figures_equal_the_lowered_module(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from mdl.cli import main

    assert main(["compile", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    module = compile_file(path).module
    assert summary["params"] == sum(p.numel() for p in module.parameters())
    batch = 5
    outputs = module(*lowering.example_inputs(compile_file(path).ir, {"B": batch}))
    for name, shape in summary["outputs"].items():
        assert list(outputs[name].shape) == [batch if d == "B" else d for d in shape]


def test_state_dict_keys_read_like_the_design() -> None:
    compiled = compile_file(ROOT / "examples" / "moe_2048.mdl")
    keys = set(compiled.module.state_dict())
    assert {
        "embedding.weight",
        "pos_encoding.weight",
        "layers.0.encoder_layer.attention.in_proj_weight",
        "layers.1.encoder_layer.attention.out_proj.bias",
        "layers.0.encoder_layer.moe.router.weight",
        "layers.1.encoder_layer.moe.w1",
        "layer_norm.weight",
        "policy.weight",
        "value.bias",
    } <= keys
    assert sum(p.numel() for p in compiled.module.parameters()) == 1_192_837


def test_nodes_keep_their_ir_node_and_span() -> None:
    compiled = mdl.compile_source(SMALL)
    gm = compiled.module
    metas = [n.meta for n in gm.graph.nodes if n.op != "output"]
    assert len(metas) == len(compiled.ir.nodes)
    for meta, node in zip(metas, compiled.ir.nodes, strict=True):
        assert meta["mdl_node"] is node
        assert meta["span"] == node.span and meta["span"].line >= 1


def test_forward_takes_inputs_in_order_and_returns_outputs_by_name() -> None:
    src = """
model Two {
    input a: float[B, 3]
    input b: float[B, 5]
    h = concat(a -> linear(out=8), b -> linear(out=8), dim=-1)
    output value = h -> linear(out=1)
    output policy = h -> linear(out=2)
}
"""
    gm = mdl.compile_source(src).module
    out = gm(torch.randn(4, 3), torch.randn(4, 5))
    assert list(out) == ["value", "policy"]
    assert out["policy"].shape == (4, 2) and out["value"].shape == (4, 1)
    with pytest.raises(RuntimeError):
        gm(torch.randn(4, 5), torch.randn(4, 3))  # swapped: the widths do not fit


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs())
def test_generated_designs_lower_to_what_the_ir_says(m: Design) -> None:
    compiled = mdl.compile_source(m.source)
    gm = compiled.module
    assert compiled.params == m.params == sum(p.numel() for p in gm.parameters())
    for batch in (1, 6):
        for name, want, got in _real_shapes(gm, compiled.ir, batch):
            assert got == want, f"{name}: IR {want}, torch {got}"


def test_architecture_hash_ignores_formatting_and_comments_but_not_the_architecture() -> None:
    base = mdl.compile_source(SMALL).architecture_hash
    reformatted = mdl.format_source(SMALL).replace("h = obs", "# a comment\n    h = obs")
    assert mdl.compile_source(reformatted).architecture_hash == base
    assert mdl.compile_source(SMALL.replace("Small", "Renamed")).architecture_hash == base
    assert mdl.compile_source(SMALL.replace("width: int = 16", "width: int = 24")).architecture_hash != base
    assert mdl.compile_source(SMALL.replace("tanh", "relu")).architecture_hash != base


def test_a_lowering_bug_is_an_internal_error_at_the_span(monkeypatch: pytest.MonkeyPatch) -> None:
    original = lowering.make_module

    def wrong(node, inputs):  # a linear of the wrong width: verification must catch it
        module = original(node, inputs)
        if node.op == "linear" and node.attrs["out"] == 2:
            return torch.nn.Linear(module.in_features, 3)
        return module

    monkeypatch.setattr(lowering, "make_module", wrong)
    with pytest.raises(CompileError) as info:
        _ = mdl.compile_source(SMALL).module
    (d,) = info.value.diagnostics
    assert d.code == "E0902" and "policy" in d.message and d.span.line == 5


def test_torch_compile_runs_a_compiled_module() -> None:
    compiled = mdl.compile_source(SMALL)
    gm = compiled.module.eval()
    x = torch.randn(8, 4)
    fast = torch.compile(gm)
    with torch.no_grad():
        want, got = gm(x), fast(x)
    for name in want:
        torch.testing.assert_close(got[name], want[name])


def test_reserved_names_cover_every_graph_module_attribute() -> None:
    from mdl.compiler.ir import safe_name

    g = fx.Graph()
    g.output(g.placeholder("x"))
    gm = fx.GraphModule(torch.nn.Module(), g)
    torch.compile(gm, backend="eager")(torch.zeros(1))  # dynamo tags modules with attributes too
    attributes = set(dir(gm))
    assert sorted(n for n in attributes if safe_name(n) in attributes) == []


def test_names_that_are_keywords_or_module_attributes_lower_cleanly() -> None:
    src = """
block pass(x) {
    return x -> linear(out=8)
}
block train(x) {
    return x -> relu
}
model Odd {
    input self: float[B, 4]
    graph = self -> pass -> train
    output policy = graph -> linear(out=2)
    output value = graph -> linear(out=1)
}
"""
    compiled = mdl.compile_source(src)
    assert compiled.inputs == {"self": ["B", 4]}
    gm = compiled.module
    assert {"pass_.linear.weight", "policy.weight"} <= set(gm.state_dict())
    out = gm(torch.randn(3, 4))
    assert out["policy"].shape == (3, 2) and out["value"].shape == (3, 1)
