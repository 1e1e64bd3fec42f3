"""Calls during elaboration: primitives, blocks and the `dim` builtin, and the arguments they take.

`Calls` is the part of mdl.compiler.elaborate.Elaborator that handles `f(...)` and `x -> f(...)`: it
checks arguments against a primitive's `Arg`s (`bind_args`, also used for experiment settings), runs
the primitive's shape, parameter and FLOP rules, warns about widths that are not multiples of 8, and
inlines block calls in a frame of their own. It is a mixin: the elaborator supplies `eval`, `err`,
`warn`, `add_node` and the rest.
"""

from __future__ import annotations

from typing import Any

from mdl.compiler import shapes
from mdl.compiler.args import Arg, ArgError, coerce, type_name
from mdl.compiler.ir import BlockCall, TensorType
from mdl.compiler.primitives import BUILTINS, PRIMITIVES, Primitive
from mdl.compiler.resolve import ModuleScope
from mdl.compiler.values import UNKNOWN, Binding, Frame, Tensor, is_tensor_param
from mdl.dsl import ast
from mdl.dsl.ast import Span
from mdl.dsl.diagnostics import Diagnostic, Edit, Fix, did_you_mean, error

MAX_CALL_DEPTH = 64


class Calls:
    """Primitive, block and builtin calls (a mixin of the Elaborator)."""

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
        params, flops = prim.figures(in_types, attrs, out)
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
                         f"did you mean `{guess}`?" if guess else params_help(static_params))
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


def _source_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def params_help(params) -> str:
    names = [p.name for p in params if p.type is not None and p.type.dims is None]
    return "its parameters are " + ", ".join(f"`{n}`" for n in names) if names else "it takes no parameters"
