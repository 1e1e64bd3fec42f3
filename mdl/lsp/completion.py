"""Completion and signature help.

Both read the text before the cursor with a small scanner (`context_at`) rather than the syntax tree,
because the line being typed is usually not valid yet: it tracks open `(`/`[`/`{` (which call, which
argument, which body), the tokens of the current statement and the word being typed. What is offered
comes from the tables the compiler checks against — `PRIMITIVES`, `PPO_ARGS`, `ENV_KINDS`, `KEYS`,
`EXPORT_FORMATS`, `DEVICES`, `stdlib_modules()` — and the document's scope (blocks, consts, models).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lsprotocol import types

from mdl.compiler.envs import ENV_KINDS
from mdl.compiler.experiment import DEVICES, EXPORT_FORMATS, KEYS, PPO_ARGS
from mdl.compiler.primitives import PRIMITIVES
from mdl.compiler.resolve import stdlib_modules
from mdl.dsl import ast
from mdl.dsl.walk import iter_stmts
from mdl.lsp.document import item_at, primitive_signature, signature_of

_TOKEN = re.compile(r'#[^\n]*|"(?:[^"\\\n]|\\.)*"?|->|[A-Za-z_][A-Za-z0-9_.]*|\d[\w.]*|\n|[^\s]')
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*$")
_CONTINUES = {"->", "=", ",", "+", "-", "*", "/", "{", "("}
TOP_KEYWORDS = ("import", "const", "block", "model", "experiment")
BODY_KEYWORDS = ("input", "output", "repeat", "return")


@dataclass
class Open:
    """One unclosed bracket: `(` of a call (`func`, argument index, keywords so far), `[` or `{` (`owner`:
    experiment, model, block, repeat or sweep)."""

    char: str
    func: str | None = None
    piped: bool = False
    index: int = 0
    keyword: str | None = None  # the `name=` of the argument being written
    used: set[str] = field(default_factory=set)
    owner: str | None = None
    segment: list[str] = field(default_factory=list)  # tokens of the current argument
    key: str | None = None  # for `[`: the experiment key it is the value of


@dataclass
class Context:
    prefix: str  # the word being typed (may contain dots)
    stack: list[Open]
    statement: list[str]  # tokens of the current statement at the innermost `{` (or the top level)

    @property
    def call(self) -> Open | None:
        return self.stack[-1] if self.stack and self.stack[-1].char == "(" else None

    @property
    def body(self) -> str | None:
        """The owner of the innermost `{`: "experiment", "sweep", "model", "block", "repeat" or None."""
        return next((o.owner for o in reversed(self.stack) if o.char == "{"), None)


def context_at(text: str, offset: int) -> Context:
    before = text[:offset]
    line_start = before.rfind("\n") + 1
    m = _WORD.search(before[line_start:])
    prefix = m.group(0) if m else ""
    stack: list[Open] = []
    statement: list[str] = []
    for tok in _TOKEN.findall(before[: offset - len(prefix)]):
        if tok.startswith("#"):
            continue
        top = stack[-1] if stack else None
        if tok == "\n":
            if (top is None or top.char == "{") and statement and statement[-1] not in _CONTINUES:
                statement = []
            continue
        if tok == ";" and (top is None or top.char == "{"):
            statement = []
            continue
        if tok == "(":
            func = statement[-1] if statement and _WORD.match(statement[-1]) else None
            if top is not None and top.char == "(" and top.segment and _WORD.match(top.segment[-1]):
                func = top.segment[-1]
                piped = len(top.segment) > 1 and top.segment[-2] == "->"
            else:
                piped = len(statement) > 1 and statement[-2] == "->"
            stack.append(Open("(", func=func, piped=piped))
        elif tok == "[":
            key = statement[0] if len(statement) > 1 and statement[1] == "=" else None
            stack.append(Open("[", key=key))
        elif tok == "{":
            owner = next((t for t in statement if t in ("experiment", "sweep", "model", "block", "repeat")), None)
            stack.append(Open("{", owner=owner))
            statement = []
            continue
        elif tok in (")", "]", "}"):
            if stack:
                stack.pop()
            if tok == "}":
                statement = []
                continue
        elif top is not None and top.char == "(":
            if tok == ",":
                top.index += 1
                top.keyword = None
                top.segment = []
                continue
            if tok == "=" and len(top.segment) == 1 and _WORD.match(top.segment[0]):
                top.keyword = top.segment[0]
                top.used.add(top.keyword)
            top.segment.append(tok)
            continue
        elif top is not None and top.char == "[":
            continue
        statement.append(tok)
    return Context(prefix, stack, statement)


# -------------------------------------------------------------------------------------------- completion


def _item(label: str, kind: types.CompletionItemKind, detail: str | None = None, doc: str | None = None,
          insert: str | None = None, sort: str = "5") -> types.CompletionItem:
    return types.CompletionItem(
        label=label, kind=kind, detail=detail,
        documentation=types.MarkupContent(types.MarkupKind.Markdown, doc) if doc else None,
        insert_text=insert, sort_text=f"{sort}{label}")


def _callables(snap, ctx_item) -> list[types.CompletionItem]:
    """Primitives and blocks (what may follow `->` or start an expression)."""
    items = []
    for name, p in PRIMITIVES.items():
        items.append(_item(name, types.CompletionItemKind.Function, p.signature(), p.doc, sort="2"))
    scope = snap.analysis.scope
    if scope is not None:
        for name in scope.visible_names():
            found = scope.lookup(name)
            if found is not None and isinstance(found[0], ast.Block):
                sig = signature_of(snap, name)
                items.append(_item(name, types.CompletionItemKind.Class, sig.label if sig else None,
                                   sig.doc if sig else None, sort="1"))
    return items


def _values(snap, ctx_item, offset: int) -> list[types.CompletionItem]:
    """Consts, and the bindings and parameters of the enclosing block or model."""
    items = []
    scope = snap.analysis.scope
    if scope is not None:
        for name in scope.visible_names():
            found = scope.lookup(name)
            if found is not None and isinstance(found[0], ast.Const):
                items.append(_item(name, types.CompletionItemKind.Constant, "const", sort="3"))
    if isinstance(ctx_item, ast.Block | ast.Model):
        seen = set()
        for p in ctx_item.params:
            seen.add(p.name)
            items.append(_item(p.name, types.CompletionItemKind.Variable, "parameter", sort="0"))
        for stmt in iter_stmts(ctx_item.body):
            if isinstance(stmt, ast.Assign | ast.Input) and stmt.span.end <= offset and stmt.name not in seen:
                seen.add(stmt.name)
                items.append(_item(stmt.name, types.CompletionItemKind.Variable, "value", sort="0"))
    return items


def _keyword_args(snap, call: Open, in_experiment: bool) -> list[types.CompletionItem]:
    sig = signature_of(snap, call.func or "", in_experiment)
    if sig is None:
        return []
    items = []
    if sig.args:
        for a in sig.args:
            if a.name in call.used:
                continue
            detail = a.signature() + (f" in {a.range_text()}" if a.range_text() else "")
            items.append(_item(f"{a.name}=", types.CompletionItemKind.Property, detail, a.doc or None,
                               insert=f"{a.name}=", sort="0"))
    else:  # a block or model: its compile-time parameters
        found = snap.analysis.scope.lookup(call.func) if snap.analysis.scope is not None else None
        if found is not None and isinstance(found[0], ast.Block | ast.Model):
            from mdl.compiler.elaborate import is_tensor_param
            from mdl.lsp.document import param_text

            for p in found[0].params:
                if p.name in call.used or (isinstance(found[0], ast.Block) and is_tensor_param(p)):
                    continue
                items.append(_item(f"{p.name}=", types.CompletionItemKind.Property, param_text(p),
                                   insert=f"{p.name}=", sort="0"))
    return items


def _choice_values(snap, call: Open, in_experiment: bool) -> list[types.CompletionItem]:
    sig = signature_of(snap, call.func or "", in_experiment)
    arg = next((a for a in sig.args if a.name == call.keyword), None) if sig else None
    if arg is None:
        return []
    if arg.choices:
        return [_item(f'"{c}"', types.CompletionItemKind.EnumMember, arg.name, sort="0") for c in arg.choices]
    if arg.type == "bool":
        return [_item(v, types.CompletionItemKind.Keyword, arg.name, sort="0") for v in ("true", "false")]
    if arg.optional:
        return [_item("none", types.CompletionItemKind.Keyword, arg.name, sort="0")]
    return []


def _experiment_values(snap, key: str) -> list[types.CompletionItem]:
    K = types.CompletionItemKind
    if key == "env":
        return [_item(k.name, K.Function, k.example, insert=k.example) for k in ENV_KINDS.values()]
    if key == "algo":
        return [_item("ppo", K.Function, "ppo(...)", ", ".join(a.signature() for a in PPO_ARGS), insert="ppo()")]
    if key == "device":
        return [_item(d, K.EnumMember, "device") for d in DEVICES]
    if key == "export":
        return [_item(f, K.EnumMember, "export format") for f in EXPORT_FORMATS]
    if key == "checkpoint":
        return [_item("every", K.Function, "every(N steps, keep=K)", insert="every(100k steps, keep=3)")]
    if key == "model":
        scope = snap.analysis.scope
        names = [n for n in (scope.visible_names() if scope is not None else [])
                 if isinstance((scope.lookup(n) or (None,))[0], ast.Model)]
        return [_item(n, K.Class, "model") for n in names]
    return []


@dataclass(frozen=True)
class _Repaired:
    """A stand-in snapshot for a text the parser could not recover definitions from (an unclosed body
    at the end of the file): the text up to the cursor's line, its open bodies closed."""

    text: str
    path: str | None
    analysis: object


