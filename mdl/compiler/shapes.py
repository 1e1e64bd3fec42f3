"""Symbolic shape and dtype inference: the shape rules the primitives name, and what they share.

A primitive's `infer` rule (mdl.compiler.primitives) takes a `Site` — the op, its input types and
resolved attrs — and returns the output TensorType or raises ShapeError, which the elaborator turns
into a diagnostic at the call. Dims are ints or symbolic names (`"B"`); two symbolic dims are equal
only when their names are.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from mdl.compiler.ir import Dim, TensorType

BATCH = "B"


class Site(NamedTuple):  # a tuple: made for every primitive call, so cheap to make
    """One application of a primitive as its rules see it: the op, its input types, its resolved attrs and,
    once inferred, its output type (the parameter, FLOP, memory and lowering rules read it)."""

    op: str
    inputs: tuple[TensorType, ...]
    attrs: dict[str, Any]
    out: TensorType = TensorType("float", ())
    n_in: int = 0  # elements of one sample's first input and output (counted once, for the FLOP rules)
    n_out: int = 0

    @property
    def x(self) -> TensorType:
        return self.inputs[0]

    @property
    def d(self) -> Any:
        """The first input's last dimension (1 for a scalar): the width most rules are written in."""
        return self.inputs[0].shape[-1] if self.inputs and self.inputs[0].rank else 1

    @property
    def tokens(self) -> int:
        """Vectors of width `d` in one sample's first input (`n_in` elements)."""
        d = self.d
        return self.n_in // d if isinstance(d, int) and d else 0


def numel(t: TensorType, batch: int = 1) -> int | None:
    """Elements of a tensor with the batch dim set to `batch`; None if another dim is symbolic."""
    n = 1
    for d in t.shape:
        if isinstance(d, int):
            n *= d
        elif d == BATCH:
            n *= batch
        else:
            return None
    return n


