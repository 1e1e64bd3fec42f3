"""Grouped expert GEMMs over the permuted assignments.

fc1: h[s] = act(x[tokens[s]] @ w1[e] + b1[e]) for each permuted slot s of expert e; the token rows are
gathered on load through the permutation index (no permuted copy of x), bias and activation fused.
fc2: out[s] = (h[s] @ w2[e] + b2[e]) * weight[s], written to slot s for the combine step.
Each program takes one tile (BLOCK_M rows of one expert, from `permute.tiles`) and one column block.
tl.dot accumulates in float32 with input_precision="ieee" (no TF32 for float32 inputs).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

ACT_CODES = {"gelu": 0, "relu": 1, "silu": 2, "tanh": 3, "sigmoid": 4}
BLOCK_M = 64
BLOCK_K = 64
BLOCK_N_MAX = 128


@triton.jit
def _grouped_gemm_kernel(a_ptr, rows_ptr, w_ptr, bias_ptr, scale_ptr, out_ptr,
                         tile_expert_ptr, tile_first_ptr, tile_end_ptr, K, NCOL,
                         stride_am, stride_ak, stride_we, stride_wk, stride_wn, stride_be, stride_om,
                         GATHER: tl.constexpr, ACT: tl.constexpr, SCALE: tl.constexpr,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    tile = tl.program_id(0)
    pid_n = tl.program_id(1)
    expert = tl.load(tile_expert_ptr + tile)
    first = tl.load(tile_first_ptr + tile)
    end = tl.load(tile_end_ptr + tile)
    slots = first + tl.arange(0, BLOCK_M)
    slot_ok = slots < end
    if GATHER:  # noqa: SIM108 (fc1: the A rows are token rows of x, found through the permutation)
        a_rows = tl.load(rows_ptr + slots, mask=slot_ok, other=0)
    else:
        a_rows = slots
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < NCOL
    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < K
        a = tl.load(a_ptr + a_rows[:, None] * stride_am + ks[None, :] * stride_ak,
                    mask=slot_ok[:, None] & k_ok[None, :], other=0.0)
        b = tl.load(w_ptr + expert * stride_we + ks[:, None] * stride_wk + cols[None, :] * stride_wn,
                    mask=k_ok[:, None] & col_ok[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision="ieee")
    bias = tl.load(bias_ptr + expert * stride_be + cols, mask=col_ok, other=0.0)
    acc += bias.to(tl.float32)[None, :]
    # the activation, inlined (ACT -1: none)
    if ACT == 0:  # exact gelu
        acc = 0.5 * acc * (1.0 + tl.math.erf(acc * 0.7071067811865476))
    elif ACT == 1:
        acc = tl.maximum(acc, 0.0)
    elif ACT == 2:
        acc = acc / (1.0 + tl.exp(-acc))
    elif ACT == 3:
        acc = 2.0 / (1.0 + tl.exp(-2.0 * acc)) - 1.0
    elif ACT == 4:
        acc = 1.0 / (1.0 + tl.exp(-acc))
    if SCALE:  # fc2: times the routing weight of each slot
        w = tl.load(scale_ptr + slots, mask=slot_ok, other=0.0)
        acc = acc * w.to(tl.float32)[:, None]
    tl.store(out_ptr + slots[:, None] * stride_om + cols[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=slot_ok[:, None] & col_ok[None, :])


def _launch(a, rows, w, bias, scale, out, tile_table, gather: bool, act: int):
    tile_expert, tile_first, tile_end = tile_table
    k, ncol = w.shape[1], w.shape[2]
    block_n = max(16, min(BLOCK_N_MAX, triton.next_power_of_2(ncol)))
    block_k = max(16, min(BLOCK_K, triton.next_power_of_2(k)))
    grid = (tile_expert.numel(), triton.cdiv(ncol, block_n))
    _grouped_gemm_kernel[grid](
        a, rows, w, bias, out if scale is None else scale, out, tile_expert, tile_first, tile_end, k, ncol,
        a.stride(0), a.stride(1), w.stride(0), w.stride(1), w.stride(2), bias.stride(0), out.stride(0),
        GATHER=gather, ACT=act, SCALE=scale is not None,
        BLOCK_M=BLOCK_M, BLOCK_N=block_n, BLOCK_K=block_k)
    return out


def fc1(x: torch.Tensor, tokens: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, tile_table, act: str) -> torch.Tensor:
    """act(x[tokens] @ w1[e] + b1[e]) per permuted slot: [M, h] in x's dtype."""
    out = torch.empty(tokens.numel(), w1.shape[2], device=x.device, dtype=x.dtype)
    rows = tokens.to(torch.int32)
    return _launch(x, rows, w1, b1, None, out, tile_table, True, ACT_CODES[act])


def fc2(hidden: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, weights: torch.Tensor, tile_table) -> torch.Tensor:
    """(hidden @ w2[e] + b2[e]) * weights per permuted slot: [M, d] in hidden's dtype."""
    out = torch.empty(hidden.shape[0], w2.shape[2], device=hidden.device, dtype=hidden.dtype)
    return _launch(hidden, hidden, w2, b2, weights, out, tile_table, False, -1)
