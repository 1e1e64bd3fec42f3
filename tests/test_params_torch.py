"""Static parameter counts equal torch's.

For hand-written designs that together use every primitive, the equivalent torch modules are built by
hand here (torch's own layers where torch has them, LANGUAGE.md's definitions otherwise) and counted
with `sum(p.numel() for p in module.parameters())`: the compiler's total, and each graph node's count,
must equal torch's. Also: checking and compiling a design never imports torch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from mdl.compiler.api import compile_source
from mdl.compiler.primitives import PRIMITIVES

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "moe_2048.mdl"


# --------------------------------------------------------------------- torch modules by hand
class MLP(nn.Module):
    """LANGUAGE.md's `mlp`: linear, activation, linear."""

    def __init__(self, d: int, hidden: int, out: int | None = None, act: type[nn.Module] = nn.GELU):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.act = act()
        self.fc2 = nn.Linear(hidden, d if out is None else out)


class MoE(nn.Module):
    """LANGUAGE.md's `moe`: a bias-free linear router and `experts` expert MLPs of width d -> hidden -> d."""

    def __init__(self, d: int, experts: int, hidden: int, act: type[nn.Module] = nn.GELU):
        super().__init__()
        self.router = nn.Linear(d, experts, bias=False)
        self.experts = nn.ModuleList(MLP(d, hidden, act=act) for _ in range(experts))


class LearnedPositions(nn.Module):
    def __init__(self, length: int, d: int):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(length, d))


class SinusoidalPositions(nn.Module):
    def __init__(self, length: int, d: int):
        super().__init__()
        self.register_buffer("table", torch.zeros(length, d))  # fixed: a buffer, not a parameter


class NoParams(nn.Module):
    """A reduction, reshape or concat: torch has no module for it, and it has no parameters."""


def attention(d: int, heads: int, dropout: float = 0.0) -> nn.Module:
    return nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)  # biases on: 4*d*d + 4*d


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------------------- designs
# Each design: its source, and for every primitive node of its graph in order, the op and its module.
DENSE = """
model Dense {
    input obs: float[B, 12]
    x = obs -> linear(out=32) -> layer_norm -> relu
    x = x -> linear(out=24, bias=false) -> rms_norm(eps=1e-5) -> gelu -> dropout(p=0.1)
    x = x -> mlp(hidden=48, out=48) -> glu -> silu
    h = x -> mlp(hidden=16, out=8, act="tanh") -> sigmoid -> tanh -> softmax
    output policy = h -> linear(out=4)
    output value = h -> linear(out=1, bias=false)
}
"""


def dense() -> list[tuple[str, nn.Module]]:
    return [
        ("linear", nn.Linear(12, 32)), ("layer_norm", nn.LayerNorm(32)), ("relu", nn.ReLU()),
        ("linear", nn.Linear(32, 24, bias=False)), ("rms_norm", nn.RMSNorm(24, eps=1e-5)), ("gelu", nn.GELU()),
        ("dropout", nn.Dropout(0.1)),
        ("mlp", MLP(24, 48, 48)), ("glu", nn.GLU()), ("silu", nn.SiLU()),
        ("mlp", MLP(24, 16, 8, act=nn.Tanh)), ("sigmoid", nn.Sigmoid()), ("tanh", nn.Tanh()),
        ("softmax", nn.Softmax(dim=-1)),
        ("linear", nn.Linear(8, 4)), ("linear", nn.Linear(8, 1, bias=False)),
    ]


TRANSFORMER = """
import stdlib.blocks

block encoder(x, heads: int, hidden: int) {
    x = x + (x -> layer_norm -> attention(heads=heads, dropout=0.1))
    return x + (x -> layer_norm -> mlp(hidden=hidden, out=dim(x)))
}

model Transformer(d: int = 32, layers: int = 2) {
    input board: int[B, 4, 4]
    x = board -> flatten(start=1) -> embedding(vocab=16, dim=d) -> pos_encoding(kind="learned")
    repeat layers as i {
        x = encoder(x, heads=2 + 2 * i, hidden=4 * d)
    }
    x = transformer_layer(x, heads=8, hidden=64)
    h = x -> layer_norm -> mean(dim=1)
    output policy = h -> linear(out=4)
    output value = value_head(h, hidden=16)
}
"""


