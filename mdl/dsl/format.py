"""Print a syntax tree back as canonical `.mdl` text (what `mdlc fmt` writes).

The style, in short: four-space indentation, one statement per line, `{` on the header line and `}` on
its own, an empty body as `{ }`, a blank line between top-level items (a run of imports or of consts
may stay together), at most one blank line between statements where the source had some, spaces around
`=`, `->` and binary operators but `key=value` inside a call, and parentheses only where precedence
needs them. A statement longer than `MAX_WIDTH` whose value is a pipeline is broken one step per line,
each continuation line starting with `->`.

Comments are not in the tree proper: `Module.comments` lists them with their spans, and the printer
places each one by position. A comment on a line of its own stays on its own line before what follows
it; a comment at the end of a statement's (or header's, or `}`'s) last line stays there, two spaces
after the code; a comment inside a statement that spans several lines moves to just before it.

The laws, tested in `tests/test_format.py`: formatting is idempotent, keeps the meaning
(`parse(format_source(s)).items == parse(s).items`) and keeps every comment's text, in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mdl.dsl import ast
from mdl.dsl.diagnostics import Diagnostic, error
from mdl.dsl.parser import parse

MAX_WIDTH = 100  # columns, counted without a trailing comment
INDENT = "    "

# Binding strength, loosest first: an operand printed where a tighter level is needed gets parentheses.
_PIPE, _SUM, _PRODUCT, _UNARY, _ATOM = range(5)
_OPERATOR_LEVEL = {"+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT}
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}


class FormatError(Exception):
    """The source does not parse; formatting the partial tree would drop the broken statements."""

    def __init__(self, diagnostics: Sequence[Diagnostic]):
        self.diagnostics = list(diagnostics)
        errors = [d for d in self.diagnostics if d.is_error]
        first = errors[0] if errors else None
        summary = f"{first.span}: {first.message}" if first else "the source has syntax errors"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"cannot format: {summary}{more}")


def format_source(text: str, path: str | None = None) -> str:
    """Parse `text` (from file `path`, used in diagnostics) and return it formatted.

    Raises `FormatError` carrying the parse diagnostics if the text has any syntax error.
    """
    module, diagnostics = parse(text, path)
    if any(d.is_error for d in diagnostics):
        raise FormatError(diagnostics)
    return format_module(module)


def format_module(module: ast.Module) -> str:
    """The canonical text of `module`, its comments placed by their spans; `""` for an empty module.

    Raises `FormatError` (E0006) for bodies nested hundreds deep, beyond Python's recursion limit.
    """
    printer = _Printer(module.comments)
    try:
        printer.module(module.items)
    except RecursionError:
        # Expressions are printed without recursion; only `repeat` inside `repeat` hundreds deep gets here.
        span = ast.Span(module.span.file, 1, 1, 1, 1)
        raise FormatError([error("E0006", span, "the file is nested too deeply to format",
                                 "split deeply nested bodies into blocks")]) from None
    return "\n".join(printer.lines) + "\n" if printer.lines else ""


def format_expr(expr: ast.Expr) -> str:
    """One expression on one line, with the parentheses its precedence needs and no others."""
    return _expr(expr, _PIPE)


# ------------------------------------------------------------------------------------------ expressions


def _level(e: ast.Expr) -> int:
    if isinstance(e, ast.Pipe):
        return _PIPE
    if isinstance(e, ast.BinOp):
        return _OPERATOR_LEVEL[e.op]
    if isinstance(e, ast.Neg):
        return _UNARY
    return _ATOM


# A piece of printed expression: literal text, or an operand still to print at a binding strength.
_Piece = str | tuple[ast.Expr, int]


def _expr(e: ast.Expr, needed: int) -> str:
    """`e` printed as an operand of something that needs binding strength `needed`.

    An explicit stack rather than recursion: a generated file may nest brackets thousands deep, which
    the parser accepts and Python's recursion limit would not.
    """
    out: list[str] = []
    stack: list[_Piece] = [(e, needed)]
    while stack:
        piece = stack.pop()
        if isinstance(piece, str):
            out.append(piece)
            continue
        node, level = piece
        pieces = _pieces(node)
        if _level(node) < level:
            pieces = ["(", *pieces, ")"]
        stack.extend(reversed(pieces))
    return "".join(out)


def _pieces(e: ast.Expr) -> list[_Piece]:
    """What `e` prints as, one level deep, without parentheses around itself."""
    match e:
        case ast.Pipe(value, call):
            return [(value, _PIPE), " -> ", *_call(call, in_pipe=True)]
        case ast.BinOp(op, left, right):
            level = _OPERATOR_LEVEL[op]
            # Left-associative: the right operand of `a - (b - c)` keeps its parentheses.
            return [(left, level), f" {op} ", (right, level + 1)]
        case ast.Neg(operand):
            return ["-", (operand, _UNARY)]
        case ast.Number():
            return [e.text or _number(e.value)]
        case ast.Quantity():
            return [" ".join(e.text.split()) if e.text else f"{_number(e.value)} {e.unit}"]
        case ast.String(value):
            return [_string(value)]
        case ast.Bool(value):
            return ["true" if value else "false"]
        case ast.NoneLit():
            return ["none"]
        case ast.Name(id_):
            return [id_]
        case ast.Call():
            return _call(e, in_pipe=False)
        case ast.List(items):
            return ["[", *_separated([(i, _PIPE) for i in items]), "]"]
    raise TypeError(f"not an expression: {e!r}")


def _call(call: ast.Call, *, in_pipe: bool) -> list[_Piece]:
    """`f(a, k=v)`; in a pipe a call without arguments is just `f`."""
    if in_pipe and not call.args and not call.kwargs:
        return [call.func]
    args: list[list[_Piece]] = [[(a, _PIPE)] for a in call.args]
    args += [[f"{k.name}=", (k.value, _PIPE)] for k in call.kwargs]
    return [f"{call.func}(", *_separated(args), ")"]


def _separated(parts: Sequence[_Piece | list[_Piece]]) -> list[_Piece]:
    """`parts` joined by `, ` (a part may be several pieces)."""
    out: list[_Piece] = []
    for i, part in enumerate(parts):
        if i:
            out.append(", ")
        out += part if isinstance(part, list) else [part]
    return out


def _number(value: int | float) -> str:
    """A spelling for a number built without source text (`repr` of a finite float is valid .mdl)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} has no .mdl spelling")
    return repr(value)


