"""The signatures of the primitive blocks of LANGUAGE.md: argument names, types, defaults and ranges.

This table is the one place that knows what `attention(heads=...)` accepts; the elaborator checks
calls against it, the cost model and shape rules key on the same names, and the language server
reads it for hover, completion and signature help.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()

ACTIVATIONS = ("gelu", "relu", "silu", "tanh", "sigmoid")
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
    from mdl.dsl.diagnostics import did_you_mean

    guess = did_you_mean(value, arg.choices) if value else None
    if guess:
        return f'did you mean "{guess}"?'
    return f"use one of {_choices_text(arg)}"


def _pos(name: str, doc: str, default: Any = REQUIRED) -> Arg:
    return Arg(name, "int", default, low=1, high=MAX_SIZE, doc=doc)


def _dim(name: str = "dim", default: Any = REQUIRED) -> Arg:
    return Arg(name, "int", default, low=-64, high=63, doc="a dimension index; negative counts from the end")


def _act() -> Arg:
    return Arg("act", "choice", "gelu", choices=ACTIVATIONS, doc="activation between the two layers")


@dataclass(frozen=True, slots=True)
class Primitive:
    """A primitive block: `tensors` tensor inputs (-1: two or more), then `args` by keyword."""

    name: str
    args: tuple[Arg, ...]
    doc: str
    shape: str  # the shape rule in LANGUAGE.md's words, for hover
    params: str  # the parameter formula in LANGUAGE.md's words
    tensors: int = 1

    def arg(self, name: str) -> Arg | None:
        return next((a for a in self.args if a.name == name), None)

    def signature(self) -> str:
        tensors = "a, b, ..." if self.tensors < 0 else "x"
        return f"{self.name}({', '.join([tensors, *(a.signature() for a in self.args)])})"


def _p(name, args, doc, shape, params="0", tensors=1) -> Primitive:
    return Primitive(name, tuple(args), doc, shape, params, tensors)


_ELEMENTWISE = "same shape"
PRIMITIVES: dict[str, Primitive] = {
    p.name: p
    for p in [
        _p("embedding", [_pos("vocab", "number of distinct token ids"), _pos("dim", "embedding width")],
           "Looks up a learned vector for each integer id.", "int[..] -> float[.., dim]", "vocab*dim"),
        _p("linear", [_pos("out", "output width"), Arg("bias", "bool", True, doc="add a learned bias")],
           "An affine map of the last dimension.", "[.., d] -> [.., out]", "d*out + (out if bias)"),
        _p("layer_norm", [Arg("eps", "float", 1e-5, low=0, low_open=True, high=1, doc="added to the variance")],
           "Layer normalisation over the last dimension, with a learned scale and shift.", _ELEMENTWISE, "2*d"),
        _p("rms_norm", [Arg("eps", "float", 1e-6, low=0, low_open=True, high=1, doc="added to the mean square")],
           "RMS normalisation over the last dimension, with a learned scale.", _ELEMENTWISE, "d"),
        _p("relu", [], "max(x, 0).", _ELEMENTWISE),
        _p("gelu", [], "Gaussian error linear unit.", _ELEMENTWISE),
        _p("silu", [], "x * sigmoid(x).", _ELEMENTWISE),
        _p("tanh", [], "Hyperbolic tangent.", _ELEMENTWISE),
        _p("sigmoid", [], "Logistic sigmoid.", _ELEMENTWISE),
        _p("softmax", [_dim(default=-1)], "Softmax along `dim`.", _ELEMENTWISE),
        _p("dropout", [Arg("p", "float", REQUIRED, low=0, high=1, high_open=True, doc="the drop probability")],
           "Zeroes elements with probability p while training.", _ELEMENTWISE),
        _p("attention", [_pos("heads", "number of attention heads; must divide the width"),
                         Arg("dropout", "float", 0.0, low=0, high=1, high_open=True, doc="dropout on attention weights")],
           "Multi-head self-attention.", "[B, T, d] -> [B, T, d], d % heads == 0", "4*d*d + 4*d"),
        _p("pos_encoding", [Arg("kind", "choice", "learned", choices=("learned", "sinusoidal"),
                                doc="learned table or fixed sinusoids")],
           "Adds a position encoding along the sequence dimension.", "[B, T, d] -> [B, T, d]",
           "T*d learned, 0 sinusoidal"),
        _p("mlp", [_pos("hidden", "hidden width"), Arg("out", "int", None, low=1, high=MAX_SIZE, optional=True,
                                                      doc="output width (default: the input width)"), _act()],
           "Two linear layers with an activation between them.", "[.., d] -> [.., out]",
           "d*hidden + hidden + hidden*out + out"),
        _p("moe", [_pos("experts", "number of expert MLPs"),
                   Arg("top_k", "int", 2, low=1, high=MAX_SIZE, doc="experts chosen per token; 1 <= top_k <= experts"),
                   _pos("hidden", "hidden width of each expert"), _act(),
                   Arg("capacity", "float", 1.25, low=0, low_open=True, high=1e6, optional=True,
                       doc="capacity factor while training; none for no bound"),
                   Arg("balance", "float", 0.01, low=0, high=1e3, doc="load-balancing loss coefficient")],
           "Token-choice mixture of experts: a bias-free linear router, softmax, top-k, expert MLPs.",
           "[.., d] -> [.., d], 1 <= top_k <= experts",
           "d*experts + experts*(d*hidden + hidden + hidden*d + d)"),
        _p("mean", [_dim()], "Mean over `dim` (which is dropped).", "drops dim"),
        _p("sum", [_dim()], "Sum over `dim` (which is dropped).", "drops dim"),
        _p("max", [_dim()], "Maximum over `dim` (which is dropped).", "drops dim"),
        _p("flatten", [_dim("start", 1), _dim("end", -1)], "Merges dimensions start..end into one.", "as in torch"),
        _p("reshape", [Arg("shape", "shape", doc="the new shape; one entry may be -1")],
           "Views the tensor with a new shape of the same size.", "as in torch"),
        _p("concat", [_dim(default=-1)], "Joins tensors along `dim`.", "as in torch", tensors=-1),
    ]
}

# Builtins that are not graph nodes: `dim(x)`, `dim(x, i)` give a size at compile time.
BUILTINS = ("dim",)
