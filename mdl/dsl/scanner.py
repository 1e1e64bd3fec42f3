"""The scanner: `.mdl` text to the tokens the LALR parser is fed, with the newline rule applied.

The token types are the grammar's own terminals (`grammar.lark`): a `Scanner` is built from the list
Lark derives from it (the parser builds the one it uses, `mdl.dsl.parser.tokenize`), so this module
needs neither the grammar file nor the parser. Catch-all terminals (`BAD`, `BADSTRING`) mean scanning
never fails: a stray character becomes a token that the parser reports.

The newline rule of LANGUAGE.md: newlines inside `( )`/`[ ]`, after a line that ends with an operator,
`,`, `=`, `{` or `->`, or before a line that starts with `->`, are dropped; the others, and every `;`,
become one `_SEP` token. Comments are collected on the side, for the formatter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mdl.dsl import ast
from mdl.dsl.ast import Span

# Tokens after which a newline does not end the statement.
_CONTINUES = frozenset({"+", "-", "*", "/", ",", "=", "{", "->", "(", "["})
KEYWORDS = frozenset(
    ["import", "as", "const", "block", "model", "experiment", "input", "output", "repeat", "return", "sweep", "limits", "true", "false", "none"]
)


class Token:
    """A token as the LALR engine and the tree callbacks read it.

    Lark's own `Token` is a `str` subclass whose constructor costs more than parsing the token; the
    engine only reads `.type`, so a plain slotted object with Lark's attribute names serves.
    """

    __slots__ = ("column", "end_column", "end_line", "end_pos", "line", "start_pos", "type", "value")

    def __init__(self, type: str, value: str, start_pos: int = 0, line: int = 1, column: int = 1,
                 end_line: int = 1, end_column: int = 1, end_pos: int = 0):
        self.type = type
        self.value = value
        self.start_pos = start_pos
        self.line = line
        self.column = column
        self.end_line = end_line
        self.end_column = end_column
        self.end_pos = end_pos

    def __repr__(self) -> str:
        return f"Token({self.type!r}, {self.value!r})"


class Scanner:
    """One compiled regex over a grammar's terminals, and its keyword table.

    Lark's generic lexer costs more than the parse itself on large files; this scanner produces the
    same tokens (types named as in the grammar) from a single `re` alternation. Order matters: the
    regex terminals by Lark's priority, then punctuation longest first, then the catch-all `BAD`.
    """

    def __init__(self, terminals: Iterable) -> None:
        regexes, strings, keywords = [], [], {}
        for term in terminals:
            if term.pattern.type == "re":
                regexes.append(term)
            elif re.fullmatch(r"[A-Za-z_]\w*", term.pattern.value):
                keywords[term.pattern.value] = term.name
            else:
                strings.append(term)
        regexes.sort(key=lambda t: (-t.priority, t.name == "BAD"))
        strings.sort(key=lambda t: -len(t.pattern.value))
        parts = [f"(?P<{t.name}>{t.pattern.value})" for t in regexes if t.name != "BAD"]
        parts += [f"(?P<{t.name}>{re.escape(t.pattern.value)})" for t in strings]
        parts += [f"(?P<{t.name}>{t.pattern.value})" for t in regexes if t.name == "BAD"]
        self.pattern = re.compile("|".join(parts))
        self.keywords: dict[str, str] = keywords

    def tokenize(self, text: str, comments: list[ast.Comment], path: str | None, pos: int = 0,
                 line: int = 1) -> list[Token]:
        """Scan `text` from offset `pos` (on line `line`) and apply the newline rule in one pass.

        Only tokens the parser sees become Lark Tokens (whitespace never does, newlines only when they end
        a statement), which halves the cost of lexing a large file. Comments are collected on the side.
        """
        pattern, keywords = self.pattern, self.keywords
        out: list[Token] = []
        depth = 0  # open ( and [: newlines inside them are insignificant
        line_start = text.rfind("\n", 0, pos) + 1
        pending_nl: tuple[int, int, int] | None = None  # (offset, line, column) of a newline that may end a statement
        for m in pattern.finditer(text, pos):
            kind = m.lastgroup
            start, end = m.span()
            if kind == "WS":
                continue
            if kind == "NL":
                if depth == 0 and pending_nl is None:
                    pending_nl = (start, line, start - line_start + 1)
                line, line_start = line + 1, end
                continue
            value = m.group()
            col = start - line_start + 1
            if kind == "COMMENT":
                comments.append(ast.Comment(value.rstrip("\r"), Span(path, line, col, line, end - line_start + 1, start, end)))
                continue
            if kind == "SEMI":
                pending_nl = None
                if out and out[-1].type != "_SEP":
                    out.append(Token("_SEP", ";", start, line, col, line, col + 1, end))
                continue
            if kind == "NAME":
                kind = keywords.get(value, "NAME")
            if pending_nl is not None:
                if out and out[-1].type != "_SEP" and out[-1].value not in _CONTINUES and value != "->":
                    at, nl_line, nl_col = pending_nl
                    out.append(Token("_SEP", "\n", at, nl_line, nl_col, nl_line + 1, 1, at + 1))
                pending_nl = None
            if kind in ("LPAR", "LSQB"):
                depth += 1
            elif kind in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            out.append(Token(kind, value, start, line, col, line, end - line_start + 1, end))
        return out
