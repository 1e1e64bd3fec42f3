"""A whole design file: the input stem, the statements and blocks `Builder` draws, the policy and value
heads, consts and imports around them, and the figures it must compile to (`Design`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from mdl.testing.generator.builder import Builder, Ctx
from mdl.testing.generator.interpreter import MAX_FLAT, PRIMITIVE_ARGS, STDLIB_BLOCKS
from mdl.testing.generator.syntax import (
    BATCH,
    Assign,
    Bin,
    CExpr,
    Input,
    ListE,
    Lit,
    Output,
    Ref,
    Sym,
    TCall,
    TExpr,
    TPipe,
    TRef,
    body_text,
    is_int,
    refs,
)


@dataclass(frozen=True)
class Design:
    """A generated design and what it must compile to, worked out by the generator's interpreter."""

    source: str
    name: str
    params: int
    inputs: dict[str, list]
    outputs: dict[str, list]
    nodes: tuple[tuple, ...]  # (op, params, dtype, shape) per graph node
    primitives: frozenset[str]
    features: frozenset[str]  # syntax used: "repeat_as", "block", "stdlib", "residual", ...


class FileBuilder(Builder):
    """Draws a whole file around the statements and blocks `Builder` draws."""

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
        kinds = ["float2", "float3"]
        if self.allowed(["embedding"]):
            kinds += ["board"] * bool(self.allowed(["flatten", "reshape"])) + ["tokens"]
        kind = self.pick(kinds)
        if kind in ("float2", "float3"):
            name = "obs" if kind == "float2" else "seq"
            dims = (Sym(BATCH),)
            if kind == "float3":  # sometimes a symbolic sequence length
                dims += (Sym("T") if self.chance(20) else self.value_expr(ctx, self.pick([1, 2, 4, 8])),)
            dims += (self.value_expr(ctx, self.pick(self.widths)),)
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
            flat = self.pick([f for f in [
                TPipe(TRef("board"), "flatten", (), (("start", Lit(1)),)), TCall("flatten", (TRef("board"),)),
                TCall("reshape", (TRef("board"),), (("shape", ListE((Sym(BATCH), Lit(16)))),)),
                TPipe(TRef("board"), "reshape", (), (("shape", ListE((Sym(BATCH), Lit(-1)))),))]
                if self.allowed([f.func])])
            if stdlib is not None and self.uses_allowed(STDLIB_BLOCKS["board_embedding"]) and self.chance(40):
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
        norms, reduces = self.allowed(["layer_norm", "rms_norm"]), self.allowed(["mean", "sum", "max"])
        flats = [f for f in [TPipe(TRef("x"), "flatten", (), (("start", Lit(1)),)),
                             TPipe(TRef("x"), "reshape", (), (("shape", ListE((Sym(BATCH), Lit(-1)))),))]
                 if self.allowed([f.func]) and is_int(tv.shape[1]) and tv.shape[1] * tv.width <= MAX_FLAT]
        if tv.rank == 3 and (reduces or flats) and self.chance(85):
            expr: TExpr = TRef("x")
            if norms and self.chance(60):
                expr = TPipe(expr, self.pick(norms))
            if flats and (not reduces or self.chance(25)):
                flat = self.pick(flats)
                expr = TPipe(expr, flat.func, (), flat.kwargs)
            else:
                expr = self.wrap(expr, self.pick(reduces), (), (("dim", Lit(self.pick([1, -2]))),))
            stmts.append(Assign("h", expr, self.layout()))
            src = "h"
        elif self.allowed(["layer_norm", "rms_norm", "tanh"]) and self.chance(40):
            func = self.pick(self.allowed(["layer_norm", "rms_norm", "tanh"]))
            stmts.append(Assign("h", TPipe(TRef("x"), func), self.layout()))
            src = "h"
        self.interpreter().run(stmts, ctx.env)
        actions = self.value_expr(ctx, self.pick([2, 4, 5]))
        lib = None if stdlib is None else ("" if stdlib == "" else stdlib + ".")
        policy_forms = ["linear", "linear", "direct"] + ["mlp"] * bool(self.allowed(["mlp"])) \
            + ["logits"] * bool(self.allowed(["softmax"])) + (["stdlib"] if lib is not None else [])
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
        value_forms = ["linear", "linear"] + ["mlp"] * bool(self.allowed(["mlp"])) \
            + ["squeeze"] * bool(self.allowed(["mean"])) \
            + (["stdlib"] if lib is not None and self.uses_allowed(STDLIB_BLOCKS["value_head"]) else [])
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

    def build(self) -> Design:
        stdlib: str | None = None
        imports = []
        if self.knobs.stdlib and self.chance(40):
            stdlib = self.pick(["", "", "sb"])
            imports.append("import stdlib.blocks" + (f" as {stdlib}" if stdlib else ""))
            prefix = f"{stdlib}." if stdlib else ""
            for n, b in STDLIB_BLOCKS.items():
                self.blocks[prefix + n] = b
        self.add_consts()
        width = self.pick([w for w in (8, 16, 24, 32, 64, 12) if w <= self.knobs.max_width] or [8])
        candidates = {"d": width, "layers": self.between(1, 3), "heads": self.pick([1, 2, 4]),
                      "hidden": self.pick([16, 32, 64]), "experts": self.pick([e for e in (2, 4) if self.knobs.experts[0] <= e <= self.knobs.experts[1]]
                                          or [self.knobs.experts[0]])}
        for name in self.draw(st.permutations(list(candidates)))[: self.between(0, len(candidates))]:
            del candidates[name]
        ctx = Ctx(dict(self.consts, **candidates))
        body = self.stem(ctx, width, stdlib)
        self.add_statements(ctx, body, self.between(*self.knobs.statements))
        while len(self.local) < self.knobs.blocks[0]:  # blocks of its own, as many as asked at least
            before = len(self.local)
            self.add_statements(ctx, body, 1, "new_block", attempts=10)
            if len(self.local) == before:
                break
        body += self.heads(ctx, stdlib)

        used = refs(body)
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
        return Design(source, model_name, sum(n[1] for n in interp.nodes), interp.inputs,
                      interp.outputs, tuple(interp.nodes), primitives, frozenset(self.features))

