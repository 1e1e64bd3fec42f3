"""What an experiment's runs add up to: per-point statistics and `OUT/<experiment>/summary.json`.

The *score* of a run is its `summary.json` `mean_return_last100` (the game score on 2048). A point's
statistics count its completed runs: `n`, `mean`, `std` (the sample standard deviation, ddof=1; null
with one run), `min`, `max`, `iqm` (the interquartile mean, the mean of the middle 50% as rliable
reports it: `scipy.stats.trim_mean(scores, 0.25)`) and `ci95`, a bootstrap 95% interval of the mean
(`scipy.stats.bootstrap`, percentile method, 10,000 resamples, seed 0, so the same scores give the same
interval; [mean, mean] when there is no spread to resample). `best` is the point with the highest mean.

The layout is DESIGN.md's: `{"experiment", "runs": [{"point", "seed", "run_dir", "status", "score",
"error"}], "points": [{"point", "n", "mean", "std", "min", "max", "iqm", "ci95", "params", "flops",
"pruned"}], "best"}`. A pruned point's runs are listed with status `pruned` (no run directory, its
reason as the error); each scored point also has `pareto`, the costs on whose front it lies.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from mdl.runtime.plan import Plan
from mdl.runtime.rundir import RunDir, write_json

SUMMARY = "summary.json"
RESAMPLES = 10_000


def preload() -> threading.Thread:
    """Import scipy.stats (about a second) in a background thread while the runs train, so that the
    summary at the end does not wait for it."""
    def load() -> None:
        import scipy.stats  # noqa: F401

    thread = threading.Thread(target=load, name="mdl-preload-scipy", daemon=True)
    thread.start()
    return thread


def score_of(summary: dict[str, Any] | None) -> float | None:
    value = (summary or {}).get("mean_return_last100")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def point_stats(scores: list[float]) -> dict[str, Any]:
    """n, mean, std, min, max, iqm and ci95 of a point's scores (see the module docstring)."""
    import numpy as np

    n = len(scores)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None, "iqm": None, "ci95": None}
    x = np.asarray(scores, dtype=np.float64)
    mean = float(x.mean())
    return {"n": n, "mean": mean, "std": float(x.std(ddof=1)) if n > 1 else None,
            "min": float(x.min()), "max": float(x.max()), "iqm": _iqm(x), "ci95": _ci95(x, mean)}


def _iqm(x) -> float:
    from scipy.stats import trim_mean

    return float(trim_mean(x, 0.25))


def _ci95(x, mean: float) -> list[float]:
    if len(x) < 2 or float(x.max() - x.min()) == 0.0:
        return [mean, mean]
    import numpy as np
    from scipy.stats import bootstrap

    result = bootstrap((x,), np.mean, n_resamples=RESAMPLES, confidence_level=0.95, method="percentile",
                       rng=np.random.default_rng(0))
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def experiment_summary(plan: Plan, summaries: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """The experiment's summary from each planned run's `summary.json` (by run directory)."""
    runs = []
    for run in plan.runs:
        summary = summaries.get(str(run.run_dir)) or {}
        if not summary:  # not run yet (or not reached yet, after a Ctrl-C)
            continue
        runs.append({"point": run.point.values, "seed": run.seed, "run_dir": str(run.run_dir),
                     "status": summary.get("status", "failed"), "score": score_of(summary),
                     "error": summary.get("error") or (summary.get("message") if summary.get("status") == "diverged"
                                                       else None)})
    points = []
    for point in plan.points:
        scores = [r["score"] for r in runs
                  if r["point"] == point.values and r["status"] == "completed" and r["score"] is not None]
        points.append({"point": point.values, "name": point.name, **point_stats(scores), "params": point.params,
                       "flops": point.flops, "pruned": point.pruned})
        if point.pruned is not None:
            runs += [{"point": point.values, "seed": seed, "run_dir": None, "status": "pruned", "score": None,
                      "error": point.pruned} for seed in plan.seeds]
    scored = [p for p in points if p["mean"] is not None]
    mark_pareto(scored)
    best = max(scored, key=lambda p: p["mean"]) if scored else None
    return {"experiment": plan.experiment, "runs": runs, "points": points,
            "best": {"point": best["point"], "name": best["name"], "mean": best["mean"]} if best else None}


def mark_pareto(points: list[dict[str, Any]]) -> None:
    """Give each scored point `pareto`: the costs ("params", "flops") on whose score-vs-cost front it
    lies (no other point is as cheap and as good, one of them strictly)."""
    from mdl.runtime.plots import pareto_front

    for p in points:
        p["pareto"] = []
    for cost in ("params", "flops"):
        rows = [p for p in points if isinstance(p[cost], int | float)]
        for i in pareto_front([p[cost] for p in rows], [p["mean"] for p in rows]):
            rows[i]["pareto"].append(cost)


def read_summaries(plan: Plan) -> dict[str, dict[str, Any] | None]:
    return {str(r.run_dir): RunDir(r.run_dir).read_summary() for r in plan.runs}


def write_experiment_summary(plan: Plan, summary: dict[str, Any]) -> None:
    plan.experiment_dir.mkdir(parents=True, exist_ok=True)
    write_json(plan.experiment_dir / SUMMARY, summary)


__all__ = ["experiment_summary", "point_stats", "read_summaries", "score_of", "write_experiment_summary"]
