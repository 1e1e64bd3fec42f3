"""Hover: the type, shape, parameters and FLOPs of the value or call under the cursor; the signature and
doc of primitives and blocks.

Every figure here is read from the front end's IR (`Analysis.graphs`, the graphs `mdlc compile` prints)
and `mdl.compiler.cost`; nothing is recomputed (DESIGN.md rule 1). The IR does not record which node
each source expression became, so this module matches them by span: a primitive call is the node whose
span is the call's, a block call is the `BlockCall` at that span, and a binding is the last node its
expression produced in each place the statement was elaborated (a `repeat` or a block inlined several
times gives several places).

The position lookups (`find_at`), the IR matching (`call_figures`, `binding_figures`) and the signature
text (`signature_of`) are shared with inlay hints, completion and signature help.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from lsprotocol import types

from mdl.compiler import cost
from mdl.compiler.args import Arg
from mdl.compiler.envs import ENV_KINDS
from mdl.compiler.experiment import PPO_ARGS
from mdl.compiler.ir import Graph, Node
from mdl.compiler.primitives import BUILTINS, PRIMITIVES, Primitive
from mdl.dsl import ast
from mdl.dsl.format import format_expr

# ------------------------------------------------------------------------------------------ formatting


def param_text(p: ast.Param) -> str:
    """`heads: int`, `top_k: int = 2`, `x` — a block or model parameter as written."""
    text = p.name
    if p.type is not None:
        text += f": {p.type.name}"
        if p.type.dims is not None:
            text += "[" + ", ".join(format_expr(d) for d in p.type.dims) + "]"
    if p.default is not None:
        text += f" = {format_expr(p.default)}"
    return text


# ------------------------------------------------------------------------------------------ signatures


@dataclass(frozen=True, slots=True)
class Signature:
    """What signature help and hover show for a callee: its label, one label per parameter, the doc, and
    the names of the parameters in order (for `name=` lookups)."""

    label: str
    params: tuple[str, ...]
    names: tuple[str, ...]
    doc: str
    args: tuple[Arg, ...] = ()  # compile-time arguments with defaults/ranges, where known
    tensors: int = 0  # leading tensor parameters (a pipe fills the first); -1: any number


def _arg_label(a: Arg) -> str:
    return a.signature()


def primitive_signature(p: Primitive) -> Signature:
    tensors = ("a", "b", "...") if p.tensors < 0 else ("x",)
    params = (*tensors, *(_arg_label(a) for a in p.args))
    return Signature(p.signature(), params, (*tensors, *(a.name for a in p.args)), p.doc, p.args,
                     -1 if p.tensors < 0 else p.tensors)


def _args_signature(name: str, args: tuple[Arg, ...], doc: str, leading: tuple[str, ...] = ()) -> Signature:
    params = (*leading, *(_arg_label(a) for a in args))
    return Signature(f"{name}({', '.join(params)})", params, (*leading, *(a.name for a in args)), doc, args)


def block_doc(scope, item: ast.Block | ast.Model) -> str:
    """The comment lines right above a definition (how stdlib documents its blocks)."""
    module = getattr(scope, "module", None)
    if module is None:
        return ""
    lines: list[str] = []
    line = item.span.line - 1
    by_line = {c.span.line: c.text for c in module.comments if c.span.line == c.span.end_line}
    while line in by_line:
        lines.insert(0, by_line[line].lstrip("#").strip())
        line -= 1
    return " ".join(lines)


def definition_signature(item: ast.Block | ast.Model, doc: str = "") -> Signature:
    from mdl.compiler.elaborate import is_tensor_param

    params = tuple(param_text(p) for p in item.params)
    kind = "block" if isinstance(item, ast.Block) else "model"
    tensors = sum(1 for p in item.params if is_tensor_param(p)) if kind == "block" else 0
    return Signature(f"{kind} {item.name}({', '.join(params)})", params, tuple(p.name for p in item.params), doc,
                     (), tensors)


def signature_of(snap, func: str, in_experiment: bool = False) -> Signature | None:
    """The signature of a callee name as the document sees it: a definition in scope shadows a
    primitive; in an experiment body `ppo`, the env kinds (`game2048`, `gym`) and `every` are known too."""
    scope = snap.analysis.scope
    found = scope.lookup(func) if scope is not None else None
    if found is not None and isinstance(found[0], ast.Block | ast.Model):
        return definition_signature(found[0], block_doc(found[1], found[0]))
    if func in PRIMITIVES:
        return primitive_signature(PRIMITIVES[func])
    if func == "dim" and func in BUILTINS:
        return Signature("dim(x, i=-1)", ("x", "i=-1"), ("x", "i"), "The size of a dimension of `x`, known at compile time.")
    if in_experiment or func in ("ppo", "every"):
        if func == "ppo":
            return _args_signature("ppo", PPO_ARGS, "Proximal policy optimisation; every setting is range-checked.")
        if func in ENV_KINDS:
            kind = ENV_KINDS[func]
            return _args_signature(func, kind.args, kind.doc, ("id",) if kind.takes_id else ())
        if func == "every":
            keep = Arg("keep", "int", 3, low=1, doc="checkpoints kept")
            return _args_signature("every", (keep,), "Save a checkpoint every N steps.", ("N steps",))
    return None


# ------------------------------------------------------------------------------------------ AST lookups


def _contains(span: ast.Span, offset: int) -> bool:
    return span.start <= offset <= span.end and span.end > span.start


def iter_exprs(expr: ast.Expr | None) -> Iterator[ast.Expr]:
    """`expr` and every expression inside it, outermost first."""
    if expr is None:
        return
    yield expr
    if isinstance(expr, ast.Call):
        for a in expr.args:
            yield from iter_exprs(a)
        for k in expr.kwargs:
            yield from iter_exprs(k.value)
    elif isinstance(expr, ast.Pipe):
        yield from iter_exprs(expr.value)
        yield from iter_exprs(expr.call)
    elif isinstance(expr, ast.BinOp):
        yield from iter_exprs(expr.left)
        yield from iter_exprs(expr.right)
    elif isinstance(expr, ast.Neg):
        yield from iter_exprs(expr.operand)
    elif isinstance(expr, ast.List):
        for i in expr.items:
            yield from iter_exprs(i)


def iter_stmts(body) -> Iterator[ast.Stmt]:
    """Every statement of a body, `repeat` bodies included."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.Repeat):
            yield from iter_stmts(stmt.body)


