"""Error recovery: what the parser reports on a syntax error, and where it reads on from.

`mdl.dsl.parser` feeds the LALR parser token by token and keeps a copy of its state after each
separator (and each `{`). On an error it asks this module for the diagnostic (`lexical_error` for a
token the scanner could not make sense of, `syntax_error`, `eof_error`), then goes back to that copy and
resumes where `skip_statement` says: the next separator at the broken statement's own depth, or the `}`
that closes its body. So one broken statement costs one diagnostic and the rest of the file is still
read. A body whose `}` is missing before the next declaration is closed there (`close_bodies`).

The messages name what the parser could really take next (`_accepts`: the LALR table alone merges
lookaheads) in the words of the language, and say which bracket is left open and where it was opened
(`Open`, `owner_of`). Each code is explained in `docs/errors.md`.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

from lark.exceptions import UnexpectedInput

from mdl.dsl import ast
from mdl.dsl.ast import Span
from mdl.dsl.diagnostics import Diagnostic, Label, error
from mdl.dsl.scanner import KEYWORDS, Token
from mdl.dsl.tree import lalr, tok_span

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {")": "(", "]": "[", "}": "{"}
# The keywords that name what a `{` belongs to, for "expected `}` to close model `M`".
_OWNERS = frozenset({"model", "block", "experiment", "repeat", "sweep", "limits"})
# Keywords that start a top-level item: met inside a body, they mean its `}` is missing.
ITEM_KEYWORDS = frozenset({"import", "const", "block", "model", "experiment"})


@dataclass
class Open:
    """An open bracket, for "expected `}` to close model `M` opened on line 1"."""

    token: Token
    owner: str | None


def owner_of(tokens: list[Token], i: int) -> str | None:
    """What the `{` at `tokens[i]` belongs to: `model \\`M\\``, `repeat`, ..."""
    for j in range(i - 1, max(-1, i - 64), -1):
        t = tokens[j]
        if t.type == "_SEP" or t.value == "}":
            return None
        if t.value in _OWNERS and t.type != "STRING":
            nxt = tokens[j + 1] if j + 1 < i else None
            if t.value in ("model", "block", "experiment") and nxt is not None and nxt.type == "NAME":
                return f"{t.value} `{nxt.value}`"
            return f"`{t.value}`"
    return None


def close_bodies(parser, opens: list[Open], tokens: list[Token], i: int) -> None:
    """Feed the `}` of every open body the parser can close, then a separator, as if written right after
    the last token before `tokens[i]`."""
    j = i - 1
    while j > 0 and tokens[j].type == "_SEP":
        j -= 1
    before = tokens[j]
    at = (before.end_pos, before.end_line, before.end_column)
    while opens and opens[-1].token.value == "{" and "RBRACE" in _accepts(parser):
        parser.feed_token(Token("RBRACE", "}", at[0], at[1], at[2], at[1], at[2], at[0]))
        opens.pop()
    if "_SEP" in _accepts(parser):
        parser.feed_token(Token("_SEP", "\n", at[0], at[1], at[2], at[1], at[2], at[0]))


def line_start(tokens: list[Token], i: int, floor: int) -> int:
    """The index of the first token on the line of `tokens[i]` (not before `floor`)."""
    line = tokens[i].line
    while i > floor and tokens[i - 1].line == line:
        i -= 1
    return i


def skip_statement(tokens: list[Token], start: int, error_at: int, in_body: bool) -> int:
    """The index to resume at after a broken statement that began at `start` and failed at `error_at`.

    That is the next `_SEP` at the statement's own depth at or after the error, or (`in_body`) a `}`
    that closes the enclosing body, which the checkpoint state can accept.
    """
    depth = 0
    i = start
    while i < len(tokens):
        t = tokens[i]
        if t.type not in ("STRING", "BAD", "BADSTRING"):
            if t.value in ("{", "(", "["):
                depth += 1
            elif t.value in ("}", ")", "]"):
                depth -= 1
                if depth < 0:
                    if in_body and t.value == "}" and (i > error_at or start < error_at):
                        return i
                    depth = 0
            elif t.type == "_SEP" and depth == 0 and i >= error_at:
                return i
        i += 1
    return i


def recovered_items(parser) -> tuple:
    """The complete items on the parser's stack when the file ends in the middle of one."""
    items = []
    for value in parser.parser_state.value_stack:
        if isinstance(value, ast.Import | ast.Const | ast.Block | ast.Model | ast.Experiment):
            items.append(value)
    return tuple(items)


def end_of_file(text: str, path: str | None) -> Span:
    lines = text.split("\n")
    line = len(lines)
    col = len(lines[-1]) + 1
    return Span(path, line, col, line, col, len(text), len(text))


def lexical_error(tok: Token) -> Diagnostic:
    span = tok_span(tok)
    if tok.type == "BADSTRING":
        return error("E0004", span, "unterminated string", 'close the string with `"` on the same line')
    ch = tok.value
    if ch in ("'", "`"):
        return error("E0003", span, f"unexpected character `{ch}`", 'strings use double quotes: "..."')
    shown = f"`{ch}`" if ch.isprintable() else f"U+{ord(ch):04X}"
    hint = None
    if ch in "=!<>&|%^":
        hint = "mdl has `+ - * /` and `->`; comparisons and other operators are not part of the language"
    elif ch in "{}":
        hint = None
    return error("E0003", span, f"unexpected character {shown}", hint)


