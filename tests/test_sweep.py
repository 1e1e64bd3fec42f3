"""`mdlc train FILE` runs every sweep point x seed (issue 11): the planner, the layout, the local worker
processes, the experiment summary and the run index, on a 2 x 2 CartPole grid at a tiny budget.

The grid trains once per module (`grid`, at 6k steps a run: about 6 s with `--jobs 2`); the tests read what it wrote.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import trim_mean
from sweeps import CARTPOLE_GRID, file_hashes, mdlc, summaries

ROOT = Path(__file__).resolve().parent.parent
POINTS = {"width=16": 16, "width=32": 32}


def _params(width: int) -> int:
    """CartPoleMlp's parameters: linear 4->w, w->w, policy w->2, value w->1."""
    return (4 * width + width) + (width * width + width) + (2 * width + 2) + (width + 1)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str, str]:
    out = tmp_path_factory.mktemp("grid")
    code, stdout, stderr = mdlc("train", CARTPOLE_GRID, "--out", out, "--jobs", "2", "--json", "--budget", "6k steps")
    return out, code, stdout, stderr


def test_the_grid_writes_one_run_per_point_and_seed_at_the_documented_paths(grid) -> None:
    out, code, _, stderr = grid
    assert code == 0, stderr
    runs = summaries(out / "grid")
    assert sorted(runs) == ["width=16/1", "width=16/2", "width=32/1", "width=32/2"]
    for name, summary in runs.items():
        point, seed = name.split("/")
        config = json.loads((out / "grid" / name / "config.json").read_text())
        assert config["point"] == {"model.width": POINTS[point]} and config["seed"] == int(seed)
        assert summary["status"] == "completed" and summary["steps"] >= 6_000
        assert summary["point"] == {"model.width": POINTS[point]} and summary["seed"] == int(seed)
        assert config["params"] == _params(POINTS[point])  # the model was built at the point's width


def test_the_experiment_summary_is_computed_from_the_runs_own_summaries(grid) -> None:
    out, _, stdout, _ = grid
    written = json.loads((out / "grid" / "summary.json").read_text())
    assert json.loads(stdout) == written  # --json prints the same document
    runs = summaries(out / "grid")
    assert {r["run_dir"] for r in written["runs"]} == {str(out / "grid" / name) for name in runs}
    assert all(r["status"] == "completed" and r["error"] is None for r in written["runs"])
    for point in written["points"]:
        scores = np.array([runs[f"{point['name']}/{seed}"]["mean_return_last100"] for seed in (1, 2)])
        assert point["point"] == {"model.width": POINTS[point["name"]]} and point["n"] == 2
        assert point["mean"] == pytest.approx(scores.mean())
        assert point["std"] == pytest.approx(scores.std(ddof=1))
        assert (point["min"], point["max"]) == (pytest.approx(scores.min()), pytest.approx(scores.max()))
        assert point["iqm"] == pytest.approx(trim_mean(scores, 0.25))
        lo, hi = point["ci95"]
        assert scores.min() <= lo <= point["mean"] <= hi <= scores.max()
        assert point["params"] > 0 and point["flops"] > 0 and point["pruned"] is None
    best = max(written["points"], key=lambda p: p["mean"])
    assert written["best"]["point"] == best["point"]


def test_mdlc_runs_lists_the_four_runs(grid) -> None:
    out, *_ = grid
    code, stdout, _ = mdlc("runs", out, "--json")
    assert code == 0
    rows = json.loads(stdout)
    assert sorted((r["point"]["model.width"], r["seed"]) for r in rows) == [(16, 1), (16, 2), (32, 1), (32, 2)]
    assert {r["status"] for r in rows} == {"completed"} and all(r["experiment"] == "grid" for r in rows)
    summary = summaries(out / "grid")
    for row in rows:
        name = f"width={row['point']['model.width']}/{row['seed']}"
        assert row["score"] == pytest.approx(summary[name]["mean_return_last100"])
        assert row["steps"] == summary[name]["steps"] and row["architecture_hash"]
    code, stdout, _ = mdlc("runs", out, "--sort", "score")
    assert code == 0 and stdout.count("completed") == 4


