"""Searching a design space (issue 16): `limits`, sweep ranges, `search = grid | random | optuna`, the
plan's pruning, and the Pareto fronts of an experiment's summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sweeps import mdlc

from mdl.compiler.check import analyze
from mdl.compiler.search import Range, random_points

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "search"
WIDTHS, RANDOM, OPTUNA = (DATA / f"cartpole_{n}.mdl" for n in ("limits", "random", "optuna"))


def _moe_sweep(tmp_path: Path) -> Path:
    """LANGUAGE.md's model (examples/moe_2048.mdl) over 12 points, limited to 600k parameters."""
    text = (ROOT / "examples" / "moe_2048.mdl").read_text()
    old = "    sweep { lr = [1e-4, 3e-4]; experts = [4, 8] }"
    assert old in text
    path = tmp_path / "moe_limits.mdl"
    path.write_text(text.replace(old, "    sweep { d = [64, 128, 256]; layers = [1, 2]; experts = [2, 4] }\n"
                                      "    limits { params = 600k }"))
    return path


def test_plan_prunes_exactly_the_points_whose_module_is_over_600k(tmp_path: Path) -> None:
    import torch

    from mdl.compiler.lower import lower

    path = _moe_sweep(tmp_path)
    code, out, err = mdlc("train", path, "--plan", "--json", "--out", tmp_path)
    assert code == 0, err
    listed = json.loads(out)
    assert len(listed["points"]) == 12 and listed["runs"] == 3 * sum(p["pruned"] is None for p in listed["points"])
    spec = analyze(path.read_text(), str(path)).experiments["moe_2048"]
    for p in listed["points"]:
        module = lower(spec.at(p["point"]).graph)
        real = sum(t.numel() for t in module.parameters())
        assert real == p["params"]
        assert (p["pruned"] is not None) == (real > 600_000), p
        if p["pruned"]:
            assert p["pruned"].startswith("params ") and "> limit 600k" in p["pruned"]
            assert not any(f"/{p['name']}/" in d for d in listed["run_dirs"])  # never started
    assert sum(p["pruned"] is not None for p in listed["points"]) == 6
    del torch


def test_the_plan_prints_in_under_100_ms_without_importing_torch(tmp_path: Path) -> None:
    """The plan of 12 points (the file analysed, every point's costs, the table printed) once mdlc's
    front end is loaded, as in the editor or a second call; the cold start is bench/search_plan.py's."""
    path = _moe_sweep(tmp_path)
    code = (f"import sys, time; from mdl.cli import main; argv = ['train', {str(path)!r}, '--plan', '--out', "
            f"{str(tmp_path)!r}]; main(argv); t = time.perf_counter(); rc = main(argv); "
            f"ms = (time.perf_counter() - t) * 1000; "
            f"print('MS', ms, 'TORCH', 'torch' in sys.modules, file=sys.stderr); sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "200"})
    assert run.returncode == 0, run.stderr
    _, ms, _, torch_loaded = run.stderr.split()[-4:]
    assert torch_loaded == "False"
    assert run.stdout.count("params 1.19M > limit 600k (1.99x)") == 2
    print(f"mdlc train --plan, 12 points: {float(ms):.1f} ms")
    assert float(ms) < 100, f"the plan took {float(ms):.0f} ms"


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), trials=st.integers(1, 6),
       lo=st.floats(1e-6, 1.0), span=st.floats(1.01, 1e4), ilo=st.integers(-50, 50), iwidth=st.integers(0, 100))
