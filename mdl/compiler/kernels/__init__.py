"""Triton kernels for `mdl::moe` (DESIGN.md rule 5: the op stays one node; this is its CUDA backend).

The pipeline, each step its own module:

- `routing`: router logits -> softmax -> top-k (ties to the lowest expert index) -> routing weights,
  one Triton program per block of tokens; per-expert counts and the balance statistics from its outputs.
- `permute`: assignments grouped by expert (a stable sort, GShard priority within an expert), capacity
  applied, and the tile table the grouped GEMMs walk.
- `grouped_gemm`: fc1 (rows gathered by the permutation on load, bias and activation fused) and fc2
  (bias, times the routing weight, written to the permuted slot).
- `combine`: each token sums its k slots in choice order; no atomics, so runs are bitwise repeatable.
- `backward`: the gradients in torch, reusing the forward's routing and permutation.

`available()` says whether the kernels can run here: triton importable and either a CUDA device or
`TRITON_INTERPRET=1` (Triton's CPU interpreter, which is how CI runs them on CPU tensors). Nothing in
this package imports triton at module level, so `import mdl.compiler.kernels` works without it.
"""

from __future__ import annotations

import importlib.util
import os

import torch

__all__ = ["available", "interpreted", "moe_triton", "moe_triton_backward"]


def interpreted() -> bool:
    """True when Triton runs its CPU interpreter (`TRITON_INTERPRET=1`)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def available() -> bool:
    """Whether the Triton MoE kernels can run: triton importable and (CUDA present or TRITON_INTERPRET=1)."""
    if importlib.util.find_spec("triton") is None:
        return False
    return interpreted() or torch.cuda.is_available()


def moe_triton(x, router_weight, w1, b1, w2, b2, top_k, act, capacity):
    """`mdl::moe` forward with the Triton kernels; same arguments and outputs as `moe_reference`."""
    from .moe import forward
    return forward(x, router_weight, w1, b1, w2, b2, top_k, act, capacity)


def moe_triton_backward(grad_y, grad_mean_prob, x, router_weight, w1, b1, w2, b2, top_k, act, capacity):
    """`mdl::moe_backward` reusing the Triton routing and permutation; same outputs as that op."""
    from .backward import backward
    return backward(grad_y, grad_mean_prob, x, router_weight, w1, b1, w2, b2, top_k, act, capacity)
