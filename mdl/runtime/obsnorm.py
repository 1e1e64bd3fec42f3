"""Observation normalisation (`ppo(norm_obs=true)`, issue 12): running mean and variance per feature.

The semantics are gymnasium's `NormalizeObservation` (its `RunningMeanStd`: mean 0, variance 1 and a
count of 1e-4 to start; each batch of observations updates them with the parallel algorithm of Chan
et al.; an observation becomes `(obs - mean) / sqrt(var + 1e-8)`), then clipped to [-10, 10] as SB3's
`VecNormalize(clip_obs=10)` does.

`ObsNormalizer` keeps the statistics in an `ObsNorm` module (mdl.compiler.ops.layers: float64
buffers), which does the normalising, so training and every trained policy compute the same thing.
Training normalises each observation as it arrives (the rollout stores normalised observations, as
SB3 does); `state()` / `load_state()` put the statistics in a checkpoint as plain tensors (loadable
with `weights_only=True`); `frozen` stops the updates. A trained policy is the design's module with
the frozen `ObsNorm` in front of its input (`attach`): `mdlc eval` and every export (.pt, .py, .onnx)
take raw observations.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import fx

from mdl.compiler.ops.layers import ObsNorm

EPSILON = 1e-8  # under the square root, as gymnasium's default
CLIP = 10.0  # SB3's clip_obs
INITIAL_COUNT = 1e-4  # gymnasium's RunningMeanStd(epsilon=1e-4)
NAME = "_obs_norm"  # the attached module's name: no design's module has it (`ir.safe_name` suffixes `_x` names)


class ObsNormalizer:
    """Running per-feature statistics of observations of shape `shape` (without the batch dim)."""

    def __init__(self, shape: tuple[int, ...], device: torch.device | str = "cpu", clip: float = CLIP):
        self.layer = ObsNorm(tuple(shape), clip=clip, epsilon=EPSILON).to(device)
        self.count = INITIAL_COUNT
        self.frozen = False

    @property
    def mean(self) -> torch.Tensor:
        return self.layer.mean

    @property
    def var(self) -> torch.Tensor:
        return self.layer.var

    def update(self, batch: torch.Tensor) -> None:
        """Fold a batch [N, *shape] into the running mean and variance (population variance)."""
        x = batch.to(device=self.mean.device, dtype=torch.float64)
        n = x.shape[0]
        batch_mean, batch_var = x.mean(dim=0), x.var(dim=0, unbiased=False)
        delta = batch_mean - self.mean
        total = self.count + n
        m2 = self.var * self.count + batch_var * n + delta.square() * self.count * n / total
        self.layer.mean.add_(delta * n / total)
        self.layer.var.copy_(m2 / total)
        self.count = total

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """`batch` normalised with the current statistics, clipped, as float32."""
        with torch.no_grad():
            return self.layer(batch.to(torch.float32))

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Update with `batch` (unless frozen), then normalise it: what each env step does."""
        if not self.frozen:
            self.update(batch)
        return self.normalize(batch)

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean.cpu().clone(), "var": self.var.cpu().clone(), "count": float(self.count),
                "clip": float(self.layer.clip)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.layer.mean.copy_(state["mean"].to(torch.float64))
        self.layer.var.copy_(state["var"].to(torch.float64))
        self.count, self.layer.clip = float(state["count"]), float(state["clip"])


def frozen_layer(state: dict[str, Any]) -> ObsNorm:
    """The `ObsNorm` module of a checkpoint's saved statistics (`ObsNormalizer.state()`)."""
    normalizer = ObsNormalizer(tuple(state["mean"].shape), clip=float(state["clip"]))
    normalizer.load_state(state)
    return normalizer.layer


def attach(module: fx.GraphModule, layer: ObsNorm) -> fx.GraphModule:
    """`module` (a lowered design with one input) changed in place to apply `layer` to its input first.

    The layer is a submodule named NAME, so the state dict gains `_obs_norm.mean` and `_obs_norm.var`
    beside the design's own keys; the torch.fx graph gains one call right after the input. Attach
    before moving the module to its device (the layer is a copy, on the layer's device).
    """
    graph = module.graph
    placeholder = next(n for n in graph.nodes if n.op == "placeholder")
    module.add_submodule(NAME, copy.deepcopy(layer))
    with graph.inserting_after(placeholder):
        normed = graph.call_module(NAME, (placeholder,))
    placeholder.replace_all_uses_with(normed, delete_user_cb=lambda user: user is not normed)
    module.recompile()
    return module


def layer_of(module: torch.nn.Module) -> ObsNorm | None:
    """The observation normalisation `attach` put in front of `module`, if any."""
    layer = getattr(module, NAME, None)
    return layer if isinstance(layer, ObsNorm) else None


def settings(module: torch.nn.Module) -> dict[str, Any] | None:
    """What an export records of the layer `attach` put in front of `module`, besides its buffers
    ({"shape", "clip", "epsilon"}); None when there is none (not a norm_obs run)."""
    layer = layer_of(module)
    if layer is None:
        return None
    return {"shape": list(layer.mean.shape), "clip": layer.clip, "epsilon": layer.epsilon}


def layer_from_settings(saved: dict[str, Any]) -> ObsNorm:
    """An `ObsNorm` of `settings(...)` (statistics 0 and 1: the state dict fills them in)."""
    return ObsNorm(tuple(int(d) for d in saved["shape"]), clip=float(saved["clip"]), epsilon=float(saved["epsilon"]))


__all__ = ["CLIP", "EPSILON", "NAME", "ObsNormalizer", "attach", "frozen_layer", "layer_from_settings", "layer_of",
           "settings"]
