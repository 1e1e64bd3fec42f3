"""Standalone code generation: a design as one readable Python file that needs only torch.

`standalone_source(graph)` writes the source of a module that builds the same architecture as the
lowered `torch.fx.GraphModule` (mdl.compiler.lower) with the same state-dict keys, so that weights
trained with mdl load into it unchanged with `load_state_dict(..., strict=True)`, and computes the same
outputs bit for bit: the same torch modules and functions, called in the same order.

The file holds, in order: a docstring (the design, the architecture hash, how to use it), imports of
`math` and `torch` only (those it uses), the small module classes the design needs (written here as
source templates that copy the behaviour of mdl.compiler.ops.layers; for `moe`, the source of
`moe_reference` itself), the model class named after the design, and a `__main__` smoke run.

The model class keeps the module tree of the GraphModule: a node named
`layers.0.encoder_layer.attention` is the module `self.layers[0].encoder_layer.attention`, held by
`nn.ModuleList` where a level's names are 0, 1, ... (a `repeat`) and by a plain `Scope` container
otherwise. Its `forward` takes the inputs in declaration order, has one line per IR node in IR order,
and returns a dict of the outputs by name. The text depends only on the graph (and on `source_name`),
so the same design always gives the same file.
"""

from __future__ import annotations

import ast
import builtins
import json
import keyword
import math
import symtable
from typing import Any

from mdl.compiler.ir import Graph, Node
from mdl.compiler.ops import lowering
from mdl.compiler.shapes import Site
from mdl.dsl.diagnostics import CompileError, error

_OPERATORS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
_SMOKE_SIZES = (2, 3, 5, 7, 11, 13)  # symbolic dims in the smoke run: B first, distinct, >= 2

# ------------------------------------------------------------------------------- source templates
_SCOPE = '''
class Scope(nn.Module):
    """A plain container for the modules of one block call: its name prefixes their state-dict keys."""

    def __init__(self, modules: dict[str, nn.Module]):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
'''

# Names the generated file defines or imports at module level: no local variable may take them.
_GLOBALS = frozenset({"math", "torch", "F", "nn", "Tensor", "Scope", "ACTIVATIONS", "SelfAttention",
                      "PositionalEncoding", "sinusoids", "MLP", "MoE", "moe_reference", "ObsNorm"})
_RESERVED = _GLOBALS | frozenset({"self"}) | frozenset(keyword.kwlist) | frozenset(dir(builtins))
_ALLOWED_IMPORTS = ("math", "torch")


def _layer_source(*names: str) -> str:
    """The live source of modules in mdl.compiler.ops.layers, so the standalone file runs the very code
    the lowered module runs (they need only torch, math, `F`, `nn`, `Tensor` and `ACTIVATIONS`)."""
    import inspect

    from mdl.compiler.ops import layers

    return "\n\n".join(inspect.getsource(getattr(layers, name)) for name in names)


def _activations_source() -> str:
    """`ACTIVATIONS` of mdl.compiler.ops.layers as written there (name -> function; `MLP` and `MoE` check
    their `act` against it)."""
    import inspect

    from mdl.compiler.ops import layers

    lines, _ = inspect.getsourcelines(layers)
    start = next(i for i, line in enumerate(lines) if line.startswith("ACTIVATIONS = {"))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("}"))
    return "".join(lines[start:end + 1])


def _moe_module_source() -> str:
    """The live `MoE` module of mdl.compiler.ops.moe, calling `moe_reference` directly instead of the
    `mdl::moe` custom op (the standalone file needs only torch)."""
    import inspect

    from mdl.compiler.ops.moe import MoE

    source = inspect.getsource(MoE)
    if source.count("torch.ops.mdl.moe(") != 1:
        raise RuntimeError("MoE.forward must call torch.ops.mdl.moe exactly once for the standalone export")
    return source.replace("torch.ops.mdl.moe(", "moe_reference(")


