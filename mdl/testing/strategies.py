"""hypothesis strategies for users' property tests of their designs (`pip install mdl[testing]`).

- `designs(...)`: valid random designs (`Design`: the source and what it must compile to: parameter
  count, input and output shapes, every node's op, params and shape, worked out independently of
  `mdl.compiler`), grown statement by statement so that nothing is filtered. Knobs: `primitives` (the
  primitives the body may use; `linear` always, as the heads need it), `statements=(lo, hi)` (the
  model body's top-level statements), `depth` (how deeply `repeat`s nest), `blocks=(lo, hi)` (blocks
  of the file's own), `stdlib` (may import `stdlib.blocks`), `max_width`, `experts=(lo, hi)` per `moe`.
  Failures shrink towards the smallest design: `designs(statements=(0, 2), blocks=(0, 1))` reaches a
  three-node model (input, policy, value);
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
- `observations(env)`: observations of an environment as its policy sees them: `game2048` boards, or
  arrays within a gymnasium environment's observation space (`"CartPole-v1"`, an `Env`, or a `Space`).

Every random value is drawn through hypothesis (no torch or numpy RNG inside a strategy), so failing
examples shrink and replay. Torch-heavy properties want `@settings(deadline=None)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mdl.testing.generator import Design, FileBuilder, Knobs

__all__ = ["Design", "boards", "designs", "inputs", "observations", "variants"]


def designs(*, primitives: Iterable[str] | None = None, statements: tuple[int, int] = (1, 4), depth: int = 1,
            blocks: tuple[int, int] = (1, 3), stdlib: bool = True, max_width: int = 64,
            experts: tuple[int, int] = (1, 4)) -> st.SearchStrategy[Design]:
    """Valid random designs with what they must compile to (see the module docstring)."""
    from mdl.testing.generator.interpreter import PRIMITIVE_ARGS

    chosen = frozenset(PRIMITIVE_ARGS if primitives is None else primitives)
    unknown = sorted(chosen - set(PRIMITIVE_ARGS))
    if unknown:
        raise ValueError(f"unknown primitive {', '.join(unknown)} (known: {', '.join(sorted(PRIMITIVE_ARGS))})")
    for name, (lo, hi) in (("statements", statements), ("blocks", blocks), ("experts", experts)):
        if not 0 <= lo <= hi or (name == "experts" and lo < 1):
            raise ValueError(f"{name} must be (lo, hi) with {int(name == 'experts')} <= lo <= hi, got {(lo, hi)}")
    if depth < 0 or max_width < 4:
        raise ValueError("depth must be 0 or more and max_width 4 or more")
    knobs = Knobs(chosen, statements, depth, blocks, stdlib, max_width, experts)

    @st.composite
    def build(draw: st.DrawFn) -> Design:
        return FileBuilder(draw, knobs).build()

    return build()


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


def observations(env: Any, bound: float = 10.0) -> st.SearchStrategy[np.ndarray]:
    """One observation of `env` as its policy sees it: `"game2048"` (or `"mdl/Game2048-v0"`) draws
    `boards()`; a gymnasium id, an `Env` or a `Space` draws arrays inside the observation space (Box,
    Discrete, MultiDiscrete, MultiBinary), unbounded Box sides clipped to `±bound`."""
    if env in ("game2048", "mdl/Game2048-v0"):
        return boards()
    from gymnasium import Env, Space

    if isinstance(env, str):
        import gymnasium

        import mdl.runtime.envs  # noqa: F401  (registers mdl/Game2048-v0)

        made = gymnasium.make(env)
        try:
            space = made.observation_space
        finally:
            made.close()
    else:
        space = env.observation_space if isinstance(env, Env) else env
    if not isinstance(space, Space):
        raise TypeError(f"observations() takes an env id, a gymnasium Env or a Space, not {type(env).__name__}")
    return _within(space, bound)


def _within(space: Any, bound: float) -> st.SearchStrategy[np.ndarray]:
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        start = int(space.start)
        return st.integers(start, start + int(space.n) - 1).map(lambda v: np.asarray(v, dtype=space.dtype))
    if isinstance(space, spaces.MultiBinary):
        return hnp.arrays(space.dtype, space.shape, elements=st.integers(0, 1))
    if isinstance(space, spaces.MultiDiscrete):
        highs = [int(n) - 1 for n in np.asarray(space.nvec).flat]
        return st.tuples(*(st.integers(0, h) for h in highs)).map(
            lambda vs: np.asarray(vs, dtype=space.dtype).reshape(space.shape))
    if not isinstance(space, spaces.Box):
        raise ValueError(f"observations() draws Box, Discrete, MultiDiscrete and MultiBinary spaces, "
                         f"not {type(space).__name__}")
    integral = np.issubdtype(space.dtype, np.integer)

    def side(lo: float, hi: float) -> st.SearchStrategy[Any]:
        lo, hi = max(float(lo), -bound), min(float(hi), bound)
        if integral:
            return st.integers(math.ceil(lo), math.floor(hi))
        return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=32 if space.dtype == np.float32 else 64)

    lows, highs = np.broadcast_to(space.low, space.shape), np.broadcast_to(space.high, space.shape)
    if (lows == lows.flat[0]).all() and (highs == highs.flat[0]).all():  # one range: an image, a board
        return hnp.arrays(space.dtype, space.shape, elements=side(lows.flat[0], highs.flat[0]))
    return st.tuples(*(side(lo, hi) for lo, hi in zip(lows.flat, highs.flat, strict=True))).map(
        lambda vs: np.asarray(vs, dtype=space.dtype).reshape(space.shape))
