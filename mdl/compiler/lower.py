"""Lowering: the graph IR becomes a `torch.fx.GraphModule`, built node by node with `torch.fx.Graph`.

Every IR node becomes one FX node, as the lowering table (mdl.compiler.ops.lowering) says: a
`call_module` for primitives with parameters or a train/eval difference (their module sits at the
node's dotted name, so state-dict keys read like the design:
`layers.0.encoder_layer.attention.in_proj_weight`), a `call_function` for the rest. `node.meta` keeps
the IR node (`"mdl_node"`) and its span (`"span"`). The module's forward takes the inputs in
declaration order and returns a dict of the outputs by name.

`verify` then runs `ShapeProp` under `FakeTensorMode` with symbolic batch (and other symbolic) dims,
and checks every node's shape and dtype against the IR. A mismatch is a compiler bug, reported as an
internal error at the span that produced the node.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from mdl.compiler.ir import Graph, Node, TensorType
from mdl.compiler.ops import layers, lowering
from mdl.compiler.shapes import Site
from mdl.dsl.diagnostics import CompileError, Diagnostic, error

DTYPES = {"float": torch.float32, "int": torch.int64}
_ARITH = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}


def _in_types(graph: Graph, node: Node) -> list[TensorType]:
    return [graph.nodes[i].type for i in node.inputs]


def _site(node: Node, inputs: list[TensorType]) -> Site:
    return Site(node.op, tuple(inputs), node.attrs, node.type)


def _resolve(dotted: str) -> Any:
    """A torch function or module class named as the lowering table names it (`nn.Linear`, `F.gelu`)."""
    home, _, name = dotted.partition(".")
    if home == "moe":
        from mdl.compiler.ops import moe as home_module  # registers the mdl::moe op on first use
    else:
        home_module = {"torch": torch, "F": F, "nn": nn, "layers": layers}[home]
    return getattr(home_module, name)


def make_module(node: Node, inputs: list[TensorType]) -> nn.Module | None:
    """The module for a primitive with parameters (or dropout), or None for a plain function."""
    entry = lowering.LOWERING.get(node.op)
    if not isinstance(entry, lowering.Module):
        return None
    args, kwargs = entry.make(_site(node, inputs))
    return _resolve(entry.cls)(*args, **kwargs)


def _function_call(node: Node, args: list[fx.Node], inputs: list[TensorType]) -> tuple[Any, tuple, dict]:
    """(function, args, kwargs) for a parameter-free primitive or arithmetic."""
    a = node.attrs
    op = node.op
    if op == "neg":
        return operator.neg, (args[0],), {}
    if op in _ARITH:
        fn = _ARITH[op]
        if "scalar" in a:
            return fn, ((a["scalar"], args[0]) if a["scalar_first"] else (args[0], a["scalar"])), {}
        return fn, (args[0], args[1]), {}
    entry = lowering.row(op)
    assert isinstance(entry, lowering.Call), op
    extra, kwargs = entry.make(_site(node, inputs))
    tensors = (list(args),) if entry.packed else tuple(args)
    return _resolve(entry.fn), (*tensors, *extra), kwargs


class _Internal(Exception):
    def __init__(self, node: Node, message: str):
        super().__init__(message)
        self.node = node
        self.message = message


def _attach(root: nn.Module, path: str, module: nn.Module) -> None:
    """Put `module` at dotted `path` under `root`, creating plain containers on the way."""
    *parents, leaf = path.split(".")
    owner = root
    for part in parents:
        child = owner._modules.get(part)
        if child is None:
            child = nn.Module()
            owner.add_module(part, child)
        owner = child
    owner.add_module(leaf, module)


def _internal_error(node: Node, message: str) -> CompileError:
    return CompileError([error("E0901", node.span, f"internal error while lowering `{node.name}`: {message}",
                               "this is a bug in mdl; please report it with this design")])


def lower(graph: Graph) -> fx.GraphModule:
    """Build the GraphModule for an elaborated graph. Raises CompileError (E0901) on a compiler bug."""
    root = nn.Module()
    g = fx.Graph()
    env: dict[int, fx.Node] = {}
    try:
        for node in graph.nodes:
            args = [env[i] for i in node.inputs]
            if node.op == "input":
                fx_node = g.placeholder(node.name)
            else:
                inputs = _in_types(graph, node)
                try:
                    module = make_module(node, inputs)
                    call = None if module is not None else _function_call(node, args, inputs)
                except lowering.LoweringError as exc:
                    raise _Internal(node, str(exc)) from None
                if module is not None:
                    _attach(root, node.name, module)
                    fx_node = g.call_module(node.name, tuple(args))
                else:
                    fn, fargs, fkwargs = call
                    fx_node = g.call_function(fn, fargs, fkwargs)
            fx_node.meta["mdl_node"] = node
            fx_node.meta["span"] = node.span
            env[node.id] = fx_node
    except _Internal as exc:
        raise _internal_error(exc.node, exc.message) from None
    g.output({name: env[i] for name, i in graph.outputs.items()})
    gm = fx.GraphModule(root, g, class_name=_class_name(graph.model))
    gm.graph.lint()
    return gm


def _class_name(model: str) -> str:
    return model if model.isidentifier() else "Model"


# ------------------------------------------------------------------------------------ verification

_EXAMPLE_SIZES = (3, 5, 7, 11, 13, 17, 19, 23)  # distinct, >= 2 so no symbolic dim is specialised


def example_sizes(graph: Graph, batch: int | None = None) -> dict[str, int]:
    """A concrete size for each symbolic input dim, distinct per symbol (`batch` for B when given)."""
    sizes: dict[str, int] = {}
    for t in graph.input_types().values():
        for d in t.shape:
            if isinstance(d, str) and d not in sizes:
                sizes[d] = _EXAMPLE_SIZES[len(sizes) % len(_EXAMPLE_SIZES)] + 24 * (len(sizes) // len(_EXAMPLE_SIZES))
    if batch is not None:
        sizes["B"] = batch
    return sizes


def input_vocab(graph: Graph, name: str) -> int:
    """The vocabulary of the first embedding that reads int input `name` (through int-valued ops such as
    flatten), else 16 (2048's exponents): valid random indices are below it."""
    frontier, seen = [graph.inputs[name]], set()
    while frontier:
        current = frontier.pop(0)
        for node in graph.nodes:
            if current in node.inputs and node.id not in seen:
                seen.add(node.id)
                if node.op == "embedding":
                    return int(node.attrs["vocab"])
                if node.type.dtype == "int":
                    frontier.append(node.id)
    return 16


def example_inputs(graph: Graph, sizes: dict[str, int] | None = None, generator: torch.Generator | None = None,
                   ) -> list[torch.Tensor]:
    """Random inputs of the IR's shapes, in declaration order: floats standard normal, ints uniform below
    the vocabulary of the embedding that reads them (`input_vocab`)."""
    sizes = sizes or example_sizes(graph)
    out = []
    for name, t in graph.input_types().items():
        shape = [d if isinstance(d, int) else sizes[d] for d in t.shape]
        if t.dtype == "int":
            out.append(torch.randint(0, input_vocab(graph, name), shape, generator=generator))
        else:
            out.append(torch.randn(shape, generator=generator))
    return out


def verify(gm: fx.GraphModule, graph: Graph) -> list[Diagnostic]:
    """ShapeProp under FakeTensorMode with symbolic dims; a diagnostic (E0902) per disagreement with the IR."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext
    from torch.fx.passes.shape_prop import ShapeProp

    mode = FakeTensorMode(shape_env=ShapeEnv())
    sizes = example_sizes(graph)
    fakes = []
    for real, t in zip(example_inputs(graph, sizes), graph.input_types().values(), strict=True):
        dynamic = [DimDynamic.STATIC if isinstance(d, int) else DimDynamic.DYNAMIC for d in t.shape]
        fakes.append(mode.from_tensor(real, symbolic_context=StatelessSymbolicContext(dynamic_sizes=dynamic)))
    current: dict[str, fx.Node] = {}

    class _Prop(ShapeProp):
        def run_node(self, n: fx.Node) -> Any:
            current["node"] = n
            return super().run_node(n)

    try:
        _Prop(gm, fake_mode=mode).propagate(*fakes)
    except Exception as exc:  # any torch failure here is a lowering bug: say where
        node = current.get("node")
        ir_node = node.meta.get("mdl_node") if node is not None else None
        if ir_node is None:
            ir_node = graph.nodes[-1]
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [error("E0902", ir_node.span, f"internal error: `{ir_node.name}` fails on fake tensors: {message}",
                      "this is a bug in mdl; please report it with this design")]
    problems = []
    for n in gm.graph.nodes:
        ir_node = n.meta.get("mdl_node")
        meta = n.meta.get("tensor_meta")
        if ir_node is None or meta is None:
            continue
        problem = _compare(ir_node.type, tuple(meta.shape), meta.dtype)
        if problem:
            problems.append(error("E0902", ir_node.span, f"internal error: `{ir_node.name}` is {problem}",
                                  "this is a bug in mdl; please report it with this design"))
    return problems


def _compare(t: TensorType, shape: tuple, dtype: torch.dtype) -> str | None:
    real = f"{dtype} {list(shape)} in torch but {t} in the IR"
    if DTYPES[t.dtype] != dtype or len(shape) != t.rank:
        return real
    for want, got in zip(t.shape, shape, strict=True):
        if isinstance(want, int) != isinstance(got, int) or (isinstance(want, int) and want != got):
            return real
    return None
