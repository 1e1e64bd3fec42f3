"""The run planner: an experiment's runs are its sweep points x its seeds, each with its settings.

`plan(spec, out)` lists every run (or those `--seed` / `--point` select) with its directory and each
point's static costs, read from the front end's IR (no torch): parameters, forward FLOPs per sample,
training memory at the experiment's minibatch size, and whole-run training compute
(`budget steps x flops x (1 + 3 x epochs)`, LANGUAGE.md "Searching a design space"; None with only a
time budget). `pruned` is the reason a point is not trained: the `limits` it breaks and by how much
(`params 1.3M > limit 1M (1.30x)`), or that its model does not build at a sampled value.

A point's name is readable and stable: its swept values in the order the sweep writes them,
`experts=8,lr=0.0001`, each key without its `model.` / `algo.` prefix unless both have that name, each
value as `.mdl` would write it (`true`, `0.0003`, `1e-05`), characters that are not safe in a file
name replaced by `_`. Runs go to `OUT/<experiment>/<seed>/` without a sweep and to
`OUT/<experiment>/<point>/<seed>/` with one (DESIGN.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdl.compiler.experiment import ExperimentSpec
from mdl.compiler.search import Range, point_costs, prune_reason, random_points
from mdl.runtime.errors import TrainError

_UNSAFE = re.compile(r"[^A-Za-z0-9._+=,\-\[\]]")


@dataclass(frozen=True)
class Point:
    """One sweep point (the whole experiment when there is no sweep) and its static costs."""

    values: dict[str, Any]  # "model.experts" -> 8; {} without a sweep
    name: str | None  # "experts=8,lr=0.0001"; None without a sweep
    spec: ExperimentSpec  # the experiment at this point
    params: int
    flops: int | None  # forward FLOPs per sample
    memory_bytes: int | None  # training memory at the minibatch size
    compute: int | None  # whole-run training FLOPs; None with a time budget
    pruned: str | None = None  # why it is not trained, or None

    def to_json(self) -> dict[str, Any]:
        return {"point": self.values, "name": self.name, "params": self.params, "flops": self.flops,
                "memory_bytes": self.memory_bytes, "compute": self.compute, "pruned": self.pruned}


@dataclass(frozen=True)
class PlannedRun:
    point: Point
    seed: int
    run_dir: Path

    @property
    def label(self) -> str:
        """`experts=8,lr=0.0001 seed 1`, or `seed 1` without a sweep."""
        return f"{self.point.name} seed {self.seed}" if self.point.name else f"seed {self.seed}"


@dataclass(frozen=True)
class Plan:
    experiment: str
    out: Path
    points: list[Point]
    runs: list[PlannedRun]  # the runs to train: every unpruned point x every seed
    seeds: tuple[int, ...] = ()

    @property
    def experiment_dir(self) -> Path:
        return self.out / self.experiment

    def to_json(self) -> dict[str, Any]:
        """`mdlc train FILE --plan --json` (DESIGN.md)."""
        return {"experiment": self.experiment, "runs": len(self.runs),
                "points": [p.to_json() for p in self.points],
                "run_dirs": [str(r.run_dir) for r in self.runs]}


def format_value(value: Any) -> str:
    """A swept value as `.mdl` writes it: `true`, `8`, `0.0003`, `"gelu"` -> `gelu`, `[1, 2]`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def short_keys(keys: list[str]) -> dict[str, str]:
    """Each sweep key without `model.` / `algo.`, unless another key has the same short name."""
    short = {k: k.split(".", 1)[1] for k in keys}
    counts: dict[str, int] = {}
    for name in short.values():
        counts[name] = counts.get(name, 0) + 1
    return {k: (s if counts[s] == 1 else k) for k, s in short.items()}


def point_name(values: dict[str, Any]) -> str | None:
    """The point's directory name (see the module docstring); None for the empty point."""
    if not values:
        return None
    names = short_keys(list(values))
    return _UNSAFE.sub("_", ",".join(f"{names[k]}={format_value(v)}" for k, v in values.items()))


def parse_selection(text: str) -> dict[str, str]:
    """`--point K=V,...` as {K: V} (values still text); TrainError when it is not K=V pairs."""
    selection: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise TrainError(f"cannot read the point {text!r}: write KEY=VALUE pairs, e.g. `experts=8,lr=1e-4`")
        selection[key.strip()] = value.strip()
    if not selection:
        raise TrainError("--point needs KEY=VALUE pairs, e.g. `experts=8,lr=1e-4`")
    return selection


