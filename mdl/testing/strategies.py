"""hypothesis strategies for users' property tests of their designs (`pip install mdl[testing]`).

- `variants(source, model, **params)`: the model built over its parameter space, one strategy per
  parameter (`d=st.sampled_from([64, 128]), experts=st.integers(1, 8)`; parameters not named keep their
  defaults), yielding the `CompiledModel` of each combination the checker accepts (its arguments are
  `compiled.ir.args`). A combination the checker rejects (heads that do not divide `d`) is drawn again
  inside the same example, up to `tries` times, so hypothesis sees no filtering; a space where
  nearly nothing checks is `reject()`ed and hypothesis' health check says so.
- `inputs(compiled, batch=...)`: a batch of inputs for the model, every value drawn through hypothesis
  (floats bounded and finite; ints below the vocabulary of the embedding that reads them), as torch
  tensors in declaration order.
- `boards(max_tile=2048)`: 2048 boards as the environment observes them (`int64[4, 4]` tile exponents,
  0 empty; at least two tiles, none above `max_tile`).

Every random value is drawn through hypothesis (no torch or numpy RNG inside a strategy), so failing
examples shrink and replay. Torch-heavy properties want `@settings(deadline=None)`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = ["boards", "inputs", "variants"]


def variants(source: str, model: str, path: str | None = None, tries: int = 20,
             **params: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The `CompiledModel`s of `model` over the given parameter strategies (see the module docstring)."""
    from mdl.compiler.api import instantiate
    from mdl.compiler.check import analyze
    from mdl.dsl import ast
    from mdl.dsl.diagnostics import CompileError

    analysis = analyze(source, path)
    if not analysis.ok:
        raise CompileError(analysis.diagnostics)
    definition = analysis.scope.definitions.get(model)
    if not isinstance(definition, ast.Model):
        raise ValueError(f"no model `{model}` in the source")
    known = {p.name for p in definition.params}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"model `{model}` has no parameter {', '.join(unknown)} (its parameters: "
                         f"{', '.join(sorted(known)) or 'none'})")

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        for _ in range(tries):
            args = {name: draw(strategy) for name, strategy in params.items()}
            try:
                return instantiate(analysis, model, args, source, path)
            except CompileError:
                continue
        from hypothesis import reject

        reject()

    return build()


def inputs(compiled: Any, batch: int | st.SearchStrategy[int] | None = None,
           bound: float = 4.0) -> st.SearchStrategy[list]:
    """A batch of inputs for `compiled` (see the module docstring): B is `batch` (a number or a
    strategy; default 1..4), other symbolic dims are drawn from 1..4."""
    from mdl.compiler.lower import input_vocab

    graph = compiled.ir
    batches = (st.integers(1, 4) if batch is None else batch if isinstance(batch, st.SearchStrategy)
               else st.just(batch))

    @st.composite
    def build(draw: st.DrawFn) -> list:
        import torch

        sizes = {"B": draw(batches)}
        tensors = []
        for name, t in graph.input_types().items():
            shape = []
            for d in t.shape:
                if isinstance(d, str) and d not in sizes:
                    sizes[d] = draw(st.integers(1, 4))
                shape.append(d if isinstance(d, int) else sizes[d])
            if t.dtype == "int":
                elements = st.integers(0, input_vocab(graph, name) - 1)
                array = draw(hnp.arrays(np.int64, tuple(shape), elements=elements, fill=elements))
            else:
                elements = st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=32)
                array = draw(hnp.arrays(np.float32, tuple(shape), elements=elements, fill=elements))
            tensors.append(torch.from_numpy(np.ascontiguousarray(array)))
        return tensors

    return build()


def boards(max_tile: int = 2048) -> st.SearchStrategy[np.ndarray]:
    """2048 boards: `int64[4, 4]` exponents (tile 2**e, 0 empty), at least two tiles, none above `max_tile`."""
    if max_tile < 4 or max_tile & (max_tile - 1):
        raise ValueError(f"max_tile must be a power of two, 4 or more (got {max_tile})")
    top = int(math.log2(max_tile))

    @st.composite
    def build(draw: st.DrawFn) -> np.ndarray:
        # empty cells as the fill, tiles drawn sparsely over it: small examples stay small (shrinking)
        board = draw(hnp.arrays(np.int64, (4, 4), elements=st.integers(0, top), fill=st.just(0))).copy()
        first = draw(st.integers(0, 15))  # two cells that hold a tile whatever the array drew
        for cell in (first, (first + 1 + draw(st.integers(0, 14))) % 16):
            if board.flat[cell] == 0:
                board.flat[cell] = draw(st.integers(1, top))
        return board

    return build()
