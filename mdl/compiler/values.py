"""The compile-time values elaboration works with, and the frames that hold them.

A value is a Python number, bool, string or tuple, or one of the classes here: a `Tensor` (an IR node
and its type), a `QuantityValue` (`2M steps`), a `Symbol` (a symbolic dim such as `B`, or an experiment
word), a `CallValue` (an experiment setting such as `ppo(lr=3e-4)`), or `UNKNOWN`, the poison value of
an expression that already produced an error. A `Frame` is one level of the elaborator's call stack:
the scope it reads names from and the bindings it made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mdl.compiler.ir import TensorType
from mdl.compiler.resolve import ModuleScope
from mdl.dsl import ast
from mdl.dsl.ast import Span


class _Unknown:
    """The value of an expression that already produced an error."""

    kind = "unknown"

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


@dataclass(frozen=True, slots=True)
class Tensor:
    node: int
    type: TensorType
    kind = "tensor"


@dataclass(frozen=True, slots=True)
class QuantityValue:
    value: int | float
    unit: str
    kind = "quantity"


@dataclass(frozen=True, slots=True)
class Symbol:
    """A bare name used as a value: a symbolic dim (`B`) or an experiment word (`onnx`, `auto`)."""

    name: str
    kind = "name"


@dataclass(frozen=True, slots=True)
class CallValue:
    """An experiment value such as `ppo(lr=3e-4)`: kept as a call, checked by the experiment checker."""

    func: str
    args: tuple
    kwargs: dict[str, Any]
    span: Span
    func_span: Span
    keywords: dict[str, ast.Keyword]
    kind = "call"


class Abort(Exception):
    """Stop elaborating the current model (too large, or too deep)."""


@dataclass(slots=True)
class Binding:
    value: Any
    span: Span
    what: str  # "value", "parameter", "input", "loop"
    used: bool = False


@dataclass(slots=True)
class Frame:
    scope: ModuleScope
    vars: dict[str, Binding] = field(default_factory=dict)
    path: str = ""  # prefix of node names, "" or "layers.0.encoder_layer."
    call_span: Span | None = None  # where this block was called from
    in_block: bool = False


def is_tensor_param(p: ast.Param) -> bool:
    return p.type is None or p.type.dims is not None or p.type.name == "tensor"