def test_random_points_are_reproducible_distinct_and_in_bounds(seed, trials, lo, span, ilo, iwidth) -> None:
    sweep = {"algo.lr": Range("log_uniform", lo, lo * span), "algo.clip": Range("uniform", lo, lo * span),
             "model.width": Range("int_uniform", ilo, ilo + iwidth), "model.act": ("relu", "tanh")}
    drawn = random_points(sweep, trials, seed, lambda p: True)
    assert drawn == random_points(sweep, trials, seed, lambda p: True)
    assert len(drawn) == trials
    assert len({json.dumps(p, sort_keys=True) for p in drawn}) == trials
    for p in drawn:
        assert all(r.contains(p[k]) for k, r in sweep.items() if isinstance(r, Range))
        assert isinstance(p["model.width"], int) and p["model.act"] in ("relu", "tanh")
    feasible = lambda p: p["model.width"] <= ilo + iwidth // 2  # noqa: E731
    kept = [p for p in random_points(sweep, trials, seed, feasible) if feasible(p)]
    assert len(kept) <= trials and all(feasible(p) for p in kept)


def test_a_random_search_plans_the_same_points_in_every_process(tmp_path: Path) -> None:
    outs = [subprocess.run([sys.executable, "-m", "mdl.cli", "train", str(RANDOM), "--plan", "--json", "--out",
                            str(tmp_path)], capture_output=True, text=True, timeout=60) for _ in range(2)]
    assert outs[0].returncode == 0, outs[0].stderr
    first = json.loads(outs[0].stdout)
    assert first == json.loads(outs[1].stdout)
    kept = [p for p in first["points"] if p["pruned"] is None]
    assert len(kept) == 4 and first["runs"] == 4
    for p in first["points"]:
        assert 2 <= p["point"]["model.width"] <= 200 and 1e-4 <= p["point"]["algo.lr"] <= 1e-2
        assert (p["pruned"] is None) == (p["params"] <= 1000)


def _trained_points(out: Path, experiment: str) -> dict[str, dict]:
    summary = json.loads((out / experiment / "summary.json").read_text())
    return {json.dumps(p["point"], sort_keys=True): p for p in summary["points"]}, summary


def test_a_random_search_trains_the_same_points_locally_and_on_ray(tmp_path: Path, ray_cluster: str) -> None:
    local, ray = tmp_path / "local", tmp_path / "ray"
    assert mdlc("train", RANDOM, "--out", local, "--jobs", "2")[0] == 0
    code, _, err = mdlc("train", RANDOM, "--out", ray, "--ray", ray_cluster)
    assert code == 0, err
    (a, sa), (b, sb) = _trained_points(local, "search"), _trained_points(ray, "search")
    assert a.keys() == b.keys()
    assert sorted(r["status"] for r in sa["runs"]) == sorted(r["status"] for r in sb["runs"]) == \
        ["completed"] * 4 + ["pruned"]


def test_a_tiny_experiment_over_a_limit_prunes_one_point_and_draws_the_front(tmp_path: Path) -> None:
    code, _, err = mdlc("train", WIDTHS, "--out", tmp_path, "--jobs", "2")
    assert code == 0, err
    points, summary = _trained_points(tmp_path, "widths")
    pruned = [r for r in summary["runs"] if r["status"] == "pruned"]
    assert [r["point"] for r in pruned] == [{"model.width": 64}] and pruned[0]["run_dir"] is None
    assert "params 4.67k > limit 2k" in pruned[0]["error"]
    assert not (tmp_path / "widths" / "width=64").exists()  # never started
    scored = [p for p in points.values() if p["mean"] is not None]
    assert len(scored) == 5 and all("pareto" in p for p in scored)
    cheapest = min(scored, key=lambda p: p["params"])
    best = max(scored, key=lambda p: p["mean"])
    assert "params" in cheapest["pareto"] and "params" in best["pareto"] and "flops" in best["pareto"]
    for p in scored:  # on the front exactly when no other point is as cheap and as good, one strictly
        beaten = any(q is not p and q["params"] <= p["params"] and q["mean"] >= p["mean"]
                     and (q["params"] < p["params"] or q["mean"] > p["mean"]) for q in scored)
        assert ("params" in p["pareto"]) == (not beaten)
    code, _, err = mdlc("report", tmp_path / "widths", "-o", tmp_path / "report", "--json")
    assert code == 0, err
    assert (tmp_path / "report" / "pareto_params.png").stat().st_size > 5000
    assert (tmp_path / "report" / "pareto_flops.png").exists()
    assert "pruned" in (tmp_path / "report" / "report.html").read_text()


