"""Elaboration: run a model's statements at compile time and build its graph IR.

Consts and arithmetic are folded, block calls inlined with their own arguments, `repeat` unrolled,
and each primitive call becomes one IR node whose shape, parameters and FLOPs are known (the calls
themselves are mdl.compiler.calls; the values and frames, mdl.compiler.values). A mistake
produces one diagnostic and a poison value (`UNKNOWN`) that later uses accept silently, so one error
is reported once and the rest of the model is still checked.
"""

from __future__ import annotations

import math
from typing import Any

from mdl.compiler import cost, shapes
from mdl.compiler.args import REQUIRED, Arg, ArgError, coerce, type_name
from mdl.compiler.calls import Calls, params_help, unknown_name
from mdl.compiler.ir import Graph, Node, TensorType, safe_name
from mdl.compiler.primitives import PRIMITIVES
from mdl.compiler.resolve import ModuleScope
from mdl.compiler.values import (
    UNKNOWN,
    Abort,
    Binding,
    CallValue,
    Frame,
    QuantityValue,
    Symbol,
    Tensor,
    is_tensor_param,
)
from mdl.dsl import ast
from mdl.dsl.ast import Span
from mdl.dsl.diagnostics import Diagnostic, Fix, Label, did_you_mean, error, warning

MAX_NODES = 100_000
MAX_REPEAT = 10_000


_PARAM_TYPES = {"int": "int", "float": "float", "bool": "bool", "str": "str", "string": "str", "list": "list"}


def _model_key(model: ast.Model, scope: ModuleScope, args: dict[str, Any]) -> tuple | None:
    """The memo key of a model elaboration, or None when an argument value is not hashable."""
    key = (id(model), id(scope), tuple(sorted(args.items())))
    try:
        hash(key)
    except TypeError:
        return None
    return key


class Elaborator(Calls):
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
                         f"did you mean `{guess}`?" if guess else params_help(model.params))
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


def _scope_of(frame: Frame) -> tuple[str, ...]:
    parts = frame.path.rstrip(".")
    return (parts,) if parts else ()


def _float_like(t: TensorType) -> TensorType:
    return TensorType("float", t.shape)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


__all__ = ["REQUIRED", "UNKNOWN", "CallValue", "Elaborator", "Frame", "QuantityValue", "Symbol", "Tensor"]
