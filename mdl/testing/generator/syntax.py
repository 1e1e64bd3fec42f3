"""The generator's syntax trees: compile-time expressions (`CExpr`), tensor expressions (`TExpr`),
statements and block definitions, each writing its own `.mdl` text and (for `CExpr`) computing its value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BATCH = "B"


class Invalid(Exception):
    """A drawn statement that is not valid where it stands (the generator then draws another)."""


def ok_width(w: int) -> bool:
    """A width that draws no W0002 warning."""
    return w < 16 or w % 8 == 0


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)

@dataclass(frozen=True)
class TV:
    """A tensor value: its dtype and shape (ints, and "B" for the batch)."""

    dtype: str
    shape: tuple

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def width(self) -> Any:
        return self.shape[-1]


# --------------------------------------------------------------------------- compile-time expressions
class CExpr:
    """A compile-time expression: its text, and its value in an environment of names."""

    prec = 3  # 1: + -, 2: * /, 3: atoms

    def text(self) -> str:
        raise NotImplementedError

    def value(self, env: dict) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Lit(CExpr):
    v: Any
    spelling: str | None = None  # e.g. "1k" for 1000

    def text(self) -> str:
        if self.spelling is not None:
            return self.spelling
        v = self.v
        if v is None:
            return "none"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        return repr(v)

    def value(self, env: dict) -> Any:
        return self.v


@dataclass(frozen=True)
class Ref(CExpr):
    name: str

    def text(self) -> str:
        return self.name

    def value(self, env: dict) -> Any:
        v = env.get(self.name)
        if v is None or isinstance(v, TV):
            raise Invalid(self.name)
        return v


@dataclass(frozen=True)
class Sym(CExpr):
    """A symbolic dimension (`B`) in an input type, an annotation or a `reshape` shape."""

    name: str

    def text(self) -> str:
        return self.name

    def value(self, env: dict) -> Any:
        return self.name


@dataclass(frozen=True)
class DimOf(CExpr):
    var: str
    index: int | None = None

    def text(self) -> str:
        return f"dim({self.var})" if self.index is None else f"dim({self.var}, {self.index})"

    def value(self, env: dict) -> Any:
        tv = env.get(self.var)
        if not isinstance(tv, TV) or tv.rank <= (self.index or 0):
            raise Invalid(self.var)
        size = tv.shape[-1 if self.index is None else self.index]
        if not is_int(size):
            raise Invalid(f"dim({self.var}) is symbolic")
        return size


@dataclass(frozen=True)
class Bin(CExpr):
    op: str
    a: CExpr
    b: CExpr

    @property
    def prec(self) -> int:  # type: ignore[override]
        return 1 if self.op in "+-" else 2

    def text(self) -> str:
        left = self.a.text() if self.a.prec >= self.prec else f"({self.a.text()})"
        right = self.b.text() if self.b.prec > self.prec else f"({self.b.text()})"
        return f"{left} {self.op} {right}"

    def value(self, env: dict) -> Any:
        a, b = self.a.value(env), self.b.value(env)
        if self.op == "+":
            return a + b
        if self.op == "-":
            return a - b
        if self.op == "*":
            return a * b
        if b == 0:
            raise Invalid("division by zero")
        return a // b if is_int(a) and is_int(b) and a % b == 0 else a / b


@dataclass(frozen=True)
class ListE(CExpr):
    items: tuple[CExpr, ...]

    def text(self) -> str:
        return "[" + ", ".join(i.text() for i in self.items) + "]"

    def value(self, env: dict) -> Any:
        return tuple(i.value(env) for i in self.items)


# -------------------------------------------------------------------------------- tensor expressions
Kwargs = tuple[tuple[str, CExpr], ...]


def _args_text(parts: list[str], multiline: bool) -> str:
    if multiline and parts:  # newlines inside ( ) are not significant
        return "(\n" + "".join(f"        {p},\n" for p in parts) + "    )"
    return "(" + ", ".join(parts) + ")"


class TExpr:
    is_pipe = False

    def text(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class TRef(TExpr):
    name: str

    def text(self) -> str:
        return self.name


@dataclass(frozen=True)
class TCall(TExpr):
    """`func(t1, t2, k=v)`: a primitive or block applied directly."""

    func: str
    tensors: tuple[TExpr, ...]
    kwargs: Kwargs = ()
    multiline: bool = False

    def text(self) -> str:
        parts = [t.text() for t in self.tensors] + [f"{k}={v.text()}" for k, v in self.kwargs]
        return self.func + _args_text(parts, self.multiline)


@dataclass(frozen=True)
class TPipe(TExpr):
    """`src -> func(t2, k=v)`; `src -> func` when there are no arguments and not `parens`."""

    src: TExpr
    func: str
    tensors: tuple[TExpr, ...] = ()
    kwargs: Kwargs = ()
    parens: bool = False
    newline: bool = False  # start the `->` on a new line
    multiline: bool = False
    is_pipe = True

    def text(self) -> str:
        parts = [t.text() for t in self.tensors] + [f"{k}={v.text()}" for k, v in self.kwargs]
        call = self.func + (_args_text(parts, self.multiline) if parts or self.parens else "")
        return self.src.text() + ("\n        -> " if self.newline else " -> ") + call


@dataclass(frozen=True)
class TBin(TExpr):
    op: str
    a: TExpr
    b: TExpr

    def text(self) -> str:
        left = f"({self.a.text()})" if self.a.is_pipe else self.a.text()
        right = f"({self.b.text()})" if self.b.is_pipe or isinstance(self.b, TBin) else self.b.text()
        return f"{left} {self.op} {right}"


# -------------------------------------------------------------------------------------- statements
@dataclass(frozen=True)
class Assign:
    name: str
    value: TExpr
    layout: str = ""  # "", "semi" (joined to the previous line with `;`), "comment", "blank"


@dataclass(frozen=True)
class Output:
    name: str
    value: TExpr
    layout: str = ""


@dataclass(frozen=True)
class Return:
    value: TExpr
    layout: str = ""


@dataclass(frozen=True)
class Input:
    name: str
    dtype: str
    dims: tuple[CExpr, ...]
    layout: str = ""


@dataclass(frozen=True)
class Repeat:
    count: CExpr
    var: str | None
    body: tuple
    layout: str = ""


def _stmt_text(s, indent: str) -> str:
    if isinstance(s, Assign):
        return f"{s.name} = {s.value.text()}"
    if isinstance(s, Output):
        return f"output {s.name} = {s.value.text()}"
    if isinstance(s, Return):
        return f"return {s.value.text()}"
    if isinstance(s, Input):
        return f"input {s.name}: {s.dtype}[{', '.join(d.text() for d in s.dims)}]"
    head = f"repeat {s.count.text()}" + (f" as {s.var}" if s.var else "")
    return f"{head} {{\n{body_text(s.body, indent + '    ')}\n{indent}}}"


def body_text(stmts, indent: str) -> str:
    out = ""
    for k, s in enumerate(stmts):
        text = _stmt_text(s, indent)
        comment = "  # a comment" if s.layout == "comment" else ""
        if k and s.layout == "semi" and "\n" not in text and not out.endswith(("}", "\n", "comment")):
            out += "; " + text
            continue
        if k:
            out += "\n" + ("\n" if s.layout == "blank" else "")
        out += indent + text + comment
    return out


@dataclass(frozen=True)
class TensorParam:
    name: str
    annotation: tuple[str, tuple[CExpr, ...]] | None = None  # dtype and dims


@dataclass(frozen=True)
class BlockParam:
    name: str
    type: str  # "int", "float", "str" or "bool"
    default: CExpr | None
    role: str  # what it is used as, for drawing arguments at later calls


@dataclass
class BlockDef:
    name: str
    tensors: list[TensorParam]
    params: list[BlockParam]
    body: list
    trailing_comma: bool = False

    def text(self) -> str:
        parts = []
        for t in self.tensors:
            if t.annotation is None:
                parts.append(t.name)
            else:
                dtype, dims = t.annotation
                parts.append(f"{t.name}: {dtype}[{', '.join(d.text() for d in dims)}]")
        for p in self.params:
            parts.append(f"{p.name}: {p.type}" + ("" if p.default is None else f" = {p.default.text()}"))
        comma = "," if self.trailing_comma else ""
        return f"block {self.name}({', '.join(parts)}{comma}) {{\n{body_text(self.body, '    ')}\n}}"


def calls(stmts) -> set[str]:
    """Every primitive and block a statement list calls."""
    names: set[str] = set()

    def texpr(e: TExpr) -> None:
        if isinstance(e, TBin):
            texpr(e.a)
            texpr(e.b)
        elif isinstance(e, TCall | TPipe):
            names.add(e.func)
            if isinstance(e, TPipe):
                texpr(e.src)
            for t in e.tensors:
                texpr(t)

    for s in stmts:
        if isinstance(s, Assign | Output | Return):
            texpr(s.value)
        elif isinstance(s, Repeat):
            names |= calls(s.body)
    return names


def refs(stmts) -> set[str]:
    """Every name a statement list refers to in compile-time expressions."""
    names: set[str] = set()

    def cexpr(e: CExpr) -> None:
        if isinstance(e, Ref):
            names.add(e.name)
        elif isinstance(e, DimOf):
            names.add(e.var)
        elif isinstance(e, Bin):
            cexpr(e.a)
            cexpr(e.b)
        elif isinstance(e, ListE):
            for i in e.items:
                cexpr(i)

    def texpr(e: TExpr) -> None:
        if isinstance(e, TBin):
            texpr(e.a)
            texpr(e.b)
        elif isinstance(e, TCall | TPipe):
            if isinstance(e, TPipe):
                texpr(e.src)
            for t in e.tensors:
                texpr(t)
            for _, v in e.kwargs:
                cexpr(v)

    for s in stmts:
        if isinstance(s, Assign | Output | Return):
            texpr(s.value)
        elif isinstance(s, Input):
            for d in s.dims:
                cexpr(d)
        elif isinstance(s, Repeat):
            cexpr(s.count)
            names |= refs(s.body)
    return names
