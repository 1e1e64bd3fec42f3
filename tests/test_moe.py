"""The `mdl::moe` op and the `MoE` module against an independent per-token oracle and against torch itself."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from torch import Tensor, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext
from torch.fx.passes.shape_prop import ShapeProp
from torch.utils.flop_counter import FlopCounterMode

from mdl.compiler.ops.moe import MoE, moe, moe_reference


def oracle(x: Tensor, router_weight: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor,
           top_k: int, act: str, capacity: float | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """LANGUAGE.md's `moe` one token and one expert at a time, in float64."""
    x, router_weight, w1, b1, w2, b2 = (t.double() for t in (x, router_weight, w1, b1, w2, b2))
    activation = {
        "gelu": lambda v: 0.5 * v * (1 + torch.erf(v / math.sqrt(2))),
        "relu": lambda v: torch.where(v > 0, v, torch.zeros_like(v)),
        "silu": lambda v: v / (1 + torch.exp(-v)),
        "tanh": torch.tanh,
        "sigmoid": lambda v: 1 / (1 + torch.exp(-v)),
    }[act]
    n, d = x.shape
    experts = router_weight.shape[0]
    probs, choices, weights = [], [], []
    for t in range(n):
        logits = [float(x[t] @ router_weight[e]) for e in range(experts)]
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        p = [v / sum(exps) for v in exps]
        chosen = sorted(range(experts), key=lambda e, p=p: (-p[e], e))[:top_k]
        total = sum(p[e] for e in chosen)
        probs.append(p)
        choices.append(chosen)
        weights.append([p[e] if top_k == 1 else p[e] / total for e in chosen])
    limit = math.inf if capacity is None else math.ceil(capacity * n * top_k / experts)
    taken = [0] * experts
    routed = [0] * experts
    dropped = 0
    y = torch.zeros(n, d, dtype=torch.float64)
    for j in range(top_k):  # GShard priority: every first choice in token order, then every second, ...
        for t in range(n):
            e = choices[t][j]
            routed[e] += 1
            if taken[e] >= limit:
                dropped += 1
                continue
            taken[e] += 1
            hidden = activation(x[t] @ w1[e] + b1[e])
            y[t] += weights[t][j] * (hidden @ w2[e] + b2[e])
    denominator = max(n * top_k, 1)
    mean_prob = torch.tensor([sum(p[e] for p in probs) / max(n, 1) for e in range(experts)], dtype=torch.float64)
    token_fraction = torch.tensor([r / denominator for r in routed], dtype=torch.float64)
    return y, mean_prob, token_fraction, torch.tensor(dropped / denominator, dtype=torch.float64)