def eof_error(opens: list[Open], text: str, path: str | None, parser=None) -> Diagnostic:
    end = end_of_file(text, path)
    if opens:
        top = opens[-1]
        closer = OPENERS[top.token.value]
        what = top.owner or f"`{top.token.value}`"
        where = tok_span(top.token)
        return error("E0002", end, f"expected `{closer}` to close {what} opened on line {where.line}",
                     f"add `{closer}` at the end", labels=(Label(where, "opened here"),))
    expected = _accepts(parser) - {"$END", "_SEP"} if parser is not None else set()
    if expected:
        return error("E0001", end, f"expected {_describe_expected(expected)}, found end of file",
                     "the last statement is not complete")
    return error("E0001", end, "unexpected end of file", "the last statement is not complete")


def _accepts(parser) -> set[str]:
    """The terminals that the parser can really take next.

    The LALR table alone over-approximates (merged lookaheads), so each candidate is tried on a copy of
    the parser state with the tree callbacks switched off. Lark's own `accepts()` does the same but
    loops forever on `$END` in a state where the file may end, so `$END` is fed as an end here.
    """
    conf = copy.copy(parser.parser_state.parse_conf)
    conf.callbacks = {}
    accepted = set()
    for t in parser.choices():
        if not t.isupper():
            continue  # a rule name (goto entry), not a terminal
        state = parser.parser_state.copy(deepcopy_values=False)
        state.parse_conf = conf
        try:
            state.feed_token(Token(t, ""), is_end=(t == "$END"))
        except UnexpectedInput:
            continue
        accepted.add(t)
    return accepted


def syntax_error(parser, tok: Token, opens: list[Open], text: str, path: str | None) -> Diagnostic:
    expected = _accepts(parser)
    found = _describe_token(tok)
    span = tok_span(tok)
    if tok.type == "_SEP" and tok.value == "\n":
        # Point at the end of the line rather than at the (invisible) newline.
        span = Span(path, tok.line, tok.column, tok.line, tok.column + 1, tok.start_pos, tok.start_pos + 1)
    top = opens[-1] if opens else None
    if top is not None:
        closer = OPENERS[top.token.value]
        closer_terms = {")": "RPAR", "]": "RSQB", "}": "RBRACE"}
        across_lines = top.token.value != "{" and tok.line > top.token.line
        next_item = top.token.value == "{" and tok.value in ITEM_KEYWORDS and tok.type != "STRING"
        if closer_terms[closer] in expected and (
                tok.value in CLOSERS or tok.type == "_SEP" or across_lines or next_item):
            what = top.owner or f"`{top.token.value}`"
            where = tok_span(top.token)
            return error("E0002", span,
                         f"expected `{closer}` to close {what} opened on line {where.line}, found {found}",
                         f"add `{closer}` before this", labels=(Label(where, "opened here"),))
    message = f"expected {_describe_expected(expected)}, found {found}" if expected else f"unexpected {found}"
    return error("E0001", span, message, _syntax_help(tok, expected))


def _syntax_help(tok: Token, expected: set[str]) -> str | None:
    if tok.type == "NAME" and tok.value in ("def", "fn", "func", "function", "class", "layer"):
        return "designs are made of `block`, `model`, `const`, `import` and `experiment` declarations"
    if tok.value == "=" and "RPAR" in expected:
        return "keyword arguments are written `name=value` with a plain name on the left"
    if tok.type in ("NAME", "NUMBER") and "_SEP" in expected:
        return "put each statement on its own line or separate statements with `;`"
    if tok.value in KEYWORDS and "NAME" in expected:
        return f"`{tok.value}` is a keyword and cannot be used as a name"
    if tok.value == "->" and "NAME" not in expected:
        return "a pipe needs a value on its left: `x -> f`"
    if expected in ({"EQUAL"}, {"COLON"}):
        # `output policy h`, `input board int[...]`: one token is all that is missing.
        return f"add {_display_names()[next(iter(expected))]} before this"
    return None


@functools.cache
def _display_names() -> dict[str, str]:
    """Terminal name -> how an error message names it."""
    names = {"NAME": "a name", "NUMBER": "a number", "STRING": "a string", "_SEP": "end of line",
             "$END": "end of file", "MODEL": "`model`"}
    for term in lalr().terminals:
        if term.name not in names and term.pattern.type == "str":
            names[term.name] = f"`{term.pattern.value}`"
    return names


_EXPRESSION_STARTS = frozenset({"NAME", "NUMBER", "STRING", "LSQB", "LPAR", "MINUS", "TRUE", "FALSE", "NONE"})
_OPERATORS = frozenset({"PLUS", "MINUS", "STAR", "SLASH"})
# Closers first: "expected `)`" is the most useful thing to read first.
_FIRST = ("RPAR", "RSQB", "RBRACE", "COMMA", "EQUAL")


def _describe_expected(expected: set[str]) -> str:
    names = _display_names()
    parts: list[str] = []
    if {"NUMBER", "STRING"} <= expected:
        parts.append("an expression")
        expected = expected - _EXPRESSION_STARTS
    operators = expected & _OPERATORS
    if len(operators) >= 2:
        expected = expected - _OPERATORS
    if "NAME" not in expected:
        expected = expected - {"LPAR", "DOT"}  # a call's `(` or a qualified name's `.`: noise here
    parts += [names.get(t, t) for t in _FIRST if t in expected]
    parts += sorted(names.get(t, t) for t in expected if t not in _FIRST)
    if len(operators) >= 2:
        parts.append("an operator")
    if len(parts) > 5:
        parts = [*parts[:4], "..."]
    if len(parts) <= 1:
        return parts[0] if parts else "nothing"
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_SEP":
        return "`;`" if tok.value == ";" else "end of line"
    if tok.type == "NAME":
        return f"name `{tok.value}`"
    if tok.type == "NUMBER":
        return f"number `{tok.value}`"
    if tok.type == "STRING":
        return "a string"
    return f"`{tok.value}`"
