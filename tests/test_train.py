"""End-to-end tests of the trainer (`mdl.runtime.train`), its checkpoints and `mdlc train`."""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mdl.cli import main, parse_budget
from mdl.compiler.check import analyze
from mdl.runtime import checkpoint as ckpt
from mdl.runtime import ppo
from mdl.runtime.envs import make_game2048
from mdl.runtime.train import train

TINY_MOE_2048 = """\
model TinyMoe(d: int = 16) {
    input board: int[B, 4, 4]
    x = board -> flatten(start=1) -> embedding(vocab=16, dim=d)
    x = x + (x -> layer_norm -> moe(experts=2, top_k=1, hidden=32))
    h = x -> mean(dim=1)
    output policy = h -> linear(out=4)
    output value = h -> linear(out=1)
}

experiment tiny {
    model = TinyMoe()
    env = game2048(envs=8)
    algo = ppo(rollout=32, minibatches=2, epochs=2)
    budget = 2k steps
    seeds = [7]
    checkpoint = every(512 steps, keep=2)
}
"""

SMALL_CARTPOLE = """\
model Mlp {
    input obs: float[B, 4]
    h = obs -> linear(out=32) -> tanh
    output policy = h -> linear(out=2)
    output value = h -> linear(out=1)
}

experiment small {
    model = Mlp()
    env = gym("CartPole-v1", envs=4)
    algo = ppo(rollout=64, minibatches=2, epochs=2)
    budget = 3k steps
    seeds = [3]
    checkpoint = every(1k steps, keep=2)
}
"""

TIMING_KEYS = ("steps_per_second", "wall_seconds", "memory_bytes")  # the only metrics that are not a function of the seed


def _spec(text: str, path: Path, name: str):
    analysis = analyze(text, str(path))
    assert analysis.ok, analysis.diagnostics
    return analysis.experiments[name]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_cartpole_run_writes_every_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "small.mdl", SMALL_CARTPOLE)
    summary = train(_spec(SMALL_CARTPOLE, path, "small"), SMALL_CARTPOLE, path, out_dir=tmp_path / "runs")
    run = tmp_path / "runs" / "small" / "3"
    assert summary["run_dir"] == str(run) and summary["status"] == "completed"
    assert (run / "small.mdl").read_text() == SMALL_CARTPOLE
    assert json.loads((run / "ir.json").read_text())["outputs"].keys() == {"policy", "value"}

    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == 3 and config["device"] == "cpu" and config["env"]["id"] == "CartPole-v1"
    assert set(config["versions"]) == {"torch", "numpy", "gymnasium", "mdl"}
    assert len(config["architecture_hash"]) == 64
    assert set(config["ppo"]) == {f.name for f in dataclasses.fields(ppo.PPOConfig)}
    assert config["ppo"]["rollout"] == 64 and config["batch_size"] == 256
    assert config["ppo"]["norm_reward"] is True  # on by default, gym ids too
    assert config["ppo"]["orthogonal_init"] is True  # on by default for gym ids (off for game2048)

    lines = _metrics(run)
    assert len(lines) == summary["updates"] == 12  # ceil(3000 / 256)
    for key in ("step", "episodes", "mean_return", "policy_loss", "value_loss", "entropy", "approx_kl",
                "clip_fraction", "explained_variance", "lr", "steps_per_second"):
        assert key in lines[-1], key
    assert [line["step"] for line in lines] == [256 * (i + 1) for i in range(12)]
    assert lines[0]["lr"] > lines[-1]["lr"] > 0  # linear annealing

    assert summary["steps"] == 3072 and summary["episodes"] > 0
    for key in ("mean_return_last100", "wall_seconds", "steps_per_second"):
        assert summary[key] > 0
    assert json.loads((run / "summary.json").read_text()) == summary
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    curve = events.Scalars("charts/mean_return")
    assert [e.step for e in curve] == [line["step"] for line in lines if line["mean_return"] is not None]
    assert curve[-1].value == pytest.approx(lines[-1]["mean_return"])

    checkpoints = ckpt.list_checkpoints(run / "checkpoints")
    assert 1 <= len(checkpoints) <= 2  # keep=2
    assert checkpoints[-1].name == "step_000000003072.pt"
    assert not [p for p in (run / "checkpoints").iterdir() if p.suffix == ".tmp"]
    for path in checkpoints:
        state = torch.load(path, weights_only=True)
        assert {"model", "optimizer", "step", "update", "torch_rng", "numpy_rng"} <= state.keys()
        assert "env_state" not in state  # gym envs have no state to save
    last = ckpt.load_checkpoint(checkpoints[-1])
    assert last["step"] == 3072 and last["update"] == 12
    module = analyze(SMALL_CARTPOLE, str(path)).experiments["small"].graph
    assert last["model"].keys() == _fresh_module(module).state_dict().keys()


