"""Hypothesis strategies for whole `.mdl` files that must check with no diagnostics at all.

`models()` draws source text. `models_with_shapes()` draws a `GeneratedModel`: the text together with
what it must compile to (parameter count, input and output shapes, and the graph's nodes), worked out
while generating by the small interpreter below from LANGUAGE.md's formulas, never by `mdl.compiler`,
so the property tests hold the compiler to an independent account.

How a file is drawn: the generator keeps the concrete state of the code it is writing (the shape of
every tensor name, the value of every compile-time name). Each statement is drawn as a small syntax
tree (`CExpr`, `TExpr`, statements), run by `Interpreter` against a copy of that state, and kept only
if it is valid there. A block is drafted at its first call site against that call's shapes, its
arguments written as new parameters or as `dim(x)` arithmetic, and reused later with other arguments
that the interpreter accepts. So every design is valid by construction whatever hypothesis draws, and
the rules that keep it free of warnings are the interpreter's: widths that are multiples of 8 (or
below 16), and every binding, parameter and input used.

Sizes stay small (widths up to 64, at most 3 repetitions) so that elaboration is fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

BATCH = "B"
ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "sigmoid")
# LANGUAGE.md's primitive table: each primitive and the keyword arguments it takes.
PRIMITIVE_ARGS: dict[str, frozenset[str]] = {
    "embedding": frozenset({"vocab", "dim"}),
    "linear": frozenset({"out", "bias"}),
    "layer_norm": frozenset({"eps"}),
    "rms_norm": frozenset({"eps"}),
    **{a: frozenset() for a in ACTIVATIONS},
    "glu": frozenset(),
    "softmax": frozenset({"dim"}),
    "dropout": frozenset({"p"}),
    "attention": frozenset({"heads", "dropout"}),
    "pos_encoding": frozenset({"kind"}),
    "mlp": frozenset({"hidden", "out", "act"}),
    "moe": frozenset({"experts", "top_k", "hidden", "act", "capacity", "balance"}),
    "mean": frozenset({"dim"}),
    "sum": frozenset({"dim"}),
    "max": frozenset({"dim"}),
    "flatten": frozenset({"start", "end"}),
    "reshape": frozenset({"shape"}),
    "concat": frozenset({"dim"}),
}
WIDTHS = (4, 8, 12, 16, 24, 32, 48, 64)
MAX_FLAT = 256  # the widest a flatten or concat may make a tensor
MAX_SEQ = 32


class Invalid(Exception):
    """A drawn statement that is not valid where it stands (the generator then draws another)."""


def ok_width(w: int) -> bool:
    """A width that draws no W0002 warning."""
    return w < 16 or w % 8 == 0


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class TV:
    """A tensor value: its dtype and shape (ints, and "B" for the batch)."""

    dtype: str
    shape: tuple

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def width(self) -> Any:
        return self.shape[-1]


# --------------------------------------------------------------------------- compile-time expressions
class CExpr:
    """A compile-time expression: its text, and its value in an environment of names."""

    prec = 3  # 1: + -, 2: * /, 3: atoms

    def text(self) -> str:
        raise NotImplementedError

    def value(self, env: dict) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Lit(CExpr):
    v: Any
    spelling: str | None = None  # e.g. "1k" for 1000

    def text(self) -> str:
        if self.spelling is not None:
            return self.spelling
        v = self.v
        if v is None:
            return "none"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        return repr(v)

    def value(self, env: dict) -> Any:
        return self.v


@dataclass(frozen=True)
class Ref(CExpr):
    name: str

    def text(self) -> str:
        return self.name

    def value(self, env: dict) -> Any:
        v = env.get(self.name)
        if v is None or isinstance(v, TV):
            raise Invalid(self.name)
        return v


@dataclass(frozen=True)
class Sym(CExpr):
    """A symbolic dimension (`B`) in an input type, an annotation or a `reshape` shape."""

    name: str

    def text(self) -> str:
        return self.name

    def value(self, env: dict) -> Any:
        return self.name


@dataclass(frozen=True)
class DimOf(CExpr):
    var: str
    index: int | None = None

    def text(self) -> str:
        return f"dim({self.var})" if self.index is None else f"dim({self.var}, {self.index})"

    def value(self, env: dict) -> Any:
        tv = env.get(self.var)
        if not isinstance(tv, TV) or tv.rank <= (self.index or 0):
            raise Invalid(self.var)
        size = tv.shape[-1 if self.index is None else self.index]
        if not _is_int(size):
            raise Invalid(f"dim({self.var}) is symbolic")
        return size


@dataclass(frozen=True)
class Bin(CExpr):
    op: str
    a: CExpr
    b: CExpr

    @property
    def prec(self) -> int:  # type: ignore[override]
        return 1 if self.op in "+-" else 2

    def text(self) -> str:
        left = self.a.text() if self.a.prec >= self.prec else f"({self.a.text()})"
        right = self.b.text() if self.b.prec > self.prec else f"({self.b.text()})"
        return f"{left} {self.op} {right}"

    def value(self, env: dict) -> Any:
        a, b = self.a.value(env), self.b.value(env)
        if self.op == "+":
            return a + b
        if self.op == "-":
            return a - b
        if self.op == "*":
            return a * b
        if b == 0:
            raise Invalid("division by zero")
        return a // b if _is_int(a) and _is_int(b) and a % b == 0 else a / b


@dataclass(frozen=True)
class ListE(CExpr):
    items: tuple[CExpr, ...]

    def text(self) -> str:
        return "[" + ", ".join(i.text() for i in self.items) + "]"

    def value(self, env: dict) -> Any:
        return tuple(i.value(env) for i in self.items)


# -------------------------------------------------------------------------------- tensor expressions
Kwargs = tuple[tuple[str, CExpr], ...]


def _args_text(parts: list[str], multiline: bool) -> str:
    if multiline and parts:  # newlines inside ( ) are not significant
        return "(\n" + "".join(f"        {p},\n" for p in parts) + "    )"
    return "(" + ", ".join(parts) + ")"


class TExpr:
    is_pipe = False

    def text(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class TRef(TExpr):
    name: str

    def text(self) -> str:
        return self.name


@dataclass(frozen=True)
class TCall(TExpr):
    """`func(t1, t2, k=v)`: a primitive or block applied directly."""

    func: str
    tensors: tuple[TExpr, ...]
    kwargs: Kwargs = ()
    multiline: bool = False

    def text(self) -> str:
        parts = [t.text() for t in self.tensors] + [f"{k}={v.text()}" for k, v in self.kwargs]
        return self.func + _args_text(parts, self.multiline)


@dataclass(frozen=True)
class TPipe(TExpr):
    """`src -> func(t2, k=v)`; `src -> func` when there are no arguments and not `parens`."""

    src: TExpr
    func: str
    tensors: tuple[TExpr, ...] = ()
    kwargs: Kwargs = ()
    parens: bool = False
    newline: bool = False  # start the `->` on a new line
    multiline: bool = False
    is_pipe = True

    def text(self) -> str:
        parts = [t.text() for t in self.tensors] + [f"{k}={v.text()}" for k, v in self.kwargs]
        call = self.func + (_args_text(parts, self.multiline) if parts or self.parens else "")
        return self.src.text() + ("\n        -> " if self.newline else " -> ") + call


@dataclass(frozen=True)
class TBin(TExpr):
    op: str
    a: TExpr
    b: TExpr

    def text(self) -> str:
        left = f"({self.a.text()})" if self.a.is_pipe else self.a.text()
        right = f"({self.b.text()})" if self.b.is_pipe or isinstance(self.b, TBin) else self.b.text()
        return f"{left} {self.op} {right}"


# -------------------------------------------------------------------------------------- statements
@dataclass(frozen=True)
class Assign:
    name: str
    value: TExpr
    layout: str = ""  # "", "semi" (joined to the previous line with `;`), "comment", "blank"


@dataclass(frozen=True)
class Output:
    name: str
    value: TExpr
    layout: str = ""


@dataclass(frozen=True)
class Return:
    value: TExpr
    layout: str = ""


@dataclass(frozen=True)
class Input:
    name: str
    dtype: str
    dims: tuple[CExpr, ...]
    layout: str = ""


@dataclass(frozen=True)
class Repeat:
    count: CExpr
    var: str | None
    body: tuple
    layout: str = ""


def _stmt_text(s, indent: str) -> str:
    if isinstance(s, Assign):
        return f"{s.name} = {s.value.text()}"
    if isinstance(s, Output):
        return f"output {s.name} = {s.value.text()}"
    if isinstance(s, Return):
        return f"return {s.value.text()}"
    if isinstance(s, Input):
        return f"input {s.name}: {s.dtype}[{', '.join(d.text() for d in s.dims)}]"
    head = f"repeat {s.count.text()}" + (f" as {s.var}" if s.var else "")
    return f"{head} {{\n{body_text(s.body, indent + '    ')}\n{indent}}}"


def body_text(stmts, indent: str) -> str:
    out = ""
    for k, s in enumerate(stmts):
        text = _stmt_text(s, indent)
        comment = "  # a comment" if s.layout == "comment" else ""
        if k and s.layout == "semi" and "\n" not in text and not out.endswith(("}", "\n", "comment")):
            out += "; " + text
            continue
        if k:
            out += "\n" + ("\n" if s.layout == "blank" else "")
        out += indent + text + comment
    return out


@dataclass(frozen=True)
class TensorParam:
    name: str
    annotation: tuple[str, tuple[CExpr, ...]] | None = None  # dtype and dims


@dataclass(frozen=True)
class BlockParam:
    name: str
    type: str  # "int", "float", "str" or "bool"
    default: CExpr | None
    role: str  # what it is used as, for drawing arguments at later calls


@dataclass
class BlockDef:
    name: str
    tensors: list[TensorParam]
    params: list[BlockParam]
    body: list
    trailing_comma: bool = False

    def text(self) -> str:
        parts = []
        for t in self.tensors:
            if t.annotation is None:
                parts.append(t.name)
            else:
                dtype, dims = t.annotation
                parts.append(f"{t.name}: {dtype}[{', '.join(d.text() for d in dims)}]")
        for p in self.params:
            parts.append(f"{p.name}: {p.type}" + ("" if p.default is None else f" = {p.default.text()}"))
        comma = "," if self.trailing_comma else ""
        return f"block {self.name}({', '.join(parts)}{comma}) {{\n{body_text(self.body, '    ')}\n}}"


def _stdlib_blocks() -> list[BlockDef]:
    """`mdl/stdlib/blocks.mdl`, transcribed (the generator calls these after `import stdlib.blocks`)."""
    x, h, b = TRef("x"), TRef("h"), TRef("board")

    def p(name: str, type_: str, role: str, default: Any = None) -> BlockParam:
        return BlockParam(name, type_, None if default is None else Lit(default), role)

    def ln_then(src: TExpr, func: str, **kw: CExpr) -> TExpr:
        return TPipe(TPipe(src, "layer_norm"), func, (), tuple(kw.items()))

    return [
        BlockDef("transformer_layer", [TensorParam("x")],
                 [p("heads", "int", "heads"), p("hidden", "int", "hidden"), p("dropout", "float", "p", 0.0)],
                 [Assign("x", TBin("+", x, ln_then(x, "attention", heads=Ref("heads"), dropout=Ref("dropout")))),
                  Assign("x", TBin("+", x, ln_then(x, "mlp", hidden=Ref("hidden")))),
                  Return(x)]),
        BlockDef("moe_layer", [TensorParam("x")],
                 [p("heads", "int", "heads"), p("experts", "int", "experts"), p("hidden", "int", "hidden"),
                  p("top_k", "int", "top_k", 2), p("balance", "float", "balance", 0.01)],
                 [Assign("x", TBin("+", x, ln_then(x, "attention", heads=Ref("heads")))),
                  Assign("x", TBin("+", x, ln_then(x, "moe", experts=Ref("experts"), top_k=Ref("top_k"),
                                                     hidden=Ref("hidden"), balance=Ref("balance")))),
                  Return(x)]),
        BlockDef("residual_mlp", [TensorParam("x")], [p("hidden", "int", "hidden")],
                 [Return(TBin("+", x, ln_then(x, "mlp", hidden=Ref("hidden"))))]),
        BlockDef("mlp_body", [TensorParam("x")], [p("width", "int", "out", 64)],
                 [Return(TPipe(TPipe(TPipe(TPipe(x, "linear", (), (("out", Ref("width")),)), "tanh"),
                                     "linear", (), (("out", Ref("width")),)), "tanh"))]),
        BlockDef("board_embedding", [TensorParam("board")],
                 [p("dim", "int", "width"), p("kind", "str", "kind", "learned")],
                 [Return(TPipe(TPipe(TPipe(b, "flatten", (), (("start", Lit(1)),)), "embedding", (),
                                     (("vocab", Lit(16)), ("dim", Ref("dim")))),
                               "pos_encoding", (), (("kind", Ref("kind")),)))]),
        BlockDef("policy_head", [TensorParam("h")], [p("actions", "int", "out")],
                 [Return(TPipe(h, "linear", (), (("out", Ref("actions")),)))]),
        BlockDef("value_head", [TensorParam("h")], [p("hidden", "int", "out", 64)],
                 [Return(TPipe(TPipe(TPipe(h, "linear", (), (("out", Ref("hidden")),)), "tanh"),
                               "linear", (), (("out", Lit(1)),)))]),
    ]


STDLIB_BLOCKS = {b.name: b for b in _stdlib_blocks()}


# ------------------------------------------------------------------------------------- interpreter
class Interpreter:
    """Runs the generator's syntax trees: shapes, validity and parameter counts, from LANGUAGE.md.

    `blocks` maps the name a call uses (`enc0`, `sb.transformer_layer`) to its definition; `nodes`
    collects `(op, params, dtype, shape)` for every graph node in the order they are made.
    """

    def __init__(self, blocks: dict[str, BlockDef], consts: dict[str, Any]):
        self.blocks = blocks
        self.consts = consts
        self.nodes: list[tuple] = []
        self.inputs: dict[str, list] = {}
        self.outputs: dict[str, list] = {}
        self.depth = 0

    def run(self, stmts, env: dict) -> TV | None:
        """Run statements in `env` (changed in place); the value of a `return`, if one is reached."""
        for s in stmts:
            if isinstance(s, Assign):
                env[s.name] = self.tensor(s.value, env)
            elif isinstance(s, Output):
                tv = self.tensor(s.value, env)
                if s.name in self.outputs:
                    raise Invalid("output twice")
                self.outputs[s.name] = list(tv.shape)
            elif isinstance(s, Return):
                return self.tensor(s.value, env)
            elif isinstance(s, Input):
                dims = tuple(d.value(env) for d in s.dims)
                if not all(isinstance(d, str) or (_is_int(d) and d >= 1) for d in dims):
                    raise Invalid("input dims")
                tv = TV(s.dtype, dims)
                self.nodes.append(("input", 0, tv.dtype, tv.shape))
                self.inputs[s.name] = list(dims)
                env[s.name] = tv
            elif isinstance(s, Repeat):
                n = s.count.value(env)
                if not _is_int(n) or not 1 <= n <= 3:
                    raise Invalid("repeat count")
                for i in range(n):
                    if s.var:
                        env[s.var] = i
                    self.run(s.body, env)
        return None

    def tensor(self, e: TExpr, env: dict) -> TV:
        if isinstance(e, TRef):
            v = env.get(e.name)
            if not isinstance(v, TV):
                raise Invalid(e.name)
            return v
        if isinstance(e, TBin):
            a, b = self.tensor(e.a, env), self.tensor(e.b, env)
            if a != b or a.dtype != "float":
                raise Invalid("arithmetic on different shapes")
            self.nodes.append(({"+": "add", "-": "sub", "*": "mul", "/": "div"}[e.op], 0, "float", a.shape))
            return a
        xs = [self.tensor(e.src, env)] if isinstance(e, TPipe) else []
        xs += [self.tensor(t, env) for t in e.tensors]
        kwargs = {k: v.value(env) for k, v in e.kwargs}
        return self.call(e.func, xs, kwargs)

    def call(self, func: str, xs: list[TV], kwargs: dict) -> TV:
        if func in self.blocks:
            return self.call_block(self.blocks[func], xs, kwargs)
        out, params = primitive(func, xs, kwargs)
        self.nodes.append((func, params, out.dtype, out.shape))
        return out

    def call_block(self, blk: BlockDef, xs: list[TV], kwargs: dict) -> TV:
        if len(xs) != len(blk.tensors) or self.depth >= 4 or not set(kwargs) <= {p.name for p in blk.params}:
            raise Invalid("block call")
        env = dict(self.consts)
        for t, x in zip(blk.tensors, xs, strict=True):
            if t.annotation is not None:
                dtype, dims = t.annotation
                want = [d.value(env) for d in dims]
                if x.dtype != dtype or len(want) != x.rank or any(
                        _is_int(w) and w != got for w, got in zip(want, x.shape, strict=True)):
                    raise Invalid("annotation")
            env[t.name] = x
        for p in blk.params:
            if p.name in kwargs:
                v = kwargs[p.name]
            elif p.default is not None:
                v = p.default.value(env)
            else:
                raise Invalid(f"missing {p.name}")
            env[p.name] = _typed(p.type, v)
        self.depth += 1
        try:
            result = self.run(blk.body, env)
        finally:
            self.depth -= 1
        if result is None:
            raise Invalid("no return")
        return result


def _typed(type_: str, v: Any) -> Any:
    if type_ == "int" and _is_int(v):
        return v
    if type_ == "float" and (_is_int(v) or isinstance(v, float)):
        return float(v)
    if (type_ == "str" and isinstance(v, str)) or (type_ == "bool" and isinstance(v, bool)):
        return v
    raise Invalid(f"{v!r} is not {type_}")


def _need(ok: bool, why: str = "") -> None:
    if not ok:
        raise Invalid(why)


def _size(kw: dict, name: str, default: Any = None) -> int:
    v = kw.get(name, default)
    _need(_is_int(v) and 1 <= v <= 2**31 - 1, name)
    return v


def _axis(dim: Any, rank: int) -> int:
    _need(_is_int(dim) and -rank <= dim < rank, "axis")
    return dim % rank


def _prod(dims) -> int:
    n = 1
    for d in dims:
        _need(_is_int(d), "symbolic size")
        n *= d
    return n


def primitive(op: str, xs: list[TV], kw: dict) -> tuple[TV, int]:
    """The output and parameter count of primitive `op` (LANGUAGE.md's table); Invalid if not valid."""
    _need(op in PRIMITIVE_ARGS and set(kw) <= PRIMITIVE_ARGS[op], op)
    _need(len(xs) >= 2 if op == "concat" else len(xs) == 1, "tensor count")
    x = xs[0]
    _need(x.rank >= 1)
    if op not in ("embedding", "flatten", "reshape", "concat", "mean", "sum", "max"):
        _need(x.dtype == "float", "float input")
    d = x.width
    if op in ("linear", "layer_norm", "rms_norm", "attention", "pos_encoding", "mlp", "moe"):
        _need(_is_int(d), "symbolic width")
    if op in ("layer_norm", "rms_norm") and "eps" in kw:
        eps = kw["eps"]
        _need(isinstance(eps, float | int) and not isinstance(eps, bool) and 0 < eps <= 1, "eps")
    if op == "embedding":
        _need(x.dtype == "int")
        vocab, dim = _size(kw, "vocab"), _size(kw, "dim")
        _need(ok_width(dim), "width")
        return TV("float", (*x.shape, dim)), vocab * dim
    if op == "linear":
        out = _size(kw, "out")
        bias = kw.get("bias", True)
        _need(isinstance(bias, bool))
        return TV("float", (*x.shape[:-1], out)), d * out + (out if bias else 0)
    if op == "layer_norm":
        return x, 2 * d
    if op == "rms_norm":
        return x, d
    if op in ACTIVATIONS:
        return x, 0
    if op == "glu":  # halves the last dim: the first half times the sigmoid of the second
        _need(_is_int(d) and d % 2 == 0, "even width")
        return TV("float", (*x.shape[:-1], d // 2)), 0
    if op == "softmax":
        _axis(kw.get("dim", -1), x.rank)
        return x, 0
    if op == "dropout":
        p = kw.get("p")
        _need(isinstance(p, float | int) and not isinstance(p, bool) and 0 <= p < 1, "p")
        return x, 0
    if op == "attention":
        heads = _size(kw, "heads")
        drop = kw.get("dropout", 0.0)
        _need(isinstance(drop, float | int) and not isinstance(drop, bool) and 0 <= drop < 1, "dropout")
        _need(x.rank == 3 and d % heads == 0 and ok_width(d), "attention")
        return x, 4 * d * d + 4 * d
    if op == "pos_encoding":
        kind = kw.get("kind", "learned")
        _need(x.rank == 3 and kind in ("learned", "sinusoidal"), "pos_encoding")
        if kind == "sinusoidal":
            return x, 0
        _need(_is_int(x.shape[1]), "symbolic length")
        return x, x.shape[1] * d
    if op in ("mlp", "moe"):
        hidden = _size(kw, "hidden")
        _need(ok_width(hidden) and kw.get("act", "gelu") in ACTIVATIONS, "width")
        if op == "mlp":
            out = d if kw.get("out") is None else _size(kw, "out")
            return TV("float", (*x.shape[:-1], out)), d * hidden + hidden + hidden * out + out
        experts = _size(kw, "experts")
        top_k = _size(kw, "top_k", 2)
        capacity = kw.get("capacity", 1.25)
        balance = kw.get("balance", 0.01)
        _need(top_k <= experts, "top_k")
        _need(capacity is None or (not isinstance(capacity, bool) and 0 < capacity <= 1e6), "capacity")
        _need(isinstance(balance, float | int) and not isinstance(balance, bool) and 0 <= balance <= 1e3)
        return x, d * experts + experts * (d * hidden + hidden + hidden * d + d)
    if op in ("mean", "sum", "max"):
        _need("dim" in kw)
        axis = _axis(kw["dim"], x.rank)
        return TV("float" if op == "mean" else x.dtype, x.shape[:axis] + x.shape[axis + 1:]), 0
    if op == "flatten":
        start, end = _axis(kw.get("start", 1), x.rank), _axis(kw.get("end", -1), x.rank)
        _need(start <= end)
        return TV(x.dtype, (*x.shape[:start], _prod(x.shape[start:end + 1]), *x.shape[end + 1:])), 0
    if op == "reshape":
        shape = kw.get("shape")
        _need(isinstance(shape, tuple) and len(shape) >= 2 and shape[0] == BATCH == x.shape[0])
        rest = list(shape[1:])
        _need(all(_is_int(s) and (s >= 1 or s == -1) for s in rest) and rest.count(-1) <= 1)
        total, known = _prod(x.shape[1:]), _prod(s for s in rest if s != -1)
        if -1 in rest:
            _need(total % known == 0)
            rest[rest.index(-1)] = total // known
        else:
            _need(total == known)
        return TV(x.dtype, (BATCH, *rest)), 0
    # concat
    axis = _axis(kw.get("dim", -1), x.rank)
    for y in xs[1:]:
        _need(y.rank == x.rank and all(a == b for i, (a, b) in enumerate(zip(x.shape, y.shape, strict=True))
                                       if i != axis), "concat shapes")
    size = sum(_prod([y.shape[axis]]) for y in xs)
    dtype = "float" if any(y.dtype == "float" for y in xs) else "int"
    return TV(dtype, (*x.shape[:axis], size, *x.shape[axis + 1:])), 0


# -------------------------------------------------------------------------------------- generator
ROLE_TYPES = {"heads": "int", "hidden": "int", "experts": "int", "top_k": "int", "out": "int", "n": "int",
              "width": "int", "p": "float", "eps": "float", "balance": "float", "kind": "str", "act": "str",
              "bias": "bool"}


def role_values(role: str, tv: TV) -> list:
    """Plausible argument values for a block parameter used as `role`, on input `tv`."""
    d = tv.width if tv.rank and _is_int(tv.width) else 8
    return {
        "heads": [k for k in (1, 2, 4, 8) if d % k == 0],
        "hidden": [h for h in (8, 16, 32, 64, 2 * d, 4 * d) if ok_width(h) and h <= MAX_FLAT],
        "experts": [1, 2, 3, 4], "top_k": [1, 2], "out": [4, 8, 12, 16, 32], "n": [1, 2],
        "width": [8, 16, 32], "p": [0.0, 0.1, 0.25], "eps": [1e-5, 1e-6], "balance": [0.0, 0.01],
        "kind": ["learned", "sinusoidal"], "act": list(ACTIVATIONS), "bias": [True, False],
    }[role]


@dataclass
class Draft:
    """The parameters of a block being drafted at its first call."""

    params: list[BlockParam] = field(default_factory=list)


@dataclass
class Ctx:
    """Where a statement is being drawn: the concrete values of the names in scope."""

    env: dict[str, Any]
    draft: Draft | None = None
    loop: str | None = None  # the `repeat ... as` variable in scope
    depth: int = 0  # `repeat` nesting


@dataclass(frozen=True)
class GeneratedModel:
    """A generated design and what it must compile to."""

    source: str
    name: str
    params: int
    inputs: dict[str, list]
    outputs: dict[str, list]
    nodes: tuple[tuple, ...]  # (op, params, dtype, shape) per graph node
    primitives: frozenset[str]
    features: frozenset[str]  # syntax used: "repeat_as", "block", "stdlib", "residual", ...


class Builder:
    """Draws one file; see the module docstring."""

    def __init__(self, draw):
        self.draw = draw
        self.consts: dict[str, Any] = {}
        self.const_items: list[str] = []
        self.blocks: dict[str, BlockDef] = {}  # callable name -> definition (local and stdlib)
        self.local: list[str] = []  # local block names, in order of definition
        self.features: set[str] = set()
        self.counter = 0

    # ----------------------------------------------------------------------------- randomness
    def pick(self, options):
        return self.draw(st.sampled_from(list(options)))

    def chance(self, percent: int) -> bool:
        return self.draw(st.integers(0, 99)) < percent

    def between(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}{self.counter}"

    def layout(self) -> str:
        return self.pick(["", "", "", "", "semi", "comment", "blank"])

    # ----------------------------------------------------------------------------- state
    def snapshot(self, ctx: Ctx) -> tuple:
        return dict(ctx.env), len(ctx.draft.params) if ctx.draft else 0, list(self.local), set(self.features)

    def restore(self, ctx: Ctx, snap: tuple) -> None:
        env, n_params, local, features = snap
        ctx.env = env
        if ctx.draft:
            del ctx.draft.params[n_params:]
        for name in self.local[len(local):]:
            del self.blocks[name]
        self.local = local
        self.features = features

    def interpreter(self) -> Interpreter:
        return Interpreter(self.blocks, self.consts)

    # ----------------------------------------------------------------------------- values
    def value_expr(self, ctx: Ctx, v: Any, role: str | None = None) -> CExpr:
        """An expression worth `v` here: a literal, a name, `dim(x)` arithmetic, or a new block parameter."""
        if ctx.draft is not None and role in ROLE_TYPES and self.chance(50):
            return self.param_ref(ctx, role, v)
        options: list[CExpr] = [Lit(v), Lit(v)]
        for name, val in ctx.env.items():
            if type(val) is type(v) and val == v and name != ctx.loop:
                options.append(Ref(name))
        if _is_int(v):
            for name, val in ctx.env.items():
                if isinstance(val, TV) and val.rank and _is_int(val.width):
                    w = val.width
                    if w == v:
                        options.append(DimOf(name))
                    if val.rank >= 2 and val.shape[1] == v:
                        options.append(DimOf(name, 1))
                    if val.rank == 3 and _is_int(val.shape[1]) and val.shape[1] * w == v:
                        options.append(Bin("*", DimOf(name, 1), DimOf(name)))
                    for k in (2, 4):
                        if w * k == v:
                            options.append(Bin("*", Lit(k), DimOf(name)))
                        if w == v * k:
                            options.append(Bin("/", DimOf(name), Lit(k)))
                elif _is_int(val) and name != ctx.loop and val != v:
                    for k in (2, 4):
                        if val * k == v:
                            options.append(Bin("*", Lit(k), Ref(name)))
                    if 0 < val < v:
                        options.append(Bin("+", Ref(name), Lit(v - val)))
            if ctx.loop is not None and role in ("hidden", "out") and v % 8 == 0:
                options += [Bin("+", Lit(v), Bin("*", Lit(8), Ref(ctx.loop)))] * 3  # widths that grow by layer
        chosen = self.pick(options)
        if ctx.loop is not None and chosen.text().endswith(f"* {ctx.loop}"):
            self.features.add("loop_var")
        return chosen

    def param_ref(self, ctx: Ctx, role: str, v: Any) -> CExpr:
        """A parameter of the drafted block worth `v` at this call (an existing one, or a new one)."""
        for p in ctx.draft.params:
            if p.role == role and ctx.env.get(p.name) == v and type(ctx.env.get(p.name)) is type(v):
                return Ref(p.name)
        name = role
        while name in ctx.env:
            name = self.fresh(role)
        default: CExpr | None = None
        if self.chance(60):
            default = Lit(v if self.chance(60) else self.pick(role_values(role, TV("float", (8,)))))
            if role == "n" and not (_is_int(default.v) and default.v >= 1):
                default = Lit(1)
        ctx.draft.params.append(BlockParam(name, ROLE_TYPES[role], default, role))
        ctx.env[name] = v
        return Ref(name)

    # ----------------------------------------------------------------------------- steps
    def step(self, ctx: Ctx, tv: TV, start: str, preserve: bool) -> tuple[str, tuple, Kwargs]:
        """One primitive or block applied to a tensor `tv`: (func, extra tensors, kwargs)."""
        d, rank = tv.width, tv.rank
        kinds = ["norm", "act", "softmax", "dropout", "mlp", "moe", "linear_same"]
        if rank == 3:
            kinds += ["attention", "attention", "pos_encoding"]
        if self.callable_blocks(1):
            kinds.append("block")
        if not preserve:
            kinds += ["linear", "linear", "mlp_out", "concat", "glu"]
            if rank == 3:
                kinds += ["reduce", "flatten", "reshape_flat", "concat_seq"]
            if rank == 2:
                kinds += ["reshape_split"]
        kind = self.pick(kinds)
        kw: list[tuple[str, CExpr]] = []
        extra: tuple = ()
        if kind == "norm":
            func = self.pick(["layer_norm", "rms_norm"])
            if self.chance(25):
                kw.append(("eps", self.value_expr(ctx, self.pick([1e-5, 1e-6]), "eps")))
        elif kind == "act":
            func = self.pick(ACTIVATIONS)
        elif kind == "softmax":
            func = "softmax"
            if self.chance(50):
                kw.append(("dim", Lit(self.pick([-1, rank - 1, 1]))))
        elif kind == "dropout":
            func = "dropout"
            kw.append(("p", self.value_expr(ctx, self.pick([0.0, 0.1, 0.25]), "p")))
        elif kind == "attention":
            func = "attention"
            _need(_is_int(d) and ok_width(d))
            kw.append(("heads", self.value_expr(ctx, self.pick(role_values("heads", tv)), "heads")))
            if self.chance(20):
                kw.append(("dropout", Lit(0.1)))
        elif kind == "pos_encoding":
            func = "pos_encoding"
            kind_value = self.pick(["learned", "sinusoidal", None])
            if kind_value is not None:
                kw.append(("kind", self.value_expr(ctx, kind_value, "kind")))
        elif kind in ("mlp", "mlp_out"):
            func = "mlp"
            kw.append(("hidden", self.value_expr(ctx, self.pick(role_values("hidden", tv)), "hidden")))
            if kind == "mlp_out":
                kw.append(("out", self.value_expr(ctx, self.pick(WIDTHS), "out")))
            elif self.chance(30):
                kw.append(("out", self.value_expr(ctx, d, "out")))
            if self.chance(25):
                kw.append(("act", self.value_expr(ctx, self.pick(ACTIVATIONS), "act")))
        elif kind == "moe":
            func = "moe"
            experts = self.between(1, 4)
            kw.append(("experts", self.value_expr(ctx, experts, "experts")))
            if experts == 1 or self.chance(60):
                kw.append(("top_k", self.value_expr(ctx, self.between(1, experts), "top_k")))
            kw.append(("hidden", self.value_expr(ctx, self.pick(role_values("hidden", tv)), "hidden")))
            if self.chance(40):
                kw.append(("capacity", Lit(self.pick([1.25, 2.0, None, 1]))))
            if self.chance(20):
                kw.append(("balance", self.value_expr(ctx, self.pick([0.0, 0.01]), "balance")))
            if self.chance(20):
                kw.append(("act", self.value_expr(ctx, self.pick(ACTIVATIONS), "act")))
            if self.chance(30):
                kw = [kw[i] for i in self.draw(st.permutations(range(len(kw))))]
        elif kind in ("linear_same", "linear"):
            func = "linear"
            kw.append(("out", self.value_expr(ctx, d if kind == "linear_same" else self.pick(WIDTHS), "out")))
            if self.chance(30):
                kw.append(("bias", self.value_expr(ctx, self.pick([True, False]), "bias")))
        elif kind == "glu":
            func = "glu"
            _need(_is_int(d) and d % 2 == 0 and d // 2 >= 4 and ok_width(d // 2))
        elif kind == "reduce":
            func = self.pick(["mean", "sum", "max"])
            kw.append(("dim", Lit(self.pick([1, -2]))))
        elif kind == "flatten":
            func = "flatten"
            _need(_is_int(tv.shape[1]) and _is_int(d) and tv.shape[1] * d <= MAX_FLAT)
            kw += self.pick([[], [("start", Lit(1))], [("start", Lit(1)), ("end", Lit(-1))], [("start", Lit(-2))]])
        elif kind == "reshape_flat":
            func = "reshape"
            _need(_is_int(tv.shape[1]) and _is_int(d) and tv.shape[1] * d <= MAX_FLAT)
            rest = Lit(-1) if self.chance(50) else self.value_expr(ctx, tv.shape[1] * d)
            kw.append(("shape", ListE((Sym(BATCH), rest))))
        elif kind == "reshape_split":
            func = "reshape"
            k = self.pick([2, 4])
            _need(_is_int(d) and d % k == 0 and d // k >= 4 and ok_width(d // k))
            rest = Lit(-1) if self.chance(50) else self.value_expr(ctx, d // k)
            kw.append(("shape", ListE((Sym(BATCH), self.value_expr(ctx, k), rest))))
        elif kind == "concat":
            func = "concat"
            other = ctx.env.get(start)
            _need(isinstance(other, TV) and other.shape[:-1] == tv.shape[:-1] and _is_int(other.width)
                  and _is_int(d) and d + other.width <= MAX_FLAT)
            extra = (TRef(start),)
            if self.chance(50):
                kw.append(("dim", Lit(-1)))
        elif kind == "concat_seq":
            func = "concat"
            other = ctx.env.get(start)
            _need(isinstance(other, TV) and other.rank == 3 and other.width == d and _is_int(tv.shape[1])
                  and _is_int(other.shape[1]) and tv.shape[1] + other.shape[1] <= MAX_SEQ)
            extra = (TRef(start),)
            kw.append(("dim", Lit(self.pick([1, -2]))))
        else:  # block
            name = self.pick(self.callable_blocks(1))
            func = name
            kw = list(self.block_args(ctx, self.blocks[name], tv))
            self.features.add("block_call")
        return func, extra, tuple(kw)

    def callable_blocks(self, tensors: int) -> list[str]:
        return [n for n, b in self.blocks.items() if len(b.tensors) == tensors
                and b.tensors[0].name != "board" and n not in ("policy_head", "value_head")
                and not n.endswith((".board_embedding", ".policy_head", ".value_head"))]

    def block_args(self, ctx: Ctx, blk: BlockDef, tv: TV, given: dict | None = None) -> Kwargs:
        """Arguments for a call of `blk` on `tv`: the `given` values, else drawn by each parameter's role."""
        kw = []
        for p in blk.params:
            if given is not None and p.name in given:
                v = given[p.name]
                if p.default is not None and p.default.value(ctx.env) == v and type(p.default.v) is type(v) \
                        and self.chance(50):
                    continue
            elif p.default is not None and self.chance(50):
                continue
            else:
                v = self.pick(role_values(p.role, tv))
            kw.append((p.name, self.value_expr(ctx, v, p.role)))
        return tuple(kw)

    def chain(self, ctx: Ctx, start: str, steps: int, preserve: bool) -> tuple[TExpr, TV]:
        """`start` through `steps` primitives or blocks, as pipes and direct calls mixed."""
        expr: TExpr = TRef(start)
        tv = ctx.env[start]
        made = 0
        for _ in range(steps):
            for _attempt in range(4):
                snap = self.snapshot(ctx)
                try:
                    func, extra, kw = self.step(ctx, tv, start, preserve)
                    xs = [tv] + [self.interpreter().tensor(t, ctx.env) for t in extra]
                    out = self.interpreter().call(func, xs, {k: v.value(ctx.env) for k, v in kw})
                    _need(not preserve or out == tv)
                except Invalid:
                    self.restore(ctx, snap)
                    continue
                expr = self.wrap(expr, func, extra, kw)
                tv = out
                made += 1
                break
        if not made:
            expr = self.wrap(expr, self.pick(ACTIVATIONS), (), ())
        return expr, tv

    def wrap(self, expr: TExpr, func: str, extra: tuple, kw: Kwargs) -> TExpr:
        multiline = len(kw) >= 2 and self.chance(15)
        if self.chance(65):
            self.features.add("pipe")
            return TPipe(expr, func, extra, kw, parens=self.chance(20), newline=self.chance(10), multiline=multiline)
        self.features.add("direct_call")
        return TCall(func, (expr, *extra), kw, multiline)

    # ----------------------------------------------------------------------------- statements
    def add_statements(self, ctx: Ctx, out: list, count: int, form: str | None = None, attempts: int = 3) -> None:
        """Draw `count` statements (of `form`, or any), each kept only if the interpreter accepts it."""
        for _ in range(count):
            for _attempt in range(attempts):
                snap = self.snapshot(ctx)
                try:
                    new = self.statement(ctx, form)
                    env = dict(ctx.env)
                    self.interpreter().run(new, env)
                    _need(env["x"].rank >= 2 and _is_int(env["x"].width), "keep x a [B, .., d] tensor")
                except Invalid:
                    self.restore(ctx, snap)
                    continue
                for s in new:  # a loop variable is not used after its loop
                    if isinstance(s, Repeat) and s.var:
                        env.pop(s.var, None)
                ctx.env = env
                out.extend(new)
                break

    def statement(self, ctx: Ctx, form: str | None = None) -> list:
        forms = ["chain", "chain", "residual", "residual", "temp", "call"]
        if ctx.depth == 0:
            forms.append("repeat")
        form = form or self.pick(forms)
        tv = ctx.env["x"]
        if form == "chain":
            expr, _ = self.chain(ctx, "x", self.between(1, 3), preserve=False)
            return [Assign("x", expr, self.layout())]
        if form == "residual":
            self.features.add("residual")
            inner, _ = self.chain(ctx, "x", self.between(1, 3), preserve=True)
            expr = TBin("+", TRef("x"), inner) if self.chance(80) else TBin("+", inner, TRef("x"))
            return [Assign("x", expr, self.layout())]
        if form == "temp":
            name = self.fresh("h")
            expr, h = self.chain(ctx, "x", self.between(1, 2), preserve=False)
            if h == tv and self.chance(70):
                combine: TExpr = TBin(self.pick(["+", "+", "-", "*"]), TRef("x"), TRef(name))
            elif h.rank == tv.rank and h.shape[:-1] == tv.shape[:-1] and _is_int(h.width) and _is_int(tv.width) \
                    and h.width + tv.width <= MAX_FLAT:
                kw = (("dim", Lit(-1)),) if self.chance(50) else ()
                combine = TCall("concat", (TRef("x"), TRef(name)), kw)
            else:
                combine = TPipe(TRef(name), self.pick(ACTIVATIONS))
            return [Assign(name, expr, self.layout()), Assign("x", combine, self.layout())]
        if form in ("call", "new_block"):
            return [self.block_call(ctx, tv, new=form == "new_block")]
        # repeat
        if ctx.draft is not None:
            count = self.value_expr(ctx, self.between(1, 2), "n")
        else:
            count = self.value_expr(ctx, self.between(1, 3))
        var = "i" if self.chance(50) else None
        self.features.add("repeat_as" if var else "repeat")
        inner_env = dict(ctx.env)
        if var:
            inner_env[var] = 0
        inner = Ctx(inner_env, ctx.draft, var, ctx.depth + 1)
        body: list = []
        self.add_statements(inner, body, self.between(1, 2))
        _need(bool(body))
        for p in ctx.draft.params if ctx.draft else ():
            ctx.env.setdefault(p.name, inner.env[p.name])
        return [Repeat(count, var, tuple(body), self.layout())]

    def block_call(self, ctx: Ctx, tv: TV, new: bool = False) -> Assign:
        """`x = blk(x, ...)` for a new block (drafted here) or an existing one."""
        new = new or (ctx.draft is None and len(self.local) < 3 and (self.chance(60) or not self.callable_blocks(1)))
        if new:
            blk, values = self.new_block(tv)
        else:
            names = self.callable_blocks(1) + self.callable_blocks(2)
            _need(bool(names))
            blk, values = self.blocks[self.pick(names)], None
        self.features.add("block_call")
        kw = self.block_args(ctx, blk, tv, values)
        if len(blk.tensors) == 2:
            other = TRef("x") if self.chance(50) else TPipe(TRef("x"), self.pick(ACTIVATIONS))
            return Assign("x", TCall(blk.name, (TRef("x"), other), kw), self.layout())
        form = self.pick(["direct", "pipe", "residual"])
        if form == "pipe":
            return Assign("x", TPipe(TRef("x"), blk.name, (), kw, parens=self.chance(30)), self.layout())
        call = TCall(blk.name, (TRef("x"),), kw)
        if form == "residual":
            out = self.interpreter().call_block(blk, [tv], {k: v.value(ctx.env) for k, v in kw})
            if out == tv:
                return Assign("x", TBin("+", TRef("x"), call), self.layout())
        return Assign("x", call, self.layout())

    def new_block(self, tv: TV) -> tuple[BlockDef, dict]:
        """Draft a block whose first call is on `tv`; returns it and that call's argument values."""
        name = self.fresh(self.pick(["enc", "ffn", "mixer", "layer", "stage"]))
        two = self.chance(30)
        annotation = None
        if self.chance(25):
            last = Lit(tv.width) if self.chance(30) else Sym("C")
            dims = (*(Sym(BATCH), Sym("S"))[: tv.rank - 1], last)
            annotation = ("float", dims)
        tensors = [TensorParam("x", annotation)] + ([TensorParam("y")] if two else [])
        draft = Draft()
        env = dict(self.consts, x=tv)
        if two:
            env["y"] = tv
        ctx = Ctx(env, draft)
        body: list = []
        if two:
            first = self.pick([TBin("+", TRef("x"), TRef("y")), TBin("*", TRef("y"), TRef("x")),
                               TCall("concat", (TRef("x"), TRef("y")), (("dim", Lit(-1)),))])
            self.interpreter().run([Assign("x", first)], ctx.env)
            body.append(Assign("x", first))
        self.add_statements(ctx, body, self.between(0, 2))
        if body and self.chance(40):
            ret: TExpr = TRef("x")
        else:
            ret, _ = self.chain(ctx, "x", self.between(1, 2), preserve=False)
        body.append(Return(ret, self.layout()))
        blk = BlockDef(name, tensors, list(draft.params), body, trailing_comma=self.chance(10))
        self.blocks[name] = blk
        self.local.append(name)
        self.features.add("block")
        return blk, {p.name: ctx.env[p.name] for p in draft.params}

    # ----------------------------------------------------------------------------- the file
    def add_consts(self) -> None:
        def const(name: str, value: Any, expr: CExpr | None = None) -> None:
            self.consts[name] = value
            self.const_items.append(f"const {name} = {(expr or Lit(value)).text()}")

        if self.chance(50):
            const("D", self.pick([8, 16, 32, 64]))
            if self.chance(50):
                const("HID", 4 * self.consts["D"], Bin("*", Lit(4), Ref("D")))
        for name, values in (("L", [1, 2, 3]), ("ACTIONS", [2, 4, 5]), ("OBS", [4, 8, 16]), ("SEQ", [2, 4, 8]),
                             ("E", [2, 4]), ("KIND", ["learned", "sinusoidal"]), ("P", [0.1])):
            if self.chance(30):
                const(name, self.pick(values))

    def stem(self, ctx: Ctx, width: int, stdlib: str | None) -> list:
        """The input and the statement that turns it into a float `x`."""
        kind = self.pick(["float2", "float3", "board", "tokens"])
        if kind in ("float2", "float3"):
            name = "obs" if kind == "float2" else "seq"
            dims = (Sym(BATCH),)
            if kind == "float3":  # sometimes a symbolic sequence length
                dims += (Sym("T") if self.chance(20) else self.value_expr(ctx, self.pick([1, 2, 4, 8])),)
            dims += (self.value_expr(ctx, self.pick(WIDTHS)),)
            inp = Input(name, "float", dims)
            self.interpreter().run([inp], ctx.env)
            if self.chance(70):
                expr = self.wrap(TRef(name), "linear", (), (("out", self.value_expr(ctx, width)),))
            else:
                expr = TRef(name)
            stmts = [inp, Assign("x", expr)]
        elif kind == "board":
            inp = Input("board", "int", (Sym(BATCH), self.value_expr(ctx, 4), Lit(4)))
            self.interpreter().run([inp], ctx.env)
            emb = (("vocab", Lit(16)), ("dim", self.value_expr(ctx, width)))
            flat = self.pick([TPipe(TRef("board"), "flatten", (), (("start", Lit(1)),)),
                              TCall("flatten", (TRef("board"),)),
                              TCall("reshape", (TRef("board"),), (("shape", ListE((Sym(BATCH), Lit(16)))),)),
                              TPipe(TRef("board"), "reshape", (), (("shape", ListE((Sym(BATCH), Lit(-1)))),))])
            if stdlib is not None and self.chance(40):
                self.features.add("stdlib")
                func = "board_embedding" if stdlib == "" else f"{stdlib}.board_embedding"
                kw = emb[1:] + ((("kind", self.value_expr(ctx, self.pick(["learned", "sinusoidal"]))),)
                                if self.chance(50) else ())
                expr = self.pick([TCall(func, (TRef("board"),), kw), TPipe(TRef("board"), func, (), kw)])
            elif self.chance(50):
                expr = TPipe(flat, "embedding", (), emb)
            else:
                expr = TCall("embedding", (flat,), emb)
            stmts = [inp, Assign("x", expr)]
        else:
            seq = self.pick([2, 4, 8])
            inp = Input("tokens", "int", (Sym(BATCH), self.value_expr(ctx, seq)))
            self.interpreter().run([inp], ctx.env)
            vocab = self.pick([Lit(16), Lit(1000, "1k"), Lit(1000, "1_000"), Lit(50)])
            stmts = [inp, Assign("x", TPipe(TRef("tokens"), "embedding", (), (("vocab", vocab),
                                                                            ("dim", self.value_expr(ctx, width)))))]
        self.interpreter().run(stmts[1:], ctx.env)
        return stmts

    def heads(self, ctx: Ctx, stdlib: str | None) -> list:
        """A summary `h` and the `policy` and `value` outputs."""
        stmts: list = []
        tv = ctx.env["x"]
        src = "x"
        if tv.rank == 3 and self.chance(85):
            expr: TExpr = TRef("x")
            if self.chance(60):
                expr = TPipe(expr, self.pick(["layer_norm", "rms_norm"]))
            if _is_int(tv.shape[1]) and tv.shape[1] * tv.width <= MAX_FLAT and self.chance(25):
                expr = self.pick([TPipe(expr, "flatten", (), (("start", Lit(1)),)),
                                  TPipe(expr, "reshape", (), (("shape", ListE((Sym(BATCH), Lit(-1)))),))])
            else:
                expr = self.wrap(expr, self.pick(["mean", "sum", "max"]), (), (("dim", Lit(self.pick([1, -2]))),))
            stmts.append(Assign("h", expr, self.layout()))
            src = "h"
        elif self.chance(40):
            stmts.append(Assign("h", TPipe(TRef("x"), self.pick(["layer_norm", "rms_norm", "tanh"])), self.layout()))
            src = "h"
        self.interpreter().run(stmts, ctx.env)
        actions = self.value_expr(ctx, self.pick([2, 4, 5]))
        lib = None if stdlib is None else ("" if stdlib == "" else stdlib + ".")
        policy_forms = ["linear", "linear", "direct", "mlp", "logits"] + (["stdlib"] if lib is not None else [])
        form = self.pick(policy_forms)
        if form == "linear":
            policy = [Output("policy", TPipe(TRef(src), "linear", (), (("out", actions),)))]
        elif form == "direct":
            policy = [Output("policy", TCall("linear", (TRef(src),), (("out", actions),)))]
        elif form == "mlp":
            policy = [Output("policy", TPipe(TRef(src), "mlp", (), (("hidden", Lit(16)), ("out", actions))))]
        elif form == "stdlib":
            self.features.add("stdlib")
            policy = [Output("policy", TCall(f"{lib}policy_head", (TRef(src),), (("actions", actions),)))]
        else:
            policy = [Assign("logits", TPipe(TRef(src), "linear", (), (("out", actions),))),
                      Output("policy", TRef("logits")),
                      Output("aux_probs", TPipe(TRef("logits"), "softmax"))]
        value_forms = ["linear", "linear", "mlp", "squeeze"] + (["stdlib"] if lib is not None else [])
        form = self.pick(value_forms)
        if form == "linear":
            value = TPipe(TRef(src), "linear", (), (("out", Lit(1)),))
        elif form == "mlp":
            value = TPipe(TRef(src), "mlp", (), (("hidden", Lit(16)), ("out", Lit(1))))
        elif form == "squeeze":
            value = TPipe(TPipe(TRef(src), "linear", (), (("out", Lit(1)),)), "mean", (), (("dim", Lit(-1)),))
        else:
            self.features.add("stdlib")
            value = TCall(f"{lib}value_head", (TRef(src),), (("hidden", Lit(self.pick([8, 16, 32]))),))
        outs = [*policy, Output("value", value, self.layout())]
        if self.chance(30):
            outs = [outs[-1], *outs[:-1]]
        return stmts + outs

    def build(self) -> GeneratedModel:
        stdlib: str | None = None
        imports = []
        if self.chance(40):
            stdlib = self.pick(["", "", "sb"])
            imports.append("import stdlib.blocks" + (f" as {stdlib}" if stdlib else ""))
            prefix = f"{stdlib}." if stdlib else ""
            for n, b in STDLIB_BLOCKS.items():
                self.blocks[prefix + n] = b
        self.add_consts()
        width = self.pick([8, 16, 24, 32, 64, 12])
        candidates = {"d": width, "layers": self.between(1, 3), "heads": self.pick([1, 2, 4]),
                      "hidden": self.pick([16, 32, 64]), "experts": self.pick([2, 4])}
        for name in self.draw(st.permutations(list(candidates)))[: self.between(0, len(candidates))]:
            del candidates[name]
        ctx = Ctx(dict(self.consts, **candidates))
        body = self.stem(ctx, width, stdlib)
        self.add_statements(ctx, body, self.between(1, 4))
        if not self.local:  # every file has a block of its own
            self.add_statements(ctx, body, 1, "new_block", attempts=10)
        body += self.heads(ctx, stdlib)

        used = _refs(body)
        params = []
        for name, value in candidates.items():
            if name in used:
                same = [c for c, v in self.consts.items() if type(v) is int and v == value]
                default = Ref(self.pick(same)) if same and self.chance(50) else Lit(value)
                params.append(f"{name}: int = {default.text()}")
        model_name = self.pick(["Net", "Policy", "Moe2048", "Agent"])
        header = f"model {model_name}" + (f"({', '.join(params)})" if params else ("()" if self.chance(20) else ""))
        model_text = f"{header} {{\n{body_text(body, '    ')}\n}}"

        # The expected figures: the whole model run again from its syntax trees, from scratch.
        interp = self.interpreter()
        env = dict(self.consts, **{n: v for n, v in candidates.items() if n in used})
        interp.run(body, env)
        items = self.const_items + [self.blocks[n].text() for n in self.local] + [model_text]
        if self.chance(30):
            items = list(self.draw(st.permutations(items)))
        source = "".join(f"{i}\n" for i in imports) + ("\n" if imports else "")
        source += "\n\n".join(items) + "\n"
        if self.chance(20):
            source = "# a generated design\n" + source
        primitives = frozenset(n[0] for n in interp.nodes if n[0] in PRIMITIVE_ARGS)
        return GeneratedModel(source, model_name, sum(n[1] for n in interp.nodes), interp.inputs,
                              interp.outputs, tuple(interp.nodes), primitives, frozenset(self.features))


def _refs(stmts) -> set[str]:
    """Every name a statement list refers to in compile-time expressions."""
    names: set[str] = set()

    def cexpr(e: CExpr) -> None:
        if isinstance(e, Ref):
            names.add(e.name)
        elif isinstance(e, DimOf):
            names.add(e.var)
        elif isinstance(e, Bin):
            cexpr(e.a)
            cexpr(e.b)
        elif isinstance(e, ListE):
            for i in e.items:
                cexpr(i)

    def texpr(e: TExpr) -> None:
        if isinstance(e, TBin):
            texpr(e.a)
            texpr(e.b)
        elif isinstance(e, TCall | TPipe):
            if isinstance(e, TPipe):
                texpr(e.src)
            for t in e.tensors:
                texpr(t)
            for _, v in e.kwargs:
                cexpr(v)

    for s in stmts:
        if isinstance(s, Assign | Output | Return):
            texpr(s.value)
        elif isinstance(s, Input):
            for d in s.dims:
                cexpr(d)
        elif isinstance(s, Repeat):
            cexpr(s.count)
            names |= _refs(s.body)
    return names


@st.composite
def models_with_shapes(draw) -> GeneratedModel:
    """A valid design and what it must compile to (see GeneratedModel)."""
    return Builder(draw).build()


def models() -> st.SearchStrategy[str]:
    """The source text of a valid design that checks with no diagnostics at all."""
    return models_with_shapes().map(lambda m: m.source)
