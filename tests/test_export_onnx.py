"""ONNX export: every example in both moe modes, verified against torch; one node per `moe`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.inliner
import pytest
import torch

from mdl.compiler.api import compile_file, compile_source
from mdl.runtime.export.onnx_format import ExportError, export_onnx, verify_onnx

pytest.importorskip("onnxruntime")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.mdl"))
MOE_SOURCE = (EXAMPLES / "moe_2048.mdl").read_text()


def _relu_moe(top_k: int) -> str:
    """moe_2048 with relu experts (exact in com.microsoft.MoE) and the given top_k, d=32 to stay quick."""
    return (MOE_SOURCE.replace("hidden=4 * dim(x))", 'hidden=4 * dim(x), act="relu")')
            .replace("top_k: int = 2", f"top_k: int = {top_k}").replace("const D = 128", "const D = 32"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(name, mode) -> (compiled, export result), exported once for the whole file."""
    out = tmp_path_factory.mktemp("onnx")
    cache: dict = {}

    def get(name: str, mode: str):
        if (name, mode) not in cache:
            torch.manual_seed(0)
            if name.startswith("relu_k"):
                compiled = compile_source(_relu_moe(int(name[-1])))
            else:
                compiled = compile_file(EXAMPLES / f"{name}.mdl")
            result = export_onnx(compiled.module, compiled.ir, out / f"{name}_{mode}.onnx", moe=mode)
            cache[name, mode] = compiled, result
        return cache[name, mode]

    return get


@pytest.mark.parametrize("mode", ["fused", "portable"])
@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.stem for p in EXAMPLE_FILES])
def test_every_example_exports_and_verifies(exported, path, mode):
    compiled, result = exported(path.stem, mode)
    report = verify_onnx(result["path"], compiled.module, compiled.ir, batches=(1, 64))
    assert report["ok"], report["problems"]
    assert report["checked"]
    assert set(report["max_abs_error"]) == {1, 64}
    assert all(err <= 1e-4 for errs in report["max_abs_error"].values() for err in errs.values())
    model = onnx.load(result["path"])
    assert [o.name for o in model.graph.output] == list(compiled.ir.outputs)
    assert [i.name for i in model.graph.input] == list(compiled.ir.inputs)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "B"
    assert not Path(result["path"] + ".data").exists() and result["bytes"] < 2**31
    assert all(not i.HasField("data_location") or i.data_location == 0 for i in model.graph.initializer)


@pytest.mark.parametrize("top_k", [1, 2])
@pytest.mark.parametrize("mode", ["fused", "portable"])
def test_two_moe_layers_give_two_moe_nodes(exported, mode, top_k):
    compiled, result = exported(f"relu_k{top_k}", mode)
    model = onnx.load(result["path"])
    ms = [n for n in model.graph.node if n.domain == "com.microsoft"]
    mdl = [n for n in model.graph.node if n.domain == "mdl"]
    if mode == "fused" and top_k == 2:
        assert [n.op_type for n in ms] == ["MoE", "MoE"] and not mdl
        assert {onnx.helper.get_attribute_value(a) for n in ms for a in n.attribute if a.name == "k"} == {2}
    else:  # portable, or fused falling back for top_k=1 (listed in the result)
        assert not ms and len(mdl) == 2
        assert {f.name for f in model.functions} == {n.op_type for n in mdl} == {f"MoE_k{top_k}_relu"}
        assert all(n.domain in ("", "ai.onnx") for f in model.functions for n in f.node)
        assert len(result["fallbacks"]) == (2 if mode == "fused" else 0)
    assert not any("moe" in n.op_type.lower() for n in model.graph.node if n.domain in ("", "ai.onnx"))
    report = verify_onnx(result["path"], compiled.module, compiled.ir)
    assert report["ok"], report["problems"]
    assert sum(report["moe_nodes"].values()) == 2


@pytest.mark.parametrize("mode", ["fused", "portable"])
def test_ties_go_to_the_lower_expert(tmp_path, mode):
    """A zero router makes every expert equally likely: the lowest indices must win, as in torch."""
    compiled = compile_source(_relu_moe(2))
    with torch.no_grad():
        for name, p in compiled.module.named_parameters():
            if "router" in name:
                p.zero_()
    result = export_onnx(compiled.module, compiled.ir, tmp_path / "ties.onnx", moe=mode)
    report = verify_onnx(result["path"], compiled.module, compiled.ir, batches=(4,))
    assert report["ok"], report["problems"]


def test_portable_has_no_contrib_ops_and_runs_with_functions_inlined(exported):
    _, result = exported("moe_2048", "portable")
    model = onnx.load(result["path"])
    assert not any(n.domain == "com.microsoft" for n in model.graph.node)
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx", "mdl"}
    inlined = onnx.inliner.inline_local_functions(model)
    assert {n.domain for n in inlined.graph.node} <= {"", "ai.onnx"}
    onnx.checker.check_model(inlined, full_check=True)


@pytest.mark.parametrize("mode", ["fused", "portable"])
def test_policy_argmax_matches_torch_on_10k_boards(exported, mode):
    import onnxruntime as ort

    compiled, result = exported("moe_2048", mode)
    boards = np.random.default_rng(1).integers(0, 16, size=(10_000, 4, 4), dtype=np.int64)
    session = ort.InferenceSession(result["path"], providers=["CPUExecutionProvider"])
    module = compiled.module.eval()
    got, want = [], []
    for chunk in np.split(boards, 10):  # 1000 boards at a time keeps the dense portable experts small
        got.append(session.run(["policy"], {"board": chunk})[0])
        with torch.no_grad():
            want.append(module(torch.from_numpy(chunk))["policy"].numpy())
    got, want = np.concatenate(got), np.concatenate(want)
    assert np.abs(got - want).max() <= 1e-4
    assert (got.argmax(axis=1) == want.argmax(axis=1)).all()


def test_fused_reports_its_fallbacks(exported):
    _, result = exported("moe_2048", "fused")  # gelu experts: exact erf GELU has no fused form
    assert result["moe_nodes"] == {"com.microsoft.MoE": 0, "mdl": 2}
    assert [f["act"] for f in result["fallbacks"]] == ["gelu", "gelu"]


def test_user_mistakes_raise_export_error(tmp_path):
    compiled = compile_file(EXAMPLES / "cartpole_mlp.mdl")
    with pytest.raises(ExportError, match="unknown moe mode"):
        export_onnx(compiled.module, compiled.ir, tmp_path / "x.onnx", moe="fast")
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(compiled.module, compiled.ir, tmp_path / "missing" / "x.onnx")
    with pytest.raises(ExportError, match="cannot read"):
        verify_onnx(tmp_path / "nothing.onnx", compiled.module, compiled.ir)
