"""Document symbols (the outline), folding ranges and semantic tokens.

The outline and the folding ranges come from the syntax tree (what the parser recovered, so a file
with syntax errors still has one) plus the token stream for braces and comments; semantic tokens are
the parser's own tokens (`mdl.dsl.parser.tokenize`, the scanner the compiler uses, so highlighting
never disagrees with the grammar), classified by the name index of `mdl.lsp.navigation`: a name is a
function when it is a primitive, a class when it is a block, a type when it is a model, a parameter, a
variable (bindings, consts: readonly), a namespace (import aliases) or a property (keyword arguments,
experiment keys).
"""

from __future__ import annotations

from lsprotocol import types

from mdl.compiler.nameindex import Index
from mdl.dsl import ast

# ----------------------------------------------------------------------------------- semantic tokens

TOKEN_TYPES = ["keyword", "function", "class", "type", "variable", "parameter", "number", "string", "comment",
               "operator", "property", "namespace", "typeParameter", "struct"]
TOKEN_MODIFIERS = ["declaration", "readonly", "defaultLibrary"]
LEGEND = types.SemanticTokensLegend(token_types=TOKEN_TYPES, token_modifiers=TOKEN_MODIFIERS)

_KEYWORD_TOKENS = frozenset({"IMPORT", "AS", "CONST", "BLOCK", "MODEL", "EXPERIMENT", "INPUT", "OUTPUT", "REPEAT",
                             "RETURN", "SWEEP", "TRUE", "FALSE", "NONE"})
_OPERATOR_TOKENS = frozenset({"PLUS", "MINUS", "STAR", "SLASH", "EQUAL", "COLON", "__ANON_0"})  # __ANON_0 is `->`
_KIND_TYPES = {
    "const": "variable", "block": "class", "model": "type", "experiment": "struct", "param": "parameter",
    "argument": "property", "local": "variable", "loop": "variable", "namespace": "namespace", "primitive": "function",
    "builtin": "function", "function": "function", "module": "namespace", "property": "property",
    "type": "type", "symbol": "typeParameter", "unit": "keyword", "unknown": "variable",
}


def semantic_tokens(snapshot) -> list[int]:
    """The whole document's tokens, delta-encoded as LSP wants (line, start, length, type, modifiers)."""
    idx = snapshot.names()
    spans: list[tuple[int, int, int, int]] = []  # start, end, type, modifier bits
    occurrences = {o.start: o for o in idx.occurrences}
    for tok in idx.tokens:
        t = tok.type
        if t in _KEYWORD_TOKENS:
            kind = TOKEN_TYPES.index("keyword")
            if t == "MODEL" and _is_entry_key(idx, tok):
                kind = TOKEN_TYPES.index("property")  # `model = ...` in an experiment
            spans.append((tok.start_pos, tok.end_pos, kind, 0))
        elif t == "NUMBER":
            spans.append((tok.start_pos, tok.end_pos, TOKEN_TYPES.index("number"), 0))
        elif t in ("STRING", "BADSTRING"):
            spans.append((tok.start_pos, tok.end_pos, TOKEN_TYPES.index("string"), 0))
        elif t in _OPERATOR_TOKENS:
            spans.append((tok.start_pos, tok.end_pos, TOKEN_TYPES.index("operator"), 0))
        elif t == "NAME":
            occ = occurrences.get(tok.start_pos)
            kind = _KIND_TYPES.get(occ.kind, "variable") if occ is not None else "variable"
            mods = 0
            if occ is not None:
                if occ.declaration:
                    mods |= 1
                if occ.kind in ("const", "loop"):
                    mods |= 2
                if occ.library:
                    mods |= 4
            spans.append((tok.start_pos, tok.end_pos, TOKEN_TYPES.index(kind), mods))
    for c in idx.comments:
        spans.append((c.span.start, c.span.end, TOKEN_TYPES.index("comment"), 0))
    spans.sort()
    data: list[int] = []
    prev_line = prev_char = 0
    for start, end, kind, mods in spans:
        begin = snapshot.document.client_position_at_offset(start)
        finish = snapshot.document.client_position_at_offset(end)
        if finish.line != begin.line or finish.character <= begin.character:
            continue  # tokens never span lines; skip anything odd rather than send a broken stream
        delta_char = begin.character - prev_char if begin.line == prev_line else begin.character
        data += [begin.line - prev_line, delta_char, finish.character - begin.character, kind, mods]
        prev_line, prev_char = begin.line, begin.character
    return data


