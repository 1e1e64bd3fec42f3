"""Searching a design space (LANGUAGE.md): sweep ranges, `search`, `limits`, each point's static costs,
and the points a search visits. Front end only: no torch.

- `Range`: `uniform(a, b)`, `log_uniform(a, b)` (floats), `int_uniform(a, b)` (ints, both ends
  included), sampled by `random` and `optuna` searches.
- `Search`: `grid` (every point of the lists), `random(trials=N, seed=S)`, `optuna(trials=N, seed=S)`.
- `point_costs(spec, budget_steps)`: params, forward FLOPs per sample, training memory at the
  experiment's minibatch size and whole-run compute (`budget steps x flops x (1 + 3 x epochs)`).
- `prune_reason(costs, limits)`: why a point is over its limits (`params 1.3M > limit 1M`), or None.
- `random_points(sweep, trials, seed, feasible)`: distinct points drawn from `seed` until `trials` of
  them are within the limits, those over a limit included (reproducible: Python's `random.Random` with
  the seed, axes drawn in the order the sweep writes them, floats rounded to 4 significant digits).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RANGE_KINDS = ("uniform", "log_uniform", "int_uniform")
SEARCH_KINDS = ("grid", "random", "optuna")
# Each limit: what its value is ("count" a plain number, "bytes" a MB/GB quantity) and its meaning.
LIMIT_KEYS = {
    "params": ("count", "parameters"),
    "flops": ("count", "forward FLOPs per sample"),
    "memory": ("bytes", "training memory at the experiment's minibatch size"),
    "compute": ("count", "whole-run training FLOPs: budget steps x flops x (1 + 3 x epochs)"),
}
BYTE_UNITS = {"MB": 10**6, "GB": 10**9}
MAX_DRAWS = 64  # a random search draws at most this many times `trials` before it gives up


@dataclass(frozen=True, slots=True)
class Range:
    """A sampled sweep axis."""

    kind: str  # one of RANGE_KINDS
    low: float
    high: float

    def sample(self, rng: random.Random) -> float | int:
        if self.kind == "int_uniform":
            return rng.randint(int(self.low), int(self.high))
        if self.kind == "log_uniform":
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return min(max(float(f"{value:.4g}"), self.low), self.high)  # readable run names, still in range

    def contains(self, value: Any) -> bool:
        return self.low <= value <= self.high

    def text(self) -> str:
        return f"{self.kind}({_number(self.low)}, {_number(self.high)})"


@dataclass(frozen=True, slots=True)
class Search:
    kind: str = "grid"  # one of SEARCH_KINDS
    trials: int | None = None
    seed: int = 0


def _number(v: float) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def grid_size(sweep: dict[str, Any]) -> int | None:
    """How many points the sweep's lists make; None when an axis is a range."""
    n = 1
    for values in sweep.values():
        if isinstance(values, Range):
            return None
        n *= len(values)
    return n


def grid_points(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the lists, the first key varying slowest."""
    keys = list(sweep)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*sweep.values())]


def point_costs(spec: Any, budget_steps: int | None) -> tuple[int, int | None, int | None, int | None]:
    """(params, forward FLOPs per sample, training memory at the minibatch size, run compute) of an
    experiment at one point (`spec.at(point)`)."""
    from mdl.compiler import cost

    graph = spec.graph
    rollout, minibatches, epochs = (int(spec.algo[k]) for k in ("rollout", "minibatches", "epochs"))
    envs = spec.env.envs if spec.env is not None else 1
    minibatch = max(1, rollout * envs // minibatches)
    cache = spec.cost_cache  # shared by every `at()` copy: the checker's figures are the plan's
    key = (id(graph), minibatch)
    if key not in cache or cache[key][0] is not graph:
        cache[key] = (graph, cost.total_flops(graph), cost.memory(graph, minibatch).training)
    _, flops, memory = cache[key]
    compute = budget_steps * flops * (1 + 3 * epochs) if budget_steps is not None and flops is not None else None
    return graph.params, flops, memory, compute


def format_limit(key: str, value: float | None) -> str:
    """A cost as a limit is written: `1.3M`, `600k`, `2.1 GB`."""
    if value is None:
        return "?"
    if LIMIT_KEYS[key][0] == "bytes":
        return f"{value / 1e9:.3g} GB" if value >= 1e9 else f"{value / 1e6:.3g} MB"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:g}"


def over_limits(costs: tuple, limits: dict[str, float]) -> dict[str, float]:
    """The limits a point's `costs` break: key -> cost / limit (> 1)."""
    by_key = dict(zip(("params", "flops", "memory", "compute"), costs, strict=True))
    return {k: by_key[k] / limit for k, limit in limits.items() if by_key[k] is not None and by_key[k] > limit}


def prune_reason(costs: tuple, limits: dict[str, float]) -> str | None:
    """`params 1.3M > limit 1M` (every limit broken, `; `-joined), or None within the limits."""
    broken = over_limits(costs, limits)
    if not broken:
        return None
    by_key = dict(zip(("params", "flops", "memory", "compute"), costs, strict=True))
    return "; ".join(f"{k} {format_limit(k, by_key[k])} > limit {format_limit(k, limits[k])} "
                     f"({ratio:.2f}x)" for k, ratio in broken.items())


def random_points(sweep: dict[str, Any], trials: int, seed: int,
                  feasible: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The distinct points drawn with `random.Random(seed)`, in draw order, until `trials` of them are
    `feasible` (fewer when the space runs out; see the module docstring); the others are the refused."""
    rng = random.Random(seed)
    drawn: list[dict] = []
    kept = 0
    seen: set[tuple] = set()
    finite = grid_size(sweep)
    for _ in range(MAX_DRAWS * trials):
        if kept == trials or (finite is not None and len(seen) == finite):
            break
        point = {k: v.sample(rng) if isinstance(v, Range) else v[rng.randrange(len(v))] for k, v in sweep.items()}
        key = tuple((k, repr(v)) for k, v in point.items())
        if key in seen:
            continue
        seen.add(key)
        drawn.append(point)
        kept += feasible(point)
    return drawn


def describe(spec: Any) -> tuple[str, str | None]:
    """What the editor shows at an experiment's `sweep` and `limits`: (the points, what limits prune)."""
    size = grid_size(spec.sweep)
    if spec.search.kind != "grid":
        space = f"of {size:,}" if size is not None else "sampled"
        sweep = f"{spec.search.kind}: {spec.search.trials} trial{'s' * (spec.search.trials != 1)} {space}"
    else:
        sweep = f"{size:,} point{'s' * (size != 1)}" if size is not None else "ranges need a sampled search"
    if not spec.limits or size is None or spec.graph is None:
        return sweep, None
    pruned = 0
    for point in grid_points(spec.sweep):
        at = spec.at(point)
        if at.graph is None:
            return sweep, None
        pruned += prune_reason(point_costs(at, spec.budget_steps), spec.limits) is not None
    return sweep + (f", {pruned} over the limits" if spec.search.kind == "grid" else ""), \
        f"prunes {pruned} of {size:,} point{'s' * (size != 1)}"


__all__ = ["BYTE_UNITS", "LIMIT_KEYS", "RANGE_KINDS", "SEARCH_KINDS", "Range", "Search", "describe", "format_limit",
           "grid_points", "grid_size", "over_limits", "point_costs", "prune_reason", "random_points"]