def stmt_exprs(stmt) -> list[ast.Expr]:
    if isinstance(stmt, ast.Assign | ast.Output | ast.Return):
        return [stmt.value]
    if isinstance(stmt, ast.Repeat):
        return [stmt.count]
    if isinstance(stmt, ast.Input):
        return list(stmt.dims)
    return []


def item_exprs(item) -> Iterator[ast.Expr]:
    """Every expression in a top-level item."""
    if isinstance(item, ast.Const):
        yield from iter_exprs(item.value)
    elif isinstance(item, ast.Block | ast.Model):
        for p in item.params:
            yield from iter_exprs(p.default)
        for stmt in iter_stmts(item.body):
            for e in stmt_exprs(stmt):
                yield from iter_exprs(e)
    elif isinstance(item, ast.Experiment):
        for entry in item.entries:
            for e in entry.entries if isinstance(entry, ast.Sweep) else (entry,):
                yield from iter_exprs(e.value)


def module_of(snap) -> ast.Module | None:
    scope = snap.analysis.scope
    return scope.module if scope is not None else None


def item_at(snap, offset: int):
    module = module_of(snap)
    if module is None:
        return None
    return next((i for i in module.items if i.span.start <= offset <= i.span.end), None)


@dataclass(frozen=True, slots=True)
class Hit:
    """What is under the cursor: `kind` is "call" (the callee name of `node`), "keyword" (`node` is the
    Keyword, `call` its call), "binding" (`node` an Assign/Output/Input name), "name" (a Name use),
    "definition" (the name of a Block/Model/Const/Experiment) or "entry" (an experiment key)."""

    kind: str
    node: object
    item: object
    call: ast.Call | None = None


