"""The `mdl::moe` custom op and the `MoE` module the lowering instantiates for each `moe(...)` call.

LANGUAGE.md's `moe` is a token-choice mixture of experts. DESIGN.md rule 5 makes it one op: the
lowering sees a single `torch.ops.mdl.moe` node whatever happens inside. This module owns

- `moe_reference`, the semantics in plain torch (any device). It is self-contained (it uses only
  `torch` and `math`) because the standalone `.py` export inlines its source.
- `mdl::moe`, a `torch.library.custom_op` whose default kernel is the reference, with a fake kernel
  for shape propagation (symbolic token counts included) and autograd.
- `mdl::moe_backward`, the op the autograd formula calls: gradients written out by hand from a
  recomputed routing (no autograd inside a kernel), by `moe_math`'s routing and formulas, which the
  Triton backend (`mdl.compiler.kernels`) shares. It is an op of its own, with its own fake kernel, so
  that `torch.compile` (AOTAutograd) traces the backward without looking inside it. It has no
  autograd formula itself, so double backward is not supported.
- `MoE`, the `nn.Module` holding the router and the stacked expert weights.

Semantics, for x [N, d], router weight [E, d], k = top_k:

- probs = softmax(x @ router_weight.T) over experts (in float32 when x is half precision).
- Each token picks its k most probable experts, ties broken toward the lower expert index (a stable
  descending sort; `torch.topk` promises no tie order).
- Routing weights: for k > 1 the k chosen probabilities renormalised to sum to 1; for k == 1 the raw
  probability (Switch style; onnxruntime's com.microsoft.MoE with normalize_routing_weights=0).
- Expert e computes act(x @ w1[e] + b1[e]) @ w2[e] + b2[e]; y is the weighted sum over the chosen
  experts. `act` is one of "gelu" (exact, erf), "relu", "silu", "tanh", "sigmoid".
- With `capacity` not None each expert takes at most C = ceil(capacity * N * k / E) assignments
  (computed in that order, in Python floats). Priority follows GShard: every token's first choice in
  token order, then every second choice, and so on. An assignment over capacity contributes nothing;
  the token keeps its other experts' outputs, not renormalised. `capacity=None` is dropless.
- Statistics: token_fraction[e] = assignments routed to e before capacity / (N * k); mean_prob[e] =
  mean over tokens of probs[:, e]; dropped_fraction = assignments dropped / (N * k). All three are 0
  when N == 0. Every output has x's dtype. Only y and mean_prob are differentiable.
"""

from __future__ import annotations

import math
import os

import torch
from torch import Tensor, nn

from mdl.compiler.ops.moe_math import backward_from_routing, route
from mdl.compiler.primitives import ACTIVATIONS  # the language's list; `MoE` checks `act` against it

BACKENDS = ("reference", "triton")


def moe_backend(x: Tensor) -> str:
    """Which implementation runs `mdl::moe` (and its backward) for x: "reference" or "triton".

    `MDL_MOE_BACKEND=reference|triton` forces one (triton also runs on CPU tensors under
    `TRITON_INTERPRET=1`); unset, CUDA tensors take the Triton kernels when `mdl.compiler.kernels`
    can run (triton installed), everything else the reference. The kernels are imported lazily, so
    none of this needs triton installed.
    """
    forced = os.environ.get("MDL_MOE_BACKEND", "").strip().lower()
    if forced:
        if forced not in BACKENDS:
            raise ValueError(f"MDL_MOE_BACKEND={forced!r}; expected one of {list(BACKENDS)}")
        if forced == "triton":
            from mdl.compiler import kernels
            if not kernels.available():
                raise RuntimeError("MDL_MOE_BACKEND=triton, but the Triton MoE kernels cannot run here "
                                   "(triton missing, or no CUDA device and TRITON_INTERPRET unset)")
        return forced
    if x.is_cuda:
        from mdl.compiler import kernels
        if kernels.available():
            return "triton"
    return "reference"