def _fresh_module(graph):
    from mdl.compiler.lower import lower

    return lower(graph)


def test_game2048_moe_run_logs_scores_tiles_and_expert_usage(tmp_path: Path) -> None:
    path = _write(tmp_path, "tiny.mdl", TINY_MOE_2048)
    summary = train(_spec(TINY_MOE_2048, path, "tiny"), TINY_MOE_2048, path, out_dir=tmp_path / "runs")
    run = tmp_path / "runs" / "tiny" / "7"
    assert summary["steps"] == 2048 and summary["episodes"] > 0
    assert summary["mean_score_last100"] > 0
    saved = json.loads((run / "config.json").read_text())["ppo"]
    assert saved["norm_reward"] is True and saved["orthogonal_init"] is False  # 2048's defaults
    assert set(summary["tile_rates"]) == {"256", "512", "1024", "2048"}
    assert all(0 <= f <= 1 for f in summary["tile_rates"].values())
    last = _metrics(run)[-1]
    assert last["mean_score"] > 0
    assert sum(last["max_tile_distribution"].values()) == pytest.approx(1.0)
    (_layer, usage), = last["moe_usage"].items()
    assert len(usage) == 2 and sum(usage) == pytest.approx(1.0)
    assert last["moe_aux_loss"] > 0

    checkpoints = ckpt.list_checkpoints(run / "checkpoints")
    assert len(checkpoints) == 2  # every 512 steps, keep=2
    state = ckpt.load_checkpoint(checkpoints[-1])
    env_state = state["env_state"]
    assert env_state["num_envs"] == 8 and env_state["boards"].shape == (8,)

    # The saved env state restores the env: the boards match the observation the trainer held.
    env = make_game2048(8)
    env.set_state({"num_envs": 8, "boards": env_state["boards"].numpy().view(np.uint64),
                   "scores": env_state["scores"].numpy(), "lengths": env_state["lengths"].numpy(),
                   "needs_reset": env_state["needs_reset"].numpy(), "rng": json.loads(env_state["rng"])})
    obs, _ = env.observe()
    assert np.array_equal(obs, state["next_obs"].numpy())


def test_same_seed_gives_identical_metrics(tmp_path: Path) -> None:
    path = _write(tmp_path, "tiny.mdl", TINY_MOE_2048)
    spec = _spec(TINY_MOE_2048, path, "tiny")
    runs = []
    for name in ("a", "b"):
        train(spec, TINY_MOE_2048, path, out_dir=tmp_path / name, budget_steps=1024, deterministic=True)
        lines = _metrics(tmp_path / name / "tiny" / "7")
        runs.append([{k: v for k, v in line.items() if k not in TIMING_KEYS} for line in lines])
    assert runs[0] == runs[1] and len(runs[0]) == 4
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch,
                                                                     capsys) -> None:
    path = _write(tmp_path, "small.mdl", SMALL_CARTPOLE)
    calls = {"n": 0}
    real_loss = ppo.ppo_loss

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        result = real_loss(*args, **kwargs)
        if calls["n"] > 4 * 2 * 2:  # after 4 updates of 2 epochs x 2 minibatches
            return dataclasses.replace(result, loss=result.loss * float("nan"))
        return result

    monkeypatch.setattr(ppo, "ppo_loss", poisoned)
    code = main(["train", str(path), "--out", str(tmp_path / "runs"), "--device", "cpu"])
    assert code == 3
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "the loss became nan" in captured.err
    run = tmp_path / "runs" / "small" / "3"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["steps"] == 5 * 256
    (good,) = ckpt.list_checkpoints(run / "checkpoints")  # written at 1024 steps; nothing after
    assert ckpt.load_checkpoint(good)["step"] == 1024