def find_at(snap, offset: int) -> Hit | None:
    """The innermost thing under `offset` (never raises; None when nothing is)."""
    item = item_at(snap, offset)
    if item is None:
        return None
    if isinstance(item, ast.Block | ast.Model | ast.Const | ast.Experiment) and _contains(item.name_span, offset):
        return Hit("definition", item, item)
    if isinstance(item, ast.Block | ast.Model):
        for stmt in iter_stmts(item.body):
            if isinstance(stmt, ast.Assign | ast.Output | ast.Input) and _contains(stmt.name_span, offset):
                return Hit("binding", stmt, item)
    if isinstance(item, ast.Experiment):
        for entry in item.entries:
            for e in entry.entries if isinstance(entry, ast.Sweep) else (entry,):
                if _contains(e.key_span, offset):
                    return Hit("entry", e, item)
    for expr in item_exprs(item):
        if isinstance(expr, ast.Call):
            if _contains(expr.func_span, offset):
                return Hit("call", expr, item, expr)
            for k in expr.kwargs:
                if _contains(k.name_span, offset):
                    return Hit("keyword", k, item, expr)
        elif isinstance(expr, ast.Name) and _contains(expr.span, offset):
            return Hit("name", expr, item)
    return None


# ------------------------------------------------------------------------------------------ IR matching


def _root(snap) -> str | None:
    scope = snap.analysis.scope
    return scope.path if scope is not None else snap.path


def _same(span: ast.Span, root: str | None, start: int, end: int) -> bool:
    return span.file == root and span.start == start and span.end == end


def graphs_for(snap, item=None) -> list[Graph]:
    """The graphs a statement of `item` may appear in: its own model's, or every model's for a block."""
    graphs = snap.analysis.graphs
    if isinstance(item, ast.Model):
        g = graphs.get(item.name)
        return [g] if g is not None and g.span is not None and g.span.start == item.span.start else []
    return list(graphs.values())


@dataclass(frozen=True, slots=True)
class Figures:
    """One elaborated instance of a call or binding: its result node and the totals of what it built."""

    node: Node | None
    params: int
    flops: int | None
    graph: str


def call_figures(snap, call: ast.Call, item=None) -> list[Figures]:
    """Each instance of `call` in the IR: a primitive's node, or a block call's subtotal (cost.block_costs)."""
    root = _root(snap)
    out: list[Figures] = []
    for g in graphs_for(snap, item):
        for bc, totals in zip(g.calls, cost.block_costs(g), strict=False):
            if _same(bc.span, root, call.span.start, call.span.end):
                nodes = g.nodes_in(bc.path)
                out.append(Figures(nodes[-1] if nodes else None, totals.params, totals.flops, g.model))
        if out:
            continue
        for n in g.nodes:
            if _same(n.span, root, call.span.start, call.span.end):
                out.append(Figures(n, n.params, n.flops, g.model))
    return out


def _parent(name: str) -> str:
    return name.rpartition(".")[0]


def binding_figures(snap, stmt, item) -> list[Figures]:
    """Each instance of a binding (`x = ...`, `output y = ...`, `input b: ...`): the node its value
    became and the totals of every node its expression built (block calls in it included)."""
    root = _root(snap)
    span = stmt.span if isinstance(stmt, ast.Input) else stmt.value.span
    out: list[Figures] = []
    for g in graphs_for(snap, item):
        if isinstance(stmt, ast.Input):
            for n in g.nodes:
                if n.op == "input" and _same(n.span, root, span.start, span.end):
                    out.append(Figures(n, 0, 0, g.model))
            continue
        inside: dict[str, list[Node]] = {}  # instance prefix -> nodes the expression built there
        claimed: set[int] = set()
        for bc in g.calls:
            s = bc.span
            if s.file == root and span.start <= s.start and s.end <= span.end:
                nodes = [n for n in g.nodes_in(bc.path) if n.id not in claimed]
                claimed.update(n.id for n in nodes)
                inside.setdefault(_parent(bc.path), []).extend(nodes)
        for n in g.nodes:
            s = n.span
            if n.id not in claimed and n.op != "input" and s.file == root and span.start <= s.start and s.end <= span.end:
                inside.setdefault(_parent(n.name), []).append(n)
        for nodes in inside.values():
            nodes.sort(key=lambda n: n.id)
            flops = None if any(n.flops is None for n in nodes) else sum(n.flops or 0 for n in nodes)
            out.append(Figures(nodes[-1], sum(n.params for n in nodes), flops, g.model))
    return out


def binding_before(item, name: str, offset: int):
    """The last binding of `name` in `item`'s body that starts before `offset` (for a Name use)."""
    found = None
    if isinstance(item, ast.Block | ast.Model):
        for stmt in iter_stmts(item.body):
            # `x = x + ...`: a use inside the statement that rebinds x means the old x
            if (isinstance(stmt, ast.Assign | ast.Input) and stmt.name == name and stmt.span.start < offset
                    and not stmt.span.start <= offset <= stmt.span.end):
                found = stmt
    return found