def moe_reference(x: torch.Tensor, router_weight: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor,
                  w2: torch.Tensor, b2: torch.Tensor, top_k: int, act: str,
                  capacity: float | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token-choice MoE in plain torch; differentiable by ordinary autograd.

    x [N, d]; router_weight [E, d] (bias-free, nn.Linear layout); w1 [E, d, h]; b1 [E, h];
    w2 [E, h, d]; b2 [E, d]. Returns (y [N, d], mean_prob [E], token_fraction [E], dropped_fraction []).
    Tokens are grouped by expert (a stable sort of the assignments), each expert runs once on its
    tokens, and the weighted outputs are summed back with one `index_add` (deterministic on CPU).
    """
    functional = torch.nn.functional
    activations = {"gelu": functional.gelu, "relu": functional.relu, "silu": functional.silu,
                   "tanh": torch.tanh, "sigmoid": torch.sigmoid}
    if act not in activations:
        raise ValueError(f"unknown moe activation {act!r}; expected one of {sorted(activations)}")
    activation = activations[act]
    n, d = x.shape
    experts = router_weight.shape[0]
    if not 1 <= top_k <= experts:
        raise ValueError(f"moe top_k={top_k} must be between 1 and experts={experts}")
    assignments = n * top_k

    logits = x @ router_weight.T
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # softmax and the ranking in float32; results cast back to x's dtype
    probs = torch.softmax(logits, dim=-1)  # [N, E]
    chosen = torch.sort(probs, dim=-1, descending=True, stable=True).indices[:, :top_k]  # [N, k]
    chosen_probs = probs.gather(1, chosen)
    weights = chosen_probs if top_k == 1 else chosen_probs / chosen_probs.sum(dim=-1, keepdim=True)
    mean_prob = (probs.sum(dim=0) / max(n, 1)).to(x.dtype)

    # Assignments in GShard priority order: all first choices by token, then all second choices, ...
    expert_of = chosen.T.reshape(-1)  # [k*N]
    token_of = torch.arange(n, device=x.device).repeat(top_k)
    weight_of = weights.T.reshape(-1).to(x.dtype)
    by_expert = torch.argsort(expert_of, stable=True)  # grouped by expert, priority order within each
    counts = torch.bincount(expert_of, minlength=experts)
    if capacity is None:
        kept, kept_counts = by_expert, counts
    else:
        limit = math.ceil(capacity * n * top_k / experts)
        starts = torch.cumsum(counts, dim=0) - counts
        slot = torch.arange(assignments, device=x.device) - starts[expert_of[by_expert]]
        kept = by_expert[slot < limit]
        kept_counts = counts.clamp(max=limit)

    tokens = token_of[kept]
    groups = x.index_select(0, tokens).split(kept_counts.tolist())
    outs = torch.cat([activation(xe @ w1[e] + b1[e]) @ w2[e] + b2[e] for e, xe in enumerate(groups)])
    y = x.new_zeros(n, d).index_add(0, tokens, outs * weight_of[kept].unsqueeze(-1))

    denominator = max(assignments, 1)
    token_fraction = counts.to(x.dtype) / denominator
    dropped_fraction = (counts - kept_counts).sum().to(x.dtype) / denominator
    return y, mean_prob, token_fraction, dropped_fraction


def _moe_dispatch(x: Tensor, router_weight: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor,
                  top_k: int, act: str, capacity: float | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    if moe_backend(x) == "triton":
        from mdl.compiler import kernels
        return kernels.moe_triton(x, router_weight, w1, b1, w2, b2, top_k, act, capacity)
    return moe_reference(x, router_weight, w1, b1, w2, b2, top_k, act, capacity)


@torch.library.custom_op("mdl::moe", mutates_args=())
def moe(x: Tensor, router_weight: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor,
        top_k: int, act: str, capacity: float | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Token-choice mixture of experts (see the module docstring for the exact semantics).

    x [N, d]; router_weight [E, d] (bias-free, nn.Linear layout); w1 [E, d, h]; b1 [E, h]; w2 [E, h, d];
    b2 [E, d]. Returns (y [N, d], mean_prob [E], token_fraction [E], dropped_fraction []), all in x's
    dtype; y and mean_prob are differentiable, the fractions are counts and are not.
    The implementation is chosen per call by `moe_backend`.
    """
    return _moe_dispatch(x, router_weight, w1, b1, w2, b2, top_k, act, capacity)


@moe.register_kernel("cuda")
def _moe_cuda(x: Tensor, router_weight: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor,
              top_k: int, act: str, capacity: float | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The CUDA implementation: the Triton kernels unless MDL_MOE_BACKEND=reference (or triton is missing)."""
    return _moe_dispatch(x, router_weight, w1, b1, w2, b2, top_k, act, capacity)


@moe.register_fake
def _moe_fake(x: Tensor, router_weight: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor,
              top_k: int, act: str, capacity: float | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    experts = router_weight.shape[0]
    return torch.empty_like(x), x.new_empty(experts), x.new_empty(experts), x.new_empty(())


def moe_matmul_flops(tokens: int, d: int, experts: int, hidden: int, top_k: int) -> int:
    """The multiply-add FLOPs of one `mdl::moe` forward, as FlopCounterMode counts a matmul (2 per
    multiply-add): the router (tokens x d x E) and, for each token, its top_k experts' two layers
    (d x h and h x d). Capacity drops are not subtracted (the static figure's convention)."""
    return 2 * tokens * d * experts + tokens * top_k * 4 * d * hidden


def _register_flop_formulas() -> None:
    """`torch.utils.flop_counter.FlopCounterMode` (and fvcore-style profilers built on it) see the expert
    work of `mdl::moe`, which it would otherwise count as 0; the backward is counted as twice the
    forward's matmuls (the gradients of the inputs and of the weights), as for a linear."""
    from torch.utils.flop_counter import register_flop_formula

    def forward(x_shape, router_shape, w1_shape, *args, out_shape=None, **kwargs) -> int:
        experts, d, hidden = w1_shape
        return moe_matmul_flops(x_shape[0], d, experts, hidden, args[3])

    def backward(grad_y_shape, grad_mean_shape, x_shape, router_shape, w1_shape, *args, out_shape=None,
                 **kwargs) -> int:
        experts, d, hidden = w1_shape
        return 2 * moe_matmul_flops(x_shape[0], d, experts, hidden, args[3])

    register_flop_formula(torch.ops.mdl.moe)(forward)
    register_flop_formula(torch.ops.mdl.moe_backward)(backward)


@torch.library.custom_op("mdl::moe_backward", mutates_args=())
def moe_backward(grad_y: Tensor, grad_mean_prob: Tensor, x: Tensor, router_weight: Tensor, w1: Tensor,
                 b1: Tensor, w2: Tensor, b2: Tensor, top_k: int, act: str,
                 capacity: float | None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of `mdl::moe` for (x, router_weight, w1, b1, w2, b2), given those of y and mean_prob.

    Written out by hand from a recomputed routing and recomputed expert activations (like activation
    checkpointing), in plain torch ops with no autograd inside: a custom op's kernel runs below the
    autograd dispatch key, and this way it also works under any TorchDispatchMode (FLOP counters).
    The routing itself (sort, capacity) is piecewise constant and has no gradient. With the Triton
    backend (`moe_backend`) the same formulas run on the Triton routing and permutation.
    """
    return _moe_backward_dispatch(grad_y, grad_mean_prob, x, router_weight, w1, b1, w2, b2, top_k, act, capacity)


def _moe_backward_dispatch(grad_y: Tensor, grad_mean_prob: Tensor, x: Tensor, router_weight: Tensor, w1: Tensor,
                           b1: Tensor, w2: Tensor, b2: Tensor, top_k: int, act: str,
                           capacity: float | None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    if moe_backend(x) == "triton":
        from mdl.compiler import kernels
        return kernels.moe_triton_backward(grad_y, grad_mean_prob, x, router_weight, w1, b1, w2, b2,
                                           top_k, act, capacity)
    return _moe_backward_reference(grad_y, grad_mean_prob, x, router_weight, w1, b1, w2, b2, top_k, act,
                                   capacity)


def _moe_backward_reference(grad_y: Tensor, grad_mean_prob: Tensor, x: Tensor, router_weight: Tensor, w1: Tensor,
                            b1: Tensor, w2: Tensor, b2: Tensor, top_k: int, act: str,
                            capacity: float | None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """`mdl::moe_backward` in plain torch (the reference backend)."""
    return backward_from_routing(grad_y, grad_mean_prob, x, router_weight, w1, b1, w2, b2, top_k, act,
                                 route(x, router_weight, top_k, capacity))


@moe_backward.register_kernel("cuda")
def _moe_backward_cuda(grad_y: Tensor, grad_mean_prob: Tensor, x: Tensor, router_weight: Tensor, w1: Tensor,
                       b1: Tensor, w2: Tensor, b2: Tensor, top_k: int, act: str,
                       capacity: float | None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    return _moe_backward_dispatch(grad_y, grad_mean_prob, x, router_weight, w1, b1, w2, b2, top_k, act, capacity)


@moe_backward.register_fake
def _moe_backward_fake(grad_y: Tensor, grad_mean_prob: Tensor, x: Tensor, router_weight: Tensor, w1: Tensor,
                       b1: Tensor, w2: Tensor, b2: Tensor, top_k: int, act: str,
                       capacity: float | None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    return tuple(torch.empty_like(t) for t in (x, router_weight, w1, b1, w2, b2))


def _setup_context(ctx, inputs: tuple, output: tuple) -> None:
    x, router_weight, w1, b1, w2, b2, top_k, act, capacity = inputs
    ctx.save_for_backward(x, router_weight, w1, b1, w2, b2)
    ctx.top_k, ctx.act, ctx.capacity = top_k, act, capacity
    ctx.mark_non_differentiable(output[2], output[3])  # token_fraction, dropped_fraction: counts


def _backward(ctx, grad_y: Tensor, grad_mean_prob: Tensor, _grad_token_fraction: Tensor,
              _grad_dropped_fraction: Tensor) -> tuple:
    x, router_weight, w1, b1, w2, b2 = ctx.saved_tensors
    if grad_y is None:
        grad_y = torch.zeros_like(x)
    if grad_mean_prob is None:
        grad_mean_prob = x.new_zeros(router_weight.shape[0])
    grads = torch.ops.mdl.moe_backward(grad_y, grad_mean_prob, x, router_weight, w1, b1, w2, b2,
                                       ctx.top_k, ctx.act, ctx.capacity)
    return (*grads, None, None, None)


moe.register_autograd(_backward, setup_context=_setup_context)
_register_flop_formulas()


class MoE(nn.Module):
    """LANGUAGE.md's `moe(x, experts, top_k, hidden, act, capacity, balance)`: [.., d] -> [.., d].

    Parameters: `router.weight` [E, d] (a bias-free nn.Linear) and the experts stacked along dim 0:
    w1 [E, d, h], b1 [E, h], w2 [E, h, d], b2 [E, d]; d*E + E*(d*h + h + h*d + d) values in all.
    After each forward, `aux_loss` is `balance` times the Switch load-balancing loss
    E * sum_e token_fraction[e] * mean_prob[e] (differentiable through mean_prob, so it trains the
    router), and `stats` holds detached "token_fraction" [E], "mean_prob" [E], "dropped_fraction" [].
    """

    def __init__(self, d: int, experts: int, hidden: int, top_k: int = 2, act: str = "gelu",
                 capacity: float | None = 1.25, balance: float = 0.01):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown moe activation {act!r}; expected one of {list(ACTIVATIONS)}")
        if not 1 <= top_k <= experts:
            raise ValueError(f"moe top_k={top_k} must be between 1 and experts={experts}")
        if capacity is not None and not capacity > 0:
            raise ValueError(f"moe capacity={capacity} must be positive or None")
        self.d, self.experts, self.hidden, self.top_k = d, experts, hidden, top_k
        self.act, self.capacity, self.balance = act, capacity, balance
        self.router = nn.Linear(d, experts, bias=False)
        self.w1 = nn.Parameter(torch.empty(experts, d, hidden))
        self.b1 = nn.Parameter(torch.empty(experts, hidden))
        self.w2 = nn.Parameter(torch.empty(experts, hidden, d))
        self.b2 = nn.Parameter(torch.empty(experts, d))
        self.aux_loss: Tensor = torch.zeros(())
        self.stats: dict[str, Tensor] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's defaults for every layer: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases."""
        self.router.reset_parameters()
        with torch.no_grad():
            for weight, bias, fan_in in ((self.w1, self.b1, self.d), (self.w2, self.b2, self.hidden)):
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                weight.uniform_(-bound, bound)
                bias.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        capacity = self.capacity if self.training else None  # inference is dropless: rows are independent
        y, mean_prob, token_fraction, dropped_fraction = torch.ops.mdl.moe(
            x.reshape(-1, self.d), self.router.weight, self.w1, self.b1, self.w2, self.b2,
            self.top_k, self.act, capacity)
        self.aux_loss = self.balance * self.experts * (token_fraction * mean_prob).sum()
        self.stats = {"token_fraction": token_fraction.detach(), "mean_prob": mean_prob.detach(),
                      "dropped_fraction": dropped_fraction.detach()}
        return y.reshape(x.shape)

    def extra_repr(self) -> str:
        return (f"d={self.d}, experts={self.experts}, hidden={self.hidden}, top_k={self.top_k}, "
                f"act={self.act!r}, capacity={self.capacity}, balance={self.balance}")