def transformer() -> list[tuple[str, nn.Module]]:
    d = 32
    layers = []
    for heads in (2, 4):
        layers += [("layer_norm", nn.LayerNorm(d)), ("attention", attention(d, heads, 0.1)),
                   ("layer_norm", nn.LayerNorm(d)), ("mlp", MLP(d, 4 * d, d))]
    return [
        ("flatten", nn.Flatten(1)), ("embedding", nn.Embedding(16, d)), ("pos_encoding", LearnedPositions(16, d)),
        *layers,
        ("layer_norm", nn.LayerNorm(d)), ("attention", attention(d, 8)), ("layer_norm", nn.LayerNorm(d)),
        ("mlp", MLP(d, 64)),
        ("layer_norm", nn.LayerNorm(d)), ("mean", NoParams()),
        ("linear", nn.Linear(d, 4)),
        ("linear", nn.Linear(d, 16)), ("tanh", nn.Tanh()), ("linear", nn.Linear(16, 1)),
    ]


EXPERTS = """
model Experts {
    input seq: float[B, 8, 24]
    x = seq -> pos_encoding(kind="sinusoidal") -> rms_norm
    x = x + (x -> moe(experts=3, top_k=1, hidden=32))
    x = x + (x -> moe(experts=4, top_k=4, hidden=16, capacity=none, act="relu"))
    x = x + moe(x, experts=1, top_k=1, hidden=8, capacity=2.0, balance=0.0)
    x = x -> moe(experts=2, hidden=64)
    y = x -> max(dim=1)
    z = x -> sum(dim=-2)
    f = x -> reshape(shape=[B, 2, 96]) -> flatten(start=1)
    c = concat(y, z, dim=-1)
    output policy = concat(c, f) -> linear(out=5)
    output value = c -> mlp(hidden=16, out=1)
}
"""


def experts() -> list[tuple[str, nn.Module]]:
    d = 24
    return [
        ("pos_encoding", SinusoidalPositions(8, d)), ("rms_norm", nn.RMSNorm(d)),
        ("moe", MoE(d, 3, 32)), ("moe", MoE(d, 4, 16, act=nn.ReLU)), ("moe", MoE(d, 1, 8)), ("moe", MoE(d, 2, 64)),
        ("max", NoParams()), ("sum", NoParams()), ("reshape", NoParams()), ("flatten", nn.Flatten(1)),
        ("concat", NoParams()), ("concat", NoParams()), ("linear", nn.Linear(2 * d + 8 * d, 5)),
        ("mlp", MLP(2 * d, 16, 1)),
    ]


def moe_2048() -> list[tuple[str, nn.Module]]:
    """examples/moe_2048.mdl, the example of LANGUAGE.md."""
    d, layers = 128, []
    for _ in range(2):
        layers += [("layer_norm", nn.LayerNorm(d)), ("attention", attention(d, 4)),
                   ("layer_norm", nn.LayerNorm(d)), ("moe", MoE(d, 4, 4 * d))]
    return [
        ("flatten", nn.Flatten(1)), ("embedding", nn.Embedding(16, d)), ("pos_encoding", LearnedPositions(16, d)),
        *layers,
        ("layer_norm", nn.LayerNorm(d)), ("mean", NoParams()), ("linear", nn.Linear(d, 4)), ("linear", nn.Linear(d, 1)),
    ]


DESIGNS = {
    "dense": (DENSE, dense),
    "transformer": (TRANSFORMER, transformer),
    "experts": (EXPERTS, experts),
    "moe_2048": (EXAMPLE.read_text(encoding="utf-8"), moe_2048),
}


@pytest.mark.parametrize("name", DESIGNS)
def test_static_parameter_counts_equal_torchs(name: str) -> None:
    source, build = DESIGNS[name]
    compiled = compile_source(source)
    assert compiled.diagnostics == []
    expected = build()
    assert compiled.params == count(nn.ModuleList(m for _, m in expected))
    nodes = [n for n in compiled.ir.nodes if n.op in PRIMITIVES]
    assert [n.op for n in nodes] == [op for op, _ in expected]
    for node, (_, module) in zip(nodes, expected, strict=True):
        assert node.params == count(module), f"{node.name}: {node.params} != torch's {count(module)}"
    others = [n for n in compiled.ir.nodes if n.op not in PRIMITIVES]
    assert all(n.params == 0 for n in others)


def test_the_designs_cover_every_primitive() -> None:
    used = {op for _, build in DESIGNS.values() for op, _ in build()}
    assert used == set(PRIMITIVES)


def test_the_language_example_has_1_192_837_parameters() -> None:
    assert compile_source(EXAMPLE.read_text(encoding="utf-8")).params == 1_192_837


def test_checking_and_compiling_do_not_import_torch() -> None:
    # In a fresh interpreter: pytest itself has imported torch by now.
    code = (
        "import sys, mdl\n"
        "src = open(sys.argv[1], encoding='utf-8').read()\n"
        "assert mdl.check_source(src) == []\n"
        "assert mdl.compile_source(src).params == 1192837\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(EXAMPLE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