def _is_entry_key(idx: Index, tok) -> bool:
    i = idx.tokens.index(tok)
    return i + 1 < len(idx.tokens) and idx.tokens[i + 1].type == "EQUAL"


def decode(data: list[int]) -> list[tuple[int, int, int, str, list[str]]]:
    """Delta-encoded semantic tokens back to (line, column, length, type, modifiers) (for tests and tools)."""
    out, line, col = [], 0, 0
    for i in range(0, len(data) - 4, 5):
        dl, dc, length, kind, mods = data[i:i + 5]
        line, col = line + dl, (col + dc if dl == 0 else dc)
        out.append((line, col, length, TOKEN_TYPES[kind], [m for b, m in enumerate(TOKEN_MODIFIERS) if mods >> b & 1]))
    return out


# ----------------------------------------------------------------------------------- document symbols


def _range(snapshot, span: ast.Span) -> types.Range:
    return snapshot.to_range(span)


def _name_range(snapshot, start: int, name: str) -> types.Range:
    return snapshot.to_range(ast.Span(None, 1, 1, 1, 1, start, start + len(name)))


def _symbol(snapshot, name: str, kind: types.SymbolKind, span: ast.Span, name_start: int,
            detail: str | None = None, children=None) -> types.DocumentSymbol:
    whole = _range(snapshot, span)
    selection = _name_range(snapshot, name_start, name)
    if not _contains(whole, selection):
        whole = selection
    return types.DocumentSymbol(name=name or "?", kind=kind, range=whole, selection_range=selection,
                                detail=detail, children=children)


def _contains(outer: types.Range, inner: types.Range) -> bool:
    def key(p: types.Position) -> tuple[int, int]:
        return (p.line, p.character)
    return key(outer.start) <= key(inner.start) and key(inner.end) <= key(outer.end)


def _params(item) -> str:
    return "(" + ", ".join(p.name + (f": {p.type.name}" if p.type else "") for p in item.params) + ")"


def _body_symbols(snapshot, body, seen: set[str]) -> list[types.DocumentSymbol]:
    out = []
    for stmt in body:
        if isinstance(stmt, ast.Input):
            out.append(_symbol(snapshot, stmt.name, types.SymbolKind.Field, stmt.span, stmt.name_span.start,
                               f"input {stmt.dtype}"))
        elif isinstance(stmt, ast.Output):
            out.append(_symbol(snapshot, stmt.name, types.SymbolKind.Property, stmt.span, stmt.name_span.start,
                               "output"))
        elif isinstance(stmt, ast.Assign) and stmt.name not in seen:
            seen.add(stmt.name)  # the first binding of a name stands for its rebindings
            out.append(_symbol(snapshot, stmt.name, types.SymbolKind.Variable, stmt.span, stmt.name_span.start))
        elif isinstance(stmt, ast.Repeat):
            out.extend(_body_symbols(snapshot, stmt.body, seen))
    return out


