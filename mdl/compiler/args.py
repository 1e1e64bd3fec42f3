"""Compile-time arguments: their names, types, defaults and ranges, and the check of a value against one.

Every call the language knows — a primitive (`attention(heads=4)`, mdl.compiler.primitives), an
experiment setting (`ppo(lr=3e-4)`, an environment kind's `envs=64`) — declares its arguments as `Arg`s;
`coerce` checks a value and gives it its canonical form, and the language server reads the same
`Arg`s for hover, completion and signature help.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mdl.dsl.diagnostics import did_you_mean

REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()

MAX_SIZE = 2**31 - 1  # the largest width, count or length a design may ask for


class ArgError(Exception):
    """A compile-time argument of the wrong type or out of range."""

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.message = message
        self.help = help


@dataclass(frozen=True, slots=True)
class Arg:
    """One compile-time argument.

    `type` is "int", "float", "bool", "str", "shape" (a list of ints and symbolic names) or "choice";
    `optional` allows `none`. Ranges: `low`/`high`, exclusive where `low_open`/`high_open`.
    """

    name: str
    type: str
    default: Any = REQUIRED
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    optional: bool = False
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def range_text(self) -> str:
        if self.low is None and self.high is None:
            return ""
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open else "]"
        low = "-inf" if self.low is None else _num(self.low)
        high = "inf" if self.high is None else _num(self.high)
        return f"{lo}{low}, {high}{hi}"

    def signature(self) -> str:
        if self.required:
            return self.name
        return f"{self.name}={_literal(self.default)}"


def _num(x: float) -> str:
    """A range bound, compactly: `1`, `0.5`, `1000000`."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _literal(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


def type_name(value: Any) -> str:
    """How a compile-time value's type is named in messages."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, tuple):
        return "list"
    return getattr(value, "kind", type(value).__name__)


def coerce(arg: Arg, value: Any) -> Any:
    """Check `value` against `arg` and return it in canonical form (ints stay ints, floats become float).

    Raises ArgError with a message and a help line.
    """
    if value is None:
        if arg.optional:
            return None
        raise ArgError(f"`{arg.name}` cannot be none", f"give `{arg.name}` a {arg.type} value")
    given = value  # echoed in messages as the user wrote it (`p=1.0`, `lr=0`)
    t = arg.type
    if t == "bool":
        if not isinstance(value, bool):
            raise ArgError(f"`{arg.name}` must be true or false, not {type_name(value)}")
        return value
    if t in ("str", "choice"):
        if not isinstance(value, str):
            raise ArgError(f"`{arg.name}` must be a string, not {type_name(value)}",
                           _choices_help(arg))
        if arg.choices is not None and value not in arg.choices:
            raise ArgError(f'`{arg.name}="{value}"` is not one of {_choices_text(arg)}', _choices_help(arg, value))
        return value
    if t == "shape":
        if not isinstance(value, tuple) or not value:
            raise ArgError(f"`{arg.name}` must be a non-empty list of sizes", f"for example `{arg.name}=[B, 16, 8]`")
        return tuple(_shape_dim(arg, d) for d in value)
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ArgError(f"`{arg.name}` must be an integer, not {type_name(value)}")
        if isinstance(value, float):
            if not value.is_integer():
                raise ArgError(f"`{arg.name}` must be an integer, not {value}",
                               f"use {math.floor(value)} or {math.ceil(value)}")
            value = int(value)
    elif t == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ArgError(f"`{arg.name}` must be a number, not {type_name(value)}")
        value = float(value)
    _check_range(arg, value, given)
    return value


def _shape_dim(arg: Arg, d: Any) -> int | str:
    """One entry of a `shape=[...]` list: an int, or a symbolic name (`B`) as its string."""
    if getattr(d, "kind", None) == "name":  # an elaborator Symbol, such as the batch dim `B`
        return d.name
    if isinstance(d, int) and not isinstance(d, bool):
        return d
    raise ArgError(f"`{arg.name}` entries must be sizes, -1 or symbolic names such as B, not {type_name(d)}",
                   f"for example `{arg.name}=[B, 16, 8]`")


def _check_range(arg: Arg, value: float, given: float) -> None:
    bad = (
        (arg.low is not None and (value < arg.low or (arg.low_open and value == arg.low)))
        or (arg.high is not None and (value > arg.high or (arg.high_open and value == arg.high)))
        or (isinstance(value, float) and not math.isfinite(value))
    )
    if bad:
        raise ArgError(f"`{arg.name}={given!r}` is out of range; "
                       f"it must be in {arg.range_text()}", _range_help(arg))


def _range_help(arg: Arg) -> str | None:
    if arg.low is not None and arg.high is None and arg.low >= 1 and not arg.low_open:
        return f"`{arg.name}` must be at least {_num(arg.low)}"
    if arg.doc:
        return f"`{arg.name}`: {arg.doc}"
    return None


def _choices_text(arg: Arg) -> str:
    return ", ".join(f'"{c}"' for c in arg.choices or ())


def _choices_help(arg: Arg, value: str | None = None) -> str | None:
    if not arg.choices:
        return None
    guess = did_you_mean(value, arg.choices) if value else None
    if guess:
        return f'did you mean "{guess}"?'
    return f"use one of {_choices_text(arg)}"