def test_the_index_is_rebuilt_from_the_run_directories(grid, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(grid[0], out)
    for index in out.glob("runs.sqlite*"):
        index.unlink()
    code, stdout, _ = mdlc("runs", out, "--json")  # a missing index is built from the runs
    assert code == 0 and len(json.loads(stdout)) == 4
    shutil.rmtree(out / "grid" / "width=32" / "2")
    code, stdout, _ = mdlc("runs", out, "--json")
    assert len(json.loads(stdout)) == 4  # the index keeps what it was told ...
    code, stdout, _ = mdlc("runs", out, "--reindex", "--json")
    assert code == 0 and len(json.loads(stdout)) == 3  # ... until it is rebuilt from the directories


def test_running_the_same_command_again_keeps_every_finished_run(grid, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(grid[0], out)
    before = {name: file_hashes(out / "grid" / name) for name in summaries(out / "grid")}
    code, stdout, stderr = mdlc("train", CARTPOLE_GRID, "--out", out, "--json")
    assert code == 0, stderr
    assert "kept 4 finished runs of 4" in stderr
    assert {name: file_hashes(out / "grid" / name) for name in before} == before
    assert json.loads(stdout)["points"] == json.loads((grid[0] / "grid" / "summary.json").read_text())["points"]


def test_fresh_starts_the_selected_runs_over(grid, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(grid[0], out)
    before = {name: file_hashes(out / "grid" / name) for name in summaries(out / "grid")}
    code, _, stderr = mdlc("train", CARTPOLE_GRID, "--out", out, "--point", "width=16", "--seed", "2",
                           "--fresh", "--budget", "1k steps")
    assert code == 0, stderr
    after = summaries(out / "grid")
    assert after["width=16/2"]["steps"] < 6_000  # trained again at the new budget
    assert {n: file_hashes(out / "grid" / n) for n in before if n != "width=16/2"} == \
        {n: h for n, h in before.items() if n != "width=16/2"}


# ------------------------------------------------------------------------------------- the planner


def test_plan_prints_the_runs_and_costs_and_trains_nothing(tmp_path: Path) -> None:
    code, stdout, stderr = mdlc("train", CARTPOLE_GRID, "--out", tmp_path, "--plan")
    assert code == 0, stderr
    assert "4 runs (2 points x seeds 1, 2)" in stdout
    assert "width=16" in stdout and "width=32" in stdout and "FLOPs/sample" in stdout
    assert not any(tmp_path.iterdir())
    code, stdout, _ = mdlc("train", CARTPOLE_GRID, "--out", tmp_path, "--plan", "--json")
    plan = json.loads(stdout)
    assert plan["experiment"] == "grid" and plan["runs"] == 4
    assert [p["point"] for p in plan["points"]] == [{"model.width": 16}, {"model.width": 32}]
    assert [p["params"] for p in plan["points"]] == [_params(16), _params(32)]
    for p in plan["points"]:
        assert set(p) >= {"point", "params", "flops", "memory_bytes", "compute", "pruned"} and p["pruned"] is None
        # budget steps x forward FLOPs x (1 + 3 x epochs)
        assert p["compute"] == 20_000 * p["flops"] * (1 + 3 * 4)
    assert plan["run_dirs"] == [str(tmp_path / "grid" / p / s) for p in POINTS for s in ("1", "2")]


def test_seed_and_point_select_runs(tmp_path: Path) -> None:
    code, stdout, _ = mdlc("train", CARTPOLE_GRID, "--out", tmp_path, "--plan", "--json", "--point", "width=32",
                           "--seed", "7")
    assert code == 0
    assert json.loads(stdout)["run_dirs"] == [str(tmp_path / "grid" / "width=32" / "7")]
    code, stdout, _ = mdlc("train", CARTPOLE_GRID, "--out", tmp_path, "--plan", "--json", "--point", "model.width=3.2e1")
    assert code == 0 and json.loads(stdout)["runs"] == 2


@pytest.mark.parametrize(("point", "message"), [
    ("depth=3", "--point key `depth` is not swept; the sweep has width"),
    ("width=64", "no sweep point has width=64 (width: 16, 32)"),
    ("width", "write KEY=VALUE pairs"),
])
def test_a_point_that_selects_nothing_is_a_one_line_error(point: str, message: str, tmp_path: Path) -> None:
    code, _, stderr = mdlc("train", CARTPOLE_GRID, "--out", tmp_path, "--point", point)
    assert code == 2
    assert message in stderr and "Traceback" not in stderr
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------ the examples


def test_cartpole_mlp_trains_all_three_seeds_with_one_command(tmp_path: Path) -> None:
    code, stdout, stderr = mdlc("train", ROOT / "examples" / "cartpole_mlp.mdl", "--out", tmp_path,
                                "--budget", "2k steps")
    assert code == 0, stderr
    assert sorted(summaries(tmp_path / "cartpole_ppo")) == ["1", "2", "3"]
    assert "mean ± std" in stdout and "95% CI" in stdout and "IQM" in stdout
    row = next(line for line in stdout.splitlines() if line.strip().startswith("(no sweep)"))
    assert row.split()[2] == "3"  # n
    for seed in ("seed 1", "seed 2", "seed 3"):
        assert f"{seed}: completed" in stderr


def test_fast_2048_writes_and_verifies_its_exports(tmp_path: Path) -> None:
    code, _, stderr = mdlc("train", ROOT / "examples" / "fast_2048.mdl", "--out", tmp_path,
                                "--budget", "1k steps")
    assert code == 0, stderr
    run = tmp_path / "fast_2048" / "1"
    summary = json.loads((run / "summary.json").read_text())
    assert [(e["format"], e["ok"]) for e in summary["exports"]] == [("onnx", True), ("pt", True)]
    for entry in summary["exports"]:
        assert Path(entry["path"]).parent == run / "export" and Path(entry["path"]).stat().st_size == entry["bytes"]
    assert sorted(p.suffix for p in (run / "export").iterdir() if p.suffix in (".onnx", ".pt")) == [".onnx", ".pt"]


def test_a_selected_run_leaves_the_experiment_summary_whole(grid, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(grid[0], out)
    code, stdout, stderr = mdlc("train", CARTPOLE_GRID, "--out", out, "--point", "width=32", "--seed", "2", "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert len(summary["runs"]) == 4 and [p["n"] for p in summary["points"]] == [2, 2]
    assert json.loads((out / "grid" / "summary.json").read_text()) == summary


def test_a_damaged_index_is_a_one_line_error_and_the_runs_are_untouched(grid, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(grid[0], out)
    for index in out.glob("runs.sqlite*"):
        index.unlink()
    (out / "runs.sqlite").write_bytes(b"this is not a database" * 100)
    code, _, stderr = mdlc("runs", out)
    assert code == 3 and "Traceback" not in stderr
    assert "cannot use the run index" in stderr and "--reindex" in stderr
    (out / "runs.sqlite").unlink()
    code, stdout, _ = mdlc("runs", out, "--json")
    assert code == 0 and len(json.loads(stdout)) == 4
