"""The routing and gradient math of `mdl::moe` that its two backends share, in plain torch.

The op (`ops.moe`: the reference backend, and the dispatch) and the Triton backend (`kernels`) both
import this module, and it imports neither of them, so the op and its kernels never import each
other. It owns

- `Routing`, what the backward needs of the forward's routing: probabilities, choices, routing
  weights and the kept assignments grouped by expert. The reference builds it with `route`; the Triton
  backend from its routing kernel and `kernels.permute`.
- `route`, `moe_reference`'s routing step for step (that function stays self-contained, because the
  standalone `.py` export inlines its source, so it cannot call this one).
- `group_by_expert`, the assignments grouped by expert with the capacity applied (GShard priority),
  used by `route` and by `kernels.permute`.
- `backward_from_routing`, the six gradients of `mdl::moe` given a `Routing`: recomputed expert
  activations, no autograd inside (see `ops.moe.moe_backward`).

The semantics these follow are written out in `ops.moe`'s docstring.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from mdl.compiler.primitives import ACTIVATIONS


class Routing(NamedTuple):
    """What the backward needs of the forward's routing (recomputed, not saved)."""

    probs: Tensor  # [N, E], float32 when x is half precision
    chosen: Tensor  # [N, k] expert ids, best first
    weights: Tensor  # [N, k] routing weights, probs' dtype
    kept: Tensor  # [M] kept assignments (index into the choice-major [k*N] list), grouped by expert
    kept_counts: list[int]  # [E] kept assignments per expert


def group_by_expert(chosen: Tensor, experts: int,
                    capacity: float | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The [N, k] choices as assignments grouped by expert, with `capacity` applied.

    Returns (expert_of [k*N], kept [M], kept_counts [E], counts [E]): the expert of each assignment,
    listed choice-major (every token's first choice in token order, then every second choice, ...);
    the indices into that list of the kept assignments, grouped by expert (a stable sort, so that order
    holds inside each expert); the kept assignments per expert; and all assignments per expert. With
    `capacity` not None each expert keeps its first ceil(capacity * N * k / E) assignments.
    """
    n, top_k = chosen.shape
    expert_of = chosen.T.reshape(-1)
    by_expert = torch.argsort(expert_of, stable=True)
    counts = torch.bincount(expert_of, minlength=experts)
    if capacity is None:
        return expert_of, by_expert, counts, counts
    limit = math.ceil(capacity * n * top_k / experts)
    starts = torch.cumsum(counts, dim=0) - counts
    slot = torch.arange(n * top_k, device=chosen.device) - starts[expert_of[by_expert]]
    return expert_of, by_expert[slot < limit], counts.clamp(max=limit), counts


def route(x: Tensor, router_weight: Tensor, top_k: int, capacity: float | None) -> Routing:
    """`moe_reference`'s routing, step for step (that function stays self-contained for the export)."""
    logits = x @ router_weight.T
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    chosen = torch.sort(probs, dim=-1, descending=True, stable=True).indices[:, :top_k]
    chosen_probs = probs.gather(1, chosen)
    weights = chosen_probs if top_k == 1 else chosen_probs / chosen_probs.sum(dim=-1, keepdim=True)
    _, kept, kept_counts, _ = group_by_expert(chosen, router_weight.shape[0], capacity)
    return Routing(probs, chosen, weights, kept, kept_counts.tolist())


def activation_and_slope(act: str, pre: Tensor) -> tuple[Tensor, Tensor]:
    """act(pre) and its derivative at pre, matching torch's own backward formulas."""
    if act == "gelu":
        cdf = 0.5 * (1 + torch.erf(pre * (1 / math.sqrt(2))))
        return pre * cdf, cdf + pre * torch.exp(-0.5 * pre * pre) * (1 / math.sqrt(2 * math.pi))
    if act == "relu":
        out = torch.relu(pre)
        return out, (out > 0).to(pre.dtype)
    if act == "silu":
        s = torch.sigmoid(pre)
        return pre * s, s * (1 + pre * (1 - s))
    if act == "tanh":
        t = torch.tanh(pre)
        return t, 1 - t * t
    if act == "sigmoid":
        s = torch.sigmoid(pre)
        return s, s * (1 - s)
    raise ValueError(f"unknown moe activation {act!r}; expected one of {list(ACTIVATIONS)}")


def backward_from_routing(grad_y: Tensor, grad_mean_prob: Tensor, x: Tensor, router_weight: Tensor, w1: Tensor,
                          b1: Tensor, w2: Tensor, b2: Tensor, top_k: int, act: str,
                          routing: Routing) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The six gradients of `mdl::moe` given the forward's routing (the reference's `route`, or the
    Triton backend's routing kernel and permutation: both backends share these formulas)."""
    n, d = x.shape
    token_of = torch.arange(n, device=x.device).repeat(top_k)
    tokens = token_of[routing.kept]
    weight_of = routing.weights.T.reshape(-1).to(x.dtype)[routing.kept]

    # Experts: y[t] += w * (act(x[t] @ w1[e] + b1[e]) @ w2[e] + b2[e]) for each kept assignment.
    xs = x.index_select(0, tokens)
    gys = grad_y.index_select(0, tokens)
    grad_xs, grad_weight_of = [], []
    grad_w1, grad_b1, grad_w2, grad_b2 = (torch.empty_like(t) for t in (w1, b1, w2, b2))
    for e, (xe, gye, we) in enumerate(zip(xs.split(routing.kept_counts), gys.split(routing.kept_counts),
                                          weight_of.split(routing.kept_counts), strict=True)):
        hidden, slope = activation_and_slope(act, xe @ w1[e] + b1[e])
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

    # Routing weights -> chosen probabilities -> all probabilities -> logits.
    probs = routing.probs
    grad_weights = probs.new_zeros(n * top_k)
    grad_weights[routing.kept] = torch.cat(grad_weight_of).to(probs.dtype)
    grad_weights = grad_weights.reshape(top_k, n).T  # [N, k]; a dropped assignment has zero gradient
    if top_k > 1:  # weights = p / sum(p): d/dp_j = (g_j - sum_i g_i * weights_i) / sum(p)
        chosen_probs = probs.gather(1, routing.chosen)
        grad_weights = (grad_weights - (grad_weights * routing.weights).sum(dim=-1, keepdim=True)) \
            / chosen_probs.sum(dim=-1, keepdim=True)
    grad_probs = probs.new_zeros(probs.shape).scatter_add(1, routing.chosen, grad_weights)
    grad_probs = grad_probs + grad_mean_prob.to(probs.dtype) / max(n, 1)
    grad_logits = (probs * (grad_probs - (grad_probs * probs).sum(dim=-1, keepdim=True))).to(x.dtype)
    grad_x = grad_x + grad_logits @ router_weight
    grad_router = grad_logits.T @ x
    return grad_x, grad_router, grad_w1, grad_b1, grad_w2, grad_b2
