"""`mdl.testing`'s laws (issue 15, first part): they hold on every example, and each fails, naming the
node and its place in the design, when the rule it checks is broken on purpose."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

import mdl
from mdl.compiler import primitives
from mdl.testing import (
    LAWS,
    assert_batch_independent,
    assert_deterministic,
    assert_exports_match,
    assert_flops_match_torch,
    assert_matches_torch,
    assert_round_trips,
    check_laws,
)

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.mdl"))

SMALL = """model Small {
    input obs: float[B, 4]
    h = obs -> linear(out=8) -> tanh
    output policy = h -> linear(out=2) -> tanh
    output value = h -> linear(out=1)
}
"""


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_keeps_every_law(path: Path) -> None:
    # every example's exports are verified in tests/test_export_onnx.py; here one design's (below)
    check_laws(mdl.compile_file(path), [law for law in LAWS if law != "exports_match"])


def test_the_exports_of_a_design_with_a_file_import_match() -> None:
    assert_exports_match(mdl.compile_file(ROOT / "examples" / "uses_file_import.mdl"))


def test_an_export_that_changes_one_weight_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from mdl.runtime.export import pt

    original = pt.write

    def tampered(src, path, moe, compare):  # writes (and self-verifies) a copy with one weight moved
        module = copy.deepcopy(src.compiled.module)
        with torch.no_grad():
            next(module.parameters()).view(-1)[0] += 1.0
        twin = dataclasses.replace(src.compiled, _module=module)
        return original(dataclasses.replace(src, compiled=twin), path, moe, compare)

    monkeypatch.setattr(pt, "write", tampered)
    compiled = mdl.compile_source(SMALL)
    assert_exports_match(compiled, formats=("py", "onnx"))  # the untouched writers pass
    with pytest.raises(AssertionError, match=r"model `Small`: the pt export differs from the module"):
        assert_exports_match(compiled, formats=("pt",))


def _with_rule(monkeypatch: pytest.MonkeyPatch, op: str, **rules) -> None:
    monkeypatch.setitem(primitives.PRIMITIVES, op, dataclasses.replace(primitives.PRIMITIVES[op], **rules))


def test_a_wrong_parameter_formula_fails_at_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_rule(monkeypatch, "linear", params=lambda s: s.d * s.attrs["out"])  # the bias forgotten
    with pytest.raises(AssertionError, match=r"<source>:3:\d+: `linear` \(linear\) has 32 parameters statically, "
                                             r"the lowered module 40"):
        assert_matches_torch(mdl.compile_source(SMALL))


def test_a_wrong_shape_rule_fails_at_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    from mdl.compiler.shapes import TensorType

    def wider(site):  # tanh doubling the last dim: no parameter count depends on the policy's tanh
        t = site.inputs[0]
        return TensorType(t.dtype, (*t.shape[:-1], 2 * t.shape[-1]))

    _with_rule(monkeypatch, "tanh", infer=wider)
    source = SMALL.replace("h = obs -> linear(out=8) -> tanh", "h = obs -> linear(out=8)")
    with pytest.raises(AssertionError, match=r"<source>:4:\d+: `policy` \(tanh\) has the static shape \['B', 4\]"):
        assert_matches_torch(mdl.compile_source(source))


def test_round_trips_and_determinism_hold_and_unknown_laws_are_named() -> None:
    compiled = mdl.compile_source(SMALL)
    assert_round_trips(SMALL)
    assert_deterministic(compiled)
    assert_batch_independent(compiled)
    with pytest.raises(ValueError, match="unknown law 'speed'"):
        check_laws(compiled, ["speed"])
    with pytest.raises(AssertionError, match="has errors"):
        assert_round_trips(SMALL.replace("out=2", "out=nope"))


def test_importing_mdl_testing_imports_neither_torch_nor_hypothesis() -> None:
    code = "import sys, mdl.testing; print(sorted({'torch', 'hypothesis'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_flop_counter_mode_sees_the_experts_of_the_language_model() -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mdl.compiler.lower import example_inputs

    compiled = mdl.compile_file(ROOT / "examples" / "moe_2048.mdl")  # LANGUAGE.md's model: 21.4M static
    module = compiled.module.train()  # lowered (and verified on fake tensors) before the counting starts
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*example_inputs(compiled.ir, {"B": 1}))
    counts = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    # 2 layers x 16 tokens x (router 2*128*4 + top-2 experts x 4*128*512)
    assert counts["mdl.moe"] == 2 * 16 * (2 * 128 * 4 + 2 * 4 * 128 * 512) == 16_809_984
    assert abs(counter.get_total_flops() - compiled.flops) <= 0.05 * compiled.flops


def test_a_wrong_flop_formula_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_rule(monkeypatch, "linear", flops=lambda s: 4 * s.tokens * s.d * s.attrs["out"])  # twice the truth
    with pytest.raises(AssertionError, match=r"model `Small`: 234 FLOPs per sample statically, FlopCounterMode "
                                             r"counts 112 \(aten.addmm: 112\)"):
        assert_flops_match_torch(mdl.compile_source(SMALL))


# ------------------------------------------------------------------------------------ the pytest plugin

BROKEN_LINEAR = """import dataclasses

