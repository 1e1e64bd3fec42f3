"""Observation normalisation (`ppo(norm_obs=true)`, issue 12): running mean and variance per feature.

The semantics are gymnasium's `NormalizeObservation` (its `RunningMeanStd`: mean 0, variance 1 and a
count of 1e-4 to start; each batch of observations updates them with the parallel algorithm of Chan
et al.; an observation becomes `(obs - mean) / sqrt(var + 1e-8)`), then clipped to [-10, 10] as SB3's
`VecNormalize(clip_obs=10)` does. The statistics are float64 and travel in a checkpoint as plain
tensors (`state()` / `load_state()`, loadable with `weights_only=True`); `frozen` stops the updates
(evaluation, and the exports, which carry mean and variance as constants).

This module holds the statistics only; the trainer, `mdlc eval` and the exports use it once
`norm_obs` is a `ppo(...)` setting.
"""

from __future__ import annotations

from typing import Any

import torch

EPSILON = 1e-8  # under the square root, as gymnasium's default
CLIP = 10.0  # SB3's clip_obs
INITIAL_COUNT = 1e-4  # gymnasium's RunningMeanStd(epsilon=1e-4)


class ObsNormalizer:
    """Running per-feature statistics of observations of shape `shape` (without the batch dim)."""

    def __init__(self, shape: tuple[int, ...], device: torch.device | str = "cpu", clip: float = CLIP):
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)
        self.count = INITIAL_COUNT
        self.clip = clip
        self.frozen = False

    def update(self, batch: torch.Tensor) -> None:
        """Fold a batch [N, *shape] into the running mean and variance (population variance)."""
        x = batch.to(torch.float64)
        n = x.shape[0]
        batch_mean, batch_var = x.mean(dim=0), x.var(dim=0, unbiased=False)
        delta = batch_mean - self.mean
        total = self.count + n
        m2 = self.var * self.count + batch_var * n + delta.square() * self.count * n / total
        self.mean = self.mean + delta * n / total
        self.var = m2 / total
        self.count = total

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """`batch` normalised with the current statistics, clipped, as float32."""
        z = (batch.to(torch.float64) - self.mean) / torch.sqrt(self.var + EPSILON)
        return z.clamp(-self.clip, self.clip).to(torch.float32)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Update with `batch` (unless frozen), then normalise it: what each env step does."""
        if not self.frozen:
            self.update(batch)
        return self.normalize(batch)

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean.cpu(), "var": self.var.cpu(), "count": float(self.count), "clip": float(self.clip)}

    def load_state(self, state: dict[str, Any]) -> None:
        device = self.mean.device
        self.mean = state["mean"].to(device=device, dtype=torch.float64)
        self.var = state["var"].to(device=device, dtype=torch.float64)
        self.count, self.clip = float(state["count"]), float(state["clip"])


__all__ = ["CLIP", "EPSILON", "ObsNormalizer"]
