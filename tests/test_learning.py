"""End-to-end learning: the issue's CartPole and 2048 targets (`@pytest.mark.slow`).

`python -m pytest` runs these at the smaller `ci` budgets; `python -m pytest -m slow --e2e full` at the
issue's own (CartPole: 100k steps on seeds 1, 2, 3, mean_return_last100 >= 450 on two of them; 2048:
the fast design for ten minutes, 512 in >= 69% and 1024 in >= 19% of the last 100 games). The ci
thresholds sit below what those budgets reach on this machine (figures in the issue's closing note)
and far above what a policy that does not learn gets (CartPole ~22; masked-random 2048: mean score
1,100, 512 in ~0%).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mdl.compiler.check import analyze
from mdl.runtime.train import train

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run(example: str, experiment: str, out: Path, **kwargs) -> dict:
    path = ROOT / "examples" / example
    text = path.read_text(encoding="utf-8")
    spec = analyze(text, str(path)).experiments[experiment]
    return train(spec, text, path, out_dir=out, **kwargs)


def test_cartpole_with_the_zoo_settings_reaches_450(tmp_path: Path, e2e: str) -> None:
    """examples/cartpole_mlp.mdl: SB3 zoo hyperparameters, 100k steps.

    ci: two seeds in deterministic mode, one of which must reach 450 (here seed 1 reaches 500.0 and
    seed 3 467.9). One seed in the default mode was flaky: its threads make each run differ, and seed 1
    reached 410 on one CI machine and 500 on another."""
    seeds = (1, 2, 3) if e2e == "full" else (1, 3)
    returns = [_run("cartpole_mlp.mdl", "cartpole_ppo", tmp_path / str(seed), seed=seed,
                    deterministic=e2e != "full")["mean_return_last100"] for seed in seeds]
    reached = sum(r >= 450 for r in returns)
    assert reached >= (2 if e2e == "full" else 1), returns


ACROBOT = ROOT / "tests" / "data" / "learning" / "acrobot.mdl"


@pytest.mark.parametrize(("experiment", "ci_steps"), [
    ("separate_defaults", 60_000),  # CleanRL's agent, `algo = ppo()`
    ("shared_defaults", 60_000),  # one shared trunk, `algo = ppo()`: -489 before issue 12's defaults
    ("shared_zoo", 100_000),  # the rl-zoo's settings less normalisation: -500.0 before
])
def test_acrobot_passes_minus_150(experiment: str, ci_steps: int, tmp_path: Path, e2e: str) -> None:
    """tests/data/learning/acrobot.mdl at the file's budgets (full) or smaller ones (ci); seed 1,
    deterministic. Here at the full budgets: -88.3, -85.9 and -84.7 at 200k steps."""
    text = ACROBOT.read_text(encoding="utf-8")
    spec = analyze(text, str(ACROBOT)).experiments[experiment]
    summary = train(spec, text, ACROBOT, out_dir=tmp_path, seed=1, deterministic=True,
                    budget_steps=None if e2e == "full" else ci_steps)
    assert summary["mean_return_last100"] > -150, summary


def test_the_fast_2048_design_reaches_the_plain_baseline(tmp_path: Path, e2e: str) -> None:
    """examples/fast_2048.mdl: ten minutes (full) or 1.2M steps (ci, about a minute here)."""
    if e2e == "full":
        summary = _run("fast_2048.mdl", "fast_2048", tmp_path, budget_seconds=600)
        assert summary["tile_rates"]["512"] >= 0.69 and summary["tile_rates"]["1024"] >= 0.19, summary
    else:
        summary = _run("fast_2048.mdl", "fast_2048", tmp_path, budget_steps=1_200_000)
        assert summary["mean_score_last100"] >= 4000 and summary["tile_rates"]["512"] >= 0.3, summary