def _usable(snap, offset: int, ctx: Context):
    scope = snap.analysis.scope
    if scope is None or scope.syntax_ok or item_at(snap, offset) is not None:
        return snap
    from mdl.compiler.check import analyze

    line_start = snap.text.rfind("\n", 0, offset) + 1
    closing = "\n}" * sum(1 for o in ctx.stack if o.char == "{")
    text = snap.text[:line_start] + closing + "\n"
    return _Repaired(text, snap.path, analyze(text, snap.path))


def complete(snap, offset: int) -> list[types.CompletionItem]:
    ctx = context_at(snap.text, offset)
    snap = _usable(snap, offset, ctx)
    K = types.CompletionItemKind
    item = item_at(snap, offset)
    body = ctx.body
    in_experiment = body in ("experiment", "sweep")
    if ctx.statement[:1] == ["import"] and len(ctx.statement) == 1:
        return [_item(f"stdlib.{m}", K.Module, "stdlib module") for m in stdlib_modules()]
    top = ctx.stack[-1] if ctx.stack else None
    if top is not None and top.char == "[" and in_experiment and top.key:
        return _experiment_values(snap, top.key)
    call = ctx.call
    if call is not None:
        if call.keyword is not None:
            if len(call.segment) == 2:  # right after `name=`
                return _choice_values(snap, call, in_experiment) + _values(snap, item, offset)
            return _values(snap, item, offset)
        if in_experiment:
            return _keyword_args(snap, call, True)
        return _keyword_args(snap, call, False) + _values(snap, item, offset) + _callables(snap, item)
    if body == "experiment":
        if not ctx.statement:
            return [_item(k, K.Property, "experiment key", insert=k if k in ("sweep", "limits") else f"{k} = ") for k in KEYS]
        if len(ctx.statement) == 2 and ctx.statement[1] == "=":
            return _experiment_values(snap, ctx.statement[0])
        return []
    if body == "sweep":
        if not ctx.statement:
            return [_item(a.name, K.Property, a.signature(), a.doc) for a in PPO_ARGS]
        return []
    if body is None:
        return [_item(k, K.Keyword) for k in TOP_KEYWORDS] if not ctx.statement else []
    if ctx.statement and ctx.statement[-1] == "->":
        return _callables(snap, item)
    keywords = [_item(k, K.Keyword, sort="6") for k in BODY_KEYWORDS] if not ctx.statement else []
    return keywords + _values(snap, item, offset) + _callables(snap, item)


