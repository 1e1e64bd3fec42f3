"""`ppo(norm_obs=true)` end to end: the statistics a run learns are checkpointed, continued on resume,
used frozen by `mdlc eval`, and carried by every export, which then takes raw observations.

"Equals torch" means: the trained design module applied to the observations as training normalised
them (the checkpoint's statistics, `ObsNormalizer.normalize`), compared on raw CartPole observations.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

from mdl.compiler.check import analyze
from mdl.compiler.lower import lower
from mdl.runtime import checkpoint as ckpt
from mdl.runtime import export as ex
from mdl.runtime.evaluate import evaluate, load_policy
from mdl.runtime.obsnorm import INITIAL_COUNT, NAME, ObsNormalizer
from mdl.runtime.train import resume, train

DESIGN = """
model CartPole {
    input obs: float[B, 4]
    h = obs -> linear(out=16) -> tanh
    output policy = h -> linear(out=2)
    output value = h -> linear(out=1)
}

experiment normed {
    model = CartPole()
    env = gym("CartPole-v1", envs=4)
    algo = ppo(rollout=64, minibatches=2, epochs=2, norm_obs=true)
    budget = 2048 steps
    seeds = [2]
    checkpoint = every(1024 steps, keep=5)
}
"""
ENVS, STEPS = 4, 2048


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("norm_obs")
    path = root / "normed.mdl"
    path.write_text(DESIGN)
    spec = analyze(DESIGN, str(path)).experiments["normed"]
    summary = train(spec, DESIGN, path, out_dir=root / "runs", deterministic=True)
    assert summary["status"] == "completed"
    return Path(summary["run_dir"])


def _last_state(run: Path) -> dict:
    return ckpt.load_checkpoint(ckpt.list_checkpoints(run / "checkpoints")[-1])


def _raw_observations() -> torch.Tensor:
    """CartPole observations as the env gives them (never normalised), from a few random steps."""
    envs = gymnasium.make_vec("CartPole-v1", num_envs=ENVS, vectorization_mode="sync")
    obs, _ = envs.reset(seed=11)
    rng, seen = np.random.default_rng(0), [obs]
    for _ in range(15):
        obs, *_ = envs.step(rng.integers(0, 2, size=ENVS))
        seen.append(obs)
    envs.close()
    return torch.as_tensor(np.concatenate(seen), dtype=torch.float32)


def _as_trained(run: Path, obs: torch.Tensor) -> dict[str, torch.Tensor]:
    """The trained design on `obs` normalised with the checkpoint's statistics, as training feeds it."""
    state = _last_state(run)
    spec = analyze((run / "normed.mdl").read_text(), str(run / "normed.mdl")).experiments["normed"]
    module = lower(spec.graph)
    module.load_state_dict(state["model"])
    normalizer = ObsNormalizer((4,))
    normalizer.load_state(state["obs_norm"])
    with torch.no_grad():
        return module.eval()(normalizer.normalize(obs))


def test_the_statistics_are_checkpointed_and_recorded(run: Path) -> None:
    assert json.loads((run / "config.json").read_text())["ppo"]["norm_obs"] is True
    saved = _last_state(run)["obs_norm"]
    # every observation the envs gave updated them: the first reset's and one per env step
    assert saved["count"] == pytest.approx(INITIAL_COUNT + ENVS + STEPS)
    assert saved["mean"].dtype == torch.float64 and saved["mean"].shape == (4,)
    assert not torch.allclose(saved["var"], torch.ones(4, dtype=torch.float64))  # learned, not the initial statistics


def test_a_resumed_run_continues_the_saved_statistics(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = _last_state(copy)["obs_norm"]
    resume(copy, budget_steps=STEPS + 1024)
    after = _last_state(copy)["obs_norm"]
    # saved count + the re-seeded envs' reset + 1,024 steps; a fresh normaliser would start at 1e-4
    assert after["count"] == pytest.approx(before["count"] + ENVS + 1024)
    assert torch.allclose(after["mean"], before["mean"], atol=0.5)  # the same stream, moved a little
    assert json.loads((copy / "config.json").read_text())["ppo"]["norm_obs"] is True


def test_eval_uses_the_saved_statistics_frozen(run: Path) -> None:
    policy = load_policy(run)
    obs = _raw_observations()
    want = _as_trained(run, obs)
    with torch.no_grad():
        got = policy.module(obs)
    assert torch.equal(got["policy"], want["policy"]) and torch.equal(got["value"], want["value"])
    layer = policy.module.get_submodule(NAME)
    mean = layer.mean.clone()
    result = evaluate(policy, episodes=4, seed=3)
    assert result["episodes"] == 4 and torch.equal(layer.mean, mean)  # eval never updates them


@pytest.mark.parametrize("fmt", ["pt", "py", "onnx"])
def test_every_export_takes_raw_observations_and_equals_torch(run: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"policy.{fmt}"
    report = ex.export(run, fmt, out=out)
    assert report["verification"]["ok"]
    obs = _raw_observations()
    want = _as_trained(run, obs)
    if fmt == "pt":
        with torch.no_grad():
            got = ex.load(out).module(obs)
        assert ex.read_export(out)["obs_norm"] == {"shape": [4], "clip": 10.0, "epsilon": 1e-8}
    elif fmt == "py":
        spec = importlib.util.spec_from_file_location("normed_export", out)
        generated = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(generated)
        finally:
            sys.modules.pop("normed_export", None)
        model = generated.CartPole()
        model.load_state_dict(load_policy(run).module.state_dict(), strict=True)
        with torch.no_grad():
            got = model.eval()(obs)
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        policy, value = session.run(["policy", "value"], {"obs": obs.numpy()})
        got = {"policy": torch.from_numpy(policy), "value": torch.from_numpy(value)}
    for name in ("policy", "value"):
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-5)
    # and the statistics matter: the design alone on raw observations gives something else
    raw = lower(analyze(DESIGN, "normed.mdl").experiments["normed"].graph)
    raw.load_state_dict(_last_state(run)["model"])
    with torch.no_grad():
        assert (raw.eval()(obs)["value"] - want["value"]).abs().max() > 1e-3


def test_an_exported_pt_re_exports_with_its_statistics(run: Path, tmp_path: Path) -> None:
    pt = tmp_path / "policy.pt"
    ex.export(run, "pt", out=pt)
    again = ex.export(pt, "onnx", out=tmp_path / "again.onnx")
    assert again["verification"]["ok"]
    import onnxruntime as ort

    obs = _raw_observations()
    (value,) = ort.InferenceSession(str(tmp_path / "again.onnx"), providers=["CPUExecutionProvider"]).run(
        ["value"], {"obs": obs.numpy()})
    torch.testing.assert_close(torch.from_numpy(value), _as_trained(run, obs)["value"], rtol=0, atol=1e-5)


def test_a_damaged_obs_norm_entry_is_refused(run: Path, tmp_path: Path) -> None:
    pt = tmp_path / "policy.pt"
    ex.export(run, "pt", out=pt)
    payload = torch.load(pt, weights_only=True)
    payload["obs_norm"] = {"shape": [4], "clip": "ten", "epsilon": 1e-8}
    torch.save(payload, pt)
    with pytest.raises(ex.LoadError, match="obs_norm"):
        ex.load(pt)