def make_inputs(n: int, d: int, experts: int, hidden: int, dtype: torch.dtype = torch.float32,
                seed: int = 0) -> list[Tensor]:
    """Standard-normal x; the weights scaled like nn.Linear's (1/sqrt(fan_in)) so outputs stay O(1)."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(n, d), (experts, d), (experts, d, hidden), (experts, hidden), (experts, hidden, d), (experts, d)]
    scales = [1, 1 / math.sqrt(d), 1 / math.sqrt(d), 1 / math.sqrt(d), 1 / math.sqrt(hidden), 1 / math.sqrt(hidden)]
    return [torch.randn(*s, generator=g, dtype=dtype) * c for s, c in zip(shapes, scales, strict=True)]


CASES = [  # (N, d, E, h, top_k, act, capacity)
    (7, 4, 3, 5, 1, "gelu", None),
    (7, 4, 3, 5, 2, "relu", 1.0),
    (9, 6, 4, 3, 4, "silu", 0.5),
    (5, 3, 2, 4, 2, "tanh", 2.0),
    (12, 5, 4, 6, 1, "sigmoid", 0.5),
    (10, 4, 5, 3, 3, "gelu", 1.0),
    (16, 8, 4, 8, 2, "gelu", None),
    (1, 4, 3, 5, 2, "sigmoid", 0.5),
    (1, 4, 3, 5, 1, "relu", None),
    (0, 4, 3, 5, 2, "gelu", 1.0),
    (0, 4, 3, 5, 1, "silu", None),
]


def assert_matches_oracle(inputs: list[Tensor], top_k: int, act: str, capacity: float | None,
                          atol: float) -> tuple[Tensor, ...]:
    got = moe(*inputs, top_k, act, capacity)
    want = oracle(*inputs, top_k, act, capacity)
    for name, g, w in zip(("y", "mean_prob", "token_fraction", "dropped_fraction"), got, want, strict=True):
        assert g.dtype == inputs[0].dtype and g.shape == w.shape, name
        torch.testing.assert_close(g.double(), w, atol=atol, rtol=0, msg=name)
    return got


@pytest.mark.parametrize(("n", "d", "experts", "hidden", "top_k", "act", "capacity"), CASES)
def test_op_matches_oracle(n: int, d: int, experts: int, hidden: int, top_k: int, act: str,
                           capacity: float | None) -> None:
    assert_matches_oracle(make_inputs(n, d, experts, hidden), top_k, act, capacity, atol=1e-6)
    assert_matches_oracle(make_inputs(n, d, experts, hidden, torch.float64), top_k, act, capacity, atol=1e-12)


@pytest.mark.parametrize("capacity", [None, 1.0, 0.5, 2.0])
@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_ties_go_to_the_lower_expert(top_k: int, capacity: float | None) -> None:
    x, router, *experts = make_inputs(6, 4, 4, 3)
    router = torch.zeros_like(router)  # every probability 1/4: experts 0..k-1 chosen
    _, mean_prob, token_fraction, dropped = assert_matches_oracle([x, router, *experts], top_k, "gelu",
                                                                 capacity, atol=1e-6)
    assert token_fraction.tolist() == [1 / top_k] * top_k + [0.0] * (4 - top_k)
    torch.testing.assert_close(mean_prob, torch.full((4,), 0.25))
    limit = math.inf if capacity is None else math.ceil(capacity * 6 * top_k / 4)
    assert dropped.item() == pytest.approx(top_k * max(0, 6 - limit) / (6 * top_k))


def test_partial_tie_between_equal_router_rows() -> None:
    x, router, *experts = make_inputs(8, 4, 4, 3, seed=3)
    router[2] = router[1]  # experts 1 and 2 always tie: 2 is never chosen over 1
    _, _, token_fraction, _ = assert_matches_oracle([x, router, *experts], 1, "relu", None, atol=1e-6)
    assert token_fraction[2] == 0
    assert_matches_oracle([x, router, *experts], 3, "relu", 1.0, atol=1e-6)


@pytest.mark.parametrize(("top_k", "capacity"), [(1, None), (1, 0.5), (2, None), (2, 0.5)])
def test_gradcheck(top_k: int, capacity: float | None) -> None:
    inputs = [t.requires_grad_() for t in make_inputs(5, 2, 3, 2, torch.float64, seed=top_k)]
    dropped = moe(*inputs, top_k, "gelu", capacity)[3]
    assert (dropped > 0) == (capacity is not None)  # the capacity cases do drop assignments
    assert torch.autograd.gradcheck(lambda *ts: moe(*ts, top_k, "gelu", capacity)[:2], inputs)


@pytest.mark.parametrize(("n", "d", "experts", "hidden", "top_k", "act", "capacity"), CASES)
def test_op_gradients_equal_autograd_through_the_reference(n: int, d: int, experts: int, hidden: int, top_k: int,
                                                           act: str, capacity: float | None) -> None:
    """The hand-written backward against torch's autograd through the plain-torch reference."""
    inputs = [t.requires_grad_() for t in make_inputs(n, d, experts, hidden, torch.float64, seed=7)]
    seeds = (torch.randn(n, d, dtype=torch.float64), torch.randn(experts, dtype=torch.float64))
    grads = []
    for fn in (moe, moe_reference):
        y, mean_prob, _, _ = fn(*inputs, top_k, act, capacity)
        loss = (y * seeds[0]).sum() + (mean_prob * seeds[1]).sum()
        grads.append(torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True))
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)


