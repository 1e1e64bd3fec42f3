"""`mdlc eval` (`mdl.runtime.evaluate`): loading a run's policy, greedy masked play, statistics,
`--render`, and clear errors for paths that are not a loadable run."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from designs import TINY_2048
from rich.console import Console

from mdl.cli import main
from mdl.compiler.check import analyze
from mdl.runtime import evaluate as ev
from mdl.runtime.envs.game2048 import Game2048VectorEnv, legal_moves
from mdl.runtime.train import train

TINY_CARTPOLE = """\
model Mlp {
    input obs: float[B, 4]
    h = obs -> linear(out=16) -> tanh
    output policy = h -> linear(out=2)
    output value = h -> linear(out=1)
}

experiment pole {
    model = Mlp()
    env = gym("CartPole-v1", envs=4)
    algo = ppo(rollout=32, minibatches=2, epochs=1)
    budget = 256 steps
    seeds = [2]
}
"""


def _train(tmp: Path, text: str, name: str, seed: int) -> Path:
    path = tmp / f"{name}.mdl"
    path.write_text(text, encoding="utf-8")
    analysis = analyze(text, str(path))
    assert analysis.ok, analysis.diagnostics
    summary = train(analysis.experiments[name], text, path, out_dir=tmp / "runs", deterministic=True)
    assert summary["status"] == "completed"
    return tmp / "runs" / name / str(seed)


@pytest.fixture(scope="module")
def run_2048(tmp_path_factory) -> Path:
    run = _train(tmp_path_factory.mktemp("eval2048"), TINY_2048, "tiny", 4)
    assert len(list((run / "checkpoints").glob("step_*.pt"))) == 2  # steps 128 and 256
    return run


@pytest.fixture(scope="module")
def run_cartpole(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("evalpole"), TINY_CARTPOLE, "pole", 2)


def _copy(run: Path, tmp_path: Path) -> Path:
    """A private copy of a run to damage (the design copy, config and checkpoints)."""
    return Path(shutil.copytree(run, tmp_path / "run"))


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["eval", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


# ---------------------------------------------------------------------------------------------------
# Loading


def test_run_dir_loads_the_newest_checkpoint_and_a_file_that_one(run_2048: Path) -> None:
    newest = ev.load_policy(run_2048)
    assert newest.checkpoint.name == "step_000000000256.pt" and newest.step == 256
    assert newest.run_dir == run_2048 and newest.spec.name == "tiny" and not newest.module.training
    assert newest.obs_dtype == torch.long and newest.skipped == ()

    older = ev.load_policy(run_2048 / "checkpoints" / "step_000000000128.pt")
    assert older.step == 128 and older.run_dir == run_2048
    same = ev.load_policy(newest.checkpoint)
    assert ev.evaluate(newest, episodes=6, seed=1) == ev.evaluate(same, episodes=6, seed=1)


def test_loading_leaves_the_torch_rng_alone(run_2048: Path) -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    ev.load_policy(run_2048)
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------------------------------------------
# Greedy, masked actions


def test_greedy_actions_take_the_best_legal_action() -> None:
    logits = torch.tensor([[9.0, 1.0, 2.0, 3.0], [0.0, 5.0, 5.0, -1.0], [1e30, -1e30, -1e30, -1e30]])
    mask = torch.tensor([[False, True, True, True], [True, True, True, True], [False, False, False, True]])
    assert ev.greedy_actions(logits, mask).tolist() == [3, 1, 3]  # ties go to the lowest index
    assert ev.greedy_actions(logits, None).tolist() == [0, 1, 0]
    broken = torch.tensor([[float("nan"), float("-inf"), -3e38, 1.0], [5.0, float("nan"), float("-inf"), 0.0]])
    legal = torch.tensor([[False, True, True, False], [False, False, True, False]])
    assert ev.greedy_actions(broken, legal).tolist() == [1, 2]  # a non-finite model still moves legally
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        logits = torch.randn(64, 4, generator=gen) * 100
        mask = torch.rand(64, 4, generator=gen) < 0.5
        mask[torch.arange(64), torch.randint(0, 4, (64,), generator=gen)] = True  # at least one legal
        chosen = ev.greedy_actions(logits, mask)
        assert mask[torch.arange(64), chosen].all()


class _PrefersUp(torch.nn.Module):
    """A policy whose logits always rank up > right > down > left, by far."""

    def forward(self, board: torch.Tensor) -> dict[str, torch.Tensor]:
        n = board.shape[0]
        return {"policy": torch.tensor([[1e6, 1e3, 1.0, 0.0]]).expand(n, 4), "value": torch.zeros(n, 1)}


def test_a_policy_preferring_an_illegal_move_never_makes_it(run_2048: Path, monkeypatch) -> None:
    policy = ev.load_policy(run_2048)
    object.__setattr__(policy, "module", _PrefersUp())
    taken: list[tuple[bool, int]] = []  # (was the action legal, action) for every non-reset step

    class Checked(Game2048VectorEnv):
        def step(self, actions):
            legal = legal_moves(self._boards)
            for i in np.flatnonzero(~self._needs_reset):
                taken.append((bool(legal[i, actions[i]]), int(actions[i])))
            return super().step(actions)

    monkeypatch.setattr(ev, "make_envs", lambda env, seed: Checked(env.envs, seed=seed))
    result = ev.evaluate(policy, episodes=5, seed=0)
    assert result["episodes"] == 5 and taken
    assert all(legal for legal, _ in taken)
    assert {a for _, a in taken} != {0}  # up was often illegal: the policy had to fall back


# ---------------------------------------------------------------------------------------------------
# Episodes and statistics


def test_quotas_are_even_and_sum_to_the_episodes() -> None:
    for episodes, slots in ((5, 5), (70, 64), (100, 64), (17, 16), (1, 1)):
        q = ev._quotas(episodes, slots)
        assert q.sum() == episodes and q.max() - q.min() <= 1 and q.min() >= 1


@pytest.mark.parametrize("episodes", [1, 7, 70])
def test_exactly_n_2048_games_with_consistent_statistics(run_2048: Path, episodes: int) -> None:
    result = ev.evaluate(ev.load_policy(run_2048), episodes=episodes, seed=3)
    assert result["episodes"] == episodes
    assert {"experiment", "checkpoint", "step", "seed", "run_seed", "mean_return", "std_return", "min_return",
            "max_return", "mean_length", "mean_score", "median_score", "max_score", "tile_rates",
            "max_tile_distribution"} <= set(result)
    assert result["experiment"] == "tiny" and result["step"] == 256 and result["run_seed"] == 4
    assert result["min_return"] <= result["mean_score"] <= result["max_return"] == result["max_score"]
    assert result["mean_score"] == result["mean_return"]  # 2048's reward is the score it adds
    assert result["min_return"] <= result["median_score"] <= result["max_return"]
    rates = [result["tile_rates"][k] for k in ("256", "512", "1024", "2048")]
    assert all(0.0 <= a <= 1.0 for a in rates) and rates == sorted(rates, reverse=True)
    dist = result["max_tile_distribution"]
    assert abs(sum(dist.values()) - 1.0) < 1e-9 and all(int(t) & (int(t) - 1) == 0 for t in dist)
    assert result["tile_rates"]["256"] == pytest.approx(sum(f for t, f in dist.items() if int(t) >= 256))
    assert result["mean_length"] > 0
    json.dumps(result)  # plain JSON


def test_evaluation_is_a_function_of_the_seed(run_2048: Path, run_cartpole: Path) -> None:
    for run in (run_2048, run_cartpole):
        policy = ev.load_policy(run)
        assert ev.evaluate(policy, episodes=4, seed=9) == ev.evaluate(policy, episodes=4, seed=9)
    policy = ev.load_policy(run_2048)
    assert ev.evaluate(policy, episodes=4, seed=9) != ev.evaluate(policy, episodes=4, seed=10)


@pytest.mark.parametrize("episodes", [3, 17])
def test_exactly_n_cartpole_episodes(run_cartpole: Path, episodes: int) -> None:
    result = ev.evaluate(ev.load_policy(run_cartpole), episodes=episodes, seed=0)
    assert result["episodes"] == episodes and "mean_score" not in result and "tile_rates" not in result
    assert result["min_return"] <= result["mean_return"] <= result["max_return"] <= 500
    assert result["mean_length"] == result["mean_return"]  # CartPole: reward 1 per step


# ---------------------------------------------------------------------------------------------------
# Rendering


def test_render_draws_each_final_board_on_a_plain_console(run_2048: Path) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=100)
    result = ev.evaluate(ev.load_policy(run_2048), episodes=2, seed=0, render=console, delay=0)
    text = buffer.getvalue()
    assert result["episodes"] == 2
    assert "episode 1/2" in text and "episode 2/2" in text and text.count("game over") == 2
    assert "┌───────┬" in text and f"score {result['max_score']:,}" in text


def test_render_draws_live_on_a_terminal(run_2048: Path) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, color_system="truecolor")
    result = ev.evaluate(ev.load_policy(run_2048), episodes=1, seed=0, render=console, delay=0)
    text = buffer.getvalue()
    assert result["episodes"] == 1 and "game over" in text and "\x1b[" in text  # redrawn in place, colored


def test_cli_render_2048(run_2048: Path, capsys) -> None:
    code, out, _ = _cli(capsys, str(run_2048), "--render", "--delay", "0")
    assert code == 0 and "episode 1/1" in out and "game over" in out and "mean score" in out


def test_cli_render_on_a_gym_env_is_a_usage_error(run_cartpole: Path, capsys) -> None:
    code, out, err = _cli(capsys, str(run_cartpole), "--render")
    assert code == 2 and "--render" in err and "CartPole-v1" in err and not out


# ---------------------------------------------------------------------------------------------------
# The command


def test_cli_json_and_table(run_2048: Path, run_cartpole: Path, capsys) -> None:
    code, out, _ = _cli(capsys, str(run_2048), "--episodes", "5", "--seed", "2", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["episodes"] == 5 and result["seed"] == 2 and result["step"] == 256
    assert result == ev.evaluate(ev.load_policy(run_2048), episodes=5, seed=2)

    code, out, _ = _cli(capsys, str(run_cartpole), "--episodes", "2")
    assert code == 0 and "episodes" in out and "return" in out and "mean score" not in out
    code, same, _ = _cli(capsys, str(run_cartpole / "checkpoints"), "--episodes", "2")  # its folder: the run
    assert code == 0 and same == out


def test_cli_rejects_a_bad_episode_count(run_2048: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(run_2048), "--episodes", "0"])
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_missing_path_and_a_folder_that_is_not_a_run(tmp_path: Path, capsys) -> None:
    code, _, err = _cli(capsys, str(tmp_path / "nowhere"))
    assert code == 2 and "no such run directory or checkpoint" in err
    code, _, err = _cli(capsys, str(tmp_path))
    assert code == 2 and "config.json" in err
    stray = tmp_path / "step_000000000001.pt"
    stray.write_bytes(b"x")
    code, _, err = _cli(capsys, str(stray))
    assert code == 2 and "checkpoints/" in err


def test_a_run_without_checkpoints(run_2048: Path, tmp_path: Path, capsys) -> None:
    run = _copy(run_2048, tmp_path)
    shutil.rmtree(run / "checkpoints")
    code, _, err = _cli(capsys, str(run))
    assert code == 3 and "no loadable checkpoint" in err


def test_corrupt_and_truncated_checkpoint_files(run_2048: Path, tmp_path: Path, capsys) -> None:
    run = _copy(run_2048, tmp_path)
    newest, older = run / "checkpoints" / "step_000000000256.pt", run / "checkpoints" / "step_000000000128.pt"
    newest.write_bytes(np.random.default_rng(0).bytes(4096))  # garbage
    older.write_bytes(older.read_bytes()[: older.stat().st_size // 2])  # cut short
    for bad in (newest, older):
        code, out, err = _cli(capsys, str(bad))
        assert code == 3 and "is not a readable checkpoint" in err and not out
    code, _, err = _cli(capsys, str(run))  # the run: neither loads
    assert code == 3 and "no loadable checkpoint" in err


def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning(run_2048: Path, tmp_path: Path, capsys) -> None:
    run = _copy(run_2048, tmp_path)
    newest = run / "checkpoints" / "step_000000000256.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    code, out, err = _cli(capsys, str(run), "--episodes", "2", "--json")
    assert code == 0 and "warning" in err and newest.name in err
    assert json.loads(out)["step"] == 128


def test_a_state_that_is_not_a_training_checkpoint(run_2048: Path, tmp_path: Path, capsys) -> None:
    run = _copy(run_2048, tmp_path)
    torch.save({"weights": torch.zeros(3)}, run / "checkpoints" / "step_000000000999.pt")
    code, _, err = _cli(capsys, str(run / "checkpoints" / "step_000000000999.pt"))
    assert code == 3 and "not a training checkpoint" in err


def test_an_edited_design_copy_is_refused(run_2048: Path, tmp_path: Path, capsys) -> None:
    run = _copy(run_2048, tmp_path)
    copy = run / "tiny.mdl"
    copy.write_text(TINY_2048.replace("linear(out=16)", "linear(out=24)"), encoding="utf-8")
    code, _, err = _cli(capsys, str(run))
    assert code == 1 and "different architecture" in err
    with pytest.raises(ev.DesignChanged):
        ev.load_policy(run)

    copy.write_text(TINY_2048.replace("model = Tiny()", "model = Missing()"), encoding="utf-8")
    code, _, err = _cli(capsys, str(run))
    assert code == 1 and "has errors" in err

    copy.write_text(TINY_2048.replace("experiment tiny", "experiment other"), encoding="utf-8")
    code, _, err = _cli(capsys, str(run))
    assert code == 1 and "no experiment `tiny`" in err

    copy.unlink()
    code, _, err = _cli(capsys, str(run))
    assert code == 3 and "cannot read the design copy" in err