def _matches(value: Any, text: str) -> bool:
    if format_value(value) == text or str(value) == text:
        return True
    if isinstance(value, int | float) and not isinstance(value, bool):
        from mdl.dsl.parser import parse_number

        try:
            return parse_number(text) == value
        except (ValueError, IndexError):
            return False
    return False


def select_points(spec: ExperimentSpec, points: list[dict[str, Any]], selection: dict[str, str]) -> list[dict]:
    """The points whose values match every K=V of `selection` (K qualified or short)."""
    keys = list(spec.sweep)
    names = short_keys(keys)
    resolved: dict[str, str] = {}
    for key, text in selection.items():
        found = [k for k in keys if k == key or names[k] == key or k.split(".", 1)[1] == key]
        if len(found) != 1:
            what = "is ambiguous" if found else "is not swept"
            swept = ", ".join(names[k] for k in keys) or "nothing (the experiment has no sweep)"
            raise TrainError(f"--point key `{key}` {what}; the sweep has {swept}")
        resolved[found[0]] = text
    chosen = [p for p in points if all(_matches(p[k], t) for k, t in resolved.items())]
    if not chosen:
        values = "; ".join(f"{names[k]}: " + (spec.sweep[k].text() if isinstance(spec.sweep[k], Range) else
                                                ", ".join(format_value(v) for v in spec.sweep[k])) for k in resolved)
        raise TrainError(f"no sweep point has {', '.join(f'{k}={t}' for k, t in selection.items())} ({values})")
    return chosen


def make_point(spec: ExperimentSpec, values: dict[str, Any], budget_steps: int | None) -> Point:
    """The experiment at one point with its static costs, pruned when over a limit or not buildable."""
    at = spec.at(values)
    if at.graph is None:
        return Point(values, point_name(values), at, 0, None, None, None, f"does not build: {at.invalid}")
    costs = point_costs(at, budget_steps)
    return Point(values, point_name(values), at, *costs, prune_reason(costs, spec.limits))


def runs_of(spec: ExperimentSpec, out: Path, points: list[Point], seeds: list[int]) -> list[PlannedRun]:
    """Every unpruned point x seed, at `OUT/<experiment>/<point>/<seed>` (`OUT/<experiment>/<seed>` without a sweep)."""
    return [PlannedRun(p, seed, out / spec.name / (p.name or "") / str(seed))
            for p in points if p.pruned is None for seed in seeds]


def plan(spec: ExperimentSpec, out: str | Path, seeds: list[int] | None = None, point: str | None = None,
         budget_steps: int | None = None) -> Plan:
    """The runs of `spec` under `out`: every point x seed, or those `seeds` / `point` (the `--point`
    text) select. A `grid` search's points are the sweep's grid; a `random` search's, `trials` points
    within the limits drawn from its seed (those drawn over a limit are listed, pruned). A point over a
    limit, or whose model does not build at a sampled value, is pruned: listed, never trained.
    `budget_steps` replaces the experiment's for the compute figure. Raises TrainError for a
    selection that matches nothing."""
    out = Path(out)
    steps = budget_steps if budget_steps is not None else spec.budget_steps
    points: dict[tuple, Point] = {}

    def point_at(v: dict[str, Any]) -> Point:
        key = tuple((k, repr(x)) for k, x in v.items())
        if key not in points:
            points[key] = make_point(spec, v, steps)
        return points[key]

    if spec.search.kind == "random":
        values = random_points(spec.sweep, spec.search.trials, spec.search.seed, lambda v: point_at(v).pruned is None)
    else:
        values = spec.points()
    if point is not None:
        values = select_points(spec, values, parse_selection(point))
    listed = [point_at(v) for v in values]
    run_seeds = list(seeds) if seeds else list(spec.seeds)
    runs = runs_of(spec, out, listed, run_seeds)
    return Plan(spec.name, out, listed, runs, tuple(run_seeds))


__all__ = ["Plan", "PlannedRun", "Point", "format_value", "make_point", "parse_selection", "plan", "point_name",
           "runs_of", "short_keys"]
