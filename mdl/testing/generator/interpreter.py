"""The generator's account of what a design computes, from LANGUAGE.md and never from `mdl.compiler`:
`primitive` (each primitive's output type and parameter count, or `Invalid`), `Interpreter` (runs
statements and block calls, collecting every graph node) and `STDLIB_BLOCKS` (`mdl/stdlib/blocks.mdl`
transcribed into syntax trees).
"""

from __future__ import annotations

from typing import Any

from mdl.testing.generator.syntax import (
    BATCH,
    TV,
    Assign,
    BlockDef,
    BlockParam,
    CExpr,
    Input,
    Invalid,
    Lit,
    Output,
    Ref,
    Repeat,
    Return,
    TBin,
    TensorParam,
    TExpr,
    TPipe,
    TRef,
    is_int,
    ok_width,
)

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
MAX_FLAT = 256  # the widest a flatten or concat may make a tensor
MAX_SEQ = 32


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
                if not all(isinstance(d, str) or (is_int(d) and d >= 1) for d in dims):
                    raise Invalid("input dims")
                tv = TV(s.dtype, dims)
                self.nodes.append(("input", 0, tv.dtype, tv.shape))
                self.inputs[s.name] = list(dims)
                env[s.name] = tv
            elif isinstance(s, Repeat):
                n = s.count.value(env)
                if not is_int(n) or not 1 <= n <= 3:
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
                        is_int(w) and w != got for w, got in zip(want, x.shape, strict=True)):
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
    if type_ == "int" and is_int(v):
        return v
    if type_ == "float" and (is_int(v) or isinstance(v, float)):
        return float(v)
    if (type_ == "str" and isinstance(v, str)) or (type_ == "bool" and isinstance(v, bool)):
        return v
    raise Invalid(f"{v!r} is not {type_}")


def need(ok: bool, why: str = "") -> None:
    if not ok:
        raise Invalid(why)


def _size(kw: dict, name: str, default: Any = None) -> int:
    v = kw.get(name, default)
    need(is_int(v) and 1 <= v <= 2**31 - 1, name)
    return v


def _axis(dim: Any, rank: int) -> int:
    need(is_int(dim) and -rank <= dim < rank, "axis")
    return dim % rank


def _prod(dims) -> int:
    n = 1
    for d in dims:
        need(is_int(d), "symbolic size")
        n *= d
    return n


