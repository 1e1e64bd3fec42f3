"""The backward of `mdl::moe` for the Triton backend: torch ops reusing the Triton routing and permutation.

The formulas of `mdl::moe_backward` (`ops.moe_math.backward_from_routing`: recomputed expert
activations, no autograd inside), given a `Routing` whose probs, choices and weights come from the
routing kernel and whose grouping by expert comes from `permute`, so the backward sees exactly the
forward's assignments.
"""

from __future__ import annotations

import torch

from ..ops.moe_math import Routing, backward_from_routing
from .moe import check, route_and_permute


def backward(grad_y, grad_mean_prob, x, router_weight, w1, b1, w2, b2, top_k: int, act: str, capacity):
    check(x, router_weight, top_k, act)
    n = x.shape[0]
    if n == 0:
        return tuple(torch.zeros_like(t) for t in (x, router_weight, w1, b1, w2, b2))
    probs, chosen, weights, perm = route_and_permute(x.contiguous(), router_weight.contiguous(), top_k, capacity)
    probs = probs.to(torch.promote_types(x.dtype, torch.float32))
    route = Routing(probs, chosen, weights.to(probs.dtype), perm.kept, perm.kept_counts.tolist())
    return backward_from_routing(grad_y, grad_mean_prob, x, router_weight, w1, b1, w2, b2, top_k, act, route)
