"""The primitive blocks of LANGUAGE.md, each whole in one entry: its signature and every rule about it.

A `Primitive` holds the argument names, types, defaults and ranges (mdl.compiler.args), the docs the
editor shows, and the torch-free rules every consumer reads: `infer` (the output type, or a
ShapeError; mdl.compiler.shapes states the shape conventions and holds the longer rules), `params`
(LANGUAGE.md's parameter formula, equal to torch's count of the lowered module), `flops` (forward
FLOPs per sample, in mdl.compiler.cost's conventions) and `saved` (values kept for backward beyond the
output, for the training-memory figure). How a primitive becomes torch code is the one other place
that names it: the lowering table, mdl.compiler.ops.lowering. Adding a primitive is an entry here, a
row there (and a module in mdl.compiler.ops.layers when torch has none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mdl.compiler import shapes
from mdl.compiler.args import MAX_SIZE, REQUIRED, Arg
from mdl.compiler.ir import TensorType
from mdl.compiler.shapes import Site, numel

ACTIVATIONS = ("gelu", "relu", "silu", "tanh", "sigmoid")  # the elementwise activations, and `act=` choices

Rule = Callable[[Site], Any]


def _pos(name: str, doc: str, default: Any = REQUIRED) -> Arg:
    return Arg(name, "int", default, low=1, high=MAX_SIZE, doc=doc)


def _dim(name: str = "dim", default: Any = REQUIRED) -> Arg:
    return Arg(name, "int", default, low=-64, high=63, doc="a dimension index; negative counts from the end")


def _act() -> Arg:
    return Arg("act", "choice", "gelu", choices=ACTIVATIONS, doc="activation between the two layers")


def _none(s: Site) -> int:
    return 0


def _per_output(s: Site) -> int:
    """1 FLOP per output element: activations, dropout, adds."""
    return s.n_out


@dataclass(frozen=True, slots=True)
class Primitive:
    """A primitive block: `tensors` tensor inputs (-1: two or more), then `args` by keyword.

    `shape` and `params_text` are the rules in LANGUAGE.md's words (for hover); `widths` names the
    widths the checker wants in multiples of 8 (an argument, or "input" for the input's last dim).
    """

    name: str
    args: tuple[Arg, ...]
    doc: str
    shape: str
    params_text: str = "0"
    tensors: int = 1
    infer: Rule = shapes.elementwise
    params: Rule = _none
    flops: Rule = _per_output
    saved: Callable[[Site, int], int | None] = lambda s, batch: 0
    widths: tuple[str, ...] = ()

    def arg(self, name: str) -> Arg | None:
        return next((a for a in self.args if a.name == name), None)

    def signature(self) -> str:
        tensors = "a, b, ..." if self.tensors < 0 else "x"
        return f"{self.name}({', '.join([tensors, *(a.signature() for a in self.args)])})"

    def output(self, inputs: list[TensorType], attrs: dict[str, Any]) -> TensorType:
        """The output type of this primitive on `inputs` with resolved `attrs` (raises ShapeError)."""
        return self.infer(Site(self.name, tuple(inputs), attrs))

    def figures(self, inputs: list[TensorType], attrs: dict[str, Any], out: TensorType) -> tuple[int, int | None]:
        """(parameters, forward FLOPs for one sample); the FLOPs are None when a dim other than B is symbolic."""
        n_out, n_in = numel(out), numel(inputs[0]) if inputs else 0
        site = Site(self.name, tuple(inputs), attrs, out, n_in or 0, n_out or 0)
        return self.params(site), None if n_out is None or n_in is None else self.flops(site)


def _tokens(s: Site, batch: int) -> int | None:
    """Vectors of the input's width in a batch of `batch` samples (None when a dim is unknown)."""
    return numel(TensorType("float", s.x.shape[:-1]), batch)


def _attention_flops(s: Site) -> int:
    t, d = s.x.shape[1], s.d
    projections = 2 * t * d * 3 * d + 2 * t * d * d + 4 * t * d
    mixing = 2 * (2 * t * t * d)
    return projections + mixing + 5 * s.attrs["heads"] * t * t


def _attention_saved(s: Site, batch: int) -> int | None:
    b_t, t = _tokens(s, batch), s.x.shape[1]
    if b_t is None or not isinstance(t, int):
        return None
    return 2 * b_t * s.attrs["heads"] * t + 3 * numel(s.x, batch)  # scores+probs, q/k/v


def _mlp_params(s: Site) -> int:
    d, h, o = s.d, s.attrs["hidden"], s.out.shape[-1]
    return d * h + h + h * o + o


def _moe_flops(s: Site) -> int:
    d, e, h, k = s.d, s.attrs["experts"], s.attrs["hidden"], s.attrs["top_k"]
    router = s.tokens * (2 * d * e + 5 * e)
    expert = 2 * d * h + h + h + 2 * h * d + d
    return router + s.tokens * k * expert + s.tokens * k * 2 * d


def _hidden_saved(s: Site, batch: int, per_token: int) -> int | None:
    tokens = _tokens(s, batch)
    return None if tokens is None else 2 * tokens * per_token


def _glu(s: Site) -> TensorType:
    """[.., 2h] -> [.., h]: the first half gated by the sigmoid of the second."""
    shapes.float_input(s.x, s.op)
    d = shapes.last_dim(s.x, s.op)
    if d % 2:
        raise shapes.ShapeError("E0206", f"`glu` splits the last dimension in two halves, but {s.x} has an odd width",
                                f"make the width even, e.g. `linear(out={d + 1})` before `glu`")
    return TensorType("float", (*s.x.shape[:-1], d // 2))


def _p(name: str, args: list[Arg], doc: str, shape: str, params_text: str = "0", **rules: Any) -> Primitive:
    return Primitive(name, tuple(args), doc, shape, params_text, **rules)


_ELEMENTWISE = "same shape"
_FREE = {"flops": _none}
_REDUCE = {"infer": shapes.reduce, "flops": lambda s: s.n_in}
PRIMITIVES: dict[str, Primitive] = {
    p.name: p
    for p in [
        _p("embedding", [_pos("vocab", "number of distinct token ids"), _pos("dim", "embedding width")],
           "Looks up a learned vector for each integer id.", "int[..] -> float[.., dim]", "vocab*dim",
           infer=shapes.embedding, params=lambda s: s.attrs["vocab"] * s.attrs["dim"], widths=("dim",), **_FREE),
        _p("linear", [_pos("out", "output width"), Arg("bias", "bool", True, doc="add a learned bias")],
           "An affine map of the last dimension.", "[.., d] -> [.., out]", "d*out + (out if bias)",
           infer=shapes.linear, params=lambda s: s.d * s.attrs["out"] + (s.attrs["out"] if s.attrs["bias"] else 0),
           flops=lambda s: 2 * s.tokens * s.d * s.attrs["out"] + (s.n_out if s.attrs["bias"] else 0)),
        _p("layer_norm", [Arg("eps", "float", 1e-5, low=0, low_open=True, high=1, doc="added to the variance")],
           "Layer normalisation over the last dimension, with a learned scale and shift.", _ELEMENTWISE, "2*d",
           infer=shapes.norm, params=lambda s: 2 * s.d, flops=lambda s: 5 * s.n_out),
        _p("rms_norm", [Arg("eps", "float", 1e-6, low=0, low_open=True, high=1, doc="added to the mean square")],
           "RMS normalisation over the last dimension, with a learned scale.", _ELEMENTWISE, "d",
           infer=shapes.norm, params=lambda s: s.d, flops=lambda s: 4 * s.n_out),
        _p("relu", [], "max(x, 0).", _ELEMENTWISE),
        _p("gelu", [], "Gaussian error linear unit.", _ELEMENTWISE),
        _p("silu", [], "x * sigmoid(x).", _ELEMENTWISE),
        _p("tanh", [], "Hyperbolic tangent.", _ELEMENTWISE),
        _p("sigmoid", [], "Logistic sigmoid.", _ELEMENTWISE),
        _p("glu", [], "Gated linear unit: the first half of the last dimension times the sigmoid of the second.",
           "[.., 2*h] -> [.., h]", infer=_glu, flops=lambda s: 2 * s.n_out),  # a sigmoid and a product
        _p("softmax", [_dim(default=-1)], "Softmax along `dim`.", _ELEMENTWISE,
           infer=shapes.softmax, flops=lambda s: 5 * s.n_out),
        _p("dropout", [Arg("p", "float", REQUIRED, low=0, high=1, high_open=True, doc="the drop probability")],
           "Zeroes elements with probability p while training.", _ELEMENTWISE),
        _p("attention", [_pos("heads", "number of attention heads; must divide the width"),
                         Arg("dropout", "float", 0.0, low=0, high=1, high_open=True, doc="dropout on attention weights")],
           "Multi-head self-attention.", "[B, T, d] -> [B, T, d], d % heads == 0", "4*d*d + 4*d",
           infer=shapes.attention, params=lambda s: 4 * s.d * s.d + 4 * s.d, flops=_attention_flops,
           saved=_attention_saved, widths=("input",)),
        _p("pos_encoding", [Arg("kind", "choice", "learned", choices=("learned", "sinusoidal"),
                                doc="learned table or fixed sinusoids")],
           "Adds a position encoding along the sequence dimension.", "[B, T, d] -> [B, T, d]",
           "T*d learned, 0 sinusoidal", infer=shapes.pos_encoding,
           params=lambda s: s.x.shape[1] * s.d if s.attrs["kind"] == "learned" else 0),
        _p("mlp", [_pos("hidden", "hidden width"), Arg("out", "int", None, low=1, high=MAX_SIZE, optional=True,
                                                      doc="output width (default: the input width)"), _act()],
           "Two linear layers with an activation between them.", "[.., d] -> [.., out]",
           "d*hidden + hidden + hidden*out + out", infer=shapes.mlp, params=_mlp_params,
           flops=lambda s: s.tokens * (2 * s.d * s.attrs["hidden"] + 2 * s.attrs["hidden"] + _mlp_out_flops(s)),
           saved=lambda s, batch: _hidden_saved(s, batch, s.attrs["hidden"]), widths=("hidden",)),
        _p("moe", [_pos("experts", "number of expert MLPs"),
                   Arg("top_k", "int", 2, low=1, high=MAX_SIZE, doc="experts chosen per token; 1 <= top_k <= experts"),
                   _pos("hidden", "hidden width of each expert"), _act(),
                   Arg("capacity", "float", 1.25, low=0, low_open=True, high=1e6, optional=True,
                       doc="capacity factor while training; none for no bound"),
                   Arg("balance", "float", 0.01, low=0, high=1e3, doc="load-balancing loss coefficient")],
           "Token-choice mixture of experts: a bias-free linear router, softmax, top-k, expert MLPs.",
           "[.., d] -> [.., d], 1 <= top_k <= experts",
           "d*experts + experts*(d*hidden + hidden + hidden*d + d)", infer=shapes.moe,
           params=lambda s: s.d * s.attrs["experts"] + s.attrs["experts"] * (
               2 * s.d * s.attrs["hidden"] + s.attrs["hidden"] + s.d),
           flops=_moe_flops, saved=lambda s, batch: _hidden_saved(s, batch, s.attrs["top_k"] * s.attrs["hidden"]),
           widths=("hidden",)),
        _p("mean", [_dim()], "Mean over `dim` (which is dropped).", "drops dim", **_REDUCE),
        _p("sum", [_dim()], "Sum over `dim` (which is dropped).", "drops dim", **_REDUCE),
        _p("max", [_dim()], "Maximum over `dim` (which is dropped).", "drops dim", **_REDUCE),
        _p("flatten", [_dim("start", 1), _dim("end", -1)], "Merges dimensions start..end into one.", "as in torch",
           infer=shapes.flatten, **_FREE),
        _p("reshape", [Arg("shape", "shape", doc="the new shape; one entry may be -1")],
           "Views the tensor with a new shape of the same size.", "as in torch", infer=shapes.reshape, **_FREE),
        _p("concat", [_dim(default=-1)], "Joins tensors along `dim`.", "as in torch", tensors=-1,
           infer=shapes.concat, **_FREE),
    ]
}


def _mlp_out_flops(s: Site) -> int:
    h, o = s.attrs["hidden"], s.out.shape[-1]
    return 2 * h * o + o


# Builtins that are not graph nodes: `dim(x)`, `dim(x, i)` give a size at compile time.
BUILTINS = ("dim",)