def primitive(op: str, xs: list[TV], kw: dict) -> tuple[TV, int]:
    """The output and parameter count of primitive `op` (LANGUAGE.md's table); Invalid if not valid."""
    need(op in PRIMITIVE_ARGS and set(kw) <= PRIMITIVE_ARGS[op], op)
    need(len(xs) >= 2 if op == "concat" else len(xs) == 1, "tensor count")
    x = xs[0]
    need(x.rank >= 1)
    if op in RESHAPING:
        return _reshaping(op, xs, kw), 0
    if op != "embedding":
        need(x.dtype == "float", "float input")
    d = x.width
    if op in ("linear", "layer_norm", "rms_norm", "attention", "pos_encoding", "mlp", "moe"):
        need(is_int(d), "symbolic width")
    if op in ("layer_norm", "rms_norm") and "eps" in kw:
        eps = kw["eps"]
        need(isinstance(eps, float | int) and not isinstance(eps, bool) and 0 < eps <= 1, "eps")
    if op == "embedding":
        need(x.dtype == "int")
        vocab, dim = _size(kw, "vocab"), _size(kw, "dim")
        need(ok_width(dim), "width")
        return TV("float", (*x.shape, dim)), vocab * dim
    if op == "linear":
        out = _size(kw, "out")
        bias = kw.get("bias", True)
        need(isinstance(bias, bool))
        return TV("float", (*x.shape[:-1], out)), d * out + (out if bias else 0)
    if op == "layer_norm":
        return x, 2 * d
    if op == "rms_norm":
        return x, d
    if op in ACTIVATIONS:
        return x, 0
    if op == "glu":  # halves the last dim: the first half times the sigmoid of the second
        need(is_int(d) and d % 2 == 0, "even width")
        return TV("float", (*x.shape[:-1], d // 2)), 0
    if op == "softmax":
        _axis(kw.get("dim", -1), x.rank)
        return x, 0
    if op == "dropout":
        p = kw.get("p")
        need(isinstance(p, float | int) and not isinstance(p, bool) and 0 <= p < 1, "p")
        return x, 0
    if op == "attention":
        heads = _size(kw, "heads")
        drop = kw.get("dropout", 0.0)
        need(isinstance(drop, float | int) and not isinstance(drop, bool) and 0 <= drop < 1, "dropout")
        need(x.rank == 3 and d % heads == 0 and ok_width(d), "attention")
        return x, 4 * d * d + 4 * d
    if op == "pos_encoding":
        kind = kw.get("kind", "learned")
        need(x.rank == 3 and kind in ("learned", "sinusoidal"), "pos_encoding")
        if kind == "sinusoidal":
            return x, 0
        need(is_int(x.shape[1]), "symbolic length")
        return x, x.shape[1] * d
    if op in ("mlp", "moe"):
        hidden = _size(kw, "hidden")
        need(ok_width(hidden) and kw.get("act", "gelu") in ACTIVATIONS, "width")
        if op == "mlp":
            out = d if kw.get("out") is None else _size(kw, "out")
            return TV("float", (*x.shape[:-1], out)), d * hidden + hidden + hidden * out + out
        experts = _size(kw, "experts")
        top_k = _size(kw, "top_k", 2)
        capacity = kw.get("capacity", 1.25)
        balance = kw.get("balance", 0.01)
        need(top_k <= experts, "top_k")
        need(capacity is None or (not isinstance(capacity, bool) and 0 < capacity <= 1e6), "capacity")
        need(isinstance(balance, float | int) and not isinstance(balance, bool) and 0 <= balance <= 1e3)
        return x, d * experts + experts * (d * hidden + hidden + hidden * d + d)
    raise Invalid(op)


RESHAPING = ("mean", "sum", "max", "flatten", "reshape", "concat")


def _reshaping(op: str, xs: list[TV], kw: dict) -> TV:
    """The output of a primitive that only moves or reduces values (none has parameters)."""
    x = xs[0]
    if op in ("mean", "sum", "max"):
        need("dim" in kw)
        axis = _axis(kw["dim"], x.rank)
        return TV("float" if op == "mean" else x.dtype, x.shape[:axis] + x.shape[axis + 1:])
    if op == "flatten":
        start, end = _axis(kw.get("start", 1), x.rank), _axis(kw.get("end", -1), x.rank)
        need(start <= end)
        return TV(x.dtype, (*x.shape[:start], _prod(x.shape[start:end + 1]), *x.shape[end + 1:]))
    if op == "reshape":
        shape = kw.get("shape")
        need(isinstance(shape, tuple) and len(shape) >= 2 and shape[0] == BATCH == x.shape[0])
        rest = list(shape[1:])
        need(all(is_int(s) and (s >= 1 or s == -1) for s in rest) and rest.count(-1) <= 1)
        total, known = _prod(x.shape[1:]), _prod(s for s in rest if s != -1)
        if -1 in rest:
            need(total % known == 0)
            rest[rest.index(-1)] = total // known
        else:
            need(total == known)
        return TV(x.dtype, (BATCH, *rest))
    # concat
    axis = _axis(kw.get("dim", -1), x.rank)
    for y in xs[1:]:
        need(y.rank == x.rank and all(a == b for i, (a, b) in enumerate(zip(x.shape, y.shape, strict=True))
                                       if i != axis), "concat shapes")
    size = sum(_prod([y.shape[axis]]) for y in xs)
    dtype = "float" if any(y.dtype == "float" for y in xs) else "int"
    return TV(dtype, (*x.shape[:axis], size, *x.shape[axis + 1:]))



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