from mdl.compiler import primitives

# the law broken on purpose: linear's parameter formula forgets the bias
primitives.PRIMITIVES["linear"] = dataclasses.replace(primitives.PRIMITIVES["linear"],
                                                      params=lambda s: s.d * s.attrs["out"])
"""


def test_pytest_mdl_runs_one_test_per_model_of_the_examples(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--mdl", str(ROOT / "examples"), "--mdl-laws",
                                           "matches_torch,deterministic,batch_independent", "-p", "no:cacheprovider")
    errors = len(list((ROOT / "examples" / "errors").glob("*.mdl")))
    result.assert_outcomes(passed=len(EXAMPLES), skipped=errors)  # every example defines one model
    assert result.ret == 0


def test_pytest_mdl_reports_a_broken_law_at_the_designs_line(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(BROKEN_LINEAR)
    design = pytester.path / "small.mdl"
    design.write_text(SMALL)
    result = pytester.runpytest_subprocess("--mdl", str(design), "--mdl-laws", "matches_torch", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{design}:3:*`linear` (linear) has 32 parameters statically, the lowered module 40*"])
    assert "Traceback" not in result.stdout.str()
    unknown = pytester.runpytest_subprocess("--mdl", str(design), "--mdl-laws", "speed")
    assert unknown.ret != 0 and "unknown law(s) speed" in unknown.stderr.str()


# ------------------------------------------------------------------------------------------ strategies
def test_variants_yield_only_what_the_checker_accepts_and_name_unknown_parameters() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from mdl.compiler.check import analyze
    from mdl.testing.strategies import variants

    source = (ROOT / "examples" / "moe_2048.mdl").read_text()
    seen = set()

    @settings(max_examples=30, deadline=None, database=None)
    @given(variants(source, "Moe2048", d=st.sampled_from([6, 8, 12, 16]), experts=st.integers(1, 3)))
    def check(compiled) -> None:  # heads=4 divides only 8, 12 and 16; top_k=2 needs 2 experts or more
        d, experts = compiled.ir.args["d"], compiled.ir.args["experts"]
        assert d % 4 == 0 and experts >= 2
        text = source.replace("model = Moe2048(d=128, experts=4)", f"model = Moe2048(d={d}, experts={experts})")
        assert analyze(text).ok  # the checker accepts the experiment that names this combination
        seen.add((d, experts))

    check()
    assert len(seen) >= 3
    with pytest.raises(ValueError, match="has no parameter width"):
        variants(source, "Moe2048", width=st.just(8))


def test_boards_and_inputs_draw_valid_values() -> None:
    from hypothesis import given, settings

    from mdl.testing.strategies import boards, inputs

    compiled = mdl.compile_file(ROOT / "examples" / "fast_2048.mdl")

    @settings(max_examples=25, deadline=None, database=None)
    @given(boards(max_tile=512), inputs(compiled, batch=3))
    def check(board, batch) -> None:
        assert board.shape == (4, 4) and board.dtype.name == "int64"
        assert board.max() <= 9 and (board > 0).sum() >= 2 and board.min() >= 0
        (x,) = batch
        assert tuple(x.shape) == (3, 4, 4) and int(x.max()) < 16
        assert compiled.module(x)["policy"].shape == (3, 4)

    check()


def test_designs_keep_to_their_knobs_and_check_cleanly() -> None:
    from hypothesis import HealthCheck, given, settings

    from mdl.testing.strategies import designs

    allowed = {"relu", "layer_norm", "mlp"}

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(designs(primitives=allowed, statements=(2, 3), blocks=(0, 0), stdlib=False, max_width=16, depth=0))
    def check(design) -> None:
        assert design.primitives <= allowed | {"linear"}
        assert "repeat" not in design.source and "block " not in design.source and "import" not in design.source
        assert list(mdl.check_source(design.source)) == []  # no diagnostic at all, warnings included
        compiled = mdl.compile_source(design.source)
        assert compiled.params == design.params
        assert all(n.type.shape[-1] <= 16 for n in compiled.ir.nodes)

    check()
    with pytest.raises(ValueError, match="unknown primitive conv2d"):
        designs(primitives={"conv2d"})
    with pytest.raises(ValueError, match="statements must be"):
        designs(statements=(3, 1))


def test_observations_lie_inside_the_environment_s_observation_space() -> None:
    import gymnasium
    import numpy as np
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from mdl.testing.strategies import observations

    cartpole = gymnasium.make("CartPole-v1")
    spaces = gymnasium.spaces

    @settings(max_examples=30, deadline=None, database=None)
    @given(observations("CartPole-v1"), observations("game2048"), observations(cartpole),
           observations(spaces.MultiDiscrete([3, 5])), observations(spaces.Discrete(4, start=2)),
           st.data())
    def check(pole, board, pole2, multi, discrete, data) -> None:
        for obs in (pole, pole2):
            assert obs.shape == (4,) and obs.dtype == np.float32 and cartpole.observation_space.contains(obs)
        assert board.shape == (4, 4) and (board > 0).sum() >= 2
        assert spaces.MultiDiscrete([3, 5]).contains(multi) and 2 <= int(discrete) <= 5

    check()
    with pytest.raises(ValueError, match="Box, Discrete"):
        observations(spaces.Text(5))


# -------------------------------------------------------------- mutations found and shrunk by hypothesis
def _shrunk_counterexample(law) -> int:
    """Run `law` over small `designs()` until it fails; the node count of the design hypothesis shrank
    the failure to (hypothesis runs the minimal failing example last)."""
    from hypothesis import HealthCheck, Phase, given, settings

    from mdl.dsl.diagnostics import CompileError
    from mdl.testing.strategies import designs

    tried: list = []

    @settings(max_examples=60, deadline=None, database=None, derandomize=True, phases=[Phase.generate, Phase.shrink],
              report_multiple_bugs=False, suppress_health_check=[HealthCheck.too_slow])
    @given(designs(statements=(0, 2), blocks=(0, 1)))
    def prop(generated) -> None:
        tried.append(generated)
        try:
            compiled = mdl.compile_source(generated.source)
        except CompileError as exc:  # a broken shape rule can make a valid design fail to check
            raise AssertionError(f"no longer checks: {exc}") from None
        law(compiled)

    with pytest.raises(AssertionError):
        prop()
    return len(tried[-1].nodes)


def test_hypothesis_shrinks_a_wrong_parameter_formula_to_three_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_rule(monkeypatch, "linear", params=lambda s: s.d * s.attrs["out"])  # the bias forgotten
    assert _shrunk_counterexample(lambda c: assert_matches_torch(c, batches=(2,))) <= 3


def test_hypothesis_shrinks_a_wrong_shape_rule_to_three_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    from mdl.compiler import shapes

    def one_wider(site):
        t = shapes.linear(site)
        return dataclasses.replace(t, shape=(*t.shape[:-1], t.shape[-1] + 1))

    _with_rule(monkeypatch, "linear", infer=one_wider)
    assert _shrunk_counterexample(lambda c: assert_matches_torch(c, batches=(2,))) <= 3


def test_hypothesis_shrinks_an_export_that_changes_one_weight_to_three_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from mdl.runtime.export import pt

    original = pt.write

    def tampered(src, path, moe, compare):
        module = copy.deepcopy(src.compiled.module)
        with torch.no_grad():
            next(module.parameters()).view(-1)[0] += 1.0
        return original(dataclasses.replace(src, compiled=dataclasses.replace(src.compiled, _module=module)),
                        path, moe, compare)

    monkeypatch.setattr(pt, "write", tampered)
    assert _shrunk_counterexample(lambda c: assert_exports_match(c, formats=("pt",))) <= 3
