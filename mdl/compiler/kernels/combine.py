"""Combine: y[t] = sum over j of out[slot_of[t, j]] in choice order; dropped slots (-1) add nothing.

One program per block of tokens reads its tokens' k slots; no atomics, so the sum order is fixed and
repeated runs are bitwise identical.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_T = 64


@triton.jit
def _combine_kernel(out_ptr, slot_ptr, y_ptr, N, D, stride_om, stride_yn,
                    TOP_K: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    pid_t = tl.program_id(0)
    pid_d = tl.program_id(1)
    rows = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    cols = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    row_ok = rows < N
    col_ok = cols < D
    acc = tl.full((BLOCK_T, BLOCK_D), 0.0, tl.float32)
    for j in tl.static_range(TOP_K):
        slot = tl.load(slot_ptr + rows * TOP_K + j, mask=row_ok, other=-1)
        ok = slot >= 0
        safe = tl.where(ok, slot, 0)
        v = tl.load(out_ptr + safe[:, None] * stride_om + cols[None, :],
                    mask=ok[:, None] & col_ok[None, :], other=0.0)
        acc += v.to(tl.float32)
    tl.store(y_ptr + rows[:, None] * stride_yn + cols[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=row_ok[:, None] & col_ok[None, :])


def combine(out: torch.Tensor, slot_of: torch.Tensor, n: int, d: int) -> torch.Tensor:
    """y [N, d] from the weighted expert outputs `out` [M, d] and `slot_of` [N, k]."""
    y = torch.empty(n, d, device=out.device, dtype=out.dtype)
    top_k = slot_of.shape[1]
    block_d = max(16, min(128, triton.next_power_of_2(d)))
    _combine_kernel[(triton.cdiv(n, BLOCK_T), triton.cdiv(d, block_d))](
        out, slot_of, y, n, d, out.stride(0), y.stride(0), TOP_K=top_k, BLOCK_T=BLOCK_T, BLOCK_D=block_d)
    return y
