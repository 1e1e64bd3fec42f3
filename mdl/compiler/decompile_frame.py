"""Decompile's naming and statements for one frame: the model body or one block definition.

A `Frame` takes every instance of the frame (the model once, or each call of a block), merges them into
one template (mdl.compiler.decompile_tree) and works out, in the order the names depend on: which
instance and position produced each node, the steps' variable names, the block's tensor parameters,
each step's statement text, the values carried from one iteration to the next, the repeats' counts and
(for a block) the position of its result. The writer (mdl.compiler.decompile_write) lays the
statements out. Imports no torch.
"""

from __future__ import annotations

from typing import Any

from mdl.compiler.args import REQUIRED
from mdl.compiler.decompile_read import ARITH, DecompileError
from mdl.compiler.decompile_tree import TCall, TNode, TRepeat, merge
from mdl.compiler.decompile_values import Params, dim_text, fresh, label_name, lit, lit_or_none, resolve, same
from mdl.compiler.primitives import PRIMITIVES


class Frame:
    """One frame being written, the model body or one block definition, from all its instances.

    Built in the order the names depend on: the template of the instances, which instance and
    position produced each node, the steps' names, the tensor parameters, each step's statement, the
    repeats' counts and (for a block) the position of its result. The `Writer` reads the attributes.
    """

    def __init__(self, writer: Any, instances: list[list], where: str, is_block: bool,
                 block: str | None = None):
        self.writer = writer  # the decompile_write.Writer (not imported: it imports this module)
        self.where = where
        self.is_block = is_block
        template = None
        for k, items in enumerate(instances):
            template = merge(template, items, (k,), where)
        self.template: list = template or []
        self.taken = set(writer.reserved)
        self.params = Params(self.taken) if is_block else None
        self.owner: dict[int, tuple[int, tuple]] = {}  # node id -> (instance, pos)
        self.outside: list[list[int]] = [[] for _ in instances]  # per instance: the tensors it reads
        self.tensor_params: list[str] = []
        self.param_of: dict[tuple, int] = {}  # (pos, slot) -> tensor parameter index
        self.varname: dict[tuple, str] = {}
        self.stmt: dict[tuple, str] = {}
        self.pre: dict[tuple, list[str]] = {}  # statements before the item at a position
        self.post: dict[tuple, list[str]] = {}  # statements at the end of the body at a position
        self.carries: dict[tuple, str] = {}
        self.carried_names: set[tuple] = set()
        self._own(self.template, ())
        self.flat = self._flatten(self.template, (), [])
        self._name_steps()
        self._find_tensor_params()
        for p, t, loops in self.flat:
            if isinstance(t, TNode):
                self._node_statement(p, t, loops)
            elif isinstance(t, TCall):
                self._call_statement(p, t, loops)
        self._repeat_counts()
        self.result_pos = self._result_pos(block, len(instances)) if is_block else None

    def _own(self, tmpl: list, pos: tuple) -> None:
        """Record which instance and position produced each node (and each call's result)."""
        for j, t in enumerate(tmpl):
            p = (*pos, j)
            if isinstance(t, TNode):
                for c, n in t.execs:
                    self.owner[n.id] = (c[0], p)
            elif isinstance(t, TCall):
                for c, call in t.execs:
                    res = self.writer.block_result.get(call.block, {}).get(self.writer.call_id[id(call)])
                    if res is not None:
                        self.owner[res] = (c[0], p)
            else:
                self._own(t.body or [], p)

    def _flatten(self, tmpl: list, pos: tuple, loops: list) -> list:
        """Every item of the template as (position, item, enclosing repeats), in order."""
        out: list = []
        for j, t in enumerate(tmpl):
            p = (*pos, j)
            out.append((p, t, loops))
            if isinstance(t, TRepeat):
                out.extend(self._flatten(t.body or [], p, [*loops, t]))
        return out

    def _name_steps(self) -> None:
        """Loop variables for the repeats, input names for the inputs, `h1`, `h2`, .. for the rest."""
        counter = 0
        renamed = self.writer.renamed_outputs() if not self.is_block else {}
        for p, t, loops in self.flat:
            if isinstance(t, TRepeat):
                t.var = None
                t.loopvar = fresh("ijklmn"[len(loops) % 6], self.taken)  # type: ignore[attr-defined]
            elif isinstance(t, TNode) and t.op == "input":
                self.varname[p] = self.writer.input_name(t.node)
                self.taken.add(self.varname[p])
            elif not (isinstance(t, TNode) and len(t.execs) == 1 and t.execs[0][1].id in renamed and len(p) == 1):
                counter += 1
                name = f"h{counter}"
                while name in self.taken:
                    counter += 1
                    name = f"h{counter}"
                self.taken.add(name)
                self.varname[p] = name

    def _find_tensor_params(self) -> None:
        """The slots that read from outside the instance, one parameter for the slots that read the
        same tensor in every use of the block (`f(x, x)` and `f(x, y)` need two)."""
        w = self.writer
        occ: dict[tuple, dict[int, set[int]]] = {}
        for p, t, _ in self.flat:
            if isinstance(t, TNode) and t.op != "input":
                slots = [[(c, n.inputs[s]) for c, n in t.execs] for s in range(len(t.node.inputs))]
            elif isinstance(t, TCall):
                slots = [[(c, w.block_args[id(call)][s]) for c, call in t.execs]
                         for s in range(len(w.block_tensor_params[t.block]))]
            else:
                continue
            for s, execs in enumerate(slots):
                for c, n in execs:
                    o = self.owner.get(n)
                    if o is None or o[0] != c[0]:
                        occ.setdefault((p, s), {}).setdefault(c[0], set()).add(n)
        classes: dict[frozenset, int] = {}
        for key, per in occ.items():
            if any(len(v) != 1 for v in per.values()):
                raise DecompileError(f"{self.where}: step {pos_text(key[0])} reads several outside tensors in one use")
            sig = frozenset((k, next(iter(v))) for k, v in per.items())
            self.param_of[key] = classes.setdefault(sig, len(classes))
        for sig, idx in classes.items():
            for k, n in sig:
                while len(self.outside[k]) <= idx:
                    self.outside[k].append(-1)
                self.outside[k][idx] = n
        if any(len(o) != len(classes) or -1 in o for o in self.outside):
            raise DecompileError(f"{self.where}: its uses read different tensors from outside")

    # -- names of values --------------------------------------------------------------------------
    def var_of(self, pos: tuple) -> str:
        if pos not in self.varname:
            raise DecompileError(f"{self.where}: step {pos_text(pos)} is read but has no value")
        return self.varname[pos]

    def _ref_text(self, desc: tuple) -> str:
        if desc[0] == "pos":
            return self.var_of(desc[1])
        while len(self.tensor_params) <= desc[1]:
            self.tensor_params.append(fresh("x", self.taken))
        return self.tensor_params[desc[1]]

    def ref(self, execs: list, slot: int, pos: tuple) -> str:
        """The name that input `slot` of the step at `pos` reads; `execs`: (coords, node id) per use."""
        descs: list[tuple[tuple, Any]] = []
        for c, n in execs:
            o = self.owner.get(n)
            if o is not None and o[0] == c[0]:
                descs.append((c, ("pos", o[1])))
            else:
                if not self.is_block:
                    raise DecompileError(f"{self.where}: node {n} is read where it cannot be named")
                descs.append((c, ("param", self.param_of[(pos, slot)])))
        kinds = {d for _, d in descs}
        if len(kinds) == 1:
            return self._ref_text(next(iter(kinds)))
        return self._carry(descs, kinds, pos)

    def _carry(self, descs: list, kinds: set, pos: tuple) -> str:
        """A value carried from one iteration to the next: `init` first, then ("pos", m)."""
        where = self.where
        carried = [d for d in kinds if d[0] == "pos" and len(d[1]) > 1 and len(pos) > 1 and d[1][0] == pos[0]]
        if len(carried) != 1 or len(kinds) != 2:
            raise DecompileError(f"{where}: an input of step {pos_text(pos)} cannot be written as one name")
        m = carried[0][1]
        init = next(d for d in kinds if d != carried[0])
        r = 0
        while r < min(len(m), len(pos)) - 1 and m[r] == pos[r]:
            r += 1
        init_at = {c for c, d in descs if d == init}
        place = None
        for s in range(r, 0, -1):  # before which enclosing repeat the carried name starts
            if init_at == {c for c, _ in descs if all(x == 0 for x in c[s:r + 1])}:
                place = m[:s]
                break
        if place is None:
            raise DecompileError(f"{where}: an input of step {pos_text(pos)} cannot be written as one name")
        init_text = self._ref_text(init)
        key = (m, init, place)
        if key in self.carries:
            return self.carries[key]
        if m >= pos and m not in self.carried_names:  # read before m is bound again: its own name carries it
            name = self.var_of(m)
            self.carried_names.add(m)
        else:
            name = fresh("carry", self.taken)
            self.post.setdefault(m[:r], []).append(f"{name} = {self.var_of(m)}")
        if init_text != name:
            self.pre.setdefault(place, []).append(f"{name} = {init_text}")
        self.carries[key] = name
        return name

    # -- statements -------------------------------------------------------------------------------
    def _node_statement(self, p: tuple, t: TNode, loops: list) -> None:
        n0 = t.node
        if t.op == "input":
            name = self.writer.input_name(n0)
            self.stmt[p] = f"input {name}: {n0.dtype}[{', '.join(dim_text(d) for d in n0.shape)}]"
            self.varname[p] = name
            self.taken.add(name)
            return
        loopvars = [lp.loopvar for lp in loops]
        used: set[int] = set()
        here = f"{self.where}, `{pos_text(p)}`"
        ins = [self.ref([(c, n.inputs[s]) for c, n in t.execs], s, p) for s in range(len(n0.inputs))]
        keys = sorted({k for _, n in t.execs for k in n.attrs})
        kw = []
        prim = PRIMITIVES.get(t.op)
        for key in keys:
            vals = [(c, n.attrs.get(key, REQUIRED)) for c, n in t.execs]
            if any(v is REQUIRED for _, v in vals):
                raise DecompileError(f"{here}: attribute `{key}` is missing in some uses")
            if prim is None:
                continue
            text = resolve(vals, loopvars, key, self.params, used, here)
            arg = next((a for a in prim.args if a.name == key), None)
            if arg is None:
                raise DecompileError(f"{here}: `{t.op}` has no argument `{key}`")
            if not arg.required and text == lit_or_none(arg.default):
                continue
            kw.append(f"{key}={text}")
        _mark(loops, used)
        self.stmt[p] = _node_expr(t, ins, kw, here)

    def _call_statement(self, p: tuple, t: TCall, loops: list) -> None:
        w = self.writer
        loopvars = [lp.loopvar for lp in loops]
        used: set[int] = set()
        here = f"{self.where}, `{pos_text(p)}`"
        ins = []
        for s in range(len(w.block_tensor_params[t.block])):
            execs = [(c, w.block_args[id(call)][s]) for c, call in t.execs]
            ins.append(self.ref(execs, s, p))
        kw = []
        for name in w.block_params[t.block]:
            vals = [(c, w.block_values[t.block][w.call_id[id(call)]][name]) for c, call in t.execs]
            kw.append(f"{name}={resolve(vals, loopvars, name, self.params, used, here)}")
        _mark(loops, used)
        call_text = f"{t.block}({', '.join(ins[1:] + kw)})" if ins else f"{t.block}({', '.join(kw)})"
        self.stmt[p] = f"{ins[0]} -> {call_text}" if ins else call_text

    def _repeat_counts(self) -> None:
        """Each repeat's count (a literal, a block parameter or an expression) and label."""
        params = self.params
        for _p, t, loops in self.flat:
            if isinstance(t, TRepeat):
                used: set[int] = set()
                vals = [(c, len(r.iters)) for c, r in t.execs]
                label = label_name(t.label, self.writer.ir, self.writer.reserved)
                if params is not None and label is not None and label not in params.values:
                    params.taken.add(label)
                    if any(not same(v, vals[0][1]) for _, v in vals) and all(len(c) == 1 for c, _ in vals):
                        params.values[label] = {c[0]: v for c, v in vals}
                text = resolve(vals, [lp.loopvar for lp in loops], label or "n", params, used,
                                f"{self.where}, repeat")
                _mark(loops, used)
                t.count_text = text  # type: ignore[attr-defined]
                t.label_name = label  # type: ignore[attr-defined]

    def _result_pos(self, block: str | None, count: int) -> tuple | None:
        """The position of the value every use of the block returns."""
        result_pos = None
        for k in range(count):
            res = self.writer.block_result.get(block, {}).get(k)
            if res is None:
                continue
            o = self.owner.get(res)
            if o is None or o[0] != k:
                raise DecompileError(f"{self.where}: its result is not computed inside it")
            if result_pos is not None and result_pos != o[1]:
                raise DecompileError(f"{self.where}: its uses return different values")
            result_pos = o[1]
        return result_pos


