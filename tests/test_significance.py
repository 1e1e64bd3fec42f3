"""The verdict `mdlc compare` gives (mdl.runtime.significance) agrees with scipy's own tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import bootstrap, ttest_ind

from mdl.runtime.significance import difference

A = [480.0, 492.0, 500.0]
B = [1720.0, 1690.0, 1801.0]


def test_a_clear_win_is_called_with_its_interval_and_p_value() -> None:
    d = difference(A, B, names=("plain", "moe"))
    welch = ttest_ind(B, A, equal_var=False)
    assert d["p"] == pytest.approx(welch.pvalue) and d["significant"]
    assert d["delta"] == pytest.approx(np.mean(B) - np.mean(A))
    assert d["ci95"][0] > 0 and d["ci95"][0] <= d["delta"] <= d["ci95"][1]
    assert d["verdict"].startswith("moe is better than plain: +1,246 score, 95% interval [+")
    assert d["verdict"].endswith(f"p = {welch.pvalue:.2g}")
    assert difference(B, A, names=("moe", "plain"))["verdict"].startswith("plain is worse than moe: -1,246 score")


def test_overlapping_runs_are_not_distinguishable() -> None:
    d = difference([10.0, 30.0, 20.0], [12.0, 28.0, 25.0])
    assert not d["significant"] and d["ci95"][0] < 0 < d["ci95"][1]
    assert d["verdict"] == "B and A are not distinguishable with 3 seeds each"
    assert difference([1.0], [5.0, 6.0])["verdict"] == "B and A are not distinguishable with 1 and 2 seeds"
    assert difference([1.0], [5.0, 6.0])["p"] is None


def test_no_spread_gives_no_p_value_and_a_point_interval() -> None:
    d = difference([3.0, 3.0], [3.0, 3.0])
    assert d["p"] is None and d["ci95"] == [0.0, 0.0] and not d["significant"]
    with pytest.raises(ValueError):
        difference([], [1.0])


scores = st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=2, max_size=6)


@settings(max_examples=25, deadline=None)
@given(scores, scores)
def test_the_interval_is_scipys_bootstrap_of_the_difference_and_p_is_welchs(a: list[float], b: list[float]) -> None:
    d = difference(a, b)
    x, y = np.asarray(a), np.asarray(b)
    if x.max() - x.min() == 0 and y.max() - y.min() == 0:
        assert d["ci95"] == [d["delta"], d["delta"]]
        return
    expected = bootstrap((x, y), lambda u, v, axis=-1: v.mean(axis=axis) - u.mean(axis=axis), n_resamples=10_000,
                         confidence_level=0.95, method="percentile", vectorized=True,
                         rng=np.random.default_rng(0)).confidence_interval
    assert d["ci95"] == pytest.approx([expected.low, expected.high])
    welch = ttest_ind(y, x, equal_var=False).pvalue
    if d["p"] is not None:
        assert d["p"] == pytest.approx(welch)
    assert d["significant"] == (d["p"] is not None and d["p"] < 0.05 and (d["ci95"][0] > 0 or d["ci95"][1] < 0))