class _Internal(Exception):
    def __init__(self, node: Node, message: str):
        super().__init__(message)
        self.node = node
        self.message = message


# ------------------------------------------------------------------------------------ public face
def standalone_source(graph: Graph, source_name: str | None = None, obs_norm: dict[str, Any] | None = None) -> str:
    """The source of a standalone PyTorch module for `graph` (see the module docstring).

    `source_name` (the design's file, as the user named it) is only quoted in the header. `obs_norm`
    (`{"shape", "clip", "epsilon"}`, a `ppo(norm_obs=true)` run's) puts an `ObsNorm` layer named
    `_obs_norm` in front of the input, as mdl.runtime.obsnorm.attach does: the file then takes raw
    observations, and its state dict holds the statistics (`_obs_norm.mean`, `_obs_norm.var`). Raises
    CompileError (E0901, at the node's span) for a node the generator has no code for, a compiler bug.
    """
    try:
        return _Generator(graph, source_name, obs_norm).source()
    except _Internal as exc:
        raise CompileError([error("E0901", exc.node.span,
                                  f"internal error while generating standalone code for `{exc.node.name}`: "
                                  f"{exc.message}", "this is a bug in mdl; please report it with this design")]) from None


def class_name(graph: Graph) -> str:
    """The model class's name: the design's, unless Python or the generated file needs it elsewhere."""
    name = graph.model
    if not name.isidentifier() or keyword.iskeyword(name) or name in _RESERVED:
        name = f"{name}Model" if f"{name}Model".isidentifier() else "Model"
    return name


