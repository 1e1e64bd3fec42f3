"""Permutation: the assignments grouped by expert, capacity applied (GShard priority), and the GEMM tiles.

Assignments are listed choice-major, as GShard prioritises them: every token's first choice in token
order, then every second choice, ...; a stable sort by expert id keeps that order inside each expert,
so with a capacity C an expert keeps its first C entries. That grouping is the reference's own
(`ops.moe_math.group_by_expert`); this module adds the slots and the tiles the kernels walk. Torch
ops (sort, cumsum): they are a small fraction of the work and deterministic.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..ops.moe_math import group_by_expert


class Permutation(NamedTuple):
    kept: torch.Tensor  # [M] indices into the choice-major [k*N] assignment list, grouped by expert
    tokens: torch.Tensor  # [M] token of each permuted slot
    experts: torch.Tensor  # [M] expert of each permuted slot
    kept_counts: torch.Tensor  # [E] kept assignments per expert
    group_starts: torch.Tensor  # [E] first permuted slot of each expert
    slot_of: torch.Tensor  # [N, k] permuted slot of each (token, choice); -1 where dropped
    counts: torch.Tensor  # [E] assignments per expert before capacity


def permute(chosen: torch.Tensor, experts: int, capacity: float | None) -> Permutation:
    """Group the [N, k] choices by expert; with `capacity`, keep ceil(capacity * N * k / E) per expert."""
    n, top_k = chosen.shape
    device = chosen.device
    expert_of, kept, kept_counts, counts = group_by_expert(chosen, experts, capacity)
    group_starts = torch.cumsum(kept_counts, dim=0) - kept_counts
    slot_of = torch.full((n * top_k,), -1, dtype=torch.int64, device=device)
    slot_of[kept] = torch.arange(kept.numel(), device=device)
    return Permutation(kept, kept % max(n, 1), expert_of[kept], kept_counts, group_starts,
                       slot_of.reshape(top_k, n).T.contiguous(), counts)


def tiles(perm: Permutation, block_m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(expert, first row, end row) of each BLOCK_M-row tile of each expert's group, int32, on device.

    Sized by an upper bound (cdiv(M, BLOCK_M) + E) so no host sync is needed; spare tiles are empty
    (first row == end row), and their programs load and store nothing.
    """
    experts = perm.kept_counts.numel()
    count = -(-perm.kept.numel() // block_m) + experts
    per_expert = (perm.kept_counts + block_m - 1) // block_m
    tile_ends = torch.cumsum(per_expert, dim=0)
    t = torch.arange(count, device=perm.kept.device)
    expert = torch.searchsorted(tile_ends, t, right=True)
    valid = expert < experts
    expert = expert.clamp(max=experts - 1)
    local = t - (tile_ends - per_expert)[expert]
    first = perm.group_starts[expert] + local * block_m
    end = perm.group_starts[expert] + perm.kept_counts[expert]
    first = torch.where(valid, first, 0)
    end = torch.where(valid, torch.minimum(end, first + block_m), 0)
    return expert.to(torch.int32), first.to(torch.int32), end.to(torch.int32)