def test_gradients_with_tied_router_and_drops() -> None:
    x, router, *experts = make_inputs(6, 4, 4, 3, torch.float64)
    inputs = [t.requires_grad_() for t in (x, torch.zeros_like(router), *experts)]
    grads = [torch.autograd.grad(fn(*inputs, 2, "relu", 0.5)[0].square().sum(), inputs, materialize_grads=True)
             for fn in (moe, moe_reference)]
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("op", ["moe", "moe_backward"])
def test_opcheck(op: str) -> None:
    """torch.library's own checks: schema, autograd registration, fake kernel, AOT dispatch with dynamic shapes."""
    inputs = make_inputs(5, 2, 3, 2, seed=1)
    if op == "moe":
        torch.library.opcheck(moe, (*[t.requires_grad_() for t in inputs], 2, "gelu", 0.5))
    else:
        grads = (torch.randn(5, 2), torch.randn(3))
        torch.library.opcheck(torch.ops.mdl.moe_backward.default, (*grads, *inputs, 2, "gelu", 0.5))


def test_backward_under_a_dispatch_mode() -> None:
    """The backward has no autograd or functorch inside, so dispatch modes (FLOP counters) see plain ops."""
    m = MoE(4, 3, 5)
    x = torch.randn(6, 4, requires_grad=True)
    with FlopCounterMode(display=False):
        (m(x).sum() + m.aux_loss).backward()
    assert x.grad is not None and m.router.weight.grad is not None


def test_fractions_are_not_differentiable() -> None:
    inputs = [t.requires_grad_() for t in make_inputs(4, 3, 2, 2)]
    y, mean_prob, token_fraction, dropped = moe(*inputs, 1, "gelu", 1.0)
    assert y.requires_grad and mean_prob.requires_grad
    assert not token_fraction.requires_grad and not dropped.requires_grad


def test_balance_loss_by_hand() -> None:
    # Router = identity, so probs are softmax(x): rows (3/4, 1/4), (3/4, 1/4), (1/4, 3/4), (1/2, 1/2).
    # top-1: experts 0, 0, 1, 0 (the tie goes to expert 0), token_fraction = (3/4, 1/4);
    # mean_prob = ((3/4 + 3/4 + 1/4 + 1/2) / 4, (1/4 + 1/4 + 3/4 + 1/2) / 4) = (0.5625, 0.4375);
    # loss = E * sum(token_fraction * mean_prob) = 2 * (0.75 * 0.5625 + 0.25 * 0.4375) = 1.0625.
    m = MoE(2, 2, 3, top_k=1, capacity=1.0, balance=0.01)
    with torch.no_grad():
        m.router.weight.copy_(torch.eye(2))
    ln3 = math.log(3)
    x = torch.tensor([[ln3, 0.0], [ln3, 0.0], [0.0, ln3], [0.0, 0.0]])
    m(x)
    torch.testing.assert_close(m.stats["token_fraction"], torch.tensor([0.75, 0.25]))
    torch.testing.assert_close(m.stats["mean_prob"], torch.tensor([0.5625, 0.4375]))
    torch.testing.assert_close(m.aux_loss, torch.tensor(0.01 * 1.0625))
    # capacity ceil(1.0 * 4 * 1 / 2) = 2: expert 0 takes tokens 0 and 1, token 3 is dropped
    assert m.stats["dropped_fraction"].item() == 0.25
    # the loss trains the router through mean_prob only
    m.aux_loss.backward()
    router = m.router.weight.detach().clone().requires_grad_()
    by_hand = 0.01 * 2 * (torch.tensor([0.75, 0.25]) * torch.softmax(x @ router.T, -1).mean(0)).sum()
    (want,) = torch.autograd.grad(by_hand, router)
    torch.testing.assert_close(m.router.weight.grad, want)
    assert m.w1.grad is None or not m.w1.grad.any()


def test_eval_rows_do_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    m = MoE(8, 4, 16, top_k=2, capacity=0.25)
    x = torch.randn(32, 8)
    m.eval()
    with torch.no_grad():
        alone = m(x[:1])
        together = m(x)
    assert m.stats["dropped_fraction"].item() == 0
    torch.testing.assert_close(together[:1], alone, atol=1e-6, rtol=1e-6)
    m.train()
    with torch.no_grad():
        trained = m(x)
    assert m.stats["dropped_fraction"].item() > 0
    differs = (trained - together).abs().amax(dim=-1) > 1e-6
    assert differs.any() and not differs.all()


