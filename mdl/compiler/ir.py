"""The graph IR: one node per primitive, fully elaborated (consts folded, blocks inlined, `repeat`
unrolled). Every consumer — parameter counts, shapes, inlay hints, lowering, checkpoint metadata —
reads this and nothing else (DESIGN.md, rule 1). It imports no torch.

Shapes are tuples of dims; a dim is an `int` or a symbolic name (`"B"` is the batch). A symbolic
product such as a flattened `[B, T, 4]` is written `"T*4"`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mdl.dsl.ast import Span

Dim = int | str


@dataclass(frozen=True, slots=True)
class TensorType:
    dtype: str  # "float" or "int"
    shape: tuple[Dim, ...]

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(slots=True)
class Node:
    """One primitive application (or a model input, or elementwise arithmetic).

    `name` is unique in the graph and readable: the path of block calls and `repeat` indices, then the
    op (or the output's name), e.g. `layers.0.encoder_layer.attention`. `scope` holds the path of the
    innermost block call the node sits in (empty at model level); per-block totals use name prefixes.
    """

    id: int
    name: str
    op: str
    inputs: tuple[int, ...]
    attrs: dict[str, Any]
    type: TensorType
    span: Span
    scope: tuple[str, ...] = ()
    params: int = 0
    flops: int | None = 0  # forward FLOPs per sample (see mdl.compiler.cost); None if a dim is symbolic

    def to_json(self) -> dict:
        return {
            "id": self.id, "name": self.name, "op": self.op, "inputs": list(self.inputs),
            "attrs": {k: list(v) if isinstance(v, tuple) else v for k, v in self.attrs.items()},
            "dtype": self.type.dtype, "shape": list(self.type.shape), "params": self.params,
            "flops": self.flops, "scope": list(self.scope),
            "span": {"file": self.span.file, "line": self.span.line, "column": self.span.column,
                     "end_line": self.span.end_line, "end_column": self.span.end_column},
        }


@dataclass(slots=True)
class BlockCall:
    """Where a block was inlined: its path (a prefix of its nodes' names), the block and the call span."""

    path: str
    block: str
    span: Span
    depth: int


@dataclass(slots=True)
class Graph:
    """A whole elaborated model."""

    model: str
    args: dict[str, Any]
    nodes: list[Node] = field(default_factory=list)
    inputs: dict[str, int] = field(default_factory=dict)  # name -> node id, declaration order
    outputs: dict[str, int] = field(default_factory=dict)
    calls: list[BlockCall] = field(default_factory=list)
    span: Span | None = None

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id]

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes)

    def input_types(self) -> dict[str, TensorType]:
        return {name: self.nodes[i].type for name, i in self.inputs.items()}

    def output_types(self) -> dict[str, TensorType]:
        return {name: self.nodes[i].type for name, i in self.outputs.items()}

    def nodes_in(self, path: str) -> list[Node]:
        """The nodes inside the block call (or repeat) at `path`."""
        prefix = path + "."
        return [n for n in self.nodes if n.name.startswith(prefix)]

    def to_json(self) -> dict:
        return {
            "model": self.model, "args": self.args,
            "inputs": {k: v for k, v in self.inputs.items()},
            "outputs": {k: v for k, v in self.outputs.items()},
            "nodes": [n.to_json() for n in self.nodes],
            "calls": [{"path": c.path, "block": c.block, "line": c.span.line} for c in self.calls],
        }
