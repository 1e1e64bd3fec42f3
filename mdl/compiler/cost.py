"""Parameters, FLOPs and memory of a graph, from the IR alone.

Conventions (stated once, used everywhere):

Each primitive's own formulas are its `params`, `flops` and `saved` rules (mdl.compiler.primitives);
this module states the conventions they follow and adds them up over a graph.

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
from mdl.compiler.primitives import PRIMITIVES
from mdl.compiler.shapes import Site
from mdl.compiler.shapes import numel as numel  # elements at a batch size: the figures' unit

BYTES = 4  # fp32


def _saved(node: Node, inputs: list[TensorType], batch: int) -> int | None:
    """Values saved for backward inside a primitive, beyond its output (its `saved` rule)."""
    prim = PRIMITIVES.get(node.op)
    return 0 if prim is None else prim.saved(Site(node.op, tuple(inputs), node.attrs, node.type), batch)


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
        extra = _saved(node, ins, batch)
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