# ------------------------------------------------------------------------------------------ signature help


def signature_help(snap, offset: int) -> types.SignatureHelp | None:
    ctx = context_at(snap.text, offset)
    call = ctx.call
    if call is None or not call.func:
        return None
    snap = _usable(snap, offset, ctx)
    sig = signature_of(snap, call.func, ctx.body in ("experiment", "sweep"))
    if sig is None:
        return None
    typed = [n for n in sig.names if ctx.prefix and n.startswith(ctx.prefix)] if not call.segment else []
    if call.keyword is not None and call.keyword in sig.names:
        active = sig.names.index(call.keyword)
    elif len(typed) == 1 and typed[0] not in ("x", "a", "b"):  # `hid|`: the parameter being named
        active = sig.names.index(typed[0])
    else:
        active = call.index + (1 if call.piped else 0)
        if sig.tensors < 0:  # concat(a, b, ...)
            active = min(active, 2)
    info = types.SignatureInformation(
        label=sig.label,
        documentation=types.MarkupContent(types.MarkupKind.Markdown, sig.doc) if sig.doc else None,
        parameters=[types.ParameterInformation(label=p) for p in sig.params],
        active_parameter=active if active < len(sig.params) else None)
    return types.SignatureHelp(signatures=[info], active_signature=0,
                               active_parameter=active if active < len(sig.params) else None)


def register(server) -> None:
    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=[">", "(", ",", " ", ".", "="]))
    def completion(ls, params: types.CompletionParams) -> types.CompletionList:
        try:
            snap = ls.snapshot(params.text_document.uri)
            items = complete(snap, snap.to_offset(params.position))
        except Exception:  # completion is a convenience: an empty list, never an error
            items = []
        return types.CompletionList(is_incomplete=False, items=items)

    @server.feature(types.TEXT_DOCUMENT_SIGNATURE_HELP,
                    types.SignatureHelpOptions(trigger_characters=["(", ","], retrigger_characters=["="]))
    def signature(ls, params: types.SignatureHelpParams) -> types.SignatureHelp | None:
        try:
            snap = ls.snapshot(params.text_document.uri)
            return signature_help(snap, snap.to_offset(params.position))
        except Exception:
            return None


__all__ = ["Context", "complete", "context_at", "primitive_signature", "register", "signature_help"]
