"""Parameters, FLOPs and memory of a graph, from the IR alone.

Conventions (stated once, used everywhere):

- **Parameters** follow LANGUAGE.md's formulas exactly; they equal
  `sum(p.numel() for p in module.parameters())` of the lowered module.
- **FLOPs** are forward FLOPs for one sample (the batch dimension `B` set to 1). A multiply-add is 2
  FLOPs; elementwise ops cost 1 FLOP per output element (activations, residual adds, dropout, the
  learned position add), normalisations 5 (layer_norm) or 4 (rms_norm) per element, softmax 5 per
  element, reductions 1 per input element; lookups and reshapes are free. Attention counts the Q/K/V
  and output projections, the score and weighted-sum products and the softmax; MoE counts the router,
  its softmax, the `top_k` expert MLPs each token visits and the weighted combine. A shape with a
  symbolic dim other than `B` has no FLOP count (None).
- **Memory** is in bytes at fp32 (4 bytes per value) for a batch of `batch` samples. Training holds
  the parameters, their gradients, Adam's two moments (4x the parameters in all) and every node's
  output saved for backward, plus attention's score matrices and MoE's expert hidden activations.
  Inference holds the parameters and the largest input+output pair of any one node.
"""

from __future__ import annotations

from dataclasses import dataclass

from mdl.compiler.ir import Graph, Node, TensorType

BYTES = 4  # fp32
BATCH = "B"


def numel(t: TensorType, batch: int = 1) -> int | None:
    """Elements of a tensor with the batch dim set to `batch`; None if another dim is symbolic."""
    n = 1
    for d in t.shape:
        if isinstance(d, int):
            n *= d
        elif d == BATCH:
            n *= batch
        else:
            return None
    return n


def count_params(op: str, inputs: list[TensorType], attrs: dict, out: TensorType) -> int:
    """LANGUAGE.md's parameter formula for one primitive."""
    d = inputs[0].shape[-1] if inputs and inputs[0].rank else 0
    if op == "embedding":
        return attrs["vocab"] * attrs["dim"]
    if op == "linear":
        return d * attrs["out"] + (attrs["out"] if attrs["bias"] else 0)
    if op == "layer_norm":
        return 2 * d
    if op == "rms_norm":
        return d
    if op == "attention":
        return 4 * d * d + 4 * d
    if op == "pos_encoding":
        return inputs[0].shape[1] * d if attrs["kind"] == "learned" else 0
    if op == "mlp":
        h = attrs["hidden"]
        o = out.shape[-1]
        return d * h + h + h * o + o
    if op == "moe":
        e, h = attrs["experts"], attrs["hidden"]
        return d * e + e * (d * h + h + h * d + d)
    return 0


def count_flops(op: str, inputs: list[TensorType], attrs: dict, out: TensorType) -> int | None:
    """Forward FLOPs of one primitive for one sample (see the module docstring)."""
    n_out = numel(out)
    n_in = numel(inputs[0]) if inputs else 0
    if n_out is None or n_in is None:
        return None
    d = inputs[0].shape[-1] if inputs and inputs[0].rank else 1
    tokens = n_in // d if isinstance(d, int) and d else 0
    if op in ("embedding", "flatten", "reshape", "concat", "input"):
        return 0
    if op == "linear":
        return 2 * tokens * d * attrs["out"] + (n_out if attrs["bias"] else 0)
    if op == "layer_norm":
        return 5 * n_out
    if op == "rms_norm":
        return 4 * n_out
    if op == "softmax":
        return 5 * n_out
    if op in ("mean", "sum", "max"):
        return n_in
    if op == "pos_encoding":
        return n_out
    if op == "attention":
        t = inputs[0].shape[1]
        heads = attrs["heads"]
        projections = 2 * t * d * 3 * d + 2 * t * d * d + 4 * t * d
        mixing = 2 * (2 * t * t * d)
        return projections + mixing + 5 * heads * t * t
    if op == "mlp":
        h, o = attrs["hidden"], out.shape[-1]
        return tokens * (2 * d * h + h + h + 2 * h * o + o)
    if op == "moe":
        e, h, k = attrs["experts"], attrs["hidden"], attrs["top_k"]
        router = tokens * (2 * d * e + 5 * e)
        expert = 2 * d * h + h + h + 2 * h * d + d
        return router + tokens * k * expert + tokens * k * 2 * d
    return n_out  # elementwise: activations, dropout, arithmetic


def _extra_training_values(node: Node, inputs: list[TensorType], batch: int) -> int | None:
    """Values saved for backward inside a primitive, beyond its output."""
    if node.op == "attention":
        b_t = numel(TensorType("float", inputs[0].shape[:-1]), batch)
        t = inputs[0].shape[1]
        if b_t is None or not isinstance(t, int):
            return None
        return 2 * b_t * node.attrs["heads"] * t + 3 * numel(inputs[0], batch)  # scores+probs, q/k/v
    if node.op == "moe":
        tokens = numel(TensorType("float", inputs[0].shape[:-1]), batch)
        if tokens is None:
            return None
        return 2 * tokens * node.attrs["top_k"] * node.attrs["hidden"]
    if node.op == "mlp":
        tokens = numel(TensorType("float", inputs[0].shape[:-1]), batch)
        return None if tokens is None else 2 * tokens * node.attrs["hidden"]
    return 0


@dataclass(frozen=True, slots=True)
class Memory:
    """Bytes at fp32 for `batch` samples; any field may be None when a dim other than B is symbolic."""

    batch: int
    params: int
    gradients: int
    optimizer: int
    activations: int | None
    training: int | None
    inference: int | None

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


def memory(graph: Graph, batch: int = 1) -> Memory:
    p = graph.params * BYTES
    saved: int | None = 0
    peak: int | None = 0
    for node in graph.nodes:
        ins = [graph.nodes[i].type for i in node.inputs]
        out = numel(node.type, batch)
        extra = _extra_training_values(node, ins, batch)
        in_sizes = [numel(t, batch) for t in ins]
        if out is None or extra is None or any(s is None for s in in_sizes):
            saved = peak = None
            break
        saved += out + extra
        peak = max(peak, out + sum(in_sizes))  # type: ignore[arg-type]
    activations = None if saved is None else saved * BYTES
    training = None if activations is None else 4 * p + activations
    inference = None if peak is None else p + peak * BYTES
    return Memory(batch, p, p, 2 * p, activations, training, inference)


def total_flops(graph: Graph) -> int | None:
    total = 0
    for n in graph.nodes:
        if n.flops is None:
            return None
        total += n.flops
    return total


@dataclass(frozen=True, slots=True)
class BlockCost:
    path: str
    block: str
    depth: int
    params: int
    flops: int | None
    line: int


def block_costs(graph: Graph) -> list[BlockCost]:
    """Totals per block call, in call order (a block inside a block counts in both)."""
    out = []
    for call in graph.calls:
        nodes = graph.nodes_in(call.path)
        flops = None if any(n.flops is None for n in nodes) else sum(n.flops or 0 for n in nodes)
        out.append(BlockCost(call.path, call.block, call.depth, sum(n.params for n in nodes), flops,
                             call.span.line))
    return out


def format_count(n: int | None) -> str:
    """A count as `mdlc compile` and the editor show FLOPs: `10.73M`, `2.05k`, `257`; `?` when unknown."""
    if n is None:
        return "?"
    for unit, scale in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)
