"""The checker's part of "Searching a design space": `search = ...`, the range calls in `sweep`, and
`limits { ... }` (LANGUAGE.md), with their diagnostics:

- E0413 a bad range: an unknown or malformed range call, bounds the wrong way round or outside the
  setting's own range, a range where the search cannot sample one (`grid`);
- E0414 a bad search: an unknown kind, bad `trials`/`seed`, a sampled search without a sweep, more
  `trials` than a finite sweep has points;
- E0415 a bad limit: an unknown key, a key given twice, a unit missing or wrong, a limit not positive;
- E0416 `limits` prunes every point (with the smallest cost that would let one through).
"""

from __future__ import annotations

import math
from typing import Any

from mdl.compiler.args import Arg
from mdl.compiler.search import (
    BYTE_UNITS,
    LIMIT_KEYS,
    RANGE_KINDS,
    SEARCH_KINDS,
    Range,
    Search,
    grid_points,
    grid_size,
    over_limits,
    point_costs,
)
from mdl.compiler.values import UNKNOWN, CallValue, QuantityValue, Symbol
from mdl.dsl import ast
from mdl.dsl.diagnostics import did_you_mean

SEARCH_ARGS = (
    Arg("trials", "int", low=1, high=10_000, doc="points to train"),
    Arg("seed", "int", 0, low=0, high=2**32 - 1, doc="seed of the sampler: the same seed draws the same points"),
)
_EXAMPLE = "search = random(trials=8, seed=0)"


def check_search(checker: Any, value: Any, entry: ast.Entry | None) -> Search:
    """`search = grid | random(trials=N, seed=S) | optuna(trials=N, seed=S)`; grid when absent or wrong."""
    if entry is None or value is UNKNOWN:
        return Search()
    if isinstance(value, Symbol):
        value = CallValue(value.name, (), {}, entry.value.span, entry.value.span, {})
    if not isinstance(value, CallValue) or value.func not in SEARCH_KINDS:
        name = value.func if isinstance(value, CallValue) else str(getattr(value, "name", value))
        guess = did_you_mean(name, SEARCH_KINDS)
        checker.err("E0414", entry.value.span, f"unknown search `{name}`",
                    f"did you mean `{guess}`?" if guess else f"use `grid`, `{_EXAMPLE}` or `optuna(trials=8)`")
        return Search()
    if value.func == "grid":
        if value.args or value.kwargs:
            checker.err("E0414", entry.value.span, "`grid` takes no settings", "write `search = grid`")
        return Search()
    args = checker._call_args(value, SEARCH_ARGS)
    if args is None:
        return Search()
    return Search(value.func, args["trials"], args["seed"])


