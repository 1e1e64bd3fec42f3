"""The backward of `mdl::moe` for the Triton backend: torch ops reusing the Triton routing and permutation.

Same formulas as `mdl::moe_backward` (recomputed routing and expert activations, no autograd inside),
with the routing (probs, choices, weights) from the routing kernel and the grouping by expert from
`permute`, so the backward sees exactly the forward's assignments.
"""

from __future__ import annotations

import torch

from ..ops.moe import _activation_and_slope
from .moe import check, route_and_permute


def backward(grad_y, grad_mean_prob, x, router_weight, w1, b1, w2, b2, top_k: int, act: str, capacity):
    check(x, router_weight, top_k, act)
    n, d = x.shape
    if n == 0:
        return tuple(torch.zeros_like(t) for t in (x, router_weight, w1, b1, w2, b2))
    probs, chosen, weights, perm = route_and_permute(x.contiguous(), router_weight.contiguous(), top_k, capacity)
    counts = perm.kept_counts.tolist()
    tokens = perm.tokens
    weight_of = weights.T.reshape(-1).to(x.dtype)[perm.kept]

    xs = x.index_select(0, tokens)
    gys = grad_y.index_select(0, tokens)
    grad_xs, grad_weight_of = [], []
    grad_w1, grad_b1, grad_w2, grad_b2 = (torch.empty_like(t) for t in (w1, b1, w2, b2))
    for e, (xe, gye, we) in enumerate(zip(xs.split(counts), gys.split(counts), weight_of.split(counts),
                                          strict=True)):
        hidden, slope = _activation_and_slope(act, xe @ w1[e] + b1[e])
        out = hidden @ w2[e] + b2[e]
        grad_out = gye * we.unsqueeze(-1)
        grad_weight_of.append((gye * out).sum(dim=-1))
        grad_w2[e] = hidden.T @ grad_out
        grad_b2[e] = grad_out.sum(dim=0)
        grad_pre = (grad_out @ w2[e].T) * slope
        grad_w1[e] = xe.T @ grad_pre
        grad_b1[e] = grad_pre.sum(dim=0)
        grad_xs.append(grad_pre @ w1[e].T)
    grad_x = x.new_zeros(n, d).index_add(0, tokens, torch.cat(grad_xs))

    # Routing weights -> chosen probabilities -> all probabilities -> logits (float32 for half inputs).
    probs = probs.to(torch.promote_types(x.dtype, torch.float32))
    weights = weights.to(probs.dtype)
    grad_weights = probs.new_zeros(n * top_k)
    grad_weights[perm.kept] = torch.cat(grad_weight_of).to(probs.dtype)
    grad_weights = grad_weights.reshape(top_k, n).T
    if top_k > 1:
        chosen_probs = probs.gather(1, chosen)
        grad_weights = (grad_weights - (grad_weights * weights).sum(dim=-1, keepdim=True)) \
            / chosen_probs.sum(dim=-1, keepdim=True)
    grad_probs = probs.new_zeros(probs.shape).scatter_add(1, chosen, grad_weights)
    grad_probs = grad_probs + grad_mean_prob.to(probs.dtype) / n
    grad_logits = (probs * (grad_probs - (grad_probs * probs).sum(dim=-1, keepdim=True))).to(x.dtype)
    grad_x = grad_x + grad_logits @ router_weight
    grad_router = grad_logits.T @ x
    return grad_x, grad_router, grad_w1, grad_b1, grad_w2, grad_b2
