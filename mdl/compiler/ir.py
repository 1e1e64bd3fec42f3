"""The graph IR: one node per primitive, fully elaborated (consts folded, blocks inlined, `repeat`
unrolled). Every consumer — parameter counts, shapes, inlay hints, lowering, checkpoint metadata —
reads this and nothing else (DESIGN.md, rule 1). It imports no torch.

Shapes are tuples of dims; a dim is an `int` or a symbolic name (`"B"` is the batch). A symbolic
product such as a flattened `[B, T, 4]` is written `"T*4"`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from mdl.dsl.ast import Span

Dim = int | str

# Names a module path component may not take: the attributes of a lowered `torch.fx.GraphModule`
# (an `nn.Module`) and `self`. A design's block, binding or output named `train` or `graph` gets a `_`
# suffix in the IR (`train_`), so lowering, state dicts and the standalone `.py` all agree. Kept as a
# literal because the front end never imports torch; tests/test_lower.py checks it against torch.
RESERVED_NAMES = frozenset({
    "T_destination", "_apply", "_backward_hooks", "_backward_pre_hooks", "_boxed_call", "_buffers",
    "_call_impl", "_code", "_compiled_call_impl", "_create_node_hooks", "_deepcopy_hooks",
    "_deepcopy_init", "_erase_node_hooks", "_forward_hooks", "_forward_hooks_always_called",
    "_forward_hooks_with_kwargs", "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs",
    "_get_backward_hooks", "_get_backward_pre_hooks", "_get_name", "_graph", "_is_full_backward_hook",
    "_lineno_map", "_load_from_state_dict", "_load_state_dict_post_hooks", "_load_state_dict_pre_hooks",
    "_maybe_warn_non_full_backward_hook", "_modules", "_named_members", "_non_persistent_buffers_set",
    "_parameters", "_prologue_start", "_recompile_submodules", "_register_create_node_hook",
    "_register_deepcopy_hook", "_register_erase_node_hook", "_register_load_state_dict_pre_hook",
    "_register_replace_node_hook", "_register_state_dict_hook", "_replace_hooks",
    "_replicate_for_data_parallel", "_save_to_state_dict", "_set_replace_hook", "_slow_forward",
    "_state_dict_hooks", "_state_dict_pre_hooks", "_tracer_cls", "_tracer_extras",
    "_unregister_create_node_hook", "_unregister_deepcopy_hook", "_unregister_erase_node_hook",
    "_unregister_replace_node_hook", "_version", "_wrapped_call", "_wrapped_call_impl", "add_module",
    "add_submodule", "apply", "bfloat16", "buffers", "call_super_init", "children", "code", "compile",
    "cpu", "cuda", "delete_all_unused_submodules", "delete_submodule", "double", "dump_patches", "eval",
    "extra_repr", "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule",
    "graph", "half", "ipu", "load_state_dict", "meta", "modules", "mtia", "named_buffers",
    "named_children", "named_modules", "named_parameters", "parameters", "print_readable", "recompile",
    "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "self",
    "set_extra_state", "set_submodule", "shape_env", "share_memory", "state_dict", "to", "to_empty",
    "to_folder", "train", "training", "type", "xpu", "zero_grad",
})


def safe_name(part: str) -> str:
    """`part` as a module path component: Python keywords and reserved attributes get `_` suffixes."""
    import keyword

    if part.startswith("_"):  # torch's private attributes, including those dynamo adds at run time
        part += "_"
    while keyword.iskeyword(part) or part in RESERVED_NAMES:
        part += "_"
    return part


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

    def architecture_hash(self) -> str:
        """sha256 of the architecture: every node's name, op, inputs, attributes and type, and the
        input and output names. Spans, comments, formatting and the model's name do not enter it."""
        return ir_architecture_hash(self.to_json())


def ir_architecture_hash(ir: dict) -> str:
    """The architecture hash of an IR in its JSON form (`Graph.to_json()`, as exports carry it)."""
    canonical = {
        "inputs": [[k, v] for k, v in ir["inputs"].items()],
        "outputs": [[k, v] for k, v in ir["outputs"].items()],
        "nodes": [[n["name"], n["op"], list(n["inputs"]), sorted((k, _plain(v)) for k, v in n["attrs"].items()),
                   n["dtype"], [str(d) for d in n["shape"]]] for n in ir["nodes"]],
    }
    text = json.dumps(canonical, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(v: Any) -> Any:
    """An attribute value in a JSON-stable form (floats by repr, tuples as lists)."""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return v
