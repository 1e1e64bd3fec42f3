"""Whether one set of runs really beat another: the difference of mean scores, its bootstrap interval,
a two-sided Welch test and a plain verdict (`mdlc compare`, issue 14).

`difference(a, b)` compares the final scores of A's runs with B's (each a run's score, as
mdl.runtime.results reads it). `delta` is mean(B) - mean(A); `ci95` is the 95% bootstrap interval of
that difference (`scipy.stats.bootstrap` over both samples resampled independently, percentile method,
10,000 resamples, seed 0: the same scores give the same interval); `p` is the two-sided Welch t-test's
(`scipy.stats.ttest_ind(..., equal_var=False)`), `None` when a side has fewer than two runs or neither
side has any spread. The verdict says B is better (or worse) only when p < 0.05 *and* the interval
excludes 0; otherwise the two are "not distinguishable" at these seeds.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from mdl.runtime.results import RESAMPLES

ALPHA = 0.05


def difference(a: list[float], b: list[float], names: tuple[str, str] = ("A", "B"), unit: str = "score",
               ) -> dict[str, Any]:
    """The comparison of B's scores with A's (see the module docstring): delta, ci95, p, verdict."""
    import numpy as np

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) == 0 or len(y) == 0:
        raise ValueError("each side needs at least one scored run")
    delta = float(y.mean() - x.mean())
    p = _welch_p(x, y)
    ci = _difference_interval(x, y, delta)
    better = p is not None and p < ALPHA and (ci[0] > 0 or ci[1] < 0)
    return {"names": list(names), "n": [len(x), len(y)], "delta": delta, "ci95": ci, "p": p,
            "significant": better, "verdict": _verdict(names, unit, delta, ci, p, better, len(x), len(y))}


def _welch_p(x, y) -> float | None:
    if len(x) < 2 or len(y) < 2 or (float(x.std()) == 0.0 and float(y.std()) == 0.0):
        return None
    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # nearly equal scores: scipy warns of precision loss, the p stays valid
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(y, x, equal_var=False).pvalue)
    return p if math.isfinite(p) else None


def _difference_interval(x, y, delta: float) -> list[float]:
    if len(x) < 2 or len(y) < 2 or (float(x.max() - x.min()) == 0.0 and float(y.max() - y.min()) == 0.0):
        return [delta, delta]
    import numpy as np
    from scipy.stats import bootstrap

    result = bootstrap((x, y), lambda u, v, axis=-1: np.mean(v, axis=axis) - np.mean(u, axis=axis),
                       n_resamples=RESAMPLES, confidence_level=0.95, method="percentile", paired=False,
                       vectorized=True, rng=np.random.default_rng(0))
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def _signed(v: float) -> str:
    text = f"{abs(v):,.0f}" if abs(v) >= 100 else f"{abs(v):,.3g}"
    return ("-" if v < 0 else "+") + text


def _verdict(names: tuple[str, str], unit: str, delta: float, ci: list[float], p: float | None, better: bool,
             na: int, nb: int) -> str:
    a, b = names
    if not better:
        seeds = f"{na} seeds each" if na == nb else f"{na} and {nb} seeds"
        return f"{b} and {a} are not distinguishable with {seeds}"
    word = "better" if delta > 0 else "worse"
    return (f"{b} is {word} than {a}: {_signed(delta)} {unit}, 95% interval [{_signed(ci[0])}, {_signed(ci[1])}], "
            f"p = {p:.2g}")


__all__ = ["ALPHA", "difference"]
