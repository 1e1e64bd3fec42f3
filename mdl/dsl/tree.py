"""The tree builder: the LALR parser of `grammar.lark`, whose callbacks build `mdl.dsl.ast` nodes.

The tree is built while parsing (Lark's tree-less mode: `transformer=` at construction), so nothing is
parsed twice and no Lark tree is ever made. Each callback gets the children of its rule, every token
kept (`keep_all_tokens`), and reads exact spans off them. The few errors only the builder can see (an
argument given twice, a positional argument after a keyword one, a number too large) go to the
diagnostics of the parse in progress, which `context` holds while Lark runs the callbacks.
"""

from __future__ import annotations

import contextvars
import functools
import math
from dataclasses import dataclass
from importlib import resources

from lark import Lark, Transformer

from mdl.dsl import ast
from mdl.dsl.ast import Span
from mdl.dsl.diagnostics import Diagnostic, error
from mdl.dsl.scanner import Token

_MAX_INT_DIGITS = 4000


@dataclass(frozen=True, slots=True)
class _Seq:
    """A bracketed or comma-separated run of nodes, with the span it covers (internal to the builder)."""

    items: tuple
    span: Span


class Context:
    """Per-parse state read by the tree-building callbacks (they run inside Lark)."""

    def __init__(self, path: str | None, diagnostics: list[Diagnostic]):
        self.path = path
        self.diagnostics = diagnostics


context: contextvars.ContextVar[Context] = contextvars.ContextVar("mdl_parse_context")


def tok_span(tok: Token) -> Span:
    return Span(context.get().path, tok.line, tok.column, tok.end_line, tok.end_column, tok.start_pos, tok.end_pos)


def _covering(children: list) -> Span:
    """The span from the first to the last non-missing child (token or node)."""
    first = children[0]
    if first is None:
        first = next(c for c in children if c is not None)
    last = children[-1]
    if last is None:
        last = next(c for c in reversed(children) if c is not None)
    if isinstance(first, Token):
        file, line, col, start = context.get().path, first.line, first.column, first.start_pos
    else:
        file, line, col, start = first.span.file, first.span.line, first.span.column, first.span.start
    if isinstance(last, Token):
        return Span(file, line, col, last.end_line, last.end_column, start, last.end_pos)
    e = last.span
    return Span(file, line, col, e.end_line, e.end_column, start, e.end)


def _nodes(children: list) -> list:
    return [c for c in children if c is not None and not isinstance(c, Token)]


def _tokens(children: list, type_: str) -> list[Token]:
    return [c for c in children if isinstance(c, Token) and c.type == type_]


def parse_number(text: str) -> int | float | None:
    """The value of a NUMBER token (`1_000`, `3e-4`, `100k`), or None if it is too large to represent."""
    exponent = {"k": 3, "M": 6, "G": 9}.get(text[-1], 0)
    scale = 10**exponent
    body = text.replace("_", "")
    if exponent:
        body = body[:-1]
    if "." in body or "e" in body or "E" in body:
        # Scale by shifting the decimal exponent, not by multiplying: 4.1M is exactly 4_100_000.
        mantissa, _, power = body.lower().partition("e")
        # An exponent of many digits is far outside a float's range: `float` gives 0.0 or inf by itself
        # (and `int` would refuse a string of over 4300 digits).
        value = float(body if len(power) > 8 else f"{mantissa}e{int(power or 0) + exponent}")
        if not math.isfinite(value):
            return None
        return int(value) if exponent and value.is_integer() else value
    if len(body) > _MAX_INT_DIGITS:
        return None
    return int(body) * scale


