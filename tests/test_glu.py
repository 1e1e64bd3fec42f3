"""`glu`, the primitive added through its one entry and one lowering row (issue 13): checked, counted,
lowered, generated and exported like every other primitive."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import mdl
from mdl.compiler.codegen import standalone_source

GATED = """
model Gated {
    input obs: float[B, 6]
    h = obs -> linear(out=16) -> glu
    output policy = h -> linear(out=2)
    output value = h -> linear(out=1)
}
"""


def test_glu_halves_the_last_dimension_and_has_no_parameters() -> None:
    compiled = mdl.compile_source(GATED)
    (node,) = [n for n in compiled.ir.nodes if n.op == "glu"]
    assert str(node.type) == "float[B, 8]" and node.params == 0
    assert node.flops == 2 * 8  # a sigmoid and a product per output element
    assert compiled.params == sum(p.numel() for p in compiled.module.parameters())


def test_glu_on_an_odd_width_is_a_shape_error_with_a_hint() -> None:
    (d,) = mdl.check_source(GATED.replace("linear(out=16) -> glu", "linear(out=7) -> glu"))
    assert d.code == "E0206" and "odd width" in d.message and "linear(out=8)" in d.help
    assert d.span.line == 4


def test_glu_lowers_to_torchs_glu_in_both_back_ends() -> None:
    compiled = mdl.compile_source(GATED)
    x = torch.randn(5, 6)
    hidden = compiled.module.get_submodule("linear")(x)
    expected = compiled.module.get_submodule("policy")(F.glu(hidden, dim=-1))
    assert torch.allclose(compiled.module(x)["policy"], expected)
    source = standalone_source(compiled.ir, "gated.mdl")
    assert "F.glu(linear, dim=-1)" in source


def test_glu_exports_to_verified_onnx_and_python(tmp_path) -> None:
    design = tmp_path / "gated.mdl"
    design.write_text(GATED, encoding="utf-8")
    for fmt in ("onnx", "py"):
        report = mdl.export(design, fmt, out=tmp_path / f"gated.{fmt}")
        assert report["verification"]["ok"], report["verification"]
