"""The Triton backend of `mdl::moe` (mdl.compiler.kernels) against the reference, under Triton's CPU interpreter.

TRITON_INTERPRET=1 is set before triton is imported, so the kernels run on CPU tensors (this is how CI
tests them; a GPU run needs no change). Shapes are small and the kernels' blocks large, so each launch
is a handful of interpreted programs. The interpreter's bf16 tl.dot is wrong, so only float32 and
float16 are checked here.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

pytest.importorskip("triton")

import torch
from test_moe import make_inputs
from torch import Tensor

from mdl.compiler import kernels
from mdl.compiler.ops.moe import moe_backend, moe_reference

N, HIDDEN = 40, 48  # hidden not a power of two: the column masks are exercised
TOLERANCE = {torch.float32: 1e-5, torch.float16: 1e-2}
OUTPUTS = ("y", "mean_prob", "token_fraction", "dropped_fraction")
GRADS = ("x", "router_weight", "w1", "b1", "w2", "b2")

pytestmark = pytest.mark.skipif(not kernels.available(), reason="Triton kernels cannot run here")


def run_op(backend: str, inputs: list[Tensor], top_k: int, act: str, capacity: float | None,
           monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """torch.ops.mdl.moe forced onto `backend`: the four outputs and the six input gradients."""
    monkeypatch.setenv("MDL_MOE_BACKEND", backend)
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    outs = torch.ops.mdl.moe(*leaves, top_k, act, capacity)
    g = torch.Generator().manual_seed(1)
    seed_y = torch.randn(outs[0].shape, generator=g).to(outs[0].dtype)
    seed_p = torch.randn(outs[1].shape, generator=g).to(outs[1].dtype)
    loss = (outs[0].float() * seed_y.float()).sum() + (outs[1].float() * seed_p.float()).sum()
    grads = torch.autograd.grad(loss, leaves)
    return tuple(o.detach() for o in outs), grads


CASES = [(d, e, k, cap) for d in (32, 64) for e in (4, 8) for k in (1, 2) for cap in (None, 1.0)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize(("d", "experts", "top_k", "capacity"), CASES)
def test_triton_equals_reference(d: int, experts: int, top_k: int, capacity: float | None, dtype: torch.dtype,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Forward (all four outputs) and the input and weight gradients, through the op, both backends."""
    act = ("gelu", "silu", "relu", "tanh", "sigmoid")[(d // 32 + experts + top_k) % 5]
    inputs = make_inputs(N, d, experts, HIDDEN, dtype, seed=d + experts + top_k)
    want_out, want_grad = run_op("reference", inputs, top_k, act, capacity, monkeypatch)
    got_out, got_grad = run_op("triton", inputs, top_k, act, capacity, monkeypatch)
    tol = TOLERANCE[dtype]
    for name, g, w in zip(OUTPUTS, got_out, want_out, strict=True):
        assert g.dtype == dtype and g.shape == w.shape, name
        torch.testing.assert_close(g, w, atol=tol, rtol=tol, msg=name)
    if capacity is not None:
        assert want_out[3] > 0  # the capacity cases do drop assignments
    for name, g, w in zip(GRADS, got_grad, want_grad, strict=True):
        assert g.dtype == dtype and g.shape == w.shape, name
        torch.testing.assert_close(g, w, atol=tol, rtol=tol, msg=f"grad {name}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize(("top_k", "capacity"), [(1, None), (2, 1.0)])
def test_repeated_runs_are_bitwise_identical(top_k: int, capacity: float | None, dtype: torch.dtype) -> None:
    inputs = make_inputs(N, 32, 4, HIDDEN, dtype, seed=5)
    grad_y, grad_p = torch.randn(N, 32).to(dtype), torch.randn(4).to(dtype)
    runs = [(kernels.moe_triton(*inputs, top_k, "gelu", capacity),
             kernels.moe_triton_backward(grad_y, grad_p, *inputs, top_k, "gelu", capacity)) for _ in range(2)]
    for first, second in zip(*(out + grad for out, grad in runs), strict=True):
        assert torch.equal(first, second)


@pytest.mark.parametrize(("top_k", "capacity"), [(1, None), (2, None), (2, 1.0), (1, 0.5)])
def test_ties_go_to_the_lowest_expert(top_k: int, capacity: float | None) -> None:
    x, router, *experts = make_inputs(24, 32, 4, HIDDEN, seed=2)
    router = torch.zeros_like(router)  # every probability 1/4: experts 0..k-1 chosen by every token
    got = kernels.moe_triton(x, router, *experts, top_k, "relu", capacity)
    want = moe_reference(x, router, *experts, top_k, "relu", capacity)
    assert got[2].tolist() == [1 / top_k] * top_k + [0.0] * (4 - top_k)
    for name, g, w in zip(OUTPUTS, got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5, msg=name)


def test_partial_tie_between_equal_router_rows() -> None:
    x, router, *experts = make_inputs(24, 32, 4, HIDDEN, seed=3)
    router[2] = router[1]  # experts 1 and 2 always tie: 2 is never chosen over 1
    for top_k in (1, 2):
        got = kernels.moe_triton(x, router, *experts, top_k, "silu", None)
        want = moe_reference(x, router, *experts, top_k, "silu", None)
        if top_k == 1:
            assert got[2][2] == 0
        for name, g, w in zip(OUTPUTS, got, want, strict=True):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5, msg=name)


def test_backend_env_forces_the_triton_path_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"forward": 0, "backward": 0}
    forward, backward = kernels.moe_triton, kernels.moe_triton_backward

    def counted_forward(*args):
        calls["forward"] += 1
        return forward(*args)

    def counted_backward(*args):
        calls["backward"] += 1
        return backward(*args)

    monkeypatch.setattr(kernels, "moe_triton", counted_forward)
    monkeypatch.setattr(kernels, "moe_triton_backward", counted_backward)
    inputs = [t.requires_grad_() for t in make_inputs(24, 32, 4, HIDDEN)]

    monkeypatch.delenv("MDL_MOE_BACKEND", raising=False)
    assert moe_backend(inputs[0]) == "reference"  # CPU tensors, nothing forced
    torch.ops.mdl.moe(*inputs, 2, "gelu", 1.0)[0].sum().backward()
    assert calls == {"forward": 0, "backward": 0}

    monkeypatch.setenv("MDL_MOE_BACKEND", "triton")
    assert moe_backend(inputs[0]) == "triton"
    torch.ops.mdl.moe(*inputs, 2, "gelu", 1.0)[0].sum().backward()
    assert calls == {"forward": 1, "backward": 1}

    monkeypatch.setenv("MDL_MOE_BACKEND", "reference")
    torch.ops.mdl.moe(*inputs, 2, "gelu", 1.0)
    assert calls == {"forward": 1, "backward": 1}

    monkeypatch.setenv("MDL_MOE_BACKEND", "cutlass")
    with pytest.raises(ValueError, match="MDL_MOE_BACKEND"):
        torch.ops.mdl.moe(*inputs, 2, "gelu", 1.0)


def test_empty_batch_and_bad_arguments() -> None:
    inputs = make_inputs(0, 32, 4, HIDDEN)
    got = kernels.moe_triton(*inputs, 2, "gelu", 1.0)
    want = moe_reference(*inputs, 2, "gelu", 1.0)
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)
    with pytest.raises(ValueError, match="top_k"):
        kernels.moe_triton(*make_inputs(4, 32, 4, HIDDEN), 5, "gelu", None)
    with pytest.raises(ValueError, match="activation"):
        kernels.moe_triton(*make_inputs(4, 32, 4, HIDDEN), 1, "swish", None)
