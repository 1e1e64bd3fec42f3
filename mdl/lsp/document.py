"""What the language server's features share about one document: what is under a position, the
signatures and IR figures of what is there, and diagnostics in LSP form.

Every figure is read from the front end's IR (`Analysis.graphs`, the graphs `mdlc compile` prints); the
IR does not record which node each source expression became, so calls and bindings are matched by span:
a primitive call is the node whose span is the call's, a block call is the `BlockCall` at that span, and
a binding is the last node its expression produced in each place the statement was elaborated (a
`repeat` or a block inlined several times gives several places). The feature modules (hover, inlay
hints, completion, ...) import this module and the server, never each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from lsprotocol import types

from mdl.compiler import cost
from mdl.compiler.args import Arg
from mdl.compiler.envs import ENV_KINDS
from mdl.compiler.experiment import PPO_ARGS
from mdl.compiler.ir import Graph, Node
from mdl.compiler.primitives import BUILTINS, PRIMITIVES, Primitive
from mdl.dsl import ast
from mdl.dsl.diagnostics import Diagnostic, Severity
from mdl.dsl.format import format_expr
from mdl.dsl.walk import item_exprs, iter_stmts
from mdl.lsp.server import Snapshot


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


def _contains(span: ast.Span, offset: int) -> bool:
    return span.start <= offset <= span.end and span.end > span.start


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
            for e in entry.entries if isinstance(entry, ast.Section) else (entry,):
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


SOURCE = "mdl"  # the `source` of every diagnostic the server publishes


def here(snapshot: Snapshot, file: str | None) -> bool:
    return file is None or file == snapshot.path


def to_lsp(snapshot: Snapshot, diagnostic: Diagnostic) -> types.Diagnostic:
    """One front-end diagnostic as an LSP diagnostic of `snapshot`'s document."""
    message = diagnostic.message + (f"\nhelp: {diagnostic.help}" if diagnostic.help else "")
    related = [types.DiagnosticRelatedInformation(
        types.Location(snapshot.uri, snapshot.to_range(label.span)), label.message)
        for label in diagnostic.labels if here(snapshot, label.span.file)]
    return types.Diagnostic(
        range=snapshot.to_range(diagnostic.span) if here(snapshot, diagnostic.span.file)
        else types.Range(types.Position(0, 0), types.Position(0, 0)),
        message=message, code=diagnostic.code, source=SOURCE,
        severity=types.DiagnosticSeverity.Error if diagnostic.severity is Severity.ERROR
        else types.DiagnosticSeverity.Warning,
        related_information=related or None)