class ShapeError(Exception):
    """`suggest` optionally names an argument and a better value, for a machine-applicable fix."""

    def __init__(self, code: str, message: str, help: str | None = None,
                 suggest: tuple[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.help = help
        self.suggest = suggest


def mul_dims(dims: list[Dim]) -> Dim:
    """The product of dims: an int when all are known, else a symbolic product like `"T*4"`."""
    known = 1
    symbols: list[str] = []
    for d in dims:
        if isinstance(d, int):
            known *= d
        else:
            symbols.append(d)
    if not symbols:
        return known
    if known != 1:
        symbols.append(str(known))
    return "*".join(symbols)


def axis_index(dim: int, rank: int, what: str = "dim") -> int:
    if not -rank <= dim < rank:
        raise ShapeError("E0210", f"`{what}={dim}` is out of range for a tensor of rank {rank}",
                         f"use a value from {-rank} to {rank - 1}")
    return dim % rank


def last_dim(x: TensorType, op: str) -> int:
    if x.rank == 0:
        raise ShapeError("E0207", f"`{op}` needs a tensor with at least one dimension, got {x}",
                         "apply it before the last dimension is reduced away")
    d = x.shape[-1]
    if not isinstance(d, int):
        raise ShapeError("E0208", f"`{op}` needs a known last dimension, got {x}",
                         "declare the width with a number or a const in the input")
    return d


def float_input(x: TensorType, op: str) -> None:
    if x.dtype != "float":
        raise ShapeError("E0205", f"`{op}` needs a float input, got {x}",
                         "turn integer ids into vectors first, e.g. `x -> embedding(vocab=16, dim=64)`")


def elementwise(s: Site) -> TensorType:
    x, op = s.x, s.op
    float_input(x, op)
    return x


def norm(s: Site) -> TensorType:
    x, op = s.x, s.op
    float_input(x, op)
    last_dim(x, op)
    return x


def embedding(s: Site) -> TensorType:
    x, attrs = s.x, s.attrs
    if x.dtype != "int":
        raise ShapeError("E0205", f"`embedding` needs an int input of token ids, got {x}",
                         "declare the input as `int[...]`, or use `linear(out=...)` on float features")
    return TensorType("float", (*x.shape, attrs["dim"]))


def linear(s: Site) -> TensorType:
    x, op, attrs = s.x, s.op, s.attrs
    float_input(x, op)
    last_dim(x, op)
    return TensorType("float", (*x.shape[:-1], attrs["out"]))


def softmax(s: Site) -> TensorType:
    x, op, attrs = s.x, s.op, s.attrs
    float_input(x, op)
    axis_index(attrs["dim"], x.rank)
    return x


def _divisors_near(n: int, around: int) -> list[int]:
    """Two head counts that divide `n`: the largest below `around` (smaller heads keep more width per
    head), or the nearest above when there are not two below."""
    divs = [k for k in range(1, min(n, 4096) + 1) if n % k == 0]
    below = [k for k in divs if k < around][-2:]
    above = [k for k in divs if k > around][: 2 - len(below)]
    return sorted(below + above)


def attention(s: Site) -> TensorType:
    x, op, attrs = s.x, s.op, s.attrs
    float_input(x, op)
    if x.rank != 3:
        raise ShapeError("E0207", f"`attention` needs a [B, T, d] input, got {x}",
                         "reshape to [batch, sequence, width] first")
    d = last_dim(x, op)
    heads = attrs["heads"]
    if d % heads:
        options = sorted(_divisors_near(d, heads))
        width = -(-d // heads) * heads
        use = " or ".join(f"heads={k}" for k in options)
        raise ShapeError("E0203", f"attention width {d} is not divisible by heads={heads}",
                         f"use {use}, or a width of {width}", suggest=("heads", max(k for k in options if k < heads) if options[0] < heads else options[0]))
    return x


def pos_encoding(s: Site) -> TensorType:
    x, op, attrs = s.x, s.op, s.attrs
    float_input(x, op)
    if x.rank != 3:
        raise ShapeError("E0207", f"`pos_encoding` needs a [B, T, d] input, got {x}",
                         "it adds a position code along the sequence dimension T")
    last_dim(x, op)
    if attrs["kind"] == "learned" and not isinstance(x.shape[1], int):
        raise ShapeError("E0208", f'`pos_encoding(kind="learned")` needs a known sequence length, got {x}',
                         'give T as a number, or use kind="sinusoidal"')
    return x


def mlp(s: Site) -> TensorType:
    x, op, attrs = s.x, s.op, s.attrs
    float_input(x, op)
    d = last_dim(x, op)
    out = attrs["out"] if attrs["out"] is not None else d
    return TensorType("float", (*x.shape[:-1], out))


def moe(s: Site) -> TensorType:
    x, op, attrs = s.x, s.op, s.attrs
    float_input(x, op)
    last_dim(x, op)
    if attrs["top_k"] > attrs["experts"]:
        raise ShapeError("E0204", f"`top_k={attrs['top_k']}` is more than `experts={attrs['experts']}`",
                         f"use top_k between 1 and {attrs['experts']}", suggest=("top_k", attrs["experts"]))
    return x


def reduce(s: Site) -> TensorType:
    x, op, attrs = s.x, s.op, s.attrs
    if x.rank == 0:
        raise ShapeError("E0207", f"`{op}` needs a tensor with at least one dimension, got {x}",
                         "there is no dimension left to reduce; remove this step")
    axis = axis_index(attrs["dim"], x.rank)
    dtype = "float" if op == "mean" else x.dtype
    return TensorType(dtype, x.shape[:axis] + x.shape[axis + 1:])


def flatten(s: Site) -> TensorType:
    x, attrs = s.x, s.attrs
    if x.rank == 0:
        return TensorType(x.dtype, (1,))
    start = axis_index(attrs["start"], x.rank, "start")
    end = axis_index(attrs["end"], x.rank, "end")
    if start > end:
        raise ShapeError("E0210", f"`flatten` start={attrs['start']} comes after end={attrs['end']} "
                         f"for a tensor of rank {x.rank}", "use start <= end, e.g. `flatten(start=1)`")
    merged = mul_dims(list(x.shape[start:end + 1]))
    return TensorType(x.dtype, (*x.shape[:start], merged, *x.shape[end + 1:]))


def reshape(s: Site) -> TensorType:
    x, attrs = s.x, s.attrs
    shape = list(attrs["shape"])
    for d in shape:
        if isinstance(d, int) and d != -1 and d < 1:
            raise ShapeError("E0211", f"`reshape` sizes must be positive or -1, got {d}",
                             "use positive sizes, symbolic names such as B, and at most one -1")
    if sum(1 for d in shape if d == -1) > 1:
        raise ShapeError("E0211", "`reshape` can infer only one dimension (-1)",
                         "give every size but one, e.g. `reshape(shape=[B, 16, -1])`")
    total = mul_dims(list(x.shape))
    known = mul_dims([d for d in shape if d != -1])
    if -1 in shape:
        if isinstance(total, int) and isinstance(known, int):
            if total % known:
                raise ShapeError("E0211", f"cannot reshape {x} ({total} elements) to {_fmt(shape)}",
                                 f"the known sizes must divide {total}")
            shape[shape.index(-1)] = total // known
        else:
            inferred = _divide_symbolic(total, known)
            if inferred is None:
                raise ShapeError("E0211", f"cannot infer -1 when reshaping {x} to {_fmt(shape)}",
                                 "name every dimension, keeping symbolic ones such as B")
            shape[shape.index(-1)] = inferred
    elif _canon(total) != _canon(known):
        raise ShapeError("E0211", f"cannot reshape {x} to {_fmt(shape)}: sizes {total} and {known} differ",
                         f"the new sizes must multiply to {total}, as the input's do (or use -1 for one of them)")
    return TensorType(x.dtype, tuple(shape))


def _canon(d: Dim) -> tuple:
    """A comparable form of a (possibly symbolic) product."""
    if isinstance(d, int):
        return ((), d)
    known = 1
    symbols = []
    for part in d.split("*"):
        if part.isdigit():
            known *= int(part)
        else:
            symbols.append(part)
    return (tuple(sorted(symbols)), known)


def _divide_symbolic(total: Dim, known: Dim) -> Dim | None:
    t_syms, t_k = _canon(total)
    k_syms, k_k = _canon(known)
    rest = list(t_syms)
    for s in k_syms:
        if s not in rest:
            return None
        rest.remove(s)
    if k_k == 0 or t_k % k_k:
        return None
    return mul_dims([*rest, t_k // k_k])


def _fmt(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def concat(s: Site) -> TensorType:
    xs, attrs = s.inputs, s.attrs
    first = xs[0]
    axis = axis_index(attrs["dim"], first.rank)
    total: list[Dim] = []
    for x in xs:
        if x.rank != first.rank:
            raise ShapeError("E0206", f"`concat` inputs have different ranks: {first} and {x}",
                             "give them the same number of dimensions first (`flatten` or `reshape` one)")
        for i, (a, b) in enumerate(zip(first.shape, x.shape, strict=True)):
            if i != axis and a != b:
                raise ShapeError("E0206", f"`concat` inputs differ outside dim {attrs['dim']}: {first} and {x}",
                                 f"only dimension {attrs['dim']} may differ; project or reshape one input")
        total.append(x.shape[axis])
    dtype = "float" if any(x.dtype == "float" for x in xs) else "int"
    return TensorType(dtype, (*first.shape[:axis], mul_sum(total), *first.shape[axis + 1:]))


def mul_sum(dims: list[Dim]) -> Dim:
    if all(isinstance(d, int) for d in dims):
        return sum(dims)  # type: ignore[arg-type]
    return "+".join(str(d) for d in dims)


def broadcast(a: TensorType, b: TensorType, op: str) -> TensorType:
    """numpy broadcasting, for `x + h` and friends."""
    out: list[Dim] = []
    for i in range(1, max(a.rank, b.rank) + 1):
        da = a.shape[-i] if i <= a.rank else 1
        db = b.shape[-i] if i <= b.rank else 1
        if da == db or db == 1:
            out.append(da)
        elif da == 1:
            out.append(db)
        else:
            raise ShapeError("E0206", f"shapes {a} and {b} do not match for `{op}`",
                             "a residual needs the same shape on both sides; project one side with "
                             "`linear(out=...)`")
    dtype = "float" if "float" in (a.dtype, b.dtype) else "int"
    return TensorType(dtype, tuple(reversed(out)))
