"""Finished runs read back for the results commands (`mdlc compare`, `mdlc report`, `mdlc models`).

`load_groups(paths)` turns what a user names into groups of runs: a run directory is a group of one;
a sweep point's directory (`OUT/<experiment>/<point>/`) is a group of its seeds; an experiment's
directory is one group per point. Every run's `config.json`, `summary.json` and `metrics.jsonl` are
read strictly: a run without metrics, a `metrics.jsonl` line that is not a JSON object (a torn last
line, what a kill leaves, is dropped) and runs of different environments side by side are a
`ResultsError` with the path and line, never a traceback.

A run's *score* is its `summary.json` `mean_return_last100` (mdl.runtime.results), or, for a run
killed before it wrote one, the `mean_return` of its last metrics line (the same mean over the last
100 episodes). `mean_curve(runs, key)` puts every run's curve of one metric on a common step grid
(linear interpolation inside each run's range) and returns the mean over the runs with a 95% band
(Student's t interval of the mean, `scipy.stats.t`; no band with one run), what rl-zoo3's and rliable's
plots draw.

Reading imports no torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdl.runtime.errors import ResultsError, RunNotFound
from mdl.runtime.results import score_of
from mdl.runtime.rundir import RunDir, read_json

GRID = 200  # points of the common step grid of a mean curve
# config.json keys that say where and when a run ran, not what it is: left out of the settings diff.
NOT_SETTINGS = ("seed", "started", "source", "point")


@dataclass(frozen=True)
class RunData:
    """One run's files, read."""

    run: RunDir
    config: dict[str, Any]
    summary: dict[str, Any] | None
    lines: list[dict[str, Any]]  # metrics.jsonl as written
    rows: list[dict[str, float]] = field(default_factory=list)  # the same lines, `flat_line`d

    def __post_init__(self) -> None:
        if not self.rows:
            self.rows.extend(flat_line(line) for line in self.lines)

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def point(self) -> dict[str, Any]:
        return self.config.get("point") or {}

    @property
    def env(self) -> str:
        env = self.config.get("env") or {}
        return str(env.get("id") or env.get("kind") or "?")

    @property
    def status(self) -> str:
        if self.summary and isinstance(self.summary.get("status"), str):
            return self.summary["status"]
        return "interrupted"

    @property
    def score(self) -> float | None:
        if self.summary is not None:
            return score_of(self.summary)
        return score_of({"mean_return_last100": self.lines[-1].get("mean_return")})

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """(steps, values) of a scalar metric, the updates where it is a finite number."""
        steps, values = [], []
        for row in self.rows:
            value = row.get(key)
            if value is not None and math.isfinite(value):
                steps.append(row["step"])
                values.append(value)
        return steps, values

    def metric_keys(self) -> list[str]:
        """Every metric this run logged, in the order first seen."""
        return list(dict.fromkeys(k for row in self.rows for k in row))

    def design_facts(self) -> dict[str, Any]:
        """The model's name, params, architecture hash and forward FLOPs per sample (from the run's own
        design copy; None when it no longer checks)."""
        from mdl.compiler.cost import total_flops
        from mdl.runtime.errors import EvalError

        try:
            spec, _, _ = self.run.design(self.config)
            flops = total_flops(spec.graph)
        except EvalError:
            flops = None
        return {"model": self.config.get("model"), "params": self.config.get("params"),
                "flops": flops, "architecture_hash": self.config.get("architecture_hash")}

    def settings(self) -> dict[str, Any]:
        """config.json flattened to dotted keys (`ppo.lr`, `env.id`, `model_args.width`), without
        what differs between the seeds of one point (NOT_SETTINGS)."""
        flat = flatten(self.config)
        return {k: v for k, v in flat.items() if k.split(".", 1)[0] not in NOT_SETTINGS}


@dataclass
class Group:
    """Runs compared as one: a sweep point's seeds (or one run). `label` is what tables and legends show."""

    label: str
    path: Path
    runs: list[RunData] = field(default_factory=list)

    @property
    def scores(self) -> list[float]:
        return [r.score for r in self.runs if r.score is not None]

    @property
    def first(self) -> RunData:
        return self.runs[0]


TILES = (256, 512, 1024, 2048)  # the tile rates a report draws (summary.json `tile_rates`)


