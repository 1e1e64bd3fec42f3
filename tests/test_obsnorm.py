"""`mdl.runtime.obsnorm.ObsNormalizer` against gymnasium's `NormalizeObservation` on the same stream."""

from __future__ import annotations

import io

import gymnasium
import numpy as np
import torch
from gymnasium.wrappers.utils import RunningMeanStd
from gymnasium.wrappers.vector import NormalizeObservation
from hypothesis import given, settings
from hypothesis import strategies as st

from mdl.runtime.obsnorm import CLIP, ObsNormalizer


def test_equals_gymnasiums_wrapper_on_a_vector_env() -> None:
    wrapped = NormalizeObservation(gymnasium.make_vec("Acrobot-v1", num_envs=4, vectorization_mode="sync"))
    raw = gymnasium.make_vec("Acrobot-v1", num_envs=4, vectorization_mode="sync")
    ours = ObsNormalizer((6,))
    want, _ = wrapped.reset(seed=5)
    obs, _ = raw.reset(seed=5)
    rng = np.random.default_rng(0)
    # gymnasium takes each batch's moments in the observations' float32, ours in float64: equal to a
    # few float32 ulps, amplified at first, when the variance is tiny
    for _ in range(300):
        got = ours(torch.from_numpy(obs))
        np.testing.assert_allclose(got.numpy(), np.clip(want, -CLIP, CLIP), rtol=1e-3, atol=1e-4)
        actions = rng.integers(0, 3, size=4)
        want, *_ = wrapped.step(actions)
        obs, *_ = raw.step(actions)
    ours.update(torch.from_numpy(obs))  # the wrapper saw the last step's observations too
    np.testing.assert_allclose(ours.mean.numpy(), wrapped.obs_rms.mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours.var.numpy(), wrapped.obs_rms.var, rtol=1e-5, atol=1e-7)
    assert ours.count == wrapped.obs_rms.count


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=8), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_the_running_moments_equal_gymnasiums_for_any_batches(sizes: list[int], features: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference, ours = RunningMeanStd(shape=(features,)), ObsNormalizer((features,))
    for n in sizes:
        batch = rng.normal(3.0, 5.0, size=(n, features))
        reference.update(batch)
        ours.update(torch.from_numpy(batch))
    np.testing.assert_allclose(ours.mean.numpy(), reference.mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.var.numpy(), reference.var, rtol=1e-9, atol=1e-12)


def test_outliers_are_clipped_and_frozen_statistics_do_not_move() -> None:
    ours = ObsNormalizer((2,))
    ours(torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]))
    assert ours.normalize(torch.tensor([[1e9, -1e9]])).tolist() == [[CLIP, -CLIP]]
    ours.frozen = True
    before = ours.state()
    ours(torch.tensor([[5.0, 5.0]]))
    after = ours.state()
    assert torch.equal(before["mean"], after["mean"]) and before["count"] == after["count"]


def test_the_state_round_trips_through_a_weights_only_checkpoint() -> None:
    ours = ObsNormalizer((3,))
    ours.update(torch.randn(10, 3))
    buffer = io.BytesIO()
    torch.save(ours.state(), buffer)
    buffer.seek(0)
    twin = ObsNormalizer((3,))
    twin.load_state(torch.load(buffer, weights_only=True))
    x = torch.randn(4, 3)
    assert torch.equal(twin.normalize(x), ours.normalize(x)) and twin.count == ours.count