class _ToAst(Transformer):
    """Builds `mdl.dsl.ast` nodes from the children of each rule (all tokens kept, for exact spans)."""

    # ------------------------------------------------------------------------------------- items
    def start(self, ch):
        return ast.Module(tuple(_nodes(ch)))

    def dotted(self, ch):
        names = _tokens(ch, "NAME")
        return ast.Name(".".join(t.value for t in names), _covering(ch))

    def key(self, ch):
        return ast.Name("".join(t.value for t in ch), _covering(ch))

    def import_stdlib(self, ch):
        module = _nodes(ch)[0]
        alias = _tokens(ch, "NAME")
        return ast.Import(module.id, None, alias[0].value if alias else None, _covering(ch))

    def import_file(self, ch):
        path = _tokens(ch, "STRING")[0]
        alias = _tokens(ch, "NAME")[0]
        return ast.Import(None, _unquote(path.value), alias.value, _covering(ch))

    def const(self, ch):
        name = _tokens(ch, "NAME")[0]
        return ast.Const(name.value, _nodes(ch)[0], _covering(ch), tok_span(name))

    def block(self, ch):
        name = _tokens(ch, "NAME")[0]
        seqs = _nodes(ch)
        params = seqs[0].items if len(seqs) == 2 else ()
        return ast.Block(name.value, params, seqs[-1].items, _covering(ch), tok_span(name))

    def model(self, ch):
        name = _tokens(ch, "NAME")[0]
        seqs = _nodes(ch)
        params = seqs[0].items if len(seqs) == 2 else ()
        return ast.Model(name.value, params, seqs[-1].items, len(seqs) == 2, _covering(ch), tok_span(name))

    def model_params(self, ch):
        inner = _nodes(ch)
        return _Seq(inner[0].items if inner else (), _covering(ch))

    def params(self, ch):
        return _Seq(tuple(_nodes(ch)), _covering(ch))

    def param(self, ch):
        name = ch[0]
        type_ann = next((c for c in ch if isinstance(c, ast.TypeAnn)), None)
        rest = [c for c in _nodes(ch) if not isinstance(c, ast.TypeAnn)]
        return ast.Param(name.value, type_ann, rest[0] if rest else None, _covering(ch))

    def type_ann(self, ch):
        dims = _nodes(ch)
        return ast.TypeAnn(ch[0].value, dims[0].items if dims else None, _covering(ch))

    def dims_ann(self, ch):
        inner = _nodes(ch)
        return _Seq(inner[0].items if inner else (), _covering(ch))

    # -------------------------------------------------------------------------------- statements
    def body(self, ch):
        return _Seq(tuple(_nodes(ch)), _covering(ch))

    def input(self, ch):
        name, dtype = _tokens(ch, "NAME")[:2]
        dims = _nodes(ch)
        return ast.Input(name.value, dtype.value, dims[0].items if dims else (), _covering(ch), tok_span(name))

    def output(self, ch):
        name = _tokens(ch, "NAME")[0]
        return ast.Output(name.value, _nodes(ch)[0], _covering(ch), tok_span(name))

    def assign(self, ch):
        return ast.Assign(ch[0].value, _nodes(ch)[0], _covering(ch), tok_span(ch[0]))

    def repeat(self, ch):
        count, body = _nodes(ch)
        var = _tokens(ch, "NAME")
        return ast.Repeat(count, var[0].value if var else None, body.items, _covering(ch))

    def return_(self, ch):
        return ast.Return(_nodes(ch)[0], _covering(ch))

    # ------------------------------------------------------------------------------- experiments
    def experiment(self, ch):
        name = _tokens(ch, "NAME")[0]
        return ast.Experiment(name.value, tuple(_nodes(ch)), _covering(ch), tok_span(name))

    def entry(self, ch):
        key, value = _nodes(ch)
        return ast.Entry(key.id, value, _covering(ch), key.span)

    def sweep(self, ch):
        return ast.Section(tuple(_nodes(ch)), _covering(ch), "sweep")

    def limits(self, ch):
        return ast.Section(tuple(_nodes(ch)), _covering(ch), "limits")

    # ------------------------------------------------------------------------------- expressions
    def pipe(self, ch):
        value, call = _nodes(ch)
        return ast.Pipe(value, call, _covering(ch))

    def pipe_call(self, ch):
        return self._make_call(ch)

    def call(self, ch):
        return self._make_call(ch)

    def _make_call(self, ch):
        nodes = _nodes(ch)
        func = nodes[0]
        args: list = []
        kwargs: list[ast.Keyword] = []
        if len(nodes) > 1:
            for a in nodes[1].items:
                if isinstance(a, ast.Keyword):
                    if any(k.name == a.name for k in kwargs):
                        context.get().diagnostics.append(error(
                            "E0105", a.name_span, f"argument `{a.name}` is given twice",
                            "remove one of them"))
                    kwargs.append(a)
                elif kwargs:
                    context.get().diagnostics.append(error(
                        "E0007", a.span, "a positional argument follows a keyword argument",
                        "put tensor arguments first, then `name=value` arguments"))
                else:
                    args.append(a)
        return ast.Call(func.id, tuple(args), tuple(kwargs), _covering(ch), func.span)

    def call_args(self, ch):
        inner = _nodes(ch)
        return _Seq(inner[0].items if inner else (), _covering(ch))

    def args(self, ch):
        return _Seq(tuple(_nodes(ch)), _covering(ch))

    def exprs(self, ch):
        return _Seq(tuple(_nodes(ch)), _covering(ch))

    def kwarg(self, ch):
        return ast.Keyword(ch[0].value, _nodes(ch)[0], _covering(ch), tok_span(ch[0]))

    def binop(self, ch):
        left, op, right = ch
        return ast.BinOp(op.value, left, right, _covering(ch))

    def neg(self, ch):
        return ast.Neg(_nodes(ch)[0], _covering(ch))

    def atom(self, ch):  # "(" expr ")"
        return _nodes(ch)[0]

    def number(self, ch):
        tok = ch[0]
        value = parse_number(tok.value)
        if value is None:
            context.get().diagnostics.append(error("E0005", tok_span(tok), "number is too large",
                                                "numbers must fit in a 64-bit float"))
            value = 0
        return ast.Number(value, tok.value, tok_span(tok))

    def quantity(self, ch):
        num = self.number(ch[:1])
        return ast.Quantity(num.value, ch[1].value, f"{ch[0].value} {ch[1].value}", _covering(ch))

    def string(self, ch):
        return ast.String(_unquote(ch[0].value), tok_span(ch[0]))

    def true(self, ch):
        return ast.Bool(True, _covering(ch))

    def false(self, ch):
        return ast.Bool(False, _covering(ch))

    def none(self, ch):
        return ast.NoneLit(_covering(ch))

    def list(self, ch):
        inner = _nodes(ch)
        return ast.List(inner[0].items if inner else (), _covering(ch))

    def name(self, ch):
        return ch[0]


# `return` is a Python keyword, so the method has a trailing underscore; Lark looks it up by rule name.
setattr(_ToAst, "return", _ToAst.return_)


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _unquote(text: str) -> str:
    out = []
    chars = iter(text[1:-1])
    for c in chars:
        if c == "\\":
            nxt = next(chars, "")
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
        else:
            out.append(c)
    return "".join(out)


@functools.cache
def lalr() -> Lark:
    """The LALR parser of `grammar.lark`, built once, whose callbacks are `_ToAst`'s (the parse builds the tree)."""
    grammar = resources.files("mdl.dsl").joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="basic", keep_all_tokens=True, maybe_placeholders=True,
                transformer=_ToAst(), cache=False)