def flat_line(line: dict[str, Any]) -> dict[str, float]:
    """One metrics line as scalars (what `metrics.csv` has a column for and the plots draw): its
    numbers as they are, `max_tile_distribution` as `max_tile_<t>` and `tile_rate_<t>` (the fraction of
    recent games reaching at least t), `action_distribution` as `action_<i>`, and `moe_usage` per layer
    as `moe/<layer>/expert_<i>` (its token shares), `moe/<layer>/cv` (their coefficient of variation,
    0 for a perfect balance) and `moe/<layer>/max_violation` (the busiest expert's share over the
    uniform one, minus 1; Switch/Megatron's load metrics)."""
    row: dict[str, float] = {}
    for key, value in line.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            row[key] = float(value)
    tiles = line.get("max_tile_distribution")
    if isinstance(tiles, dict):
        fractions = {int(t): float(f) for t, f in tiles.items()}
        for tile in sorted(fractions):
            row[f"max_tile_{tile}"] = fractions[tile]
        if fractions:
            for tile in TILES:
                row[f"tile_rate_{tile}"] = sum((f for t, f in fractions.items() if t >= tile), 0.0)
    for action, fraction in enumerate(line.get("action_distribution") or ()):
        row[f"action_{action}"] = float(fraction)
    for layer, usage in (line.get("moe_usage") or {}).items():
        shares = [float(u) for u in usage]
        for expert, share in enumerate(shares):
            row[f"moe/{layer}/expert_{expert}"] = share
        if shares and sum(shares) > 0:
            mean = sum(shares) / len(shares)
            row[f"moe/{layer}/cv"] = math.sqrt(sum((u - mean) ** 2 for u in shares) / len(shares)) / mean
            row[f"moe/{layer}/max_violation"] = max(shares) / mean - 1.0
    return row


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The metrics lines of `path`; ResultsError for a missing or empty file or a corrupt line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path.parent} has no metrics.jsonl: the run has not finished an update yet "
                           "(or this is not a run directory)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"cannot read {path} ({exc})") from None
    rows = text.split("\n")
    torn = rows[-1] != ""  # a file a kill cut short ends without its newline: its last line is dropped
    lines = []
    for number, row in enumerate(rows[:-1] if not torn else rows, start=1):
        if not row.strip():
            continue
        try:
            line = json.loads(row)
            if not isinstance(line, dict) or not isinstance(line.get("step"), int | float):
                raise ValueError("not a metrics object with a `step`")
        except ValueError as exc:
            if torn and number == len(rows):
                break
            raise ResultsError(f"{path}:{number}: a corrupt metrics line ({exc}); fix or delete the line") from None
        lines.append(line)
    if not lines:
        raise ResultsError(f"{path} has no metrics lines: the run has not finished an update yet")
    return lines


def load_run(run: RunDir) -> RunData:
    config = run.read_config()
    summary = read_json(run.summary_path)
    return RunData(run, config, summary if isinstance(summary, dict) else None, read_metrics(run.metrics_path))


def load_groups(paths: list[str | Path]) -> list[Group]:
    """One group per run directory named, per sweep point directory, or per point of an experiment
    directory (see the module docstring); labels without the path the groups share."""
    found: list[tuple[str, Path, list[RunData]]] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            raise RunNotFound(f"no such run, sweep point or experiment directory: {path}")
        runs = [load_run(r) for r in RunDir.find(path)] if not RunDir(path).is_run() else [load_run(RunDir(path))]
        if not runs:
            raise RunNotFound(f"{path} holds no runs (no config.json in it or below); name a run directory "
                              "(OUT/<experiment>/<seed>/), a sweep point or an experiment")
        by_point: dict[str, list[RunData]] = {}
        for run in runs:
            by_point.setdefault(json.dumps([run.config.get("experiment"), run.point], sort_keys=True), []).append(run)
        for members in by_point.values():
            where = path if len(by_point) == 1 else _common_parent([r.path for r in members])
            found.append((str(where), where, members))
    _same_env([run for _, _, members in found for run in members])
    labels = _short_labels([label for label, _, _ in found])
    return [Group(label, where, sorted(members, key=lambda r: r.seed))
            for label, (_, where, members) in zip(labels, found, strict=True)]


def _common_parent(paths: list[Path]) -> Path:
    parts = [p.parts for p in paths]
    common = []
    for items in zip(*parts, strict=False):
        if len(set(items)) != 1:
            break
        common.append(items[0])
    if len(paths) > 1:
        return Path(*common)
    return paths[0]


def _short_labels(labels: list[str]) -> list[str]:
    """The labels without the leading folders they all share (`runs/grid/width=16` -> `width=16`)."""
    split = [Path(label).parts for label in labels]
    if len(split) < 2:
        return labels
    shared = 0
    while all(len(p) > shared + 1 for p in split) and len({p[shared] for p in split}) == 1:
        shared += 1
    short = ["/".join(p[shared:]) for p in split]
    return short if len(set(short)) == len(short) else labels


def _same_env(runs: list[RunData]) -> None:
    envs: dict[str, Path] = {}
    for run in runs:
        envs.setdefault(run.env, run.path)
    if len(envs) > 1:
        named = ", ".join(f"{path} plays {env}" for env, path in envs.items())
        raise ResultsError(f"cannot compare runs of different environments ({named}); their scores are not "
                           "on one scale")


def mean_curve(runs: list[RunData], key: str) -> dict[str, list[float]] | None:
    """{"steps", "mean", "lo", "hi", "n"} of `key` over `runs` on a common step grid, or None when no
    run logged it. The grid spans the steps every run covers (from the latest first value to the
    earliest last one); with one run it is that run's own steps."""
    import numpy as np

    curves = [run.series(key) for run in runs]
    curves = [(np.asarray(s), np.asarray(v)) for s, v in curves if s]
    if not curves:
        return None
    if len(curves) == 1:
        steps, values = curves[0]
        return {"steps": steps.tolist(), "mean": values.tolist(), "lo": values.tolist(), "hi": values.tolist(),
                "n": 1}
    start, stop = max(float(s[0]) for s, _ in curves), min(float(s[-1]) for s, _ in curves)
    if stop < start:  # the runs cover disjoint stretches: the curve of the first one's
        return mean_curve(runs[:1], key)
    grid = np.linspace(start, stop, GRID) if stop > start else np.asarray([start])
    stack = np.stack([np.interp(grid, s, v) for s, v in curves])
    mean = stack.mean(axis=0)
    n = stack.shape[0]
    from scipy.stats import t

    half = t.ppf(0.975, n - 1) * stack.std(axis=0, ddof=1) / math.sqrt(n)
    return {"steps": grid.tolist(), "mean": mean.tolist(), "lo": (mean - half).tolist(),
            "hi": (mean + half).tolist(), "n": n}


__all__ = ["TILES", "Group", "RunData", "flat_line", "flatten", "load_groups", "load_run", "mean_curve", "read_metrics"]