def shapes_text(figs: list[Figures]) -> str | None:
    types_ = []
    for f in figs:
        if f.node is not None and str(f.node.type) not in types_:
            types_.append(str(f.node.type))
    return " | ".join(types_) if types_ else None


def _figures_lines(figs: list[Figures], repeated_in_one_model: bool) -> list[str]:
    if not figs:
        return []
    distinct = sorted({(f.params, f.flops) for f in figs}, key=lambda t: (t[0], t[1] or 0))
    lines = []
    if len(distinct) == 1:
        p, fl = distinct[0]
        lines.append(f"**params** {p:,} · **FLOPs/sample** {cost.format_count(fl)}")
        if len(figs) > 1:
            lines.append(f"elaborated {len(figs)} times" + (f" (total {p * len(figs):,} params)" if repeated_in_one_model else ""))
    else:
        for f in figs:
            lines.append(f"- in `{f.graph}`{'' if f.node is None else ' (' + f.node.name + ')'}: "
                         f"{f.params:,} params · {cost.format_count(f.flops)} FLOPs/sample")
    return lines


# ------------------------------------------------------------------------------------------ hover text


def _arg_doc(a: Arg) -> str:
    parts = [f"`{a.signature()}`", a.type if not a.choices else " | ".join(f'"{c}"' for c in a.choices)]
    if a.range_text():
        parts.append(f"in {a.range_text()}")
    text = " — ".join([*parts[:1], ", ".join(parts[1:])])
    return text + (f": {a.doc}" if a.doc else "")


def _primitive_md(p: Primitive) -> list[str]:
    lines = [f"```mdl\n{p.signature()}\n```", p.doc, f"shape: `{p.shape}` · params: `{p.params_text}`"]
    if p.args:
        lines.append("\n".join(f"- {_arg_doc(a)}" for a in p.args))
    return lines


def hover_text(snap, offset: int) -> tuple[str, ast.Span] | None:
    hit = find_at(snap, offset)
    if hit is None:
        return None
    analysis = snap.analysis
    scope = analysis.scope
    in_model = isinstance(hit.item, ast.Model)
    if hit.kind == "call":
        call = hit.call
        found = scope.lookup(call.func) if scope is not None else None
        if found is not None and isinstance(found[0], ast.Block | ast.Model):
            sig = definition_signature(found[0], block_doc(found[1], found[0]))
            lines = [f"```mdl\n{sig.label}\n```"] + ([sig.doc] if sig.doc else [])
        elif call.func in PRIMITIVES:
            lines = _primitive_md(PRIMITIVES[call.func])
        else:
            sig = signature_of(snap, call.func, isinstance(hit.item, ast.Experiment))
            if sig is None:
                return None
            lines = [f"```mdl\n{sig.label}\n```", sig.doc]
            if sig.args:
                lines.append("\n".join(f"- {_arg_doc(a)}" for a in sig.args))
        figs = call_figures(snap, call, hit.item)
        shape = shapes_text(figs)
        if shape:
            lines.append(f"**output** `{shape}`")
        lines += _figures_lines(figs, in_model)
        return "\n\n".join(x for x in lines if x), call.func_span
    if hit.kind == "keyword":
        sig = signature_of(snap, hit.call.func, isinstance(hit.item, ast.Experiment))
        if sig is None:
            return None
        arg = next((a for a in sig.args if a.name == hit.node.name), None)
        if arg is not None:
            return f"{_arg_doc(arg)}\n\n(argument of `{hit.call.func}`)", hit.node.name_span
        if hit.node.name in sig.names:
            i = sig.names.index(hit.node.name)
            return f"`{sig.params[i]}`\n\n(parameter of `{sig.label}`)", hit.node.name_span
        return None
    if hit.kind in ("binding", "name"):
        stmt = hit.node if hit.kind == "binding" else binding_before(hit.item, hit.node.id, offset)
        if stmt is None:
            return _name_hover(snap, hit)
        figs = binding_figures(snap, stmt, hit.item)
        word = {ast.Input: "input", ast.Output: "output"}.get(type(stmt), "value")
        name = stmt.name
        shape = shapes_text(figs)
        lines = [f"```mdl\n({word}) {name}: {shape or '?'}\n```"]
        if not isinstance(stmt, ast.Input):
            lines += _figures_lines(figs, in_model)
        if not figs:
            lines.append("no figures: the model this is in did not elaborate (see the diagnostics)")
        span = hit.node.name_span if hit.kind == "binding" else hit.node.span
        return "\n\n".join(lines), span
    if hit.kind == "definition":
        return _definition_hover(snap, hit.node), hit.node.name_span
    if hit.kind == "entry":
        return _entry_hover(hit.node.key), hit.node.key_span
    return None


