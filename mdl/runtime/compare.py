"""`mdlc compare RUN_OR_POINT...`: which of several runs or sweep points is better, and is it real.

`compare(paths, png)` reads the groups (mdl.runtime.runset: a run, a point's seeds, or each point of
an experiment), and returns every number `--json` prints:

- per group: its runs (seed, status, score), the statistics of their final scores (`point_stats`: n,
  mean, std, IQM, min, max and the bootstrap 95% interval of the mean, as summary.json has them), the
  score curve (mean over seeds with a 95% band, `mean_curve`) and the design facts (params, FLOPs,
  architecture hash);
- `differences`: the settings and design facts whose values are not all equal across the groups
  (config.json flattened, `ppo.lr`, `model_args.width`, `flops`), each with its value per group;
- `comparisons`: every group after the first against the first (the baseline), by
  mdl.runtime.significance.difference: the difference of means, its bootstrap interval, Welch's p and
  the verdict.

The PNG overlays the score curves of the groups, each with its band.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mdl.runtime import plots
from mdl.runtime.errors import ResultsError
from mdl.runtime.results import point_stats
from mdl.runtime.runset import Group, load_groups, mean_curve
from mdl.runtime.significance import difference

SCORE_KEY = "mean_return"  # the metrics line behind a run's score (mean over the last 100 episodes)


def unit_of(groups: list[Group]) -> str:
    """"score" for an env that reports a game score (2048), else "return"."""
    return "score" if any("mean_score" in line for g in groups for r in g.runs for line in r.lines[-1:]) else "return"


def differences(groups: list[Group], facts: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The settings and design facts that are not the same in every group: key -> value per group."""
    settings = [{**g.first.settings(), "flops": f["flops"]} for g, f in zip(groups, facts, strict=True)]
    keys = sorted({k for s in settings for k in s})
    out = {}
    for key in keys:
        values = [s.get(key) for s in settings]
        if any(v != values[0] for v in values[1:]):
            out[key] = values
    return out


def compare(paths: list[str | Path], png: str | Path | None = None) -> dict[str, Any]:
    """The comparison of the named runs or points (see the module docstring); the PNG when `png`."""
    groups = load_groups(paths)
    if len(groups) < 2:
        raise ResultsError(f"{paths[0]} is one run or point; name two or more runs or points to compare "
                           "(or an experiment directory with several points)")
    for group in groups:
        if not group.scores:
            raise ResultsError(f"no run of {group.label} has a score yet (no episode finished); train it longer")
    unit = unit_of(groups)
    facts = [g.first.design_facts() for g in groups]
    entries = []
    for group, fact in zip(groups, facts, strict=True):
        entries.append({
            "label": group.label, "path": str(group.path),
            "runs": [{"run_dir": str(r.path), "seed": r.seed, "status": r.status, "score": r.score}
                     for r in group.runs],
            **point_stats(group.scores), **fact, "curve": mean_curve(group.runs, SCORE_KEY)})
    base = groups[0]
    comparisons = [difference(base.scores, g.scores, names=(base.label, g.label), unit=unit) for g in groups[1:]]
    result = {"metric": SCORE_KEY, "unit": unit, "env": base.first.env, "groups": entries,
              "differences": differences(groups, facts), "comparisons": comparisons, "png": None}
    if png is not None:
        curves = [(f"{e['label']} (n={e['n']})", e["curve"]) for e in entries if e["curve"] is not None]
        plots.curves(Path(png), f"{unit} over training ({base.first.env})", f"mean {unit}, last 100 episodes",
                     curves)
        result["png"] = str(png)
    return result


__all__ = ["SCORE_KEY", "compare", "differences", "unit_of"]