def _string(value: str) -> str:
    return '"' + "".join(_ESCAPES.get(c, c) for c in value) + '"'


def _pipeline(e: ast.Pipe) -> tuple[ast.Expr, list[ast.Call]]:
    """`a -> f -> g` as its head `a` and its steps `[f, g]`."""
    steps: list[ast.Call] = []
    head: ast.Expr = e
    while isinstance(head, ast.Pipe):
        steps.append(head.call)
        head = head.value
    return head, steps[::-1]


def _with_value(indent: str, prefix: str, value: ast.Expr) -> list[str]:
    """The lines of `prefix value` (`x = ...`, `return ...`): one, or one per pipeline step if too long."""
    line = indent + prefix + format_expr(value)
    if len(line) <= MAX_WIDTH or not isinstance(value, ast.Pipe):
        return [line]
    head, steps = _pipeline(value)
    return [indent + prefix + _expr(head, _PIPE)] + [f"{indent}{INDENT}-> {_step(s)}" for s in steps]


def _step(call: ast.Call) -> str:
    """A pipeline step as printed after `->`."""
    return "".join(p if isinstance(p, str) else _expr(*p) for p in _call(call, in_pipe=True))


# --------------------------------------------------------------------------------------- declarations


def _params(params: Sequence[ast.Param]) -> str:
    return "(" + ", ".join(_param(p) for p in params) + ")"