def _name_hover(snap, hit: Hit) -> tuple[str, ast.Span] | None:
    scope = snap.analysis.scope
    found = scope.lookup(hit.node.id) if scope is not None else None
    if found is not None and isinstance(found[0], ast.Const):
        return f"```mdl\nconst {found[0].name} = {format_expr(found[0].value)}\n```", hit.node.span
    if isinstance(hit.item, ast.Block | ast.Model):
        p = next((p for p in hit.item.params if p.name == hit.node.id), None)
        if p is not None:
            text = f"```mdl\n(parameter) {param_text(p)}\n```"
            g = snap.analysis.graphs.get(hit.item.name) if isinstance(hit.item, ast.Model) else None
            if g is not None and p.name in g.args:
                text += f"\n\nvalue at the defaults: `{g.args[p.name]}`"
            return text, hit.node.span
    return None


def _definition_hover(snap, item) -> str:
    if isinstance(item, ast.Const):
        return f"```mdl\nconst {item.name} = {format_expr(item.value)}\n```"
    if isinstance(item, ast.Experiment):
        spec = snap.analysis.experiments.get(item.name)
        text = f"```mdl\nexperiment {item.name}\n```"
        if spec is not None:
            text += f"\n\nmodel `{spec.model}`"
            if spec.graph is not None:
                text += f" · **params** {spec.graph.params:,} · **FLOPs/sample** {cost.format_count(cost.total_flops(spec.graph))}"
        return text
    sig = definition_signature(item, block_doc(snap.analysis.scope, item))
    lines = [f"```mdl\n{sig.label}\n```"] + ([sig.doc] if sig.doc else [])
    if isinstance(item, ast.Model):
        g = graphs_for(snap, item)
        if g:
            graph = g[0]
            lines.append(f"**params** {graph.params:,} · **FLOPs/sample** {cost.format_count(cost.total_flops(graph))} "
                         f"(at {', '.join(f'{k}={v}' for k, v in graph.args.items()) or 'no arguments'})")
            lines.append("inputs: " + ", ".join(f"`{k}: {t}`" for k, t in graph.input_types().items()))
            lines.append("outputs: " + ", ".join(f"`{k}: {t}`" for k, t in graph.output_types().items()))
    return "\n\n".join(lines)


ENTRY_DOCS = {
    "model": "a model call with its compile-time arguments",
    "env": " or ".join(f"`{re.sub(r'=[0-9]+', '=N', k.example)}`" for k in ENV_KINDS.values()),
    "algo": "`ppo(...)` with " + ", ".join(f"`{a.name}`" for a in PPO_ARGS),
    "budget": "steps (`2M steps`) or a duration (`10 min`)",
    "seeds": "list of ints; one run per seed",
    "sweep": "grid over model or algo keys; one run per point and seed",
    "checkpoint": "`every(N steps, keep=K)`",
    "export": "list of `onnx`, `pt`, `py`, `json`",
    "device": "`auto` (default), `cpu`, `cuda`",
}


def _entry_hover(key: str) -> str:
    rest = key.partition(".")[2]
    arg = next((a for a in PPO_ARGS if a.name in (key, rest)), None)
    if arg is not None:
        return f"{_arg_doc(arg)}\n\n(PPO setting)"
    return f"**{key}**: {ENTRY_DOCS.get(key, 'experiment key')}"


def register(server) -> None:
    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls, params: types.HoverParams) -> types.Hover | None:
        try:
            snap = ls.snapshot(params.text_document.uri)
            found = hover_text(snap, snap.to_offset(params.position))
        except Exception:  # a hover never takes the server down
            return None
        if found is None:
            return None
        text, span = found
        return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, text), snap.to_range(span))