def test_module_shapes_and_leading_dims() -> None:
    m = MoE(6, 3, 5, top_k=2)
    x = torch.randn(2, 3, 4, 6)
    y = m(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y.reshape(-1, 6), m(x.reshape(-1, 6)))
    assert set(m.stats) == {"token_fraction", "mean_prob", "dropped_fraction"}
    assert all(not t.requires_grad for t in m.stats.values())
    assert m.aux_loss.shape == () and m.aux_loss.requires_grad


@pytest.mark.parametrize(("d", "experts", "hidden"), [(8, 4, 32), (5, 1, 3), (16, 3, 7)])
def test_parameter_count_and_names(d: int, experts: int, hidden: int) -> None:
    m = MoE(d, experts, hidden, top_k=1)
    assert sum(p.numel() for p in m.parameters()) == d * experts + experts * (d * hidden + hidden + hidden * d + d)
    assert set(m.state_dict()) == {"router.weight", "w1", "b1", "w2", "b2"}
    assert m.router.weight.shape == (experts, d) and m.router.bias is None
    assert (m.w1.shape, m.b1.shape, m.w2.shape, m.b2.shape) == (
        (experts, d, hidden), (experts, hidden), (experts, hidden, d), (experts, d))


def test_init_bounds_and_repr() -> None:
    torch.manual_seed(0)
    m = MoE(16, 4, 64, top_k=2, act="silu", capacity=None, balance=0.1)
    for p, fan_in in ((m.router.weight, 16), (m.w1, 16), (m.b1, 16), (m.w2, 64), (m.b2, 64)):
        bound = 1 / math.sqrt(fan_in)
        assert p.abs().max() <= bound and p.abs().max() > 0.9 * bound
    before = m.w1.detach().clone()
    m.reset_parameters()
    assert not torch.equal(before, m.w1)
    assert "d=16, experts=4, hidden=64, top_k=2, act='silu', capacity=None, balance=0.1" in repr(m)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="activation"):
        MoE(4, 2, 4, act="swish")
    with pytest.raises(ValueError, match="top_k"):
        MoE(4, 2, 4, top_k=3)
    with pytest.raises(ValueError, match="capacity"):
        MoE(4, 2, 4, capacity=0.0)
    with pytest.raises(ValueError, match="activation"):
        moe(*make_inputs(2, 4, 2, 4), 1, "swish", None)


def test_half_precision_routes_in_float32() -> None:
    inputs = make_inputs(16, 8, 4, 8)
    y, mean_prob, token_fraction, dropped = moe(*(t.bfloat16() for t in inputs), 2, "gelu", None)
    assert {t.dtype for t in (y, mean_prob, token_fraction, dropped)} == {torch.bfloat16}
    want = moe(*inputs, 2, "gelu", None)[0]
    assert (y.float() - want).abs().max() < 0.1 * want.abs().max()
    half = [t.bfloat16().requires_grad_() for t in inputs]
    moe(*half, 2, "gelu", None)[0].sum().backward()
    full = [t.requires_grad_() for t in inputs]
    moe(*full, 2, "gelu", None)[0].sum().backward()
    for h, f in zip(half, full, strict=True):
        assert h.grad.dtype == torch.bfloat16
        assert (h.grad.float() - f.grad).abs().max() < 0.1 * f.grad.abs().max()


def test_reference_is_self_contained() -> None:
    """The standalone `.py` export inlines `moe_reference`'s source next to `import math, torch` only."""
    namespace = {"torch": torch, "math": math}
    exec(inspect.getsource(moe_reference), namespace)
    inputs = make_inputs(9, 4, 3, 5)
    for a, b in zip(namespace["moe_reference"](*inputs, 2, "gelu", 1.0), moe(*inputs, 2, "gelu", 1.0), strict=True):
        assert torch.equal(a, b)


