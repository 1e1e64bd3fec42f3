"""Inlay hints: the parameter count at each model header and block call, and the output shape after each
binding (`x = ...`, `output y = ...`), at the model's default arguments with `B` symbolic; after an
experiment's `sweep { }` its points and after `limits { }` how many it prunes.

The figures are the IR's, matched to the source by `mdl.lsp.hover` (`call_figures`, `binding_figures`):
a model's total is `Graph.params`, a block call's is `cost.block_costs` — the numbers `mdlc compile`
prints. Only hints inside the requested range are returned; a document whose models did not elaborate
(syntax or type errors) gets the hints that still have figures, never an error.
"""

from __future__ import annotations

from lsprotocol import types

from mdl.compiler.search import describe
from mdl.dsl import ast
from mdl.dsl.walk import iter_exprs, iter_stmts, stmt_exprs
from mdl.lsp.document import binding_figures, call_figures, graphs_for, shapes_text

Hint = tuple[int, str, types.InlayHintKind, str]  # offset, label, kind, tooltip


def _params_label(values: list[int], repeated: bool) -> str | None:
    if not values:
        return None
    distinct = sorted(set(values))
    if len(distinct) == 1:
        label = f"{distinct[0]:,} params"
        if repeated and len(values) > 1:
            label += f" ×{len(values)}"
        return label
    return f"{distinct[0]:,}–{distinct[-1]:,} params"


def _header_offset(text: str, item: ast.Model) -> int:
    """Just before the `{` that opens the model's body (after its parameter list)."""
    brace = text.find("{", item.name_span.end, item.span.end)
    if brace < 0:
        return item.name_span.end
    while brace > item.name_span.end and text[brace - 1] in " \t":
        brace -= 1
    return brace


def collect_hints(snap) -> list[Hint]:
    """Every hint of the document, in source order."""
    scope = snap.analysis.scope
    if scope is None:
        return []
    hints: list[Hint] = []
    for item in scope.module.items:
        if isinstance(item, ast.Experiment):
            hints += _search_hints(snap, item)
        if not isinstance(item, ast.Block | ast.Model):
            continue
        in_model = isinstance(item, ast.Model)
        if in_model:
            graphs = graphs_for(snap, item)
            if graphs:
                g = graphs[0]
                hints.append((_header_offset(snap.text, item), f"{g.params:,} params", types.InlayHintKind.Parameter,
                              f"total parameters of {item.name} at its defaults"))
        for stmt in iter_stmts(item.body):
            for expr in stmt_exprs(stmt):
                for e in iter_exprs(expr):
                    if not isinstance(e, ast.Call):
                        continue
                    found = scope.lookup(e.func)
                    if found is None or not isinstance(found[0], ast.Block):
                        continue
                    figs = call_figures(snap, e, item)
                    label = _params_label([f.params for f in figs], in_model)
                    if label:
                        hints.append((e.span.end, label, types.InlayHintKind.Parameter,
                                      f"parameters of this `{e.func}` call"))
            if isinstance(stmt, ast.Assign | ast.Output):
                shape = shapes_text(binding_figures(snap, stmt, item))
                if shape:
                    hints.append((stmt.name_span.end, f": {shape}", types.InlayHintKind.Type,
                                  "output shape at the model's default arguments"))
    hints.sort(key=lambda h: h[0])
    return hints


def _search_hints(snap, item: ast.Experiment) -> list[Hint]:
    """After `sweep { ... }`: how many points (or trials) it makes and how many the limits prune; after
    `limits { ... }`: how many points it prunes (grids and finite random searches)."""
    spec = (snap.analysis.experiments or {}).get(item.name)
    sections = {e.kind: e for e in item.entries if isinstance(e, ast.Section)}
    if spec is None or "sweep" not in sections:
        return []
    sweep, limits = describe(spec)
    hints = [(sections["sweep"].span.end, sweep, types.InlayHintKind.Parameter, "the points this experiment trains")]
    if limits is not None and "limits" in sections:
        hints.append((sections["limits"].span.end, limits, types.InlayHintKind.Parameter,
                      "sweep points over a limit are never built or trained (`mdlc train --plan` lists them)"))
    return hints


def inlay_hints(snap, start: int, end: int) -> list[types.InlayHint]:
    out = []
    for offset, label, kind, tooltip in collect_hints(snap):
        if start <= offset <= end:
            right = kind == types.InlayHintKind.Parameter
            out.append(types.InlayHint(position=snap.to_range(ast.Span(None, 1, 1, 1, 1, offset, offset)).start,
                                       label=label, kind=kind, tooltip=tooltip,
                                       padding_left=right, padding_right=False))
    return out


def register(server) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions(resolve_provider=False))
    def inlay_hint(ls, params: types.InlayHintParams) -> list[types.InlayHint]:
        try:
            snap = ls.snapshot(params.text_document.uri)
            return inlay_hints(snap, snap.to_offset(params.range.start), snap.to_offset(params.range.end))
        except Exception:  # hints are a convenience: never an error in the editor
            return []
