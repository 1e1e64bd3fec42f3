"""Decompile: turn a model's graph IR back into a formatted `.mdl` design (`mdlc decompile`).

The result compiles to the same architecture hash as the IR it came from. Node names enter that hash,
and elaboration forms them from block-call paths, `repeat` labels and indices, ops and a `_k` suffix
for repeats (mdl.compiler.elaborate), so the design reproduces the structure the names record:

* each node's `scope` path is read back into nested block calls (`encoder_layer`) and `repeat`s
  (`layers.0.`); the IR's `calls` give each call's block name;
* every call of one block becomes one `block` definition: attributes that differ between its calls
  become block parameters, the tensors it reads from outside become its tensor parameters;
* the iterations of a `repeat` become one body: an attribute that changes by iteration is written
  `a + b * i` with the loop variable;
* each node is one statement (`h3 = h2 -> linear(out=4)`), in node order, so the `_k` suffixes come
  out as they went in; an output statement creates the node it names where the IR shows the node was
  renamed after the output (`policy`).

The text is compiled before it is returned and its hash compared: an IR that cannot be reproduced
raises DecompileError saying where it differs, never a wrong design. Imports no torch.
"""

from __future__ import annotations

import json
import keyword
import math
import re
from dataclasses import dataclass, field
from typing import Any

from mdl.compiler.args import REQUIRED
from mdl.compiler.primitives import PRIMITIVES

