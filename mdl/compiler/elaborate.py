"""Elaboration: run a model's statements at compile time and build its graph IR.

Consts and arithmetic are folded, block calls inlined with their own arguments, `repeat` unrolled,
and each primitive call becomes one IR node whose shape, parameters and FLOPs are known. A mistake
produces one diagnostic and a poison value (`UNKNOWN`) that later uses accept silently, so one error
is reported once and the rest of the model is still checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mdl.compiler import cost, shapes
from mdl.compiler.args import REQUIRED, Arg, ArgError, coerce, type_name
from mdl.compiler.ir import BlockCall, Graph, Node, TensorType, safe_name
from mdl.compiler.primitives import BUILTINS, PRIMITIVES, Primitive
from mdl.compiler.resolve import ModuleScope
from mdl.dsl import ast
from mdl.dsl.ast import Span
from mdl.dsl.diagnostics import Diagnostic, Edit, Fix, Label, did_you_mean, error, warning

MAX_NODES = 100_000
MAX_REPEAT = 10_000
MAX_CALL_DEPTH = 64


class _Unknown:
    """The value of an expression that already produced an error."""

    kind = "unknown"

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


@dataclass(frozen=True, slots=True)
class Tensor:
    node: int
    type: TensorType
    kind = "tensor"


@dataclass(frozen=True, slots=True)
class QuantityValue:
    value: int | float
    unit: str
    kind = "quantity"


@dataclass(frozen=True, slots=True)
class Symbol:
    """A bare name used as a value: a symbolic dim (`B`) or an experiment word (`onnx`, `auto`)."""

    name: str
    kind = "name"


@dataclass(frozen=True, slots=True)
class CallValue:
    """An experiment value such as `ppo(lr=3e-4)`: kept as a call, checked by the experiment checker."""

    func: str
    args: tuple
    kwargs: dict[str, Any]
    span: Span
    func_span: Span
    keywords: dict[str, ast.Keyword]
    kind = "call"


class Abort(Exception):
    """Stop elaborating the current model (too large, or too deep)."""


@dataclass(slots=True)
class Binding:
    value: Any
    span: Span
    what: str  # "value", "parameter", "input", "loop"
    used: bool = False


@dataclass(slots=True)
class Frame:
    scope: ModuleScope
    vars: dict[str, Binding] = field(default_factory=dict)
    path: str = ""  # prefix of node names, "" or "layers.0.encoder_layer."
    call_span: Span | None = None  # where this block was called from
    in_block: bool = False


def is_tensor_param(p: ast.Param) -> bool:
    return p.type is None or p.type.dims is not None or p.type.name == "tensor"


_PARAM_TYPES = {"int": "int", "float": "float", "bool": "bool", "str": "str", "string": "str", "list": "list"}


def _model_key(model: ast.Model, scope: ModuleScope, args: dict[str, Any]) -> tuple | None:
    """The memo key of a model elaboration, or None when an argument value is not hashable."""
    key = (id(model), id(scope), tuple(sorted(args.items())))
    try:
        hash(key)
    except TypeError:
        return None
    return key


class Elaborator:
    """Builds graphs for the models of one program; collects diagnostics (deduplicated by place)."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        self._seen: set[tuple] = {(d.code, d.span.file, d.span.start, d.span.end) for d in diagnostics}
        self._const_values: dict[tuple[int, str], Any] = {}
        self._const_stack: list[tuple[int, str]] = []
        self.graph: Graph | None = None
        self._names: set[str] = set()
        self._call_stack: list[str] = []
        # (model, scope, its resolved arguments) -> (graph, failed): an experiment's model at the
        # arguments analyze already elaborated it with is not elaborated again (same graph, and its
        # diagnostics were reported the first time)
        self._models: dict[tuple, tuple[Graph | None, frozenset[str]]] = {}

    # ----------------------------------------------------------------------------- diagnostics
    def report(self, d: Diagnostic) -> None:
        key = (d.code, d.span.file, d.span.start, d.span.end)
        if key in self._seen:
            return
        self._seen.add(key)
        self.diagnostics.append(d)

    @staticmethod
    def _call_site(frame: Frame | None, span: Span) -> tuple[Label, ...]:
        """A label at the block call a mistake inside a block came through (blocks are inlined)."""
        if frame is not None and frame.call_span is not None and frame.call_span != span:
            return (Label(frame.call_span, "in this block call"),)
        return ()

    def err(self, frame: Frame | None, code: str, span: Span, message: str, help: str | None = None,
            fix: Fix | None = None) -> Any:
        self.report(error(code, span, message, help, labels=self._call_site(frame, span), fix=fix))
        return UNKNOWN

    def warn(self, code: str, span: Span, message: str, help: str | None = None, fix: Fix | None = None,
             frame: Frame | None = None) -> None:
        self.report(warning(code, span, message, help, labels=self._call_site(frame, span), fix=fix))

    # ----------------------------------------------------------------------------------- consts
    def const_value(self, const: ast.Const, scope: ModuleScope) -> Any:
        key = (id(scope), const.name)
        if key in self._const_values:
            return self._const_values[key]
        if key in self._const_stack:
            self.err(None, "E0108", const.name_span, f"const `{const.name}` depends on itself",
                     "give it a value that does not refer back to it")
            return UNKNOWN
        self._const_stack.append(key)
        try:
            value = self.eval(const.value, Frame(scope))
        finally:
            self._const_stack.pop()
        if isinstance(value, Tensor):
            value = self.err(None, "E0201", const.value.span, "a const must be a compile-time value, not a tensor",
                             "compute tensors inside a model or block; a const holds numbers, strings or lists")
        self._const_values[key] = value
        return value

    # ------------------------------------------------------------------------------------ models
    def model(self, model: ast.Model, scope: ModuleScope, args: dict[str, Any],
              arg_spans: dict[str, Span] | None = None, call_span: Span | None = None) -> Graph | None:
        """Elaborate `model` with compile-time `args` (defaults fill the rest). None if it cannot run."""
        self.graph = Graph(model.name, {}, span=model.span)
        self._names = set()
        self._failed: set[str] = set()  # "<input>" and output names whose statements failed (reported)
        frame = Frame(scope)
        arg_spans = arg_spans or {}
        for name in args:
            if not any(p.name == name for p in model.params):
                span = arg_spans.get(name, call_span or model.name_span)
                guess = did_you_mean(name, [p.name for p in model.params])
                self.err(None, "E0103", span, f"model `{model.name}` has no parameter `{name}`",
                         f"did you mean `{guess}`?" if guess else _params_help(model.params))
        for p in model.params:
            if is_tensor_param(p):
                self.err(None, "E0216", p.span, f"model parameter `{p.name}` needs a compile-time type",
                         "declare inputs with `input NAME: float[...]`; parameters are `name: int = 4`")
                frame.vars[p.name] = Binding(UNKNOWN, p.span, "parameter")  # its uses are not errors too
                self._failed.add("<input>")
                continue
            if p.name in args:
                value = self._check_param_value(p, args[p.name], arg_spans.get(p.name, call_span or p.span), frame)
            elif p.default is not None:
                value = self._check_param_value(p, self.eval(p.default, frame), p.default.span, frame)
            else:
                self.err(None, "E0104", call_span or model.name_span, f"model `{model.name}` needs a value for `{p.name}`",
                         f"pass it, e.g. `{model.name}({p.name}=...)`, or give it a default")
                return None
            self.graph.args[p.name] = value
            frame.vars[p.name] = Binding(value, p.span, "parameter")
        key = _model_key(model, scope, self.graph.args)
        if key is not None and key in self._models:
            graph, failed = self._models[key]
            self.graph, self._failed = graph, set(failed)
            return graph
        graph = self._model_body(model, frame)
        if key is not None:
            self._models[key] = (graph, frozenset(self._failed))
        return graph

    def _model_body(self, model: ast.Model, frame: Frame) -> Graph | None:
        try:
            self.exec_body(model.body, frame)
        except Abort:
            return None
        self._warn_unused(frame)
        if not self.graph.inputs and "<input>" not in self._failed:
            self.err(None, "E0301", model.name_span, f"model `{model.name}` has no input",
                     "declare one, e.g. `input board: int[B, 4, 4]`")
        if "policy" not in self.graph.outputs and "policy" not in self._failed:
            self.err(None, "E0302", model.name_span, f"model `{model.name}` has no `policy` output",
                     "add the action logits, e.g. `output policy = h -> linear(out=4)`")
        return self.graph

    @property
    def failed(self) -> frozenset[str]:
        """Inputs (`"<input>"`) and outputs of the last model elaborated whose statements failed: their
        absence is explained by an error already reported."""
        return frozenset(self._failed)

    def _check_param_value(self, p: ast.Param, value: Any, span: Span, frame: Frame) -> Any:
        if value is UNKNOWN or p.type is None:
            return value
        kind = _PARAM_TYPES.get(p.type.name)
        if kind is None:
            return self.err(frame, "E0214", p.type.span, f"unknown parameter type `{p.type.name}`",
                            "use int, float, bool, str, list, or a tensor type such as float[B, T, 64]")
        if kind == "list":
            if not isinstance(value, tuple):
                return self.err(frame, "E0201", span, f"`{p.name}` must be a list, not {type_name(value)}",
                                f"for example `{p.name}=[1, 2]`")
            return value
        try:
            return coerce(Arg(p.name, kind), value)
        except ArgError as exc:
            return self.err(frame, "E0201", span, exc.message, exc.help)

    # ------------------------------------------------------------------------------- statements
    def exec_body(self, body: tuple[ast.Stmt, ...], frame: Frame) -> Any:
        """Run statements; returns the value of a `return` (blocks), or None."""
        for i, stmt in enumerate(body):
            if isinstance(stmt, ast.Return):
                if not frame.in_block:
                    self.err(frame, "E0307", stmt.span, "`return` is only allowed in a block",
                             "a model names its results with `output NAME = ...`")
                    self._failed.add("policy")  # the `return` was most likely meant as the policy
                    continue
                value = self.eval(stmt.value, frame)
                if i + 1 < len(body):
                    self.warn("W0004", body[i + 1].span, "this statement is never reached",
                              "statements after `return` are ignored")
                return value
            self.exec_stmt(stmt, frame)
        return None

    def exec_stmt(self, stmt: ast.Stmt, frame: Frame) -> None:
        if isinstance(stmt, ast.Assign):
            self.bind(frame, stmt.name, self.eval(stmt.value, frame), stmt.name_span, "value")
        elif isinstance(stmt, ast.Output):
            self._output(stmt, frame)
        elif isinstance(stmt, ast.Input):
            self._input(stmt, frame)
        elif isinstance(stmt, ast.Repeat):
            self._repeat(stmt, frame)

    def bind(self, frame: Frame, name: str, value: Any, span: Span, what: str) -> None:
        old = frame.vars.get(name)
        if old is not None and not old.used and old.what == "value" and old.value is not UNKNOWN:
            self.warn("W0001", old.span, f"`{name}` is assigned but never used",
                      f"remove it, or use it before `{name}` is assigned again")
        frame.vars[name] = Binding(value, span, what)

    def _warn_unused(self, frame: Frame) -> None:
        if not frame.scope.syntax_ok:
            return  # statements with syntax errors were left out, so a name may look unused when it is not
        for name, b in frame.vars.items():
            if b.used or name.startswith("_") or b.what == "loop" or b.value is UNKNOWN:
                continue
            if b.what == "value":
                self.warn("W0001", b.span, f"`{name}` is assigned but never used", "remove it, or use it")
            elif b.what == "parameter":
                self.warn("W0001", b.span, f"parameter `{name}` is never used", "remove it, or use it")
            elif b.what == "input":
                self.warn("W0001", b.span, f"input `{name}` is never used", "remove it, or feed it to an output")

    def _input(self, stmt: ast.Input, frame: Frame) -> None:
        if frame.in_block:
            self.err(frame, "E0305", stmt.span, "`input` is only allowed in a model",
                     "pass tensors to a block as arguments")
            return
        if stmt.dtype not in ("float", "int"):
            guess = did_you_mean(stmt.dtype, ["float", "int"])
            self.err(frame, "E0213", stmt.span, f"unknown dtype `{stmt.dtype}`",
                     f"did you mean `{guess}`?" if guess else "inputs are `float[...]` or `int[...]`")
            value = UNKNOWN
        else:
            dims = self.eval_dims(stmt.dims, frame)
            value = UNKNOWN if dims is None else self.add_node(
                "input", (), {}, TensorType(stmt.dtype, dims), stmt.span, frame, base=stmt.name)
        if value is UNKNOWN:
            self._failed.add("<input>")
        if isinstance(value, Tensor):
            if stmt.name in self.graph.inputs:
                self.err(frame, "E0306", stmt.name_span, f"input `{stmt.name}` is declared twice",
                         "give each input its own name")
            self.graph.inputs[stmt.name] = value.node
        self.bind(frame, stmt.name, value, stmt.name_span, "input")

    def eval_dims(self, exprs: tuple[ast.Expr, ...], frame: Frame) -> tuple | None:
        dims: list = []
        ok = True
        for e in exprs:
            v = self.eval(e, frame, symbols=True)
            if isinstance(v, Symbol):
                dims.append(v.name)
            elif isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 2**31 - 1:
                dims.append(v)
            elif v is not UNKNOWN:
                self.err(frame, "E0202", e.span, f"a dimension must be a positive integer or a name, not {v!r}",
                         "use a size such as 16, a const, or a symbolic name such as B")
                ok = False
            else:
                ok = False
        return tuple(dims) if ok else None

    def _output(self, stmt: ast.Output, frame: Frame) -> None:
        if frame.in_block:
            self.err(frame, "E0305", stmt.span, "`output` is only allowed in a model", "`return` the value instead")
            return
        before = len(self.graph.nodes)
        value = self.eval(stmt.value, frame)
        if value is UNKNOWN:
            self._failed.add(stmt.name)  # already reported; do not also say the output is missing
            return
        if not isinstance(value, Tensor):
            self.err(frame, "E0303", stmt.value.span, f"output `{stmt.name}` must be a tensor, not {type_name(value)}",
                     f"compute it from the inputs, e.g. `output {stmt.name} = h -> linear(out=1)`")
            return
        if stmt.name in self.graph.outputs:
            self.err(frame, "E0306", stmt.name_span, f"output `{stmt.name}` is declared twice",
                     "give each output its own name")
            return
        self._name_output(value, before, stmt.name, frame)
        self.graph.outputs[stmt.name] = value.node

    def _name_output(self, value: Tensor, before: int, name: str, frame: Frame) -> None:
        """Name the node an output statement created after the output (`policy.weight`)."""
        if value.node < before:
            return
        node = self.graph.nodes[value.node]
        if node.op == "input" or node.scope != _scope_of(frame):
            return
        wanted = frame.path + safe_name(name)
        if wanted not in self._names:
            self._names.discard(node.name)
            node.name = wanted
            self._names.add(wanted)

    def _repeat(self, stmt: ast.Repeat, frame: Frame) -> None:
        count = self.eval(stmt.count, frame)
        if count is UNKNOWN:
            return
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_REPEAT:
            self.err(frame, "E0202", stmt.count.span,
                     f"`repeat` needs a whole number from 0 to {MAX_REPEAT}, got {count!r}",
                     "for example `repeat 4 { ... }` or `repeat layers { ... }` with `layers: int`")
            return
        label = stmt.count.id if isinstance(stmt.count, ast.Name) and "." not in stmt.count.id else "repeat"
        base = self._unique(frame.path + label)
        outer_path = frame.path
        for i in range(count):
            frame.path = f"{base}.{i}."
            if stmt.var is not None:
                frame.vars[stmt.var] = Binding(i, stmt.span, "loop")
            self.exec_body(stmt.body, frame)
        frame.path = outer_path

    # ------------------------------------------------------------------------------ expressions
    def eval(self, expr: ast.Expr, frame: Frame, symbols: bool = False) -> Any:
        if isinstance(expr, ast.Number):
            return expr.value
        if isinstance(expr, ast.String):
            return expr.value
        if isinstance(expr, ast.Bool):
            return expr.value
        if isinstance(expr, ast.NoneLit):
            return None
        if isinstance(expr, ast.Quantity):
            return QuantityValue(expr.value, expr.unit)
        if isinstance(expr, ast.List):
            return tuple(self.eval(e, frame, symbols) for e in expr.items)
        if isinstance(expr, ast.Name):
            return self.lookup(expr, frame, symbols)
        if isinstance(expr, ast.Neg):
            return self._neg(expr, frame, symbols)
        if isinstance(expr, ast.BinOp):
            return self._binop(expr, frame, symbols)
        if isinstance(expr, ast.Pipe):
            value = self.eval(expr.value, frame)
            return self.call(expr.call, frame, piped=(value, expr.value.span))
        if isinstance(expr, ast.Call):
            return self.call(expr, frame)
        return self.err(frame, "E0001", expr.span, "unsupported expression")

    def lookup(self, expr: ast.Name, frame: Frame, symbols: bool = False) -> Any:
        name = expr.id
        binding = frame.vars.get(name)
        if binding is not None:
            binding.used = True
            return binding.value
        found = frame.scope.lookup(name)
        if found is not None:
            definition, scope = found
            if isinstance(definition, ast.Const):
                return self.const_value(definition, scope)
            kind = "block" if isinstance(definition, ast.Block) else "model"
            return self.err(frame, "E0201", expr.span, f"`{name}` is a {kind}, not a value",
                            f"call it: `x -> {name}(...)`" if kind == "block" else None)
        if symbols and "." not in name:
            return Symbol(name)
        if name in PRIMITIVES:
            return self.err(frame, "E0201", expr.span, f"`{name}` is a primitive, not a value",
                            f"apply it to a tensor: `x -> {name}`")
        if frame.scope.from_failed_import(name):
            return UNKNOWN  # the import that would define it is reported already
        d = unknown_name(name, expr.span, [*frame.vars, *frame.scope.visible_names()])
        return self.err(frame, d.code, d.span, d.message, d.help, fix=d.fix)

    def _neg(self, expr: ast.Neg, frame: Frame, symbols: bool) -> Any:
        v = self.eval(expr.operand, frame, symbols)
        if v is UNKNOWN:
            return v
        if isinstance(v, Tensor):
            return self.add_node("neg", (v.node,), {}, _float_like(v.type), expr.span, frame,
                                 flops=cost.numel(v.type))
        if isinstance(v, int | float) and not isinstance(v, bool):
            return -v
        return self.err(frame, "E0201", expr.span, f"cannot negate a {type_name(v)}",
                        "unary minus applies to numbers and tensors")

    def _binop(self, expr: ast.BinOp, frame: Frame, symbols: bool) -> Any:
        a = self.eval(expr.left, frame, symbols)
        b = self.eval(expr.right, frame, symbols)
        if a is UNKNOWN or b is UNKNOWN:
            return UNKNOWN
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            return self._tensor_arith(expr, a, b, frame)
        if _is_number(a) and _is_number(b):
            return self._number_arith(expr, a, b, frame)
        if expr.op == "+" and isinstance(a, tuple) and isinstance(b, tuple):
            return a + b
        return self.err(frame, "E0201", expr.span,
                        f"cannot apply `{expr.op}` to {type_name(a)} and {type_name(b)}",
                        "`+ - * /` work on numbers and on tensors; `+` also joins two lists")

    def _number_arith(self, expr: ast.BinOp, a, b, frame: Frame) -> Any:
        op = expr.op
        if op == "/":
            if b == 0:
                return self.err(frame, "E0209", expr.right.span, "division by zero",
                                "this divisor is 0; check the consts and parameters it is computed from")
            if isinstance(a, int) and isinstance(b, int) and a % b == 0:
                return a // b  # exact division of ints stays an int: `d / heads` is a width
            result = a / b
        elif op == "+":
            result = a + b
        elif op == "-":
            result = a - b
        else:
            if isinstance(a, int) and isinstance(b, int) and a and b and math.log10(abs(a)) + math.log10(abs(b)) > 300:
                return self.err(frame, "E0202", expr.span, "number is too large",
                                "compile-time numbers must fit in a 64-bit float")
            result = a * b
        if isinstance(result, float) and not math.isfinite(result):
            return self.err(frame, "E0202", expr.span, "number is too large",
                            "compile-time numbers must fit in a 64-bit float")
        return result

    def _tensor_arith(self, expr: ast.BinOp, a, b, frame: Frame) -> Any:
        op = {"+": "add", "-": "sub", "*": "mul", "/": "div"}[expr.op]
        if isinstance(a, Tensor) and isinstance(b, Tensor):
            try:
                out = shapes.broadcast(a.type, b.type, expr.op)
            except shapes.ShapeError as exc:
                return self.err(frame, exc.code, expr.span, exc.message, exc.help)
            if op == "div":
                out = _float_like(out)
            return self.add_node(op, (a.node, b.node), {}, out, expr.span, frame, flops=cost.numel(out))
        tensor, scalar = (a, b) if isinstance(a, Tensor) else (b, a)
        if not _is_number(scalar):
            return self.err(frame, "E0201", expr.span, f"cannot apply `{expr.op}` to a tensor and a {type_name(scalar)}",
                            "combine a tensor with a number or with another tensor")
        attrs = {"scalar": scalar, "scalar_first": not isinstance(a, Tensor)}
        out = tensor.type if isinstance(scalar, int) and op != "div" else _float_like(tensor.type)
        return self.add_node(op, (tensor.node,), attrs, out, expr.span, frame, flops=cost.numel(out))

    # ------------------------------------------------------------------------------------ calls
    def call(self, call: ast.Call, frame: Frame, piped: tuple[Any, Span] | None = None) -> Any:
        positional: list[tuple[Any, Span]] = [piped] if piped is not None else []
        positional += [(self.eval(a, frame), a.span) for a in call.args]
        name = call.func
        kwargs = {k.name: (self.eval(k.value, frame, symbols=takes_symbols(name, k.name)), k) for k in call.kwargs}
        if name == "dim":
            return self._dim(call, positional, kwargs, frame)
        found = frame.scope.lookup(name)
        if found is not None:
            definition, scope = found
            if isinstance(definition, ast.Block):
                return self.call_block(definition, scope, call, positional, kwargs, frame)
            if isinstance(definition, ast.Model):
                return self.err(frame, "E0217", call.func_span, f"model `{name}` cannot be called inside a model",
                                f"turn `{name}` into a `block` to reuse it")
            return self.err(frame, "E0201", call.func_span, f"`{name}` is a const, not a block",
                            f"use it as a value, e.g. `linear(out={name})`")
        prim = PRIMITIVES.get(name)
        if prim is not None:
            return self.call_primitive(prim, call, positional, kwargs, frame)
        if name in frame.vars:
            return self.err(frame, "E0201", call.func_span, f"`{name}` is a value, not a block",
                            f"pipe it into a block instead: `{name} -> ...`")
        if frame.scope.from_failed_import(name):
            return UNKNOWN  # the import that would define it is reported already
        d = unknown_block(name, call.func_span, frame.scope)
        return self.err(frame, d.code, d.span, d.message, d.help, fix=d.fix)

    def _dim(self, call: ast.Call, positional, kwargs, frame: Frame) -> Any:
        if kwargs or not 1 <= len(positional) <= 2:
            return self.err(frame, "E0106", call.span, "`dim` takes a tensor and an optional index",
                            "write `dim(x)` for the last dimension or `dim(x, 1)` for dimension 1")
        x = positional[0][0]
        index = positional[1][0] if len(positional) == 2 else -1
        if x is UNKNOWN or index is UNKNOWN:
            return UNKNOWN
        if not isinstance(x, Tensor):
            return self.err(frame, "E0201", positional[0][1], f"`dim` needs a tensor, not {type_name(x)}",
                            "pass the tensor whose size you want: `dim(x)`")
        if isinstance(index, bool) or not isinstance(index, int) or not -x.type.rank <= index < x.type.rank:
            return self.err(frame, "E0210", positional[-1][1], f"dimension {index!r} is out of range for {x.type}",
                            f"use a value from {-x.type.rank} to {x.type.rank - 1}" if x.type.rank else
                            "this tensor has no dimensions")
        size = x.type.shape[index]
        if not isinstance(size, int):
            return self.err(frame, "E0208", call.span, f"dimension {index} of {x.type} is `{size}`, not known at compile time",
                            "only dims given as numbers or consts are known while compiling")
        return size

    def call_primitive(self, prim: Primitive, call: ast.Call, positional, kwargs, frame: Frame) -> Any:
        ok = True
        meant: set[str] = set()  # arguments a reported mistake already stands for (`linear(x, 4)` is `out=4`)
        tensors = [v for v, _ in positional if isinstance(v, Tensor)]
        for value, span in positional:
            if value is UNKNOWN:
                ok = False
            elif not isinstance(value, Tensor):
                arg = prim.args[0] if prim.args else None  # `linear(x, 4)` most likely meant the first argument
                fix = None
                hint = "pass compile-time arguments by name"
                if arg is not None and len(positional) == 2 and prim.tensors == 1 and arg.name not in kwargs:
                    hint = f"write `{arg.name}={_source_text(value)}`"
                    fix = Fix(f"name the argument `{arg.name}`", (Edit(span, f"{arg.name}={_source_text(value)}"),))
                ok = self.err(frame, "E0106", span, f"`{prim.name}` takes tensors positionally, not {type_name(value)}",
                              hint, fix=fix) and False
                if fix is not None:
                    meant.add(arg.name)
        need = prim.tensors
        if ok and need == 1 and len(tensors) != 1:
            if not tensors:
                return self.err(frame, "E0106", call.span, f"`{prim.name}` needs a tensor input",
                                f"apply it to one: `x -> {prim.name}(...)`")
            return self.err(frame, "E0106", call.span, f"`{prim.name}` takes one tensor, got {len(tensors)}",
                            f"combine them first (`a + b` or `concat(a, b)`), then apply `{prim.name}`")
        if ok and need < 0 and len(tensors) < 2:
            return self.err(frame, "E0106", call.span, f"`{prim.name}` needs at least two tensors",
                            f"`{prim.name}(a, b, dim=-1)`")
        attrs = self.bind_args(prim.name, prim.args, kwargs, call.span, frame, meant)
        if attrs is None or not ok:
            return UNKNOWN
        in_types = [t.type for t in tensors]
        try:
            out = prim.output(in_types, attrs)
        except shapes.ShapeError as exc:
            fix = self._suggestion_fix(exc, kwargs, call)
            return self.err(frame, exc.code, call.span, exc.message, exc.help, fix=fix)
        self._check_width(prim.name, attrs, in_types, call, kwargs, frame)
        params = prim.count_params(in_types, attrs, out)
        flops = prim.count_flops(in_types, attrs, out)
        return self.add_node(prim.name, tuple(t.node for t in tensors), attrs, out, call.span, frame,
                             params=params, flops=flops)

    def _suggestion_fix(self, exc: shapes.ShapeError, kwargs, call: ast.Call) -> Fix | None:
        if exc.suggest is None:
            return None
        name, value = exc.suggest
        kw = kwargs.get(name)
        if kw is None:
            return None
        return Fix(f"use {name}={value}", (Edit(kw[1].value.span, str(value)),))

    def _check_width(self, op: str, attrs: dict, in_types: list[TensorType], call: ast.Call, kwargs,
                     frame: Frame) -> None:
        checks: list[tuple[int, ast.Keyword | None, str]] = []
        for key in PRIMITIVES[op].widths:
            if key == "input":
                if isinstance(in_types[0].shape[-1], int):
                    checks.append((in_types[0].shape[-1], None, f"{op} width"))
            else:
                checks.append((attrs[key], kwargs.get(key, (None, None))[1], f"`{key}`"))
        for width, kw, what in checks:
            if isinstance(width, int) and width >= 16 and width % 8:
                up = -(-width // 8) * 8
                span = kw.value.span if kw is not None else call.span
                fix = Fix(f"use {up}", (Edit(kw.value.span, str(up)),)) if kw is not None and isinstance(
                    kw.value, ast.Number) else None
                self.warn("W0002", span, f"{what} {width} is not a multiple of 8",
                          f"widths that are multiples of 8 run faster; try {up}", fix=fix, frame=frame)

    def bind_args(self, callee: str, args: tuple[Arg, ...], kwargs: dict[str, tuple[Any, ast.Keyword]],
                  call_span: Span, frame: Frame | None, meant: set[str] | None = None,
                  noun: str = "argument") -> dict | None:
        """Check keyword arguments (name -> (value, its Keyword)) against `args`; fill in defaults.

        Used for primitives here and for experiment settings (`ppo(...)`, `game2048(...)`). A required
        argument in `meant` is not reported missing: an error already given (a misspelt keyword, a
        positional value) stands for it.
        """
        attrs: dict[str, Any] = {}
        ok = True
        names = [a.name for a in args]
        meant = set(meant or ())
        for key, (value, kw) in kwargs.items():
            arg = next((a for a in args if a.name == key), None)
            if arg is None:
                guess = did_you_mean(key, names)
                if guess:
                    meant.add(guess)
                fix = Fix(f"change to `{guess}`", (Edit(kw.name_span, guess),)) if guess else None
                self.err(frame, "E0103", kw.name_span, f"`{callee}` has no {noun} `{key}`",
                         f"did you mean `{guess}`?" if guess else
                         (f"`{callee}` takes " + ", ".join(names) if names else f"`{callee}` takes no arguments"),
                         fix=fix)
                ok = False
                continue
            if value is UNKNOWN:
                ok = False
                continue
            try:
                attrs[key] = coerce(arg, value)
            except ArgError as exc:
                self.err(frame, "E0202", kw.value.span, exc.message, exc.help)
                ok = False
        for arg in args:
            if arg.name in attrs or arg.name in kwargs:
                continue
            if arg.required:
                if arg.name not in meant:
                    self.err(frame, "E0104", call_span, f"`{callee}` needs `{arg.name}`",
                             f"add `{arg.name}=...`" + (f" ({arg.doc})" if arg.doc else ""))
                ok = False
            else:
                attrs[arg.name] = arg.default
        return attrs if ok else None

    def call_block(self, block: ast.Block, scope: ModuleScope, call: ast.Call, positional, kwargs,
                   frame: Frame) -> Any:
        if block.name in self._call_stack:
            return self.err(frame, "E0114", call.func_span, f"block `{block.name}` calls itself",
                            "blocks are inlined at compile time; use `repeat` for a stack of layers")
        if len(self._call_stack) >= MAX_CALL_DEPTH:
            return self.err(frame, "E0114", call.func_span, f"blocks are nested more than {MAX_CALL_DEPTH} deep",
                            "call fewer blocks inside blocks; use `repeat` for a stack of layers")
        tensor_params = [p for p in block.params if is_tensor_param(p)]
        static_params = [p for p in block.params if not is_tensor_param(p)]
        inner = Frame(scope, path="", call_span=call.span, in_block=True)
        ok = True
        if len(positional) != len(tensor_params):
            want = ", ".join(p.name for p in tensor_params)
            self.err(frame, "E0106", call.span,
                     f"block `{block.name}` takes {len(tensor_params)} tensor argument(s) ({want}), got {len(positional)}",
                     "pass tensors positionally and other parameters by name")
            ok = False
        for p, (value, span) in zip(tensor_params, positional, strict=False):
            if value is UNKNOWN:
                ok = False
            elif not isinstance(value, Tensor):
                self.err(frame, "E0201", span, f"`{p.name}` of `{block.name}` must be a tensor, not {type_name(value)}",
                         "pass tensors positionally and other parameters by name")
                ok = False
            elif p.type is not None and p.type.dims is not None:
                ok = self._check_tensor_annotation(p, value, span, frame, inner) and ok
            inner.vars[p.name] = Binding(value, p.span, "parameter")
        meant: set[str] = set()  # parameters a misspelt keyword stands for: not also reported missing
        for key, (_, kw) in kwargs.items():
            if not any(p.name == key for p in static_params):
                guess = did_you_mean(key, [p.name for p in static_params])
                self.err(frame, "E0103", kw.name_span, f"block `{block.name}` has no parameter `{key}`",
                         f"did you mean `{guess}`?" if guess else _params_help(static_params))
                meant.add(guess)
                ok = False
        for p in static_params:
            if p.name in kwargs:
                value, kw = kwargs[p.name]
                value = self._check_param_value(p, value, kw.value.span, frame)
            elif p.default is not None:
                value = self._check_param_value(p, self.eval(p.default, inner), p.default.span, inner)
            else:
                if p.name not in meant:
                    self.err(frame, "E0104", call.span, f"block `{block.name}` needs `{p.name}`", f"add `{p.name}=...`")
                ok = False
                continue
            ok = ok and value is not UNKNOWN
            inner.vars[p.name] = Binding(value, p.span, "parameter")
        if not ok:
            return UNKNOWN
        path = self._unique(frame.path + block.name)
        inner.path = path + "."
        depth = len(self._call_stack)
        self.graph.calls.append(BlockCall(path, block.name, call.span, depth))
        self._call_stack.append(block.name)
        try:
            result = self.exec_body(block.body, inner)
        finally:
            self._call_stack.pop()
        if result is None and not any(isinstance(s, ast.Return) for s in block.body):
            # Not also "`x` is assigned but never used": the missing `return` is why.
            return self.err(None, "E0304", block.name_span, f"block `{block.name}` has no `return`",
                            "end it with `return x`")
        self._warn_unused(inner)
        return UNKNOWN if result is None else result

    def _check_tensor_annotation(self, p: ast.Param, value: Tensor, span: Span, frame: Frame, inner: Frame) -> bool:
        ann = p.type
        if ann.name not in ("float", "int", "tensor"):
            self.err(frame, "E0214", ann.span, f"unknown tensor type `{ann.name}`", "use float[...] or int[...]")
            return False
        dims = self.eval_dims(ann.dims, inner)
        if dims is None:
            return False
        if (ann.name != "tensor" and value.type.dtype != ann.name) or len(dims) != value.type.rank or any(
                isinstance(want, int) and want != got for want, got in zip(dims, value.type.shape, strict=False)):
            self.err(frame, "E0206", span, f"`{p.name}` expects {ann.name}[{', '.join(map(str, dims))}], got {value.type}",
                     f"pass a tensor of that type, or change the annotation of `{p.name}`")
            return False
        return True

    # ------------------------------------------------------------------------------------ nodes
    def _unique(self, base: str) -> str:
        """`base` (a dotted path) made unique in the graph, its last part a safe attribute name."""
        prefix, dot, leaf = base.rpartition(".")
        base = prefix + dot + safe_name(leaf)
        name = base
        k = 1
        while name in self._names:
            name = f"{base}_{k}"
            k += 1
        self._names.add(name)
        return name

    def add_node(self, op: str, inputs: tuple[int, ...], attrs: dict, out: TensorType, span: Span, frame: Frame,
                 *, params: int = 0, flops: int | None = 0, base: str | None = None) -> Tensor:
        graph = self.graph
        if len(graph.nodes) >= MAX_NODES:
            self.err(frame, "E0215", span, f"the model has more than {MAX_NODES} nodes",
                     "lower a `repeat` count or split the design")
            raise Abort
        node = Node(len(graph.nodes), self._unique(frame.path + (base or op)), op, inputs, attrs, out, span,
                    _scope_of(frame), params, flops)
        graph.nodes.append(node)
        return Tensor(node.id, out)


def takes_symbols(func: str, arg: str) -> bool:
    """Arguments whose bare names are symbolic dims rather than variables: `reshape(shape=[B, -1])`."""
    return func == "reshape" and arg == "shape"


def unknown_name(name: str, span: Span, candidates: list[str]) -> Diagnostic:
    guess = did_you_mean(name, candidates)
    fix = Fix(f"change to `{guess}`", (Edit(span, guess),)) if guess else None
    return error("E0101", span, f"unknown name `{name}`", f'did you mean "{guess}"?' if guess else
                 f"define it before this line (`{name} = ...`), or declare it as an input, a parameter or a const",
                 fix=fix)


def unknown_block(name: str, span: Span, scope: ModuleScope) -> Diagnostic:
    blocks = [n for n in scope.visible_names() if isinstance(scope.lookup(n)[0], ast.Block)]
    guess = did_you_mean(name, [*PRIMITIVES, *BUILTINS, *blocks])
    fix = Fix(f"change to `{guess}`", (Edit(span, guess),)) if guess else None
    return error("E0102", span, f"unknown block `{name}`",
                 f'did you mean "{guess}"?' if guess else "define it with `block NAME(x) { ... }`", fix=fix)


def _scope_of(frame: Frame) -> tuple[str, ...]:
    parts = frame.path.rstrip(".")
    return (parts,) if parts else ()


def _float_like(t: TensorType) -> TensorType:
    return TensorType("float", t.shape)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _source_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _params_help(params) -> str:
    names = [p.name for p in params if p.type is not None and p.type.dims is None]
    return "its parameters are " + ", ".join(f"`{n}`" for n in names) if names else "it takes no parameters"


__all__ = ["REQUIRED", "UNKNOWN", "CallValue", "Elaborator", "Frame", "QuantityValue", "Symbol", "Tensor"]
