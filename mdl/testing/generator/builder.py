"""`Builder`: draws a design's statements and blocks one at a time, each run by the `Interpreter`
against the concrete state of the code written so far and kept only if valid there (see
`mdl.testing.generator`). `Knobs` are the choices `mdl.testing.strategies.designs` exposes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from mdl.testing.generator.interpreter import (
    ACTIVATIONS,
    MAX_FLAT,
    MAX_SEQ,
    PRIMITIVE_ARGS,
    Interpreter,
    need,
)
from mdl.testing.generator.syntax import (
    BATCH,
    TV,
    Assign,
    Bin,
    BlockDef,
    BlockParam,
    CExpr,
    DimOf,
    Invalid,
    Kwargs,
    ListE,
    Lit,
    Ref,
    Repeat,
    Return,
    Sym,
    TBin,
    TCall,
    TensorParam,
    TExpr,
    TPipe,
    TRef,
    calls,
    is_int,
    ok_width,
)

WIDTHS = (4, 8, 12, 16, 24, 32, 48, 64)


@dataclass(frozen=True)
class Knobs:
    """What a drawn design may contain (the arguments of `mdl.testing.strategies.designs`)."""

    primitives: frozenset[str] = frozenset(PRIMITIVE_ARGS)  # for the body; `linear` is always allowed
    statements: tuple[int, int] = (1, 4)  # top-level statements between the input stem and the heads
    depth: int = 1  # how deeply `repeat`s nest (0: no repeat)
    blocks: tuple[int, int] = (1, 3)  # blocks of the file's own
    stdlib: bool = True  # may import stdlib.blocks
    max_width: int = 64
    experts: tuple[int, int] = (1, 4)  # experts per `moe`


ROLE_TYPES = {"heads": "int", "hidden": "int", "experts": "int", "top_k": "int", "out": "int", "n": "int",
              "width": "int", "p": "float", "eps": "float", "balance": "float", "kind": "str", "act": "str",
              "bias": "bool"}


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


# The primitives each kind of step may apply.
STEP_FUNCS = {
    "norm": ("layer_norm", "rms_norm"), "act": ACTIVATIONS, "softmax": ("softmax",), "dropout": ("dropout",),
    "attention": ("attention",), "pos_encoding": ("pos_encoding",), "mlp": ("mlp",), "mlp_out": ("mlp",),
    "moe": ("moe",), "linear_same": ("linear",), "linear": ("linear",), "glu": ("glu",),
    "reduce": ("mean", "sum", "max"), "flatten": ("flatten",), "reshape_flat": ("reshape",),
    "reshape_split": ("reshape",), "concat": ("concat",), "concat_seq": ("concat",),
}


class Builder:
    """Draws one file's statements and blocks; see `mdl.testing.generator`."""

    def __init__(self, draw, knobs: Knobs = Knobs()):
        self.draw = draw
        self.knobs = knobs
        self.consts: dict[str, Any] = {}
        self.const_items: list[str] = []
        self.blocks: dict[str, BlockDef] = {}  # callable name -> definition (local and stdlib)
        self.local: list[str] = []  # local block names, in order of definition
        self.features: set[str] = set()
        self.counter = 0
        self.widths = [w for w in WIDTHS if w <= knobs.max_width] or [min(WIDTHS)]

    # ----------------------------------------------------------------------------- randomness
    # Each draw shrinks towards the simplest choice: the first option, the lower bound, and `False` for
    # a `chance` (so that a failing design shrinks to a few nodes).
    def pick(self, options):
        return self.draw(st.sampled_from(list(options)))

    def chance(self, percent: int) -> bool:
        return self.draw(st.integers(0, 99)) >= 100 - percent

    def between(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def allowed(self, funcs) -> list[str]:
        """The primitives of `funcs` the knobs allow (`linear` always)."""
        return [f for f in funcs if f in self.knobs.primitives or f == "linear"]

    def role_values(self, role: str, tv: TV) -> list:
        """Plausible argument values for a block parameter used as `role`, on input `tv`."""
        d = tv.width if tv.rank and is_int(tv.width) else 8
        lo, hi = self.knobs.experts
        return {
            "heads": [k for k in (1, 2, 4, 8) if d % k == 0],
            "hidden": [h for h in (8, 16, 32, 64, 2 * d, 4 * d) if ok_width(h) and h <= MAX_FLAT],
            "experts": list(range(lo, min(hi, 4) + 1)) or [lo], "top_k": [1, 2],
            "out": [w for w in (4, 8, 12, 16, 32) if w <= self.knobs.max_width] or [4], "n": [1, 2],
            "width": [8, 16, 32], "p": [0.0, 0.1, 0.25], "eps": [1e-5, 1e-6], "balance": [0.0, 0.01],
            "kind": ["learned", "sinusoidal"], "act": self.allowed(ACTIVATIONS) or ["relu"], "bias": [True, False],
        }[role]

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
        if is_int(v):
            for name, val in ctx.env.items():
                if isinstance(val, TV) and val.rank and is_int(val.width):
                    w = val.width
                    if w == v:
                        options.append(DimOf(name))
                    if val.rank >= 2 and val.shape[1] == v:
                        options.append(DimOf(name, 1))
                    if val.rank == 3 and is_int(val.shape[1]) and val.shape[1] * w == v:
                        options.append(Bin("*", DimOf(name, 1), DimOf(name)))
                    for k in (2, 4):
                        if w * k == v:
                            options.append(Bin("*", Lit(k), DimOf(name)))
                        if w == v * k:
                            options.append(Bin("/", DimOf(name), Lit(k)))
                elif is_int(val) and name != ctx.loop and val != v:
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
            default = Lit(v if self.chance(60) else self.pick(self.role_values(role, TV("float", (8,)))))
            if role == "n" and not (is_int(default.v) and default.v >= 1):
                default = Lit(1)
        ctx.draft.params.append(BlockParam(name, ROLE_TYPES[role], default, role))
        ctx.env[name] = v
        return Ref(name)

    # ----------------------------------------------------------------------------- steps
    def step(self, ctx: Ctx, tv: TV, start: str, preserve: bool) -> tuple[str, tuple, Kwargs]:
        """One primitive or block applied to a tensor `tv`: (func, extra tensors, kwargs)."""
        kinds = ["norm", "act", "softmax", "dropout", "mlp", "moe", "linear_same"]
        if tv.rank == 3:
            kinds += ["attention", "attention", "pos_encoding"]
        if self.callable_blocks(1):
            kinds.append("block")
        if not preserve:
            kinds += ["linear", "linear", "mlp_out", "concat", "glu"]
            if tv.rank == 3:
                kinds += ["reduce", "flatten", "reshape_flat", "concat_seq"]
            if tv.rank == 2:
                kinds += ["reshape_split"]
        kinds = [k for k in kinds if k == "block" or self.allowed(STEP_FUNCS[k])]
        need(bool(kinds))
        kind = self.pick(kinds)
        if kind in ("reduce", "flatten", "reshape_flat", "reshape_split", "concat", "concat_seq", "block"):
            return self.moving_step(kind, ctx, tv, start)
        func = self.pick(self.allowed(STEP_FUNCS[kind]))
        return func, (), self.layer_args(kind, func, ctx, tv)

    def layer_args(self, kind: str, func: str, ctx: Ctx, tv: TV) -> Kwargs:
        """The arguments of a primitive that computes (its kind as `step` drew it)."""
        d = tv.width
        kw: list[tuple[str, CExpr]] = []
        if kind == "norm" and self.chance(25):
            kw.append(("eps", self.value_expr(ctx, self.pick([1e-5, 1e-6]), "eps")))
        elif kind == "softmax" and self.chance(50):
            kw.append(("dim", Lit(self.pick([-1, tv.rank - 1, 1]))))
        elif kind == "dropout":
            kw.append(("p", self.value_expr(ctx, self.pick([0.0, 0.1, 0.25]), "p")))
        elif kind == "attention":
            need(is_int(d) and ok_width(d))
            kw.append(("heads", self.value_expr(ctx, self.pick(self.role_values("heads", tv)), "heads")))
            if self.chance(20):
                kw.append(("dropout", Lit(0.1)))
        elif kind == "pos_encoding":
            kind_value = self.pick(["learned", "sinusoidal", None])
            if kind_value is not None:
                kw.append(("kind", self.value_expr(ctx, kind_value, "kind")))
        elif kind in ("mlp", "mlp_out"):
            kw.append(("hidden", self.value_expr(ctx, self.pick(self.role_values("hidden", tv)), "hidden")))
            if kind == "mlp_out":
                kw.append(("out", self.value_expr(ctx, self.pick(self.widths), "out")))
            elif self.chance(30):
                kw.append(("out", self.value_expr(ctx, d, "out")))
            if self.chance(25):
                kw.append(("act", self.value_expr(ctx, self.pick(self.role_values("act", tv)), "act")))
        elif kind == "moe":
            experts = self.between(*self.knobs.experts)
            kw.append(("experts", self.value_expr(ctx, experts, "experts")))
            if experts == 1 or self.chance(60):
                kw.append(("top_k", self.value_expr(ctx, self.between(1, experts), "top_k")))
            kw.append(("hidden", self.value_expr(ctx, self.pick(self.role_values("hidden", tv)), "hidden")))
            if self.chance(40):
                kw.append(("capacity", Lit(self.pick([1.25, 2.0, None, 1]))))
            if self.chance(20):
                kw.append(("balance", self.value_expr(ctx, self.pick([0.0, 0.01]), "balance")))
            if self.chance(20):
                kw.append(("act", self.value_expr(ctx, self.pick(self.role_values("act", tv)), "act")))
            if self.chance(30):
                kw = [kw[i] for i in self.draw(st.permutations(range(len(kw))))]
        elif kind in ("linear_same", "linear"):
            kw.append(("out", self.value_expr(ctx, d if kind == "linear_same" else self.pick(self.widths), "out")))
            if self.chance(30):
                kw.append(("bias", self.value_expr(ctx, self.pick([True, False]), "bias")))
        elif kind == "glu":
            need(is_int(d) and d % 2 == 0 and d // 2 >= 4 and ok_width(d // 2))
        return tuple(kw)

    def moving_step(self, kind: str, ctx: Ctx, tv: TV, start: str) -> tuple[str, tuple, Kwargs]:
        """A primitive that reduces, reshapes or joins `tv`, or a block call (a kind `step` drew)."""
        d = tv.width
        if kind == "block":
            name = self.pick(self.callable_blocks(1))
            self.features.add("block_call")
            return name, (), self.block_args(ctx, self.blocks[name], tv)
        kw: list[tuple[str, CExpr]] = []
        extra: tuple = ()
        func = self.pick(self.allowed(STEP_FUNCS[kind]))
        if kind == "reduce":
            kw.append(("dim", Lit(self.pick([1, -2]))))
        elif kind == "flatten":
            need(is_int(tv.shape[1]) and is_int(d) and tv.shape[1] * d <= MAX_FLAT)
            kw += self.pick([[], [("start", Lit(1))], [("start", Lit(1)), ("end", Lit(-1))], [("start", Lit(-2))]])
        elif kind == "reshape_flat":
            need(is_int(tv.shape[1]) and is_int(d) and tv.shape[1] * d <= MAX_FLAT)
            rest = Lit(-1) if self.chance(50) else self.value_expr(ctx, tv.shape[1] * d)
            kw.append(("shape", ListE((Sym(BATCH), rest))))
        elif kind == "reshape_split":
            k = self.pick([2, 4])
            need(is_int(d) and d % k == 0 and d // k >= 4 and ok_width(d // k))
            rest = Lit(-1) if self.chance(50) else self.value_expr(ctx, d // k)
            kw.append(("shape", ListE((Sym(BATCH), self.value_expr(ctx, k), rest))))
        elif kind == "concat":
            other = ctx.env.get(start)
            need(isinstance(other, TV) and other.shape[:-1] == tv.shape[:-1] and is_int(other.width)
                 and is_int(d) and d + other.width <= MAX_FLAT)
            extra = (TRef(start),)
            if self.chance(50):
                kw.append(("dim", Lit(-1)))
        else:  # concat_seq
            other = ctx.env.get(start)
            need(isinstance(other, TV) and other.rank == 3 and other.width == d and is_int(tv.shape[1])
                 and is_int(other.shape[1]) and tv.shape[1] + other.shape[1] <= MAX_SEQ)
            extra = (TRef(start),)
            kw.append(("dim", Lit(self.pick([1, -2]))))
        return func, extra, tuple(kw)

    def callable_blocks(self, tensors: int) -> list[str]:
        return [n for n, b in self.blocks.items() if len(b.tensors) == tensors
                and b.tensors[0].name != "board" and n not in ("policy_head", "value_head")
                and not n.endswith((".board_embedding", ".policy_head", ".value_head"))
                and self.uses_allowed(b)]

    def uses_allowed(self, blk: BlockDef) -> bool:
        """Whether `blk` calls only primitives the knobs allow."""
        return calls(blk.body) & set(PRIMITIVE_ARGS) <= self.knobs.primitives | {"linear"}

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
                v = self.pick(self.role_values(p.role, tv))
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
                    need(not preserve or out == tv)
                except Invalid:
                    self.restore(ctx, snap)
                    continue
                expr = self.wrap(expr, func, extra, kw)
                tv = out
                made += 1
                break
        if not made:
            acts = self.allowed(ACTIVATIONS)
            need(bool(acts))
            expr = self.wrap(expr, self.pick(acts), (), ())
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
                    need(env["x"].rank >= 2 and is_int(env["x"].width), "keep x a [B, .., d] tensor")
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
        if ctx.depth < self.knobs.depth:
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
            elif h.rank == tv.rank and h.shape[:-1] == tv.shape[:-1] and is_int(h.width) and is_int(tv.width) \
                    and h.width + tv.width <= MAX_FLAT and self.allowed(["concat"]):
                kw = (("dim", Lit(-1)),) if self.chance(50) else ()
                combine = TCall("concat", (TRef("x"), TRef(name)), kw)
            elif self.allowed(ACTIVATIONS):
                combine = TPipe(TRef(name), self.pick(self.allowed(ACTIVATIONS)))
            else:
                raise Invalid("nothing to combine with")
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
        need(bool(body))
        for p in ctx.draft.params if ctx.draft else ():
            ctx.env.setdefault(p.name, inner.env[p.name])
        return [Repeat(count, var, tuple(body), self.layout())]

    def block_call(self, ctx: Ctx, tv: TV, new: bool = False) -> Assign:
        """`x = blk(x, ...)` for a new block (drafted here) or an existing one."""
        new = new or (ctx.draft is None and len(self.local) < self.knobs.blocks[1] and (self.chance(60) or not self.callable_blocks(1)))
        if new:
            blk, values = self.new_block(tv)
        else:
            names = self.callable_blocks(1) + self.callable_blocks(2)
            need(bool(names))
            blk, values = self.blocks[self.pick(names)], None
        self.features.add("block_call")
        kw = self.block_args(ctx, blk, tv, values)
        if len(blk.tensors) == 2:
            acts = self.allowed(ACTIVATIONS)
            other = TPipe(TRef("x"), self.pick(acts)) if acts and self.chance(50) else TRef("x")
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
            first = self.pick([TBin("+", TRef("x"), TRef("y")), TBin("*", TRef("y"), TRef("x"))]
                              + [TCall("concat", (TRef("x"), TRef("y")), (("dim", Lit(-1)),))] * bool(self.allowed(["concat"])))
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
