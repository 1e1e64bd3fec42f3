"""The Triton forward of `mdl::moe`: routing -> permutation -> fc1 -> fc2 -> combine."""

from __future__ import annotations

from . import combine as _combine
from . import grouped_gemm, permute, routing

ACTIVATIONS = tuple(grouped_gemm.ACT_CODES)


def check(x, router_weight, top_k: int, act: str) -> None:
    if act not in grouped_gemm.ACT_CODES:
        raise ValueError(f"unknown moe activation {act!r}; expected one of {sorted(ACTIVATIONS)}")
    experts = router_weight.shape[0]
    if not 1 <= top_k <= experts:
        raise ValueError(f"moe top_k={top_k} must be between 1 and experts={experts}")


def route_and_permute(x, router_weight, top_k: int, capacity):
    """The routing kernel's (probs, chosen, weights) and the permutation built from them."""
    probs, chosen, weights = routing.route(x, router_weight, top_k)
    return probs, chosen, weights, permute.permute(chosen, router_weight.shape[0], capacity)


def forward(x, router_weight, w1, b1, w2, b2, top_k: int, act: str, capacity):
    check(x, router_weight, top_k, act)
    n, d = x.shape
    experts = router_weight.shape[0]
    if n == 0:
        zeros = x.new_zeros(experts)
        return x.new_zeros(0, d), zeros, zeros.clone(), x.new_zeros(())
    x, router_weight, w1, b1, w2, b2 = (t.contiguous() for t in (x, router_weight, w1, b1, w2, b2))
    probs, _, weights, perm = route_and_permute(x, router_weight, top_k, capacity)
    table = permute.tiles(perm, grouped_gemm.BLOCK_M)
    hidden = grouped_gemm.fc1(x, perm.tokens, w1, b1, table, act)
    slot_weights = weights.T.reshape(-1).to(x.dtype)[perm.kept].contiguous()
    out = grouped_gemm.fc2(hidden, w2, b2, slot_weights, table)
    y = _combine.combine(out, perm.slot_of, n, d)
    denominator = n * top_k
    mean_prob = (probs.sum(dim=0) / n).to(x.dtype)
    token_fraction = perm.counts.to(x.dtype) / denominator
    dropped_fraction = (perm.counts - perm.kept_counts).sum().to(x.dtype) / denominator
    return y, mean_prob, token_fraction, dropped_fraction
