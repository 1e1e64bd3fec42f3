"""The syntax tree of a `.mdl` file: frozen dataclasses, each carrying the span it was parsed from.

Spans never take part in equality (`field(compare=False)`), so two trees compare equal when they mean
the same program: `parse(format(s)) == parse(s)` is the formatter's law. Comments are kept on the
`Module` in source order (their text compares, their spans do not).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file. Lines and columns are 1-based; `end_column` is exclusive.

    `start`/`end` are 0-based character offsets into the text (end exclusive).
    """

    file: str | None
    line: int
    column: int
    end_line: int
    end_column: int
    start: int = 0
    end: int = 0

    def to(self, other: Span) -> Span:
        """The span from the start of `self` to the end of `other`."""
        return Span(self.file, self.line, self.column, other.end_line, other.end_column, self.start, other.end)

    def __str__(self) -> str:
        return f"{self.file or '<input>'}:{self.line}:{self.column}"


NO_SPAN = Span(None, 1, 1, 1, 1)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


# ----------------------------------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Number:
    """`128`, `3e-4`, `100k`. `text` keeps the spelling so the formatter can print it back."""

    value: int | float
    text: str = field(default="", compare=False)
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Quantity:
    """A number with a unit: `2M steps`, `10 min`. The unit is checked by the compiler, not the parser."""

    value: int | float
    unit: str
    text: str = field(default="", compare=False)
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class String:
    value: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class NoneLit:
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Name:
    """A possibly qualified name: `x`, `D`, `lib.CONST`."""

    id: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Keyword:
    """`name=value` inside a call."""

    name: str
    value: Expr
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Call:
    """`f(a, k=v)`. `func` may be qualified (`lib.block`). `func_span` covers just the callee name."""

    func: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Keyword, ...] = ()
    span: Span = _span()
    func_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Pipe:
    """`value -> call`: the call with `value` as its first positional argument."""

    value: Expr
    call: Call
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class BinOp:
    """`left op right` with `op` one of `+ - * /`."""

    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class List:
    items: tuple[Expr, ...] = ()
    span: Span = _span()


Expr = Number | Quantity | String | Bool | NoneLit | Name | Call | Pipe | BinOp | Neg | List


# ------------------------------------------------------------------------------------------ statements


@dataclass(frozen=True, slots=True)
class Input:
    """`input board: int[B, 4, 4]`."""

    name: str
    dtype: str
    dims: tuple[Expr, ...]
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Assign:
    name: str
    value: Expr
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Output:
    name: str
    value: Expr
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Repeat:
    """`repeat count [as var] { body }`, unrolled at compile time."""

    count: Expr
    var: str | None
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Return:
    value: Expr
    span: Span = _span()


Stmt = Input | Assign | Output | Repeat | Return


# ----------------------------------------------------------------------------------------------- items


@dataclass(frozen=True, slots=True)
class TypeAnn:
    """A parameter's annotation: `int`, `float`, or a tensor type `float[B, T, d]` (dims present)."""

    name: str
    dims: tuple[Expr, ...] | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: TypeAnn | None = None
    default: Expr | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Import:
    """`import stdlib.blocks [as b]` (`module` set) or `import "file.mdl" as lib` (`path` set)."""

    module: str | None
    path: str | None
    alias: str | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Const:
    name: str
    value: Expr
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Block:
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Model:
    """`model Name(params) { body }`; `has_parens` is False for `model Name { ... }`."""

    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    has_parens: bool = field(default=True, compare=False)
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Entry:
    """`key = value` in an experiment or a sweep; sweep keys may be qualified (`model.experts`)."""

    key: str
    value: Expr
    span: Span = _span()
    key_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Section:
    """`sweep { ... }` or `limits { ... }` in an experiment: `kind` is the keyword."""

    entries: tuple[Entry, ...]
    span: Span = _span()
    kind: str = "sweep"


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    entries: tuple[Entry | Section, ...]
    span: Span = _span()
    name_span: Span = _span()


Item = Import | Const | Block | Model | Experiment


@dataclass(frozen=True, slots=True)
class Comment:
    """`# text` (the text includes the `#`)."""

    text: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Module:
    items: tuple[Item, ...]
    comments: tuple[Comment, ...] = ()
    span: Span = _span()