# ----------------------------------------------------------------------------------- the generator
class _Generator:
    def __init__(self, graph: Graph, source_name: str | None, obs_norm: dict[str, Any] | None = None):
        self.graph = graph
        self.source_name = source_name
        self.obs_norm = obs_norm
        self.cls = class_name(graph)
        self.tree: dict[str, Any] = {}  # path part -> subtree, or the constructor text of a module
        self.ops = {n.op for n in graph.nodes}
        self.vars = self._variable_names()

    # ----------------------------------------------------------------------------- whole file
    def source(self) -> str:
        for node in self.graph.nodes:
            if isinstance(lowering.LOWERING.get(node.op), lowering.Module):
                self._place(node, self._constructor(node))
        model = self._model_class()
        definitions = self._definitions()
        body = "".join(part.rstrip("\n") + "\n\n\n" for part in definitions) + model + "\n\n" + self._smoke_run()
        gap = "\n\n" if body.startswith(("class ", "def ")) else "\n"  # isort's blank lines after imports
        return self._header() + "\n" + self._imports(body) + gap + body

    def _header(self) -> str:
        from mdl import __version__
        from mdl.compiler.api import architecture_hash

        g = self.graph
        origin = f" from {_doc_text(self.source_name)}" if self.source_name else ""
        results = ", ".join(f'outputs["{k}"]' for k in g.outputs)
        lines = [
            f'"""{_doc_text(g.model)}: a standalone PyTorch module generated by mdl {__version__}{origin}.',
            "",
            f"Architecture hash: {architecture_hash(g)}",
            "Inputs:     " + ", ".join(f"{k} {t}" for k, t in g.input_types().items()),
            "Outputs:    " + ", ".join(f"{k} {t}" for k, t in g.output_types().items()),
            f"Parameters: {g.params:,}",
            "",
            "This file needs only torch (it imports nothing from mdl). Its state-dict keys are those of the",
            "module mdl builds for the design (`mdl.compile_file(...).module`), so weights trained with mdl",
            "load unchanged. Import this file, then:",
            "",
            f"    model = {self.cls}()",
            '    model.load_state_dict(torch.load("weights.pt", weights_only=True))',
            "    model.eval()",
            f"    outputs = model({', '.join(self._param_names())})  # a dict: {results}",
            "",
            "Run as a script, it builds the model with fresh weights, runs it once on random inputs and",
            "prints the output shapes.",
        ]
        if self.obs_norm is not None:
            lines += [
                "",
                "The model takes raw observations: `_obs_norm` normalises them with the training run's running",
                "statistics (`ppo(norm_obs=true)`; they are in the state dict) before the design sees them.",
            ]
        lines += [
            '"""',
        ]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _imports(body: str) -> str:
        """Only what the body uses (so the file is ruff-clean): `math`, `torch`, `F`, `nn`, `Tensor`."""
        used = {n.id for n in ast.walk(ast.parse(body)) if isinstance(n, ast.Name)}
        lines = [line for name, line in (("math", "import math\n"), ("torch", "import torch\n"))
                 if name in used or name == "torch"]
        if "F" in used:
            lines.append("import torch.nn.functional as F\n")
        names = [n for n in ("Tensor", "nn") if n in used]
        if names:
            lines.append(f"from torch import {', '.join(names)}\n")
        if lines[0] == "import math\n":
            lines.insert(1, "\n")  # the standard library, then torch
        return "".join(lines)

    def _definitions(self) -> list[str]:
        """What the file defines before the model: `Scope`, then what the design's modules need (their
        lowering rows' `defines`, `ACTIVATIONS` first), then `ObsNorm`."""
        needed: list[str] = []
        for op, entry in lowering.LOWERING.items():
            if op in self.ops and isinstance(entry, lowering.Module):
                needed += [name for name in entry.defines if name not in needed]
        needed.sort(key=lambda name: name != "ACTIVATIONS")  # a stable sort: the rest keep table order
        if self.obs_norm is not None:
            needed.append("ObsNorm")
        special = {"ACTIVATIONS": _activations_source, "moe_reference": moe_reference_source,
                   "MoE": _moe_module_source}
        parts = [_SCOPE] if self._needs_scope() else []
        parts += [special[name]() if name in special else _layer_source(name) for name in needed]
        return [p.lstrip("\n") for p in parts]

    # ------------------------------------------------------------------------------ modules
    def _site(self, node: Node) -> Site:
        return Site(node.op, tuple(self.graph.nodes[i].type for i in node.inputs), node.attrs, node.type)

    def _row(self, node: Node, make: lowering.Make) -> tuple[tuple, dict[str, Any]]:
        try:
            return make(self._site(node))
        except lowering.LoweringError as exc:
            raise _Internal(node, str(exc)) from None

    def _constructor(self, node: Node) -> str:
        """The module at the node's name, from the lowering table's row as mdl.compiler.lower builds it."""
        entry = lowering.LOWERING[node.op]
        assert isinstance(entry, lowering.Module)
        args, kwargs = self._row(node, entry.make)
        home, _, name = entry.cls.partition(".")
        text = [_lit(v) for v in args] + [f"{k}={_lit(v)}" for k, v in kwargs.items()]
        return f"{entry.cls if home == 'nn' else name}({', '.join(text)})"

    def _place(self, node: Node, constructor: str) -> None:
        *parents, leaf = node.name.split(".")
        level = self.tree
        for part in parents:
            child = level.setdefault(part, {})
            if not isinstance(child, dict):
                raise _Internal(node, f"`{part}` is both a module and a container of modules")
            level = child
        if leaf in level:
            raise _Internal(node, f"two modules at `{node.name}`")
        level[leaf] = constructor

    @staticmethod
    def _is_list(level: dict[str, Any]) -> bool:
        """A level named 0, 1, 2, ...: the repetitions of a `repeat`, held by an nn.ModuleList."""
        return list(level) == [str(i) for i in range(len(level))]

    def _needs_scope(self) -> bool:
        """Whether some level below the model is not a `repeat` list (so the file needs `Scope`)."""
        stack = [c for c in self.tree.values() if isinstance(c, dict)]
        while stack:
            level = stack.pop()
            if not self._is_list(level):
                return True
            stack += [c for c in level.values() if isinstance(c, dict)]
        return False

    def _container(self, level: dict[str, Any], indent: str) -> str:
        inner = indent + "    "
        if self._is_list(level):
            items = [self._entry(child, inner) for child in level.values()]
            return "nn.ModuleList([\n" + "".join(f"{inner}{item},\n" for item in items) + indent + "])"
        items = [f"{json.dumps(name)}: {self._entry(child, inner)}" for name, child in level.items()]
        return "Scope({\n" + "".join(f"{inner}{item},\n" for item in items) + indent + "})"

    def _entry(self, child: Any, indent: str) -> str:
        return self._container(child, indent) if isinstance(child, dict) else child

    def _access(self, name: str) -> str:
        """The expression for the module at dotted `name`, from `self`."""
        text = "self"
        level = self.tree
        for part in name.split("."):
            if self._is_list(level) and level is not self.tree:
                text += f"[{part}]"
            elif _is_attribute(part):
                text += f".{part}"
            else:
                text = f"getattr({text}, {json.dumps(part)})"
            child = level[part]
            level = child if isinstance(child, dict) else {}
        return text

    def _model_class(self) -> str:
        g = self.graph
        inputs = ", ".join(f"{k} {t}" for k, t in g.input_types().items())
        outputs = ", ".join(f"{k} {t}" for k, t in g.output_types().items())
        lines = [
            f"class {self.cls}(nn.Module):",
            f'    """The design `{_doc_text(g.model)}`: {inputs} -> {outputs}."""',
            "",
            "    def __init__(self):",
            "        super().__init__()",
        ]
        for name, child in self.tree.items():
            value = self._entry(child, "        ")
            if _is_attribute(name):
                lines.append(f"        self.{name} = {value}")
            else:
                lines.append(f"        self.add_module({json.dumps(name)}, {value})")
        if self.obs_norm is not None:
            n = self.obs_norm
            lines.append(f"        self._obs_norm = ObsNorm({_lit(tuple(n['shape']))}, clip={_lit(float(n['clip']))}, "
                         f"epsilon={_lit(float(n['epsilon']))})  # the run's observation statistics")
        params = "".join(f", {p}: Tensor" for p in self._param_names())
        lines += ["", f"    def forward(self{params}) -> dict[str, Tensor]:"]
        if self.obs_norm is not None:
            first = self._param_names()[0]
            lines.append(f"        {first} = self._obs_norm({first})  # raw observations, normalised as in training")
        used = {i for n in g.nodes for i in n.inputs} | set(g.outputs.values())
        for node in g.nodes:
            if node.op == "input":
                continue
            if node.id in used:
                lines.append(f"        {self.vars[node.id]} = {self._expression(node)}  # {node.type}")
            else:  # a value the design never uses: still computed (dropout draws from the RNG), then dropped
                lines.append(f"        _ = {self._expression(node)}  # {node.type}, unused")
        result = ", ".join(f"{json.dumps(k)}: {self.vars[i]}" for k, i in g.outputs.items())
        lines.append(f"        return {{{result}}}")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------------------ forward
    def _variable_names(self) -> dict[int, str]:
        """A distinct Python name per node: its IR name with dots as underscores (inputs keep theirs)."""
        base = {n.id: _identifier(n.name.replace(".", "_")) for n in self.graph.nodes}
        taken = set(_RESERVED) | {self.cls}
        counts: dict[str, int] = {}
        for name in base.values():
            counts[name] = counts.get(name, 0) + 1
        out: dict[int, str] = {}
        final = {name for name in base.values() if counts[name] == 1 and name not in taken}
        for node_id, name in base.items():
            if name not in final:
                while name in taken or name in final:
                    name += "_"
            taken.add(name)
            out[node_id] = name
        return out

    def _param_names(self) -> list[str]:
        return [self.vars[i] for i in self.graph.inputs.values()]

    def _expression(self, node: Node) -> str:
        a = node.attrs
        op = node.op
        args = [self.vars[i] for i in node.inputs]
        if op == "neg":
            return f"-{args[0]}"
        if op in _OPERATORS:
            sign = _OPERATORS[op]
            if "scalar" in a:
                scalar = _lit(a["scalar"])
                return f"{scalar} {sign} {args[0]}" if a["scalar_first"] else f"{args[0]} {sign} {scalar}"
            return f"{args[0]} {sign} {args[1]}"
        entry = lowering.LOWERING.get(op)
        if entry is None:
            raise _Internal(node, f"no code for op `{op}`")
        if isinstance(entry, lowering.Module):
            return f"{self._access(node.name)}({', '.join(args)})"
        extra, kwargs = self._row(node, entry.make)
        tensors = [f"[{', '.join(args)}]"] if entry.packed else args
        text = tensors + [_lit(v) for v in extra] + [f"{k}={_lit(v)}" for k, v in kwargs.items()]
        return f"{entry.fn}({', '.join(text)})"

    # ---------------------------------------------------------------------------- smoke run
    def _smoke_run(self) -> str:
        sizes: dict[str, int] = {}
        for t in self.graph.input_types().values():
            for dim in t.shape:
                if isinstance(dim, str) and dim not in sizes:
                    sizes[dim] = _SMOKE_SIZES[len(sizes) % len(_SMOKE_SIZES)]
        high = min([16, *(n.attrs["vocab"] for n in self.graph.nodes if n.op == "embedding")])
        lines = [
            'if __name__ == "__main__":',
            "    # A smoke run on random inputs with fresh weights: prints each output's shape.",
            f"    model = {self.cls}().eval()",
            "    inputs = [",
        ]
        for name, t in self.graph.input_types().items():
            dims = [str(d if isinstance(d, int) else sizes[d]) for d in t.shape]
            shape = f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"
            maker = f"torch.randint(0, {high}, {shape})" if t.dtype == "int" else f"torch.randn({shape})"
            lines.append(f"        {maker},  # {_doc_text(name)}: {t}")
        lines += [
            "    ]",
            "    with torch.no_grad():",
            "        outputs = model(*inputs)",
            "    for name, value in outputs.items():",
            "        print(name, tuple(value.shape))",
        ]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- helpers
