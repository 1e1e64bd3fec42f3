"""Torch modules for the primitives that hold parameters or behave differently in training.

Each is small and its parameter count is LANGUAGE.md's formula. Parameter-free primitives (activations,
reductions, reshapes, arithmetic) are lowered to plain torch functions instead (see mdl.compiler.lower).

`ObsNorm` is no primitive: it is the observation normalisation a `norm_obs` run puts in front of the
design (mdl.runtime.obsnorm), here so that the standalone `.py` export copies it like the others.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}


class SelfAttention(nn.MultiheadAttention):
    """Multi-head self-attention over `[B, T, d]`: `4*d*d + 4*d` parameters (Q, K, V, output, biases).

    The state-dict keys are torch's own (`in_proj_weight`, `in_proj_bias`, `out_proj.weight`, ...).
    """

    def __init__(self, d: int, heads: int, dropout: float = 0.0):
        super().__init__(d, heads, dropout=dropout, bias=True, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x, x, x, need_weights=False)[0]


class PositionalEncoding(nn.Module):
    """Adds a position code along dim 1 of `[B, T, d]`: a learned `[T, d]` table, or fixed sinusoids
    (a non-persistent buffer, so the state dict holds only parameters)."""

    def __init__(self, length: int, d: int, kind: str = "learned"):
        super().__init__()
        self.kind = kind
        if kind == "learned":
            self.weight = nn.Parameter(torch.zeros(length, d))
            nn.init.normal_(self.weight, std=0.02)
        else:
            self.register_buffer("weight", sinusoids(length, d), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.weight[: x.shape[1]].to(x.dtype)

    def extra_repr(self) -> str:
        return f"length={self.weight.shape[0]}, d={self.weight.shape[1]}, kind={self.kind!r}"


def sinusoids(length: int, d: int) -> Tensor:
    """The fixed encoding of "Attention Is All You Need": sin on even features, cos on odd ones."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(length, d)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate)[:, : d // 2]
    return table


class MLP(nn.Module):
    """`fc2(act(fc1(x)))`: `d*hidden + hidden + hidden*out + out` parameters."""

    def __init__(self, d: int, hidden: int, out: int, act: str = "gelu"):
        super().__init__()
        self.act = act
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, out)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(ACTIVATIONS[self.act](self.fc1(x)))

    def extra_repr(self) -> str:
        return f"act={self.act!r}"


class ObsNorm(nn.Module):
    """Observation normalisation of a `ppo(norm_obs=true)` run (the running statistics:
    mdl.runtime.obsnorm): `clamp((x - mean) / sqrt(var + epsilon), -clip, clip)`, computed in float64.

    `mean` and `var` are float64 buffers, so they travel in the state dict; no parameters. Training
    normalises every observation with this module, and a trained policy (eval, every export) puts it in
    front of the design, so it takes raw observations.
    """

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, epsilon: float = 1e-8):
        super().__init__()
        self.clip, self.epsilon = float(clip), float(epsilon)
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        z = (x.to(torch.float64) - self.mean) / torch.sqrt(self.var + self.epsilon)
        return z.clamp(-self.clip, self.clip).to(x.dtype)

    def extra_repr(self) -> str:
        return f"shape={tuple(self.mean.shape)}, clip={self.clip}, epsilon={self.epsilon}"