ARITH = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
KNOWN_OPS = {"input", "neg", *ARITH, *PRIMITIVES}
KEYWORDS = {"import", "as", "const", "block", "model", "experiment", "input", "output", "repeat", "return",
            "sweep", "true", "false", "none", "dim"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class DecompileError(Exception):
    """An IR that is malformed, or that no design reproduces with the same architecture hash."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# ------------------------------------------------------------------------------------ reading the IR
@dataclass
class _Node:
    id: int
    name: str
    op: str
    inputs: tuple[int, ...]
    attrs: dict[str, Any]
    dtype: str
    shape: tuple
    path: str  # the scope path ("" at model level)


@dataclass
class _IR:
    model: str
    args: dict[str, Any]
    inputs: dict[str, int]
    outputs: dict[str, int]
    nodes: list[_Node]
    calls: list[tuple[str, str]]  # (path, block) in call order


def _read(ir: Any) -> _IR:
    from mdl.compiler.ir import Graph

    if isinstance(ir, Graph):
        ir = ir.to_json()
    if not isinstance(ir, dict):
        raise DecompileError(f"expected a graph IR (a dict), got {type(ir).__name__}")
    for key in ("nodes", "inputs", "outputs"):
        if key not in ir:
            raise DecompileError(f"the IR has no `{key}`")
    raw_nodes, inputs, outputs = ir["nodes"], ir["inputs"], ir["outputs"]
    if not isinstance(raw_nodes, list) or not isinstance(inputs, dict) or not isinstance(outputs, dict):
        raise DecompileError("`nodes` must be a list and `inputs`/`outputs` objects")
    nodes: list[_Node] = []
    for i, n in enumerate(raw_nodes):
        where = f"node {i}"
        if not isinstance(n, dict):
            raise DecompileError(f"{where} is not an object")
        for key in ("name", "op", "inputs", "dtype", "shape"):
            if key not in n:
                raise DecompileError(f"{where} has no `{key}`")
        name, op, ins, attrs = n["name"], n["op"], n["inputs"], n.get("attrs", {})
        if "id" in n and n["id"] != i:
            raise DecompileError(f"{where} has id {n['id']!r}; ids must count from 0 in order")
        if not isinstance(name, str) or not name:
            raise DecompileError(f"{where} has no name")
        if not isinstance(op, str) or op not in KNOWN_OPS:
            raise DecompileError(f"{where} (`{name}`) has an unknown op {op!r}")
        if not isinstance(ins, list) or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < i
                                                for x in ins):
            raise DecompileError(f"{where} (`{name}`) has inputs {ins!r}; each must be an earlier node's id")
        if not isinstance(attrs, dict):
            raise DecompileError(f"{where} (`{name}`) has attrs that are not an object")
        if n["dtype"] not in ("float", "int") or not isinstance(n["shape"], list) or not all(
                (isinstance(d, int) and not isinstance(d, bool)) or isinstance(d, str) for d in n["shape"]):
            raise DecompileError(f"{where} (`{name}`) has a malformed type")
        scope = n.get("scope")
        if scope is None:
            path = name.rpartition(".")[0]
        elif isinstance(scope, list | tuple) and all(isinstance(s, str) for s in scope) and len(scope) <= 1:
            path = scope[0] if scope else ""
        else:
            raise DecompileError(f"{where} (`{name}`) has a malformed scope {scope!r}")
        if path and not name.startswith(path + "."):
            raise DecompileError(f"{where} is named `{name}` but sits in `{path}`")
        if op == "input" and path:
            raise DecompileError(f"input node `{name}` sits inside `{path}`")
        nodes.append(_Node(i, name, op, tuple(ins), {k: _tuplify(v) for k, v in attrs.items()}, n["dtype"],
                           tuple(n["shape"]), path))
    for what, table in (("input", inputs), ("output", outputs)):
        for k, v in table.items():
            if not isinstance(k, str) or not _IDENT.match(k) or k in KEYWORDS:
                raise DecompileError(f"{what} name {k!r} is not a name")
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < len(nodes):
                raise DecompileError(f"{what} `{k}` refers to no node ({v!r})")
            if what == "input" and nodes[v].op != "input":
                raise DecompileError(f"input `{k}` refers to node `{nodes[v].name}`, which is not an input")
    if sorted(inputs.values()) != [n.id for n in nodes if n.op == "input"]:
        raise DecompileError("the IR's `inputs` do not list its input nodes")
    raw_calls = ir.get("calls", [])
    calls: list[tuple[str, str]] = []
    if not isinstance(raw_calls, list):
        raise DecompileError("`calls` must be a list")
    for c in raw_calls:
        if not isinstance(c, dict) or not isinstance(c.get("path"), str) or not isinstance(c.get("block"), str):
            raise DecompileError(f"malformed block call {c!r}")
        calls.append((c["path"], c["block"]))
    args = ir.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise DecompileError("`args` must be an object")
    model = ir.get("model") or "Decompiled"
    if not isinstance(model, str):
        raise DecompileError("`model` must be a name")
    return _IR(model, args, dict(inputs), dict(outputs), nodes, calls)


def _tuplify(v: Any) -> Any:
    return tuple(_tuplify(x) for x in v) if isinstance(v, list | tuple) else v


def _graph_of(ir: _IR):
    """A Graph with the IR's hashed fields, to hash it the way the compiler does."""
    from mdl.compiler.ir import Graph, Node, TensorType
    from mdl.dsl.ast import Span

    span = Span(None, 1, 1, 1, 1)
    g = Graph(ir.model, dict(ir.args), inputs=dict(ir.inputs), outputs=dict(ir.outputs))
    g.nodes = [Node(n.id, n.name, n.op, n.inputs, dict(n.attrs), TensorType(n.dtype, n.shape), span)
               for n in ir.nodes]
    return g


# ------------------------------------------------------------------------------- the concrete tree
@dataclass
class _Call:
    path: str
    block: str
    items: list = field(default_factory=list)


@dataclass
class _Repeat:
    base: str  # full path of the repeat's base, e.g. "layers" or "enc.n_1"
    iters: list = field(default_factory=list)  # list of item lists


def _tree(ir: _IR) -> list:
    """The model body as nested _Node / _Call / _Repeat items, from the nodes' scope paths."""
    block_of = dict(ir.calls)
    root: list = []
    # the open containers: (key, item list); key is a call path or (repeat base, iteration)
    stack: list[tuple[Any, list, Any]] = [("", root, None)]
    for node in ir.nodes:
        frames = _frames(node.path, block_of)
        # keep the common prefix of the open stack
        depth = 0
        while depth < len(frames) and depth + 1 < len(stack) and stack[depth + 1][0] == frames[depth]:
            depth += 1
        del stack[depth + 1:]
        for key in frames[depth:]:
            parent = stack[-1][1]
            if isinstance(key, tuple):  # (repeat base, iteration)
                base, it = key
                rep = parent[-1] if parent and isinstance(parent[-1], _Repeat) and parent[-1].base == base else None
                if rep is None:
                    if it != 0 or any(isinstance(x, _Repeat) and x.base == base for x in parent):
                        raise DecompileError(f"node `{node.name}`: `repeat` {base} is not contiguous")
                    rep = _Repeat(base)
                    parent.append(rep)
                if it != len(rep.iters):
                    raise DecompileError(f"node `{node.name}`: iteration {it} of `{base}` out of order")
                rep.iters.append([])
                stack.append((key, rep.iters[-1], rep))
            else:
                if any(isinstance(x, _Call) and x.path == key for x in parent):
                    raise DecompileError(f"node `{node.name}`: block call `{key}` is not contiguous")
                call = _Call(key, block_of.get(key) or _strip_suffix(key.rpartition(".")[2]))
                parent.append(call)
                stack.append((key, call.items, call))
        stack[-1][1].append(node)
    return root


def _frames(path: str, block_of: dict[str, str]) -> list:
    if not path:
        return []
    parts = path.split(".")
    frames: list = []
    i = 0
    while i < len(parts):
        prefix = ".".join(parts[:i + 1])
        if i + 1 < len(parts) and parts[i + 1].isdigit() and prefix not in block_of:
            frames.append((prefix, int(parts[i + 1])))
            i += 2
        else:
            frames.append(prefix)
            i += 1
    return frames


def _strip_suffix(leaf: str) -> str:
    m = re.fullmatch(r"(.+?)_\d+", leaf)
    return m.group(1) if m else leaf


# --------------------------------------------------------------------------------------- templates
# A frame is the model body or one block definition. Its template is a list of template items; the
# instances of a frame are the model itself, or every call of the block.
@dataclass
class _TNode:
    op: str
    node: _Node  # the first execution (for input declarations)
    execs: list = field(default_factory=list)  # (coords, _Node)


@dataclass
class _TCall:
    block: str
    execs: list = field(default_factory=list)  # (coords, _Call)


@dataclass
class _TRepeat:
    label: str
    body: list
    execs: list = field(default_factory=list)  # (coords, _Repeat)
    var: str | None = None


def _merge(template: list | None, items: list, coords: tuple, where: str) -> list:
    """Add one execution of a body (`items`, at iteration coordinates `coords`) to its template."""
    if template is None:
        template = []
        for it in items:
            if isinstance(it, _Node):
                template.append(_TNode(it.op, it))
            elif isinstance(it, _Call):
                template.append(_TCall(it.block))
            else:
                template.append(_TRepeat(_label_leaf(it.base), None))
    if len(template) != len(items):
        raise DecompileError(f"{where}: its uses differ in structure ({len(template)} and {len(items)} steps)")
    for t, it in zip(template, items, strict=True):
        if (isinstance(t, _TNode) and isinstance(it, _Node) and t.op == it.op and (
                it.op != "input" or (it.name, it.dtype, it.shape) == (t.node.name, t.node.dtype, t.node.shape))) or (isinstance(t, _TCall) and isinstance(it, _Call) and t.block == it.block):
            t.execs.append((coords, it))
        elif isinstance(t, _TRepeat) and isinstance(it, _Repeat) and t.label == _label_leaf(it.base):
            t.execs.append((coords, it))
            for k, body in enumerate(it.iters):
                t.body = _merge(t.body, body, (*coords, k), where)
        else:
            raise DecompileError(f"{where}: its uses differ in structure")
    return template


def _label_leaf(base: str) -> str:
    return base.rpartition(".")[2]


# ------------------------------------------------------------------------------------ expressions
def _lit(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise DecompileError(f"the value {v!r} cannot be written in a design")
        return repr(v)
    if isinstance(v, str):
        if '"' in v or "\\" in v or "\n" in v:
            raise DecompileError(f"the string {v!r} cannot be written in a design")
        return f'"{v}"'
    if isinstance(v, tuple):
        return "[" + ", ".join(_dim_text(x) for x in v) + "]"
    raise DecompileError(f"the value {v!r} cannot be written in a design")


def _dim_text(v: Any) -> str:
    if isinstance(v, str):
        if not _IDENT.match(v):
            raise DecompileError(f"the dimension {v!r} cannot be written in a design")
        return v
    return _lit(v)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


class _Params:
    """The static parameters of a block being written: name -> value per instance."""

    def __init__(self, taken: set[str]):
        self.taken = taken
        self.values: dict[str, dict[int, Any]] = {}

    def new(self, prefer: str, values: dict[int, Any]) -> str:
        for name, have in self.values.items():
            if name.rstrip("0123456789") == prefer and have.keys() == values.keys() and all(
                    _same(have[k], values[k]) for k in values):
                return name
        name = _fresh(prefer, self.taken)
        self.values[name] = values
        return name


def _fresh(prefer: str, taken: set[str]) -> str:
    name = prefer if _IDENT.match(prefer) else "p"
    k = 1
    base = name
    while name in taken or name in KEYWORDS or keyword.iskeyword(name) or name in PRIMITIVES:
        k += 1
        name = f"{base}{k}"
    taken.add(name)
    return name


def _resolve(vals: list[tuple[tuple, Any]], loopvars: list[str | None], prefer: str, params: _Params | None,
             used: set[int], where: str) -> str:
    """An expression for a value that takes `vals` at (instance, i1, .., id) coordinates."""
    first = vals[0][1]
    if all(_same(v, first) for _, v in vals):
        return _lit(first)
    depth = len(vals[0][0]) - 1
    if all(isinstance(v, tuple) and len(v) == len(first) for _, v in vals):  # a list, item by item
        items = []
        for k in range(len(first)):
            col = [(c, v[k]) for c, v in vals]
            if isinstance(first[k], str):
                if not all(_same(v, first[k]) for _, v in col):
                    raise DecompileError(f"{where}: `{prefer}` changes a symbolic size between uses")
                items.append(_dim_text(first[k]))
            else:
                items.append(_resolve(col, loopvars, prefer, params, used, where))
        return "[" + ", ".join(items) + "]"
    if depth == 0:
        if params is None:
            raise DecompileError(f"{where}: `{prefer}` takes several values")
        return params.new(prefer, {c[0]: v for c, v in vals})
    groups: dict[tuple, dict[int, Any]] = {}
    for c, v in vals:
        groups.setdefault(c[:-1], {})[c[-1]] = v
    by_iter_const = all(all(_same(v, next(iter(g.values()))) for v in g.values()) for g in groups.values())
    if by_iter_const:
        return _resolve([(c, g[0]) for c, g in groups.items()], loopvars[:-1], prefer, params, used, where)
    a_vals, b_vals = [], []
    affine = True
    for c, g in groups.items():
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in g.values()) or \
                sorted(g) != list(range(len(g))):
            raise DecompileError(f"{where}: `{prefer}` changes by iteration in a way a design cannot write")
        a = g[0]
        b = g[1] - g[0] if 1 in g else 0
        affine = affine and all(v == a + b * k for k, v in g.items())
        a_vals.append((c, a))
        b_vals.append((c, b))
    var = loopvars[-1]
    used.add(len(loopvars) - 1)
    if not affine:  # any values over i = 0..n-1: the sum of value_k * [i == k]
        n = max(len(g) for g in groups.values())
        terms = []
        for k in range(n):
            coef = _resolve([(c, g.get(k, 0)) for c, g in groups.items()], loopvars[:-1], prefer, params, used,
                            where)
            if coef == "0":
                continue
            others = [j for j in range(n) if j != k]
            denom = math.prod(k - j for j in others)
            factors = " * ".join(f"({var} - {j})" if j else var for j in others)
            terms.append(f"{_paren(coef)} * ({factors} / {denom})" if others else coef)
        return " + ".join(terms) or "0"
    a_text = _resolve(a_vals, loopvars[:-1], prefer, params, used, where)
    b_text = _resolve(b_vals, loopvars[:-1], prefer + "_step", params, used, where)
    term = var if b_text == "1" else f"{_paren(b_text)} * {var}"
    return term if a_text == "0" else f"{_paren(a_text)} + {term}"


def _paren(text: str) -> str:
    return text if _IDENT.match(text) or re.fullmatch(r"-?[0-9.e+-]+", text) else f"({text})"


# --------------------------------------------------------------------------------------- writing
class _Writer:
    def __init__(self, ir: _IR):
        self.ir = ir
        self.reserved: set[str] = set(KEYWORDS)
        for n in ir.nodes:
            self.reserved.update(d for d in n.shape if isinstance(d, str))
            self.reserved.update(d for v in n.attrs.values() if isinstance(v, tuple) for d in v if isinstance(d, str))
            for part in n.name.split("."):
                self.reserved.add(_strip_suffix(part))
        self.reserved.update(b for _, b in ir.calls)
        self.block_params: dict[str, list[str]] = {}  # static parameter names
        self.block_values: dict[str, dict[int, dict[str, Any]]] = {}  # per call id: name -> value
        self.block_result: dict[str, dict[int, int]] = {}  # per call id -> returned node id
        self.call_id: dict[int, int] = {}  # id(_Call) -> instance index within its block
        self.model_params: dict[str, Any] = {}

    def _input_name(self, node: _Node) -> str:
        for name, i in self.ir.inputs.items():
            if i == node.id:
                return name
        raise DecompileError(f"input node `{node.name}` is not among the IR's inputs")

    # -- the whole design -------------------------------------------------------------------------
    def design(self, name: str) -> str:
        root = _tree(self.ir)
        by_block = _calls_by_block(root)  # the calls of each block, innermost blocks first
        self._check_results(by_block)
        self.block_args: dict[int, list[int]] = {}  # id(_Call) -> the node ids of its tensor arguments
        self.block_tensor_params: dict[str, list[str]] = {}
        # a block is written after the blocks it calls
        defs = [self._block_def(block, by_block[block]) for block in _block_order(by_block)]
        body = self._model_body(root)
        header = ["# Decompiled from the graph IR of model "
                  f"`{self.ir.model}` by `mdlc decompile`: same architecture hash."]
        header.append("# Its compile-time arguments are written in as literals; a `repeat` over one keeps its name.")
        parts = ["\n".join(header), *defs]
        mparams = ", ".join(f"{k}: {_kind({0: v})} = {_lit(v)}" for k, v in self.model_params.items())
        parts.append(f"model {name}{'(' + mparams + ')' if mparams else ''} {{\n{body}\n}}")
        return "\n\n".join(parts) + "\n"

    def _check_results(self, by_block: dict[str, list[_Call]]) -> None:
        """A block returns one value: at most one node of each call is read after the call ends."""
        last_use: dict[int, int] = {}
        for n in self.ir.nodes:
            for i in n.inputs:
                last_use[i] = n.id
        for i in self.ir.outputs.values():
            last_use[i] = len(self.ir.nodes)
        for calls in by_block.values():
            for call in calls:
                ids = _node_ids(call.items)
                inside = set(ids)
                end = max(ids) if ids else -1
                escaped = {i for i in inside if last_use.get(i, -1) > end or
                           any(i in n.inputs for n in self.ir.nodes if n.id > end)}
                if len(escaped) > 1:
                    raise DecompileError(f"block call `{call.path}`: {len(escaped)} of its values are used after it;"
                                         " a block returns one")

    def _block_def(self, block: str, calls: list[_Call]) -> str:
        """The `block` definition that all of `calls` are uses of; records its signature for the callers."""
        self.block_result[block] = {}
        for k, call in enumerate(calls):
            self.call_id[id(call)] = k
            ids = _node_ids(call.items)
            end = max(ids) if ids else -1
            esc = [i for i in ids if any(i in n.inputs for n in self.ir.nodes if n.id > end)
                   or (i in self.ir.outputs.values())]
            if esc:
                self.block_result[block][k] = esc[0]
        where = f"block `{block}`"
        f = _Frame(self, [c.items for c in calls], where, True, block)
        tparams, params, outside = f.tensor_params, f.params, f.outside
        for k, call in enumerate(calls):
            self.block_args[id(call)] = outside[k]
        if len({len(o) for o in outside}) > 1:
            raise DecompileError(f"{where}: its uses read different numbers of tensors")
        if not tparams:
            raise DecompileError(f"{where}: it reads no tensor")
        self.block_tensor_params[block] = tparams
        self.block_params[block] = list(params.values)
        self.block_values[block] = {k: {p: params.values[p][k] for p in params.values} for k in range(len(calls))}
        result_pos = f.result_pos if f.result_pos is not None else _last_pos(f.template)
        ret = f.varname.get(result_pos) if result_pos is not None else tparams[0]
        if ret is None:
            raise DecompileError(f"{where}: its result has no name")
        kinds = {p: _kind(params.values[p]) for p in params.values}
        sig = ", ".join(tparams + [f"{p}: {kinds[p]}" for p in params.values])
        body = self._emit_body(f, f.template, (), "    ", None)
        return f"block {block}({sig}) {{\n{body}\n    return {ret}\n}}"

    def _model_body(self, root: list) -> str:
        """The statements of the model, its outputs among them in the IR's order."""
        f = _Frame(self, [root], "the model", False)
        renamed = self._renamed_outputs()
        outs = []
        for oname, oid in self.ir.outputs.items():
            if oid not in f.owner:
                raise DecompileError(f"output `{oname}` is a value inside a block that the block does not return")
            p = f.owner[oid][1]
            if oid in renamed and renamed[oid] == oname and p not in f.varname:
                outs.append([oname, p[0], p, None])
            else:
                outs.append([oname, p[0], None, f.varname[p]])
        # an output is written after the top-level step that makes its value, and after the one before it
        for k in range(1, len(outs)):
            if outs[k][2] is None and outs[k][1] < outs[k - 1][1]:
                outs[k][1] = outs[k - 1][1]
        return self._emit_body(f, f.template, (), "    ", outs)

    def _renamed_outputs(self) -> dict[int, str]:
        """Outputs whose node was created by the output statement and renamed after it."""
        from mdl.compiler.ir import safe_name

        out: dict[int, str] = {}
        for name, i in self.ir.outputs.items():
            n = self.ir.nodes[i]
            if n.op != "input" and not n.path and n.name == safe_name(name) and i not in out:
                out[i] = name
        return out

    def _emit_body(self, f: _Frame, template: list, pos: tuple, indent: str, outs: list | None) -> str:
        """The statements of a body; `outs` (model level only): the outputs still to write, in order,
        each [name, top-level index after which it can be written, position if renamed, variable]."""
        lines: list[str] = []
        for j, t in enumerate(template):
            p = (*pos, j)
            for line in f.pre.get(p, []):
                lines.append(indent + line)
            if isinstance(t, _TRepeat):
                label = t.label_name  # type: ignore[attr-defined]
                count = t.count_text  # type: ignore[attr-defined]
                if label is None:
                    head = f"repeat {count}"
                elif count == label:
                    head = f"repeat {label}"
                elif not pos and label in self.ir.args and _same(self.ir.args[label], _num_or(count)):
                    self.model_params[label] = self.ir.args[label]
                    head = f"repeat {label}"
                else:
                    lines.append(f"{indent}{label} = {count}")
                    head = f"repeat {label}"
                if t.var:
                    head += f" as {t.var}"
                inner = self._emit_body(f, t.body or [], p, indent + "    ", None)
                lines.append(f"{indent}{head} {{\n{inner}\n{indent}}}")
            elif isinstance(t, _TNode) and t.op == "input":
                lines.append(indent + f.stmt[p])
            elif p in f.varname:
                lines.append(f"{indent}{f.varname[p]} = {f.stmt[p]}")
            else:  # a renamed output
                if not outs or outs[0][2] != p:
                    raise DecompileError("the outputs cannot be written in the IR's order")
                lines.append(f"{indent}output {outs.pop(0)[0]} = {f.stmt[p]}")
            while outs and outs[0][1] == j and outs[0][2] is None:
                oname, _, _, var = outs.pop(0)
                lines.append(f"{indent}output {oname} = {var}")
        for line in f.post.get(pos, []):
            lines.append(indent + line)
        if outs and not pos:
            raise DecompileError(f"output `{outs[0][0]}` cannot be written in the IR's order")
        return "\n".join(lines)


class _Frame:
    """One frame being written, the model body or one block definition, from all its instances.

    Built in the order the names depend on: the template of the instances, which instance and
    position produced each node, the steps' names, the tensor parameters, each step's statement, the
    repeats' counts and (for a block) the position of its result. `design` reads the attributes.
    """

    def __init__(self, writer: _Writer, instances: list[list], where: str, is_block: bool,
                 block: str | None = None):
        self.writer = writer
        self.where = where
        self.is_block = is_block
        template = None
        for k, items in enumerate(instances):
            template = _merge(template, items, (k,), where)
        self.template: list = template or []
        self.taken = set(writer.reserved)
        self.params = _Params(self.taken) if is_block else None
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
            if isinstance(t, _TNode):
                self._node_statement(p, t, loops)
            elif isinstance(t, _TCall):
                self._call_statement(p, t, loops)
        self._repeat_counts()
        self.result_pos = self._result_pos(block, len(instances)) if is_block else None

    def _own(self, tmpl: list, pos: tuple) -> None:
        """Record which instance and position produced each node (and each call's result)."""
        for j, t in enumerate(tmpl):
            p = (*pos, j)
            if isinstance(t, _TNode):
                for c, n in t.execs:
                    self.owner[n.id] = (c[0], p)
            elif isinstance(t, _TCall):
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
            if isinstance(t, _TRepeat):
                out.extend(self._flatten(t.body or [], p, [*loops, t]))
        return out

    def _name_steps(self) -> None:
        """Loop variables for the repeats, input names for the inputs, `h1`, `h2`, .. for the rest."""
        counter = 0
        renamed = self.writer._renamed_outputs() if not self.is_block else {}
        for p, t, loops in self.flat:
            if isinstance(t, _TRepeat):
                t.var = None
                t.loopvar = _fresh("ijklmn"[len(loops) % 6], self.taken)  # type: ignore[attr-defined]
            elif isinstance(t, _TNode) and t.op == "input":
                self.varname[p] = self.writer._input_name(t.node)
                self.taken.add(self.varname[p])
            elif not (isinstance(t, _TNode) and len(t.execs) == 1 and t.execs[0][1].id in renamed and len(p) == 1):
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
            if isinstance(t, _TNode) and t.op != "input":
                slots = [[(c, n.inputs[s]) for c, n in t.execs] for s in range(len(t.node.inputs))]
            elif isinstance(t, _TCall):
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
                raise DecompileError(f"{self.where}: step {_pos_text(key[0])} reads several outside tensors in one use")
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
            raise DecompileError(f"{self.where}: step {_pos_text(pos)} is read but has no value")
        return self.varname[pos]

    def _ref_text(self, desc: tuple) -> str:
        if desc[0] == "pos":
            return self.var_of(desc[1])
        while len(self.tensor_params) <= desc[1]:
            self.tensor_params.append(_fresh("x", self.taken))
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
            raise DecompileError(f"{where}: an input of step {_pos_text(pos)} cannot be written as one name")
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
            raise DecompileError(f"{where}: an input of step {_pos_text(pos)} cannot be written as one name")
        init_text = self._ref_text(init)
        key = (m, init, place)
        if key in self.carries:
            return self.carries[key]
        if m >= pos and m not in self.carried_names:  # read before m is bound again: its own name carries it
            name = self.var_of(m)
            self.carried_names.add(m)
        else:
            name = _fresh("carry", self.taken)
            self.post.setdefault(m[:r], []).append(f"{name} = {self.var_of(m)}")
        if init_text != name:
            self.pre.setdefault(place, []).append(f"{name} = {init_text}")
        self.carries[key] = name
        return name

    # -- statements -------------------------------------------------------------------------------
    def _node_statement(self, p: tuple, t: _TNode, loops: list) -> None:
        n0 = t.node
        if t.op == "input":
            name = self.writer._input_name(n0)
            self.stmt[p] = f"input {name}: {n0.dtype}[{', '.join(_dim_text(d) for d in n0.shape)}]"
            self.varname[p] = name
            self.taken.add(name)
            return
        loopvars = [lp.loopvar for lp in loops]
        used: set[int] = set()
        here = f"{self.where}, `{_pos_text(p)}`"
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
            text = _resolve(vals, loopvars, key, self.params, used, here)
            arg = next((a for a in prim.args if a.name == key), None)
            if arg is None:
                raise DecompileError(f"{here}: `{t.op}` has no argument `{key}`")
            if not arg.required and text == _lit_or_none(arg.default):
                continue
            kw.append(f"{key}={text}")
        _mark(loops, used)
        self.stmt[p] = _node_expr(t, ins, kw, here)

    def _call_statement(self, p: tuple, t: _TCall, loops: list) -> None:
        w = self.writer
        loopvars = [lp.loopvar for lp in loops]
        used: set[int] = set()
        here = f"{self.where}, `{_pos_text(p)}`"
        ins = []
        for s in range(len(w.block_tensor_params[t.block])):
            execs = [(c, w.block_args[id(call)][s]) for c, call in t.execs]
            ins.append(self.ref(execs, s, p))
        kw = []
        for name in w.block_params[t.block]:
            vals = [(c, w.block_values[t.block][w.call_id[id(call)]][name]) for c, call in t.execs]
            kw.append(f"{name}={_resolve(vals, loopvars, name, self.params, used, here)}")
        _mark(loops, used)
        call_text = f"{t.block}({', '.join(ins[1:] + kw)})" if ins else f"{t.block}({', '.join(kw)})"
        self.stmt[p] = f"{ins[0]} -> {call_text}" if ins else call_text

    def _repeat_counts(self) -> None:
        """Each repeat's count (a literal, a block parameter or an expression) and label."""
        params = self.params
        for _p, t, loops in self.flat:
            if isinstance(t, _TRepeat):
                used: set[int] = set()
                vals = [(c, len(r.iters)) for c, r in t.execs]
                label = _label_name(t.label, self.writer.ir, self.writer.reserved)
                if params is not None and label is not None and label not in params.values:
                    params.taken.add(label)
                    if any(not _same(v, vals[0][1]) for _, v in vals) and all(len(c) == 1 for c, _ in vals):
                        params.values[label] = {c[0]: v for c, v in vals}
                text = _resolve(vals, [lp.loopvar for lp in loops], label or "n", params, used,
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


def _node_expr(t: _TNode, ins: list[str], kw: list[str], here: str) -> str:
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
        s = _lit(scalar)
        return f"{s} {sym} {ins[0]}" if n0.attrs.get("scalar_first") else f"{ins[0]} {sym} {s}"
    if len(ins) == 1:
        return f"{ins[0]} -> {op}({', '.join(kw)})" if kw else f"{ins[0]} -> {op}"
    return f"{op}({', '.join(ins + kw)})"


def _calls_by_block(root: list) -> dict[str, list[_Call]]:
    """Block name -> its calls, a call after the calls inside it."""
    by_block: dict[str, list[_Call]] = {}

    def collect(items: list) -> None:
        for it in items:
            if isinstance(it, _Call):
                collect(it.items)
                by_block.setdefault(it.block, []).append(it)
            elif isinstance(it, _Repeat):
                for b in it.iters:
                    collect(b)

    collect(root)
    return by_block


def _node_ids(items: list) -> list[int]:
    out: list[int] = []
    for it in items:
        if isinstance(it, _Node):
            out.append(it.id)
        elif isinstance(it, _Call):
            out += _node_ids(it.items)
        else:
            for b in it.iters:
                out += _node_ids(b)
    return out


def _block_order(by_block: dict[str, list[_Call]]) -> list[str]:
    inner: dict[str, set[str]] = {b: set() for b in by_block}

    def visit(items: list, into: set[str]) -> None:
        for it in items:
            if isinstance(it, _Call):
                into.add(it.block)
            elif isinstance(it, _Repeat):
                for b in it.iters:
                    visit(b, into)

    for b, calls in by_block.items():
        for c in calls:
            visit(c.items, inner[b])
    ordered: list[str] = []
    while len(ordered) < len(inner):
        ready = [b for b in inner if b not in ordered and inner[b] <= set(ordered)]
        if not ready:
            raise DecompileError("blocks call each other in a cycle")
        ordered.extend(ready)
    return ordered


def _last_pos(template: list) -> tuple | None:
    for j in range(len(template) - 1, -1, -1):
        t = template[j]
        if isinstance(t, _TRepeat):
            inner = _last_pos(t.body or [])
            if inner is not None:
                return (j, *inner)
        else:
            return (j,)
    return None


def _pos_text(pos: tuple) -> str:
    return ".".join(map(str, pos))


def _kind(values: dict[int, Any]) -> str:
    kinds = set()
    for v in values.values():
        if isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, int):
            kinds.add("int")
        elif isinstance(v, float):
            kinds.add("float")
        elif isinstance(v, str):
            kinds.add("str")
        elif isinstance(v, tuple):
            kinds.add("list")
        else:
            raise DecompileError(f"a block parameter would take {v!r}, which has no type")
    if len(kinds) != 1:
        raise DecompileError(f"a block parameter would take values of several types ({', '.join(sorted(kinds))})")
    return kinds.pop()


def _lit_or_none(v: Any) -> str | None:
    try:
        return _lit(v)
    except DecompileError:
        return None


def _num_or(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _label_name(leaf: str, ir: _IR, reserved: set[str]) -> str | None:
    """The name a `repeat` counts with so that its path part comes out as `leaf` (None: a literal)."""
    label = _strip_suffix(leaf) if re.fullmatch(r".+_\d+", leaf) else leaf
    if label == "repeat":
        return None
    if label.startswith("_") and label.endswith("_"):
        label = label[:-1]
    if not _IDENT.match(label) or label in KEYWORDS or keyword.iskeyword(label):
        raise DecompileError(f"a `repeat` labelled `{leaf}` cannot be written")
    return label


# ------------------------------------------------------------------------------------------- API
def decompile(ir: Any, name: str | None = None) -> str:
    """A formatted `.mdl` design of one model whose compilation has `ir`'s architecture hash.

    `ir` is a `Graph` or the dict of `Graph.to_json()` (what checkpoints and exports carry); `name`
    names the model (default: the IR's model name). Raises DecompileError for a malformed IR, or one
    that no design written this way reproduces (the message says where).
    """
    from mdl.compiler.api import architecture_hash, compile_source
    from mdl.dsl.diagnostics import CompileError
    from mdl.dsl.format import FormatError, format_source

    parsed = _read(ir)
    model = name or parsed.model
    if not _IDENT.match(model) or model in KEYWORDS:
        raise DecompileError(f"`{model}` is not a model name")
    try:
        text = _Writer(parsed).design(model)
    except RecursionError:
        raise DecompileError("the IR is nested too deeply to write") from None
    try:
        text = format_source(text)
    except FormatError as exc:
        raise DecompileError(f"internal error: the decompiled design does not parse: {exc}") from None
    want = architecture_hash(_graph_of(parsed))
    try:
        got = compile_source(text, model)
    except CompileError as exc:
        first = exc.diagnostics[0] if getattr(exc, "diagnostics", None) else exc
        raise DecompileError(f"the decompiled design does not compile ({first}); "
                             "this IR cannot be reproduced") from None
    if architecture_hash(got.ir) != want:
        raise DecompileError(_difference(parsed, got.ir))
    return text


def _difference(ir: _IR, graph) -> str:
    """Where a recompiled graph differs from the IR (for the error message)."""
    for a, b in zip(ir.nodes, graph.nodes, strict=False):
        if a.name != b.name or a.op != b.op or list(a.inputs) != list(b.inputs):
            return (f"this IR cannot be reproduced: node {a.id} is `{a.name}` ({a.op}) but the design "
                    f"compiles it as `{b.name}` ({b.op})")
        if a.dtype != b.type.dtype or [str(d) for d in a.shape] != [str(d) for d in b.type.shape]:
            return f"this IR cannot be reproduced: node `{a.name}` has type {a.dtype}{list(a.shape)}, " \
                   f"the design gives {b.type}"
    if len(ir.nodes) != len(graph.nodes):
        return f"this IR cannot be reproduced: {len(ir.nodes)} nodes, the design compiles to {len(graph.nodes)}"
    return "this IR cannot be reproduced: its attributes, inputs or outputs differ from the design's"


__all__ = ["DecompileError", "decompile"]