def moe_reference_source() -> str:
    """The source of mdl.compiler.ops.moe.moe_reference, checked to need no global but torch and math."""
    import inspect

    from mdl.compiler.ops.moe import moe_reference

    source = inspect.getsource(moe_reference)
    table = symtable.symtable(source, "moe_reference", "exec")
    free = _globals_used(table.get_children()[0]) - set(dir(builtins)) - set(_ALLOWED_IMPORTS)
    if free:
        raise RuntimeError(f"moe_reference uses module-level names {sorted(free)}; it must use only torch and math")
    return source


def _globals_used(table: symtable.SymbolTable) -> set[str]:
    names = {s.get_name() for s in table.get_symbols() if s.is_global()}
    for child in table.get_children():
        names |= _globals_used(child)
    return names


def _is_attribute(name: str) -> bool:
    """Whether `obj.name` can be written for the submodule `name` (else `getattr(obj, "name")`)."""
    return name.isidentifier() and not keyword.iskeyword(name)


def _identifier(name: str) -> str:
    if not name.isidentifier():
        name = "v_" + "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return name


def _lit(value: Any) -> str:
    """A compile-time value as Python source that evaluates to exactly the same value."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "math.nan"
        if math.isinf(value):
            return "math.inf" if value > 0 else "-math.inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_lit(v) for v in value) + "]"
    raise TypeError(f"no literal for {value!r}")


def _doc_text(text: str) -> str:
    """`text` safe inside a docstring or comment: escapes, no quotes or newlines that end it."""
    return json.dumps(text.replace('"', "'"), ensure_ascii=False)[1:-1]