def _param(p: ast.Param) -> str:
    text = p.name
    if p.type is not None:
        text += ": " + p.type.name
        if p.type.dims is not None:
            text += _dims(p.type.dims)
    if p.default is not None:
        text += " = " + format_expr(p.default)
    return text


def _dims(dims: Sequence[ast.Expr]) -> str:
    return "[" + ", ".join(format_expr(d) for d in dims) + "]"


def _import(item: ast.Import) -> str:
    alias = f" as {item.alias}" if item.alias is not None else ""
    if item.path is not None:
        return f"import {_string(item.path)}{alias}"
    return f"import {item.module}{alias}"


def _header(node: ast.Block | ast.Model | ast.Repeat | ast.Experiment | ast.Section) -> tuple[str, int]:
    """What comes before `{`, and the source line the `{` is on (as near as the spans tell)."""
    line = node.span.line
    match node:
        case ast.Block(name, params):
            return f"block {name}{_params(params)}", max([line, *(p.span.end_line for p in params)])
        case ast.Model(name, params):
            header = f"model {name}{_params(params)}" if node.has_parens or params else f"model {name}"
            return header, max([line, *(p.span.end_line for p in params)])
        case ast.Repeat(count, var):
            alias = f" as {var}" if var is not None else ""
            return f"repeat {format_expr(count)}{alias}", max(line, count.span.end_line)
        case ast.Experiment(name):
            return f"experiment {name}", line
        case ast.Section(kind=kind):
            return kind, line
    raise TypeError(f"not a declaration with a body: {node!r}")


def _children(node: ast.Block | ast.Model | ast.Repeat | ast.Experiment | ast.Section) -> Sequence:
    if isinstance(node, ast.Experiment | ast.Section):
        return node.entries
    return node.body


def _groups_with(prev: ast.Item, item: ast.Item) -> bool:
    """Whether `item` may follow `prev` without a blank line (a run of imports, or of consts)."""
    return type(prev) is type(item) and isinstance(item, ast.Import | ast.Const)


# -------------------------------------------------------------------------------------------- printer


@dataclass
class _Run:
    """The blank-line state of one sequence of lines at one indentation (the top level, or one body)."""

    last: int | None = None  # source line where the previous thing ended; None before the first
    force: bool = False  # the next thing gets a blank line whatever the source had (between items)


_Node = ast.Item | ast.Stmt | ast.Entry | ast.Section
_BODIED = (ast.Block, ast.Model, ast.Repeat, ast.Experiment, ast.Section)


