"""Hover: the type, shape, parameters and FLOPs of the value or call under the cursor; the signature and
doc of primitives and blocks.

Every figure here is read from the front end's IR (`Analysis.graphs`, the graphs `mdlc compile` prints)
and `mdl.compiler.cost`; nothing is recomputed (DESIGN.md rule 1). The IR does not record which node
each source expression became, so this module matches them by span: a primitive call is the node whose
span is the call's, a block call is the `BlockCall` at that span, and a binding is the last node its
expression produced in each place the statement was elaborated (a `repeat` or a block inlined several
times gives several places).

The position lookups (`find_at`), the IR matching (`call_figures`, `binding_figures`) and the signature
text (`signature_of`) live in mdl.lsp.document, shared with inlay hints, completion and signature help.
"""

from __future__ import annotations

import re

from lsprotocol import types

from mdl.compiler import cost
from mdl.compiler.args import Arg
from mdl.compiler.envs import ENV_KINDS
from mdl.compiler.experiment import PPO_ARGS
from mdl.compiler.primitives import PRIMITIVES, Primitive
from mdl.compiler.search import LIMIT_KEYS
from mdl.dsl import ast
from mdl.dsl.format import format_expr
from mdl.lsp.document import (
    Figures,
    Hit,
    binding_before,
    binding_figures,
    block_doc,
    call_figures,
    definition_signature,
    find_at,
    graphs_for,
    param_text,
    shapes_text,
    signature_of,
)


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
        limits = any(isinstance(e, ast.Section) and e.kind == "limits" and hit.node in e.entries for e in hit.item.entries)
        if limits and hit.node.key in LIMIT_KEYS:
            kind, meaning = LIMIT_KEYS[hit.node.key]
            return (f"**{hit.node.key}** (limit): {meaning}" + (" (`MB` or `GB`)" if kind == "bytes" else "")
                    + "; a sweep point over it is never built or trained", hit.node.key_span)
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
    "sweep": "model or algo keys over lists (a grid) or ranges (`uniform`, `log_uniform`, `int_uniform`, "
             "for a sampled search); one run per point and seed",
    "search": "`grid` (default), `random(trials=N, seed=S)` or `optuna(trials=N, seed=S)`",
    "limits": "upper bounds on each point's static cost: `params`, `flops` (per sample), `memory` (MB/GB), "
              "`compute`; a point over one is never built or trained",
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