class CallsTheOp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = MoE(4, 3, 5, top_k=2)

    def forward(self, x: Tensor) -> Tensor:
        m = self.inner
        y, mean_prob, _, _ = torch.ops.mdl.moe(x, m.router.weight, m.w1, m.b1, m.w2, m.b2, 2, "gelu", 1.25)
        return y + mean_prob.sum()


def test_shape_prop_with_a_symbolic_token_count() -> None:
    gm = torch.fx.symbolic_trace(CallsTheOp())
    moe_ops = (torch.ops.mdl.moe, torch.ops.mdl.moe.default)
    assert [n.target in moe_ops for n in gm.graph.nodes].count(True) == 1  # DESIGN.md rule 5: one node
    fake_mode = FakeTensorMode(shape_env=ShapeEnv())
    context = StatelessSymbolicContext(dynamic_sizes=[DimDynamic.DYNAMIC, DimDynamic.STATIC])
    x = fake_mode.from_tensor(torch.randn(7, 4), symbolic_context=context)
    assert isinstance(x.shape[0], torch.SymInt)
    ShapeProp(gm, fake_mode=fake_mode).propagate(x)
    metas = {n.name: n.meta["tensor_meta"] for n in gm.graph.nodes if "tensor_meta" in n.meta}
    moe_node = next(n for n in gm.graph.nodes if n.target in moe_ops)
    y_meta, mean_meta, fraction_meta, dropped_meta = moe_node.meta["tensor_meta"]
    assert isinstance(y_meta.shape[0], torch.SymInt) and y_meta.shape[1] == 4
    assert tuple(mean_meta.shape) == (3,) and tuple(fraction_meta.shape) == (3,) and tuple(dropped_meta.shape) == ()
    assert isinstance(metas["output"].shape[0], torch.SymInt)


def test_shape_prop_of_the_module_as_a_leaf() -> None:
    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m: nn.Module, name: str) -> bool:
            return isinstance(m, MoE) or super().is_leaf_module(m, name)

    root = nn.Sequential(MoE(4, 3, 5), nn.Linear(4, 2))
    gm = torch.fx.GraphModule(root, Tracer().trace(root))
    fake_mode = FakeTensorMode(shape_env=ShapeEnv())
    context = StatelessSymbolicContext(dynamic_sizes=[DimDynamic.DYNAMIC, DimDynamic.STATIC, DimDynamic.STATIC])
    ShapeProp(gm, fake_mode=fake_mode).propagate(fake_mode.from_tensor(torch.randn(5, 16, 4), symbolic_context=context))
    shapes = {n.name: n.meta["tensor_meta"].shape for n in gm.graph.nodes if n.op == "call_module"}
    assert isinstance(shapes["_0"][0], torch.SymInt) and tuple(shapes["_0"][1:]) == (16, 4)
    assert tuple(shapes["_1"][1:]) == (16, 2)


def forward_backward(m: MoE, x: Tensor) -> list[Tensor]:
    x = x.clone().requires_grad_()
    y = m(x)
    m.zero_grad()
    ((y * y).sum() + m.aux_loss).backward()
    return [y.detach(), m.aux_loss.detach(), x.grad, *(p.grad for p in m.parameters())]


def test_deterministic() -> None:
    torch.manual_seed(0)
    m = MoE(8, 4, 16, top_k=2, capacity=0.5)
    x = torch.randn(64, 8)
    first, second = forward_backward(m, x), forward_backward(m, x)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("training", [True, False])
def test_torch_compile_matches_eager(training: bool) -> None:
    torch.manual_seed(0)
    m = MoE(8, 4, 16, top_k=2, capacity=0.5).train(training)
    compiled = torch.compile(m, backend="aot_eager", fullgraph=True)
    for n in (12, 20):  # a second token count recompiles or reuses a dynamic graph; both must be right
        x = torch.randn(n, 8)
        eager = forward_backward(m, x)
        eager_stats = dict(m.stats)
        got = forward_backward(compiled, x)
        for a, b in zip(got, eager, strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
        for key, value in eager_stats.items():
            torch.testing.assert_close(m.stats[key], value)