class _Printer:
    """Emits lines for a tree, taking comments from the front of the source-ordered list as it goes.

    Every comment is taken exactly once and in order, so the comments of the output are those of the
    input in the same order whatever the placement decisions are.
    """

    def __init__(self, comments: Sequence[ast.Comment]):
        self.lines: list[str] = []
        self._comments = list(comments)
        self._next = 0

    # ------------------------------------------------------------------------------------ comments
    def _take_while(self, keep: Callable[[ast.Comment], bool]) -> list[ast.Comment]:
        taken = []
        while self._next < len(self._comments) and keep(self._comments[self._next]):
            taken.append(self._comments[self._next])
            self._next += 1
        return taken

    def _take_trailing(self, line: int, before: float) -> str:
        """`  # ...` if the next comment ends source line `line` before offset `before`, else ``."""
        taken = self._take_while(lambda c: c.span.line == line and c.span.start < before)
        return "  " + taken[0].text if taken else ""

    def _has_comment_before(self, offset: int) -> bool:
        return self._next < len(self._comments) and self._comments[self._next].span.start < offset

    def _blank(self, run: _Run, line: int) -> None:
        """A blank line before a thing on source `line`, if the source had one (or the run forces one)."""
        if run.last is not None and (run.force or line > run.last + 1):
            self.lines.append("")
        run.force = False

    def _own_lines(self, comments: list[ast.Comment], indent: str, run: _Run, at: int | None = None) -> None:
        """Comments on lines of their own; `at` is the source line to account them to (moved comments)."""
        for c in comments:
            line = c.span.line if at is None else at
            self._blank(run, line)
            self.lines.append(indent + c.text)
            run.last = line

    def _lead(self, node: _Node, inside: Callable[[ast.Comment], bool], indent: str, run: _Run) -> None:
        """The comments before `node`, then those inside it that `inside` says move before it."""
        self._own_lines(self._take_while(lambda c: c.span.start < node.span.start), indent, run)
        self._own_lines(self._take_while(inside), indent, run, at=node.span.line)
        self._blank(run, node.span.line)

    # ----------------------------------------------------------------------------------- structure
    def module(self, items: Sequence[ast.Item]) -> None:
        run = _Run()
        for i, item in enumerate(items):
            if i > 0:
                run.force = not _groups_with(items[i - 1], item)
            limit = items[i + 1].span.start if i + 1 < len(items) else math.inf
            self._node(item, "", run, limit)
            run.force = True
        self._own_lines(self._take_while(lambda c: True), "", run)

    def _sequence(self, children: Sequence[_Node], indent: str, end: int) -> None:
        """The statements or entries of a body whose `}` ends at offset `end`, then its last comments."""
        run = _Run()
        for i, child in enumerate(children):
            limit = children[i + 1].span.start if i + 1 < len(children) else end
            self._node(child, indent, run, limit)
        self._own_lines(self._take_while(lambda c: c.span.start < end), indent, run)

    def _node(self, node: _Node, indent: str, run: _Run, limit: float) -> None:
        """One item, statement or entry; `limit` is where the next one (or the enclosing body) starts."""
        if isinstance(node, _BODIED):
            self._bodied(node, indent, run, limit)
        else:
            self._lead(node, lambda c: c.span.start < node.span.end, indent, run)
            lines = self._simple(node, indent)
            lines[-1] += self._take_trailing(node.span.end_line, limit)
            self.lines += lines
        run.last = node.span.end_line

    def _simple(self, node: _Node, indent: str) -> list[str]:
        match node:
            case ast.Assign(name, value) | ast.Entry(name, value):
                return _with_value(indent, f"{name} = ", value)
            case ast.Output(name, value):
                return _with_value(indent, f"output {name} = ", value)
            case ast.Const(name, value):
                return _with_value(indent, f"const {name} = ", value)
            case ast.Return(value):
                return _with_value(indent, "return ", value)
            case ast.Input(name, dtype, dims):
                return [f"{indent}input {name}: {dtype}{_dims(dims)}"]
            case ast.Import():
                return [indent + _import(node)]
        raise TypeError(f"not a statement: {node!r}")

    def _bodied(self, node: ast.Block | ast.Model | ast.Repeat | ast.Experiment | ast.Section, indent: str,
                run: _Run, limit: float) -> None:
        header, header_line = _header(node)
        self._lead(node, lambda c: c.span.line < header_line, indent, run)
        children = _children(node)
        end = node.span.end
        if not self._has_comment_before(end):
            one_line = self._one_line(node, header, indent)
            if one_line is not None:
                self.lines.append(one_line + self._take_trailing(node.span.end_line, limit))
                return
        first = children[0].span.start if children else end
        self.lines.append(f"{indent}{header} {{" + self._take_trailing(header_line, first))
        self._sequence(children, indent + INDENT, end)
        self.lines.append(indent + "}" + self._take_trailing(node.span.end_line, limit))

    def _one_line(self, node: _Node, header: str, indent: str) -> str | None:
        """`header { }` for an empty body; `sweep { a = [..]; b = [..] }` when it fits."""
        children = _children(node)
        if not children:
            return f"{indent}{header} {{ }}"
        if isinstance(node, ast.Section):
            line = f"{indent}{header} {{ " + "; ".join(f"{e.key} = {format_expr(e.value)}" for e in children) + " }"
            if len(line) <= MAX_WIDTH:
                return line
        return None