def test_ctrl_c_checkpoints_after_the_current_update(tmp_path: Path, monkeypatch, capsys) -> None:
    path = _write(tmp_path, "small.mdl", SMALL_CARTPOLE)
    calls = {"n": 0}
    real_loss = ppo.ppo_loss

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2 * 2 * 2 + 1:  # in the 3rd update
            signal.raise_signal(signal.SIGINT)
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(ppo, "ppo_loss", interrupting)
    code = main(["train", str(path), "--out", str(tmp_path / "runs")])
    assert code == 0
    assert "interrupted" in capsys.readouterr().err
    run = tmp_path / "runs" / "small" / "3"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == 3 * 256 and summary["updates"] == 3
    assert len(_metrics(run)) == 3
    (last,) = ckpt.list_checkpoints(run / "checkpoints")
    assert ckpt.load_checkpoint(last)["update"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_the_ppo_switches_are_recorded_used_and_kept_on_resume(tmp_path: Path) -> None:
    from mdl.runtime.train import resume

    text = SMALL_CARTPOLE.replace("ppo(rollout=64, minibatches=2, epochs=2)",
                                  "ppo(rollout=64, minibatches=2, epochs=2, anneal_lr=false, adam_eps=1e-8, "
                                  "orthogonal_init=true, norm_reward=true, clip_vloss=true, target_kl=0.5)")
    path = _write(tmp_path, "switches.mdl", text)
    spec = analyze(text, str(path)).experiments["small"]
    summary = train(spec, text, path, out_dir=tmp_path / "runs", budget_steps=1024)
    run = Path(summary["run_dir"])
    saved = json.loads((run / "config.json").read_text())["ppo"]
    assert {k: saved[k] for k in ("anneal_lr", "adam_eps", "orthogonal_init", "norm_reward", "clip_vloss",
                                  "target_kl")} == {"anneal_lr": False, "adam_eps": 1e-8, "orthogonal_init": True,
                                                    "norm_reward": True, "clip_vloss": True, "target_kl": 0.5}
    (last,) = ckpt.list_checkpoints(run / "checkpoints")
    state = ckpt.load_checkpoint(last)
    assert state["optimizer"]["param_groups"][0]["eps"] == 1e-8
    assert state["reward_scaler"] is not None  # norm_reward on a gym id
    resume(run, budget_steps=2048)
    assert len(_metrics(run)) == 2048 // (64 * 4)
    assert {line["lr"] for line in _metrics(run)} == {2.5e-4}  # never annealed, before the resume or after
    assert json.loads((run / "config.json").read_text())["ppo"] == saved


def test_time_budget_stops_the_run(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, "small.mdl", SMALL_CARTPOLE)
    assert main(["train", str(path), "--out", str(tmp_path / "out"), "--budget", "0.5 s"]) == 0
    summary = json.loads((tmp_path / "out" / "small" / "3" / "summary.json").read_text())
    assert 0.5 <= summary["wall_seconds"] < 5 and summary["steps"] > 0


def test_cli_train_runs_and_says_where(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, "small.mdl", SMALL_CARTPOLE)
    code = main(["train", str(path), "--out", str(tmp_path / "out"), "--seed", "5", "--budget", "1k steps"])
    assert code == 0
    out = capsys.readouterr().out
    run = tmp_path / "out" / "small" / "5"
    assert str(run) in out
    assert json.loads((run / "summary.json").read_text())["steps"] == 1024


def test_cli_train_design_with_errors_exits_1(tmp_path: Path, capsys) -> None:
    bad = SMALL_CARTPOLE.replace("    output value = h -> linear(out=1)\n", "")
    path = _write(tmp_path, "bad.mdl", bad)
    assert main(["train", str(path), "--out", str(tmp_path / "runs")]) == 1
    captured = capsys.readouterr()
    assert "E0407" in captured.err and "Traceback" not in captured.err
    assert not (tmp_path / "runs").exists()


def test_cli_train_picks_an_experiment(tmp_path: Path, capsys) -> None:
    two = SMALL_CARTPOLE + SMALL_CARTPOLE[SMALL_CARTPOLE.index("experiment"):].replace("small", "other")
    path = _write(tmp_path, "two.mdl", two)
    assert main(["train", str(path), "--out", str(tmp_path / "runs")]) == 2
    assert "small, other" in capsys.readouterr().err
    assert main(["train", str(path), "--experiment", "nope", "--out", str(tmp_path / "runs")]) == 2
    assert main(["train", str(path), "--budget", "3 parsecs"]) == 2


def test_parse_budget() -> None:
    assert parse_budget("10k steps") == (10_000, None)
    assert parse_budget("2M steps") == (2_000_000, None)
    assert parse_budget("30 s") == (None, 30.0)
    assert parse_budget("2 min") == (None, 120.0)
    assert parse_budget("1.5 h") == (None, 5400.0)
    for bad in ("", "10", "steps", "0 steps", "1.5 steps", "3 parsecs", "-1 s"):
        assert parse_budget(bad) is None, bad


def test_checkpoint_writes_are_atomic_and_keep_the_newest(tmp_path: Path, monkeypatch) -> None:
    for step in (10, 20, 30):
        ckpt.save_checkpoint(tmp_path, step, {"w": torch.full((2,), float(step))}, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_000000000020.pt", "step_000000000030.pt"]

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path, 40, {"w": torch.zeros(2)}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000000000020.pt", "step_000000000030.pt"]
    assert ckpt.load_checkpoint(ckpt.list_checkpoints(tmp_path)[-1])["w"].tolist() == [30.0, 30.0]
