"""Decompile's first step: the graph IR read back, every field checked, into plain records.

`read_ir` takes a `Graph` or the dict of `Graph.to_json()` (what checkpoints and exports carry) and
gives a `ParsedIR` of `IRNode`s, each with the scope path it sits in; anything malformed is a
`DecompileError` saying where, never a raw exception. `graph_of` turns the records back into a
`Graph` to hash. Also the names every decompile module shares: the error, the ops the writer knows and
the words a name may not be. Imports no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mdl.compiler.primitives import PRIMITIVES

ARITH = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
KNOWN_OPS = {"input", "neg", *ARITH, *PRIMITIVES}
KEYWORDS = {"import", "as", "const", "block", "model", "experiment", "input", "output", "repeat", "return",
            "sweep", "limits", "true", "false", "none", "dim"}
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class DecompileError(Exception):
    """An IR that is malformed, or that no design reproduces with the same architecture hash."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class IRNode:
    id: int
    name: str
    op: str
    inputs: tuple[int, ...]
    attrs: dict[str, Any]
    dtype: str
    shape: tuple
    path: str  # the scope path ("" at model level)


@dataclass
class ParsedIR:
    model: str
    args: dict[str, Any]
    inputs: dict[str, int]
    outputs: dict[str, int]
    nodes: list[IRNode]
    calls: list[tuple[str, str]]  # (path, block) in call order


def read_ir(ir: Any) -> ParsedIR:
    """The IR (a `Graph` or its `to_json()` dict) as records, every field checked."""
    from mdl.compiler.ir import Graph

    if isinstance(ir, Graph):
        ir = ir.to_json()
    if not isinstance(ir, dict):
        raise DecompileError(f"expected a graph IR (a dict), got {type(ir).__name__}")
    for key in ("nodes", "inputs", "outputs"):
        if key not in ir:
            raise DecompileError(f"the IR has no `{key}`")
    raw_nodes, inputs, outputs = ir["nodes"], ir["inputs"], ir["outputs"]
    if not isinstance(raw_nodes, list) or not isinstance(inputs, dict) or not isinstance(outputs, dict):
        raise DecompileError("`nodes` must be a list and `inputs`/`outputs` objects")
    nodes = [_read_node(i, n) for i, n in enumerate(raw_nodes)]
    _check_tables(inputs, outputs, nodes)
    calls = _read_calls(ir.get("calls", []))
    args = ir.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise DecompileError("`args` must be an object")
    model = ir.get("model") or "Decompiled"
    if not isinstance(model, str):
        raise DecompileError("`model` must be a name")
    return ParsedIR(model, args, dict(inputs), dict(outputs), nodes, calls)


def _read_node(i: int, n: Any) -> IRNode:
    """Node `i` of the IR's list: its fields checked, its inputs earlier nodes, its scope its name's."""
    where = f"node {i}"
    if not isinstance(n, dict):
        raise DecompileError(f"{where} is not an object")
    for key in ("name", "op", "inputs", "dtype", "shape"):
        if key not in n:
            raise DecompileError(f"{where} has no `{key}`")
    name, op, ins, attrs = n["name"], n["op"], n["inputs"], n.get("attrs", {})
    if "id" in n and n["id"] != i:
        raise DecompileError(f"{where} has id {n['id']!r}; ids must count from 0 in order")
    if not isinstance(name, str) or not name:
        raise DecompileError(f"{where} has no name")
    if not isinstance(op, str) or op not in KNOWN_OPS:
        raise DecompileError(f"{where} (`{name}`) has an unknown op {op!r}")
    if not isinstance(ins, list) or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < i
                                            for x in ins):
        raise DecompileError(f"{where} (`{name}`) has inputs {ins!r}; each must be an earlier node's id")
    if not isinstance(attrs, dict):
        raise DecompileError(f"{where} (`{name}`) has attrs that are not an object")
    if n["dtype"] not in ("float", "int") or not isinstance(n["shape"], list) or not all(
            (isinstance(d, int) and not isinstance(d, bool)) or isinstance(d, str) for d in n["shape"]):
        raise DecompileError(f"{where} (`{name}`) has a malformed type")
    scope = n.get("scope")
    if scope is None:
        path = name.rpartition(".")[0]
    elif isinstance(scope, list | tuple) and all(isinstance(s, str) for s in scope) and len(scope) <= 1:
        path = scope[0] if scope else ""
    else:
        raise DecompileError(f"{where} (`{name}`) has a malformed scope {scope!r}")
    if path and not name.startswith(path + "."):
        raise DecompileError(f"{where} is named `{name}` but sits in `{path}`")
    if op == "input" and path:
        raise DecompileError(f"input node `{name}` sits inside `{path}`")
    return IRNode(i, name, op, tuple(ins), {k: _tuplify(v) for k, v in attrs.items()}, n["dtype"],
                  tuple(n["shape"]), path)


def _check_tables(inputs: dict, outputs: dict, nodes: list[IRNode]) -> None:
    """`inputs` and `outputs` map names to nodes, and `inputs` lists exactly the input nodes."""
    for what, table in (("input", inputs), ("output", outputs)):
        for k, v in table.items():
            if not isinstance(k, str) or not IDENT.match(k) or k in KEYWORDS:
                raise DecompileError(f"{what} name {k!r} is not a name")
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < len(nodes):
                raise DecompileError(f"{what} `{k}` refers to no node ({v!r})")
            if what == "input" and nodes[v].op != "input":
                raise DecompileError(f"input `{k}` refers to node `{nodes[v].name}`, which is not an input")
    if sorted(inputs.values()) != [n.id for n in nodes if n.op == "input"]:
        raise DecompileError("the IR's `inputs` do not list its input nodes")


def _read_calls(raw_calls: Any) -> list[tuple[str, str]]:
    """The IR's block calls as (path, block), in call order."""
    if not isinstance(raw_calls, list):
        raise DecompileError("`calls` must be a list")
    calls: list[tuple[str, str]] = []
    for c in raw_calls:
        if not isinstance(c, dict) or not isinstance(c.get("path"), str) or not isinstance(c.get("block"), str):
            raise DecompileError(f"malformed block call {c!r}")
        calls.append((c["path"], c["block"]))
    return calls


def _tuplify(v: Any) -> Any:
    return tuple(_tuplify(x) for x in v) if isinstance(v, list | tuple) else v


def graph_of(ir: ParsedIR):
    """A Graph with the IR's hashed fields, to hash it the way the compiler does."""
    from mdl.compiler.ir import Graph, Node, TensorType
    from mdl.dsl.ast import Span

    span = Span(None, 1, 1, 1, 1)
    g = Graph(ir.model, dict(ir.args), inputs=dict(ir.inputs), outputs=dict(ir.outputs))
    g.nodes = [Node(n.id, n.name, n.op, n.inputs, dict(n.attrs), TensorType(n.dtype, n.shape), span)
               for n in ir.nodes]
    return g
