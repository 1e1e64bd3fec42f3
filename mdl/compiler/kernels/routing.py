"""Routing: router logits -> softmax -> top-k (lowest-index tie-break) -> routing weights, in one kernel."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._lang import add_combine, max_combine, min_combine

BLOCK_N = 64  # tokens per program


@triton.jit
def _routing_kernel(x_ptr, r_ptr, probs_ptr, chosen_ptr, weights_ptr, N, D, E,
                    stride_xn, stride_xd, stride_re, stride_rd,
                    TOP_K: tl.constexpr, HALF: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_D: tl.constexpr, BLOCK_E: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, BLOCK_E)
    row_ok = rows < N
    col_ok = cols < E
    acc = tl.full((BLOCK_N, BLOCK_E), 0.0, tl.float32)
    for k0 in range(0, D, BLOCK_D):
        ks = k0 + tl.arange(0, BLOCK_D)
        k_ok = ks < D
        a = tl.load(x_ptr + rows[:, None] * stride_xn + ks[None, :] * stride_xd,
                    mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        b = tl.load(r_ptr + cols[None, :] * stride_re + ks[:, None] * stride_rd,
                    mask=col_ok[None, :] & k_ok[:, None], other=0.0)
        acc = tl.dot(a, b, acc, input_precision="ieee")
    if HALF:  # the reference computes the logits in x's dtype, then the softmax in float32
        acc = acc.to(x_ptr.dtype.element_ty).to(tl.float32)
    logits = tl.where(col_ok[None, :], acc, float("-inf"))
    top = tl.reduce(logits, 1, max_combine)
    exps = tl.exp(logits - top[:, None])
    exps = tl.where(col_ok[None, :], exps, 0.0)
    probs = exps / tl.reduce(exps, 1, add_combine)[:, None]
    tl.store(probs_ptr + rows[:, None] * E + cols[None, :], probs, mask=row_ok[:, None] & col_ok[None, :])

    # top-k: k rounds of "largest probability, lowest index among equals", then knock it out
    remaining = tl.where(col_ok[None, :], probs, -1.0)
    total = tl.full((BLOCK_N,), 0.0, tl.float32)
    for j in tl.static_range(TOP_K):
        best = tl.reduce(remaining, 1, max_combine)
        pick = tl.reduce(tl.where(remaining == best[:, None], cols[None, :], BLOCK_E), 1, min_combine)
        tl.store(chosen_ptr + rows * TOP_K + j, pick, mask=row_ok)
        tl.store(weights_ptr + rows * TOP_K + j, best, mask=row_ok)
        total += best
        remaining = tl.where(cols[None, :] == pick[:, None], -1.0, remaining)
    if TOP_K > 1:  # renormalise the chosen probabilities (k == 1 keeps the raw probability)
        for j in tl.static_range(TOP_K):
            w = tl.load(weights_ptr + rows * TOP_K + j, mask=row_ok, other=1.0)
            tl.store(weights_ptr + rows * TOP_K + j, w / total, mask=row_ok)


def route(x: torch.Tensor, router_weight: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """probs [N, E] float32, chosen [N, k] int64 (best first), weights [N, k] float32."""
    n, d = x.shape
    experts = router_weight.shape[0]
    probs = torch.empty(n, experts, device=x.device, dtype=torch.float32)
    chosen = torch.empty(n, top_k, device=x.device, dtype=torch.int32)
    weights = torch.empty(n, top_k, device=x.device, dtype=torch.float32)
    block_d = max(16, min(128, triton.next_power_of_2(d)))
    block_e = max(16, triton.next_power_of_2(experts))
    half = x.dtype in (torch.float16, torch.bfloat16)
    _routing_kernel[(triton.cdiv(n, BLOCK_N),)](
        x, router_weight, probs, chosen, weights, n, d, experts,
        x.stride(0), x.stride(1), router_weight.stride(0), router_weight.stride(1),
        TOP_K=top_k, HALF=half, BLOCK_N=BLOCK_N, BLOCK_D=block_d, BLOCK_E=block_e)
    return probs, chosen.long(), weights