def check_range(checker: Any, expr: ast.Call, value: CallValue, key: str, arg: Arg | None,
                param_type: str | None) -> Range | None:
    """A range call in the sweep, for an algo setting (`arg`) or a model parameter of `param_type`."""
    if value.func not in RANGE_KINDS:
        guess = did_you_mean(value.func, RANGE_KINDS)
        return checker.err("E0413", expr.span, f"`{value.func}(...)` is not a sweep range",
                           f"did you mean `{guess}`?" if guess else
                           "a sweep value is a list, `uniform(a, b)`, `log_uniform(a, b)` or `int_uniform(a, b)`")
    bounds = value.args
    numbers = len(bounds) == 2 and not value.kwargs and all(
        isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
    if not numbers:
        return checker.err("E0413", expr.span, f"`{value.func}` takes two numbers, its low and high ends",
                           f"for example `{key} = {value.func}(1, 8)`")
    low, high = bounds
    kind = "int" if value.func == "int_uniform" else "float"
    want = arg.type if arg is not None else param_type
    if want in ("int", "float") and want != kind:
        fix = "int_uniform" if want == "int" else "uniform"
        return checker.err("E0413", expr.span, f"`{key}` is {want}; `{value.func}` draws {kind}s",
                           f"use `{fix}({low}, {high})`" + (" or a list" if want == "int" else ""))
    if want not in ("int", "float"):
        return checker.err("E0413", expr.span, f"`{key}` is {want}; only int and float settings take a range",
                           "list the values instead")
    if kind == "int" and not all(isinstance(b, int) for b in bounds):
        return checker.err("E0413", expr.span, "`int_uniform` takes whole numbers", "for example `int_uniform(1, 8)`")
    if not (low < high or (kind == "int" and low == high)):
        return checker.err("E0413", expr.span, f"`{value.func}({low}, {high})` needs low < high",
                           f"write `{value.func}({min(low, high)}, {max(low, high)})`")
    if value.func == "log_uniform" and low <= 0:
        return checker.err("E0413", expr.span, "`log_uniform` needs a positive low end",
                           f"for example `log_uniform({high / 100:g}, {high})`, or `uniform({low}, {high})`")
    if arg is not None:
        for end in (low, high):
            if (arg.low is not None and (end < arg.low or (arg.low_open and end == arg.low))) or (
                    arg.high is not None and (end > arg.high or (arg.high_open and end == arg.high))):
                return checker.err("E0413", expr.span, f"`{key}` must be in {arg.range_text()}; the range "
                                   f"reaches {end}", f"keep both ends within {arg.range_text()}")
    return Range(value.func, low, high)


def check_limits(checker: Any, section: ast.Section | None, frame: Any) -> dict[str, float]:
    """`limits { params = 600k; memory = 2 GB }` as {key: upper bound}; bad entries are reported and left out."""
    limits: dict[str, float] = {}
    if section is None:
        return limits
    for e in section.entries:
        if e.key not in LIMIT_KEYS:
            guess = did_you_mean(e.key, LIMIT_KEYS)
            checker.err("E0415", e.key_span, f"unknown limit `{e.key}`",
                        f"did you mean `{guess}`?" if guess else "limits are " + ", ".join(LIMIT_KEYS))
            continue
        if e.key in limits:
            checker.err("E0415", e.key_span, f"limit `{e.key}` is given twice", "keep one of them")
            continue
        value = checker.el.eval(e.value, frame)
        if value is UNKNOWN:
            continue
        bound = _limit_value(checker, e, value)
        if bound is not None:
            limits[e.key] = bound
    return limits


def _limit_value(checker: Any, e: ast.Entry, value: Any) -> float | None:
    kind, meaning = LIMIT_KEYS[e.key]
    if kind == "bytes":
        if not isinstance(value, QuantityValue):
            return checker.err("E0415", e.value.span, f"limit `{e.key}` needs a unit ({meaning})",
                               f"write `{e.key} = {value} MB` or `{e.key} = {value} GB`"
                               if isinstance(value, int | float) else f"write `{e.key} = 2 GB`")
        if value.unit not in BYTE_UNITS:
            guess = did_you_mean(value.unit, BYTE_UNITS)
            return checker.err("E0415", e.value.span, f"unknown unit `{value.unit}` for `{e.key}`",
                               f"did you mean `{guess}`?" if guess else "use MB or GB")
        bound = float(value.value) * BYTE_UNITS[value.unit]
    elif isinstance(value, QuantityValue):
        return checker.err("E0415", e.value.span, f"limit `{e.key}` is a count ({meaning}) and takes no unit",
                           f"write `{e.key} = {value.value}` (suffixes k, M, G are fine: `600k`)")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        bound = float(value)
    else:
        return checker.err("E0415", e.value.span, f"limit `{e.key}` must be a number ({meaning})",
                           f"for example `{e.key} = 1M`")
    if bound <= 0:
        return checker.err("E0415", e.value.span, f"limit `{e.key}` must be positive", f"for example `{e.key} = 1M`")
    return bound


def check_search_space(checker: Any, spec: Any, sweep: ast.Section | None, limits: ast.Section | None,
                       search_entry: ast.Entry | None) -> None:
    """What only the whole experiment tells: ranges need a sampled search, trials fit the sweep, and
    the limits leave at least one point of a finite space."""
    ranges = [k for k, v in spec.sweep.items() if isinstance(v, Range)]
    size = grid_size(spec.sweep)
    where = search_entry.value.span if search_entry is not None else None
    if spec.search.kind == "grid" and ranges and sweep is not None:
        span = next((e.value.span for e in sweep.entries if isinstance(e.value, ast.Call)), sweep.span)
        checker.err("E0413", span, f"`{ranges[0].split('.', 1)[1]}` is a range, and a grid search needs lists",
                    f"add `{_EXAMPLE}` (or optuna) to sample it, or list the values to try")
        return
    if spec.search.kind != "grid" and where is not None:
        if not spec.sweep:
            checker.err("E0414", where, f"`{spec.search.kind}` search without a sweep: there is nothing to search",
                        "add `sweep { ... }` with lists or ranges, or remove `search`")
            return
        if size is not None and spec.search.trials > size:
            checker.err("E0414", where, f"`trials={spec.search.trials}` asks for more points than the sweep's {size}",
                        f"use `trials={size}`, or `search = grid` to train them all")
            return
    if limits is None or not spec.limits or size is None or spec.graph is None:
        return
    costs = []
    for point in grid_points(spec.sweep):
        at = spec.at(point)
        if at.graph is None:
            return  # a point that does not build is reported already
        costs.append((point, point_costs(at, spec.budget_steps)))
    broken = [(point, over_limits(c, spec.limits), c) for point, c in costs]
    if all(b for _, b, _ in broken):
        point, worst, c = min(broken, key=lambda t: max(t[1].values()))
        by_key = dict(zip(("params", "flops", "memory", "compute"), c, strict=True))
        needs = ", ".join(f"`{k} = {_at_least(k, by_key[k])}`" for k in worst)
        which = ",".join(f"{k.split('.', 1)[1]}={v}" for k, v in point.items()) or "the experiment"
        checker.err("E0416", limits.span, f"`limits` prunes every point ({len(costs)} of {len(costs)})",
                    f"the cheapest point ({which}) passes with {needs}")


def _at_least(key: str, cost: float) -> str:
    """The smallest limit, as `.mdl` writes it, that `cost` is within: `212_484`, `513 MB`."""
    if LIMIT_KEYS[key][0] == "bytes":
        return f"{math.ceil(cost / 1e6)} MB"
    return f"{math.ceil(cost):_}"


__all__ = ["SEARCH_ARGS", "check_limits", "check_range", "check_search", "check_search_space"]
