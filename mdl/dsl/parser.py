"""Parse `.mdl` text into the syntax tree of `mdl.dsl.ast`, with diagnostics instead of exceptions.

Three steps, each in a module of its own; this one holds the flow and the public face (`parse`,
`tokenize`, and `Token`, `KEYWORDS`, `parse_number` from the modules below):

1. `mdl.dsl.scanner` turns the text into the grammar's tokens and applies the newline rule of
   LANGUAGE.md (a newline or `;` that ends a statement becomes one `_SEP` token). It never fails: a
   stray character becomes a token that is reported here.
2. The LALR parser of `mdl.dsl.tree` is fed token by token; its callbacks build the `mdl.dsl.ast` nodes
   while it parses (Lark's tree-less mode), so nothing is parsed twice.
3. After each separator (and each `{`) the loop below keeps a copy of the parser's state. On an error
   it reports it (`mdl.dsl.recovery` words the diagnostic), goes back to that copy and skips to the
   next separator at the same depth, so one broken statement costs one diagnostic and the rest of the
   file is still read.
"""

from __future__ import annotations

import functools

from lark.exceptions import UnexpectedInput

from mdl.dsl import ast
from mdl.dsl.ast import Span
from mdl.dsl.diagnostics import Diagnostic
from mdl.dsl.recovery import (
    CLOSERS,
    ITEM_KEYWORDS,
    OPENERS,
    Open,
    close_bodies,
    end_of_file,
    eof_error,
    lexical_error,
    line_start,
    owner_of,
    recovered_items,
    skip_statement,
    syntax_error,
)
from mdl.dsl.scanner import KEYWORDS, Scanner, Token
from mdl.dsl.tree import Context, context, lalr, parse_number

# What other modules import from here (the scanner's and the builder's names stay importable from here).
__all__ = ["KEYWORDS", "Token", "parse", "parse_number", "tokenize"]


@functools.cache
def _scanner() -> Scanner:
    return Scanner(lalr().terminals)


def tokenize(text: str, comments: list[ast.Comment], path: str | None, pos: int = 0, line: int = 1) -> list[Token]:
    """Scan `text` from offset `pos` (on line `line`) into the parser's tokens: `Scanner.tokenize` over the
    grammar's terminals (comments are appended to `comments`)."""
    return _scanner().tokenize(text, comments, path, pos, line)


def parse(text: str, path: str | None = None) -> tuple[ast.Module, list[Diagnostic]]:
    """Parse `text` (from file `path`, used in spans) into a Module and its syntax diagnostics.

    Never raises for any input: syntax errors become diagnostics and the broken statements are left
    out of the tree.
    """
    diagnostics: list[Diagnostic] = []
    comments: list[ast.Comment] = []
    token = context.set(Context(path, diagnostics))
    try:
        tokens = tokenize(text, comments, path)
        module = _parse_tokens(tokens, text, path, diagnostics)
    finally:
        context.reset(token)
    end = end_of_file(text, path)
    whole = Span(path, 1, 1, end.line, end.column, 0, len(text))
    return ast.Module(module.items, tuple(comments), whole), diagnostics


def _parse_tokens(tokens: list[Token], text: str, path: str | None, diagnostics: list[Diagnostic]) -> ast.Module:
    parser = lalr().parse_interactive()
    checkpoint = parser.copy(deepcopy_values=False)
    checkpoint_index = 0
    checkpoint_opens: list[Open] = []
    opens: list[Open] = []
    i = 0
    n = len(tokens)
    last_error = -1
    while i < n:
        tok = tokens[i]
        failure: Diagnostic | None = None
        if tok.type in ("BAD", "BADSTRING"):
            failure = lexical_error(tok)
        else:
            try:
                parser.feed_token(tok)
            except UnexpectedInput:
                failure = syntax_error(parser, tok, opens, text, path)
        if failure is None:
            if tok.value in OPENERS and tok.type != "STRING":
                opens.append(Open(tok, owner_of(tokens, i) if tok.value == "{" else None))
            elif tok.value in CLOSERS and tok.type != "STRING" and opens:
                opens.pop()
            i += 1
            if tok.type == "_SEP" or tok.value == "{":
                checkpoint = parser.copy(deepcopy_values=False)
                checkpoint_index = i
                checkpoint_opens = list(opens)
            continue
        diagnostics.append(failure)
        if failure.code == "E0002" and tok.value in ITEM_KEYWORDS and tok.type != "STRING":
            # A body's `}` is missing before the next declaration: close it here and read on from there.
            close_bodies(parser, opens, tokens, i)
            checkpoint, checkpoint_index, checkpoint_opens = parser.copy(deepcopy_values=False), i, list(opens)
            if last_error != i:
                last_error = i
                continue
        # Recover: back to the last statement boundary, then skip to the next one at the same depth.
        parser = checkpoint.copy(deepcopy_values=False)
        unclosed = opens[len(checkpoint_opens):]
        opens = list(checkpoint_opens)
        if unclosed and unclosed[-1].token.value != "{" and (
                tok.line > unclosed[-1].token.line or tok.type == "BADSTRING"):
            # A `(` or `[` left open swallowed the newlines after it: scan the rest of the file again with
            # none open, and resume where the failing line starts (after an unterminated string, which
            # runs to the end of its line, where the next line starts).
            if tok.type == "BADSTRING":
                pos, line = tok.end_pos + 1, tok.line + 1
            else:
                i = line_start(tokens, i, checkpoint_index)
                pos, line = tokens[i].start_pos, tokens[i].line
            tokens[i:] = tokenize(text, [], path, pos, line)
            n = len(tokens)
            checkpoint, checkpoint_index, checkpoint_opens = parser.copy(deepcopy_values=False), i, list(opens)
            continue
        in_body = bool(checkpoint_opens) and checkpoint_opens[-1].token.value == "{"
        resume = skip_statement(tokens, checkpoint_index, i, in_body)
        if resume < n and tokens[resume].type == "_SEP":
            resume += 1  # the checkpoint already stands after a separator (or a `{`)
        # Always make progress: never resume at or before the token that just failed twice.
        i = resume if resume > i or (resume == i and last_error != i) else i + 1
        last_error = i if resume == i else -1
    try:
        return parser.feed_eof(tokens[-1] if tokens else None)
    except UnexpectedInput:
        diagnostics.append(eof_error(opens, text, path, parser))
        return ast.Module(recovered_items(parser))