def document_symbols(snapshot) -> list[types.DocumentSymbol]:
    scope = snapshot.analysis.scope
    if scope is None:
        return []
    out = []
    for item in scope.module.items:
        if isinstance(item, ast.Import):
            name = item.alias or item.module or item.path or "import"
            label = item.module or f'"{item.path}"'
            start = item.span.start + snapshot.text[item.span.start:item.span.end].rfind(name)
            out.append(_symbol(snapshot, name, types.SymbolKind.Module, item.span, start, f"import {label}"))
        elif isinstance(item, ast.Const):
            out.append(_symbol(snapshot, item.name, types.SymbolKind.Constant, item.span, item.name_span.start))
        elif isinstance(item, ast.Block | ast.Model):
            params = [_symbol(snapshot, p.name, types.SymbolKind.TypeParameter if p.type and p.type.dims is None
                              else types.SymbolKind.Variable, p.span, p.span.start,
                              p.type.name if p.type else None) for p in item.params]
            children = params + _body_symbols(snapshot, item.body, {p.name for p in item.params})
            kind = types.SymbolKind.Function if isinstance(item, ast.Block) else types.SymbolKind.Class
            detail = ("block" if isinstance(item, ast.Block) else "model") + _params(item)
            out.append(_symbol(snapshot, item.name, kind, item.span, item.name_span.start, detail, children))
        elif isinstance(item, ast.Experiment):
            children = []
            for entry in item.entries:
                entries = entry.entries if isinstance(entry, ast.Section) else (entry,)
                for e in entries:
                    children.append(_symbol(snapshot, e.key, types.SymbolKind.Property, e.span, e.key_span.start,
                                            "sweep" if isinstance(entry, ast.Section) else None))
            out.append(_symbol(snapshot, item.name, types.SymbolKind.Event, item.span, item.name_span.start,
                               "experiment", children))
    return out


# -------------------------------------------------------------------------------------- folding ranges


def folding_ranges(snapshot) -> list[types.FoldingRange]:
    """Bracketed regions over more than one line, runs of comment lines and runs of imports."""
    idx = snapshot.names()
    doc = snapshot.document
    out: list[types.FoldingRange] = []
    stack: list[tuple[str, int]] = []
    pairs = {"RBRACE": "LBRACE", "RPAR": "LPAR", "RSQB": "LSQB"}
    for tok in idx.tokens:
        if tok.type in ("LBRACE", "LPAR", "LSQB"):
            stack.append((tok.type, tok.line - 1))
        elif tok.type in pairs:
            while stack and stack[-1][0] != pairs[tok.type]:
                stack.pop()
            if stack:
                _, start = stack.pop()
                end = tok.line - 2  # keep the closing bracket's line visible
                if end > start:
                    out.append(types.FoldingRange(start_line=start, end_line=end))
    # comments: consecutive whole-line comments
    lines = sorted({c.span.line - 1 for c in idx.comments
                    if not snapshot.text[snapshot.text.rfind("\n", 0, c.span.start) + 1:c.span.start].strip()})
    out += _runs(lines, types.FoldingRangeKind.Comment)
    scope = snapshot.analysis.scope
    if scope is not None:
        import_lines = sorted({doc.client_position_at_offset(i.span.start).line
                               for i in scope.module.items if isinstance(i, ast.Import)})
        out += _runs(import_lines, types.FoldingRangeKind.Imports)
    out.sort(key=lambda r: (r.start_line, r.end_line))
    return out


def _runs(lines: list[int], kind: types.FoldingRangeKind) -> list[types.FoldingRange]:
    out, first, last = [], None, None
    for line in [*lines, None]:
        if line is not None and last is not None and line == last + 1:
            last = line
            continue
        if first is not None and last > first:
            out.append(types.FoldingRange(start_line=first, end_line=last, kind=kind))
        first = last = line
    return out


# -------------------------------------------------------------------------------------------- register


def register(server) -> None:
    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def _document_symbols(ls, params: types.DocumentSymbolParams):
        try:
            return document_symbols(ls.snapshot(params.text_document.uri))
        except RecursionError:
            return []

    @server.feature(types.TEXT_DOCUMENT_FOLDING_RANGE)
    def _folding(ls, params: types.FoldingRangeParams):
        try:
            return folding_ranges(ls.snapshot(params.text_document.uri))
        except RecursionError:
            return []

    @server.feature(types.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, LEGEND)
    def _semantic_tokens(ls, params: types.SemanticTokensParams):
        try:
            return types.SemanticTokens(data=semantic_tokens(ls.snapshot(params.text_document.uri)))
        except RecursionError:
            return types.SemanticTokens(data=[])


__all__ = ["LEGEND", "TOKEN_MODIFIERS", "TOKEN_TYPES", "decode", "document_symbols", "folding_ranges", "register",
           "semantic_tokens"]
