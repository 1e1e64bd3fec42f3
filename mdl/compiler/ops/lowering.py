"""How each primitive becomes torch code: one declarative row per primitive, read by both back ends.

mdl.compiler.lower builds a `torch.fx` graph from a row, mdl.compiler.codegen writes the same row as
Python source for the standalone `.py` export; neither names a primitive itself, so the two cannot
drift. A row is either

- a `Module`: the primitive is an `nn.Module` at the node's dotted name (it holds parameters or acts
  differently in training), built as `cls(*args, **kwargs)`; `cls` is `nn.<Name>` (torch.nn),
  `layers.<Name>` (mdl.compiler.ops.layers) or `moe.MoE` (mdl.compiler.ops.moe), and `defines` lists
  what a standalone file must define before it can build one; or
- a `Call`: the primitive is a plain function call, `fn(*tensors, *args, **kwargs)`, `fn` being
  `torch.<name>` or `F.<name>` (torch.nn.functional); `packed` passes the tensors as one list.

`make` gives `(args, kwargs)` from the node's `Site` (its input types, attrs and output type) and may
raise `LoweringError` for a node no torch code can express (a compiler bug, reported at its span).
This module imports no torch: the table is data, and the back ends bring torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mdl.compiler.shapes import Site

Make = Callable[[Site], tuple[tuple, dict[str, Any]]]


class LoweringError(Exception):
    """A node the table has no torch code for (a bug in mdl, reported as an internal error)."""


def _nothing(s: Site) -> tuple[tuple, dict[str, Any]]:
    return (), {}


@dataclass(frozen=True, slots=True)
class Module:
    cls: str
    make: Make
    defines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Call:
    fn: str
    make: Make = _nothing
    packed: bool = False


def _dim(s: Site) -> tuple[tuple, dict[str, Any]]:
    return (), {"dim": s.attrs["dim"]}


def _reshape_target(s: Site) -> tuple[tuple, dict[str, Any]]:
    """`reshape`'s target with symbolic dims as -1 (the IR allows at most one unknown among them)."""
    shape = [d if isinstance(d, int) else -1 for d in s.out.shape]
    if shape.count(-1) > 1:
        raise LoweringError(f"reshape to {s.out} has more than one symbolic dimension")
    return (shape,), {}


def _sequence_length(s: Site) -> int:
    return s.x.shape[1] if isinstance(s.x.shape[1], int) else 1


LOWERING: dict[str, Module | Call] = {
    "embedding": Module("nn.Embedding", lambda s: ((s.attrs["vocab"], s.attrs["dim"]), {})),
    "linear": Module("nn.Linear", lambda s: ((s.d, s.attrs["out"]), {} if s.attrs["bias"] else {"bias": False})),
    "layer_norm": Module("nn.LayerNorm", lambda s: ((s.d,), {"eps": s.attrs["eps"]})),
    "rms_norm": Module("nn.RMSNorm", lambda s: ((s.d,), {"eps": s.attrs["eps"]})),
    "dropout": Module("nn.Dropout", lambda s: ((), {"p": s.attrs["p"]})),
    "attention": Module("layers.SelfAttention", lambda s: ((s.d,), {"heads": s.attrs["heads"],
                                                                   "dropout": s.attrs["dropout"]}),
                        ("SelfAttention",)),
    "pos_encoding": Module("layers.PositionalEncoding", lambda s: ((_sequence_length(s), s.d),
                                                                  {"kind": s.attrs["kind"]}),
                           ("PositionalEncoding", "sinusoids")),
    "mlp": Module("layers.MLP", lambda s: ((s.d,), {"hidden": s.attrs["hidden"], "out": s.out.shape[-1],
                                                   "act": s.attrs["act"]}),
                  ("ACTIVATIONS", "MLP")),
    "moe": Module("moe.MoE", lambda s: ((s.d,), {k: s.attrs[k] for k in ("experts", "hidden", "top_k", "act",
                                                                        "capacity", "balance")}),
                  ("ACTIVATIONS", "moe_reference", "MoE")),
    "relu": Call("torch.relu"),
    "gelu": Call("F.gelu"),
    "silu": Call("F.silu"),
    "tanh": Call("torch.tanh"),
    "sigmoid": Call("torch.sigmoid"),
    "glu": Call("F.glu", lambda s: ((), {"dim": -1})),
    "softmax": Call("F.softmax", _dim),
    "mean": Call("torch.mean", _dim),
    "sum": Call("torch.sum", _dim),
    "max": Call("torch.amax", _dim),
    "flatten": Call("torch.flatten", lambda s: ((), {"start_dim": s.attrs["start"], "end_dim": s.attrs["end"]})),
    "reshape": Call("torch.reshape", _reshape_target),
    "concat": Call("torch.cat", _dim, packed=True),
}


def row(op: str) -> Module | Call:
    """The lowering of primitive `op`; LoweringError for a name the table lacks."""
    found = LOWERING.get(op)
    if found is None:
        raise LoweringError(f"no lowering for op `{op}`")
    return found