def test_an_optuna_search_trains_six_points_answers_the_infeasible_and_continues(tmp_path: Path) -> None:
    import optuna
    from optuna.trial import TrialState

    from mdl.runtime.optuna_search import open_study

    code, _, err = mdlc("train", OPTUNA, "--out", tmp_path, "--jobs", "2")
    assert code == 0, err
    spec = analyze(OPTUNA.read_text(), str(OPTUNA)).experiments["tune"]
    study = open_study(spec, tmp_path, create=False)
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(complete) == 6 and all(t.user_attrs["point"]["model.width"] <= 122 for t in complete)
    assert pruned and all("> limit 1k" in t.user_attrs["pruned"] for t in pruned)  # answered, not trained
    assert all(t.user_attrs["point"]["model.width"] > 122 for t in pruned)
    points, summary = _trained_points(tmp_path, "tune")
    statuses = sorted(r["status"] for r in summary["runs"])
    assert statuses == ["completed"] * 6 + ["pruned"] * len({json.dumps(t.user_attrs["point"]) for t in pruned})
    for t in complete:  # the study was told each point's score
        assert points[json.dumps(t.user_attrs["point"], sort_keys=True)]["mean"] == pytest.approx(t.value)
    runs = sorted(tmp_path.glob("tune/*/1/summary.json"))
    stamps = [p.stat().st_mtime_ns for p in runs]

    code, _, err = mdlc("train", OPTUNA, "--out", tmp_path, "--jobs", "2")  # the same command: nothing new
    assert code == 0, err
    assert len(open_study(spec, tmp_path, create=False).get_trials()) == len(trials)
    assert [p.stat().st_mtime_ns for p in runs] == stamps

    # A driver stopped with a trial asked and not told: the next command trains that point first.
    study = open_study(spec, tmp_path, create=False)
    left = study.ask({"model.width": optuna.distributions.IntDistribution(2, 200),
                      "algo.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
    left.set_user_attr("point", {"model.width": 7, "algo.lr": 0.001})
    seven = tmp_path / "seven.mdl"
    seven.write_text(OPTUNA.read_text().replace("trials=6", "trials=7"))
    code, _, err = mdlc("train", seven, "--out", tmp_path, "--jobs", "2")
    assert code == 0, err
    study = open_study(spec, tmp_path, create=False)
    assert study.get_trials()[left.number].state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in study.get_trials()) == 7
    assert (tmp_path / "tune" / "width=7,lr=0.001" / "1" / "summary.json").exists()
    code, out, _ = mdlc("train", seven, "--out", tmp_path, "--plan", "--json")
    assert code == 0 and json.loads(out)["runs"] == 7


# --------------------------------------------------------------------------------------- diagnostics
MODEL = """
model Pole(hidden: int = 32, act: str = "tanh") {
    input obs: float[B, 4]
    h = obs -> linear(out=hidden) -> tanh
    output policy = h -> linear(out=2)
    output value = h -> linear(out=1)
}
"""


def _codes(entries: str) -> list[tuple[str, str, str | None]]:
    text = MODEL + f'experiment e {{\n    model = Pole()\n    env = gym("CartPole-v1", envs=2)\n' \
                   f"    budget = 10k steps\n{entries}\n}}\n"
    return [(d.code, d.message, d.help) for d in analyze(text).diagnostics if d.is_error]


@pytest.mark.parametrize(("entries", "code", "words"), [
    ("sweep { hidden = [8, 16]; lr = uniform(1e-4, 1e-3) }", "E0413", "grid search needs lists"),
    ("search = random(trials=2)\nsweep { lr = log_uniform(0, 1e-3) }", "E0413", "positive low end"),
    ("search = random(trials=2)\nsweep { lr = uniform(1e-3, 1e-4) }", "E0413", "needs low < high"),
    ("search = random(trials=2)\nsweep { hidden = uniform(8, 64) }", "E0413", "draws floats"),
    ("search = random(trials=2)\nsweep { lr = int_uniform(1, 3) }", "E0413", "draws ints"),
    ("search = random(trials=2)\nsweep { clip = uniform(0.1, 2.0) }", "E0413", "must be in"),
    ("search = random(trials=2)\nsweep { act = uniform(0.1, 2.0) }", "E0413", "only int and float"),
    ("search = random(trials=2)\nsweep { lr = normal(0.1, 2.0) }", "E0413", "is not a sweep range"),
    ("search = random(trials=2)\nsweep { hidden = int_uniform(8) }", "E0413", "takes two numbers"),
    ("search = randm(trials=2)\nsweep { hidden = [8, 16] }", "E0414", "unknown search `randm`"),
    ("search = random()\nsweep { hidden = [8, 16] }", "E0104", "trials"),
    ("search = random(trials=3)\nsweep { hidden = [8, 16] }", "E0414", "more points than the sweep's 2"),
    ("search = optuna(trials=3)", "E0414", "without a sweep"),
    ("search = grid(trials=3)\nsweep { hidden = [8, 16] }", "E0414", "takes no settings"),
    ("sweep { hidden = [8, 16] }\nlimits { parms = 1M }", "E0415", "unknown limit `parms`"),
    ("sweep { hidden = [8, 16] }\nlimits { params = 1M; params = 2M }", "E0415", "given twice"),
    ("sweep { hidden = [8, 16] }\nlimits { memory = 2 GiB }", "E0415", "unknown unit `GiB`"),
    ("sweep { hidden = [8, 16] }\nlimits { params = 2 GB }", "E0415", "takes no unit"),
    ("sweep { hidden = [8, 16] }\nlimits { flops = 0 }", "E0415", "must be positive"),
    ("sweep { hidden = [8, 16] }\nlimits { flops = 100 }", "E0416", "prunes every point (2 of 2)"),
    ("limits { params = 100 }", "E0416", "prunes every point (1 of 1)"),
    ("sweep { hidden = [8, 16] }\nlimits { params = 1 }\nlimits { params = 2 }", "E0401", "`limits` is given twice"),
])
def test_each_misuse_of_a_search_is_a_diagnostic(entries: str, code: str, words: str) -> None:
    found = _codes(entries)
    assert any(c == code and (words in m or words in (h or "")) for c, m, h in found), found


def test_a_limit_that_prunes_everything_names_the_limit_that_would_pass() -> None:
    ((code, _, help),) = _codes("sweep { hidden = [8, 16] }\nlimits { params = 50; memory = 1 MB }")
    # hidden=8: 4*8+8 + 8*2+2 + 8+1 = 67 parameters
    assert code == "E0416" and "`params = 67`" in help and "hidden=8" in help


def test_valid_searches_check_cleanly_and_keep_their_settings() -> None:
    text = MODEL + ('experiment e {\n    model = Pole()\n    env = gym("CartPole-v1", envs=2)\n    budget = 10k steps\n'
                    "    sweep { hidden = int_uniform(8, 64); lr = log_uniform(1e-4, 1e-2); epochs = [1, 2] }\n"
                    "    search = optuna(trials=5, seed=3)\n"
                    "    limits { params = 600k; flops = 20M; memory = 2 GB; compute = 1e15 }\n}\n")
    analysis = analyze(text)
    assert analysis.ok, analysis.diagnostics
    spec = analysis.experiments["e"]
    assert (spec.search.kind, spec.search.trials, spec.search.seed) == ("optuna", 5, 3)
    assert spec.limits == {"params": 600_000, "flops": 20e6, "memory": 2e9, "compute": 1e15}
    assert spec.sweep["model.hidden"] == Range("int_uniform", 8, 64) and spec.sweep["algo.epochs"] == (1, 2)
    at = spec.at({"model.hidden": 40, "algo.lr": 1e-3, "algo.epochs": 2})
    assert at.graph.params == 4 * 40 + 40 + 40 * 2 + 2 + 40 + 1 and at.algo["epochs"] == 2