def _mark(loops: list, used: set[int]) -> None:
    """Give the repeats whose loop variable an expression used (depths `used`) their `as` name."""
    for d in used:
        loops[d].var = loops[d].loopvar


def _node_expr(t: TNode, ins: list[str], kw: list[str], here: str) -> str:
    op = t.op
    n0 = t.node
    if op == "neg":
        return f"-{ins[0]}"
    if op in ARITH:
        sym = ARITH[op]
        if len(ins) == 2:
            return f"{ins[0]} {sym} {ins[1]}"
        scalars = {repr(n.attrs.get("scalar")) for _, n in t.execs}
        firsts = {n.attrs.get("scalar_first") for _, n in t.execs}
        if len(scalars) != 1 or len(firsts) != 1:
            raise DecompileError(f"{here}: the scalar of `{op}` differs between its uses")
        scalar = n0.attrs.get("scalar")
        if isinstance(scalar, bool) or not isinstance(scalar, int | float):
            raise DecompileError(f"{here}: `{op}` needs a number")
        s = lit(scalar)
        return f"{s} {sym} {ins[0]}" if n0.attrs.get("scalar_first") else f"{ins[0]} {sym} {s}"
    if len(ins) == 1:
        return f"{ins[0]} -> {op}({', '.join(kw)})" if kw else f"{ins[0]} -> {op}"
    return f"{op}({', '.join(ins + kw)})"


def pos_text(pos: tuple) -> str:
    return ".".join(map(str, pos))
