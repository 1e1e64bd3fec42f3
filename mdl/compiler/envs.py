"""Environment kinds as data: what `env = game2048(envs=64)` or `env = gym("CartPole-v1")` means.

Each kind is one `EnvKind` entry in `ENV_KINDS` (gymnasium describes its environments the same way, as
registry entries): its arguments, the docs the editor shows, its observation and action spaces
(fixed, or resolved from the id the experiment names), the runtime's entry point as a dotted string,
its defaults for the trainer, and the per-episode metrics its `info` carries. The checker, completion,
hover, training and eval read the entry; none of them compares a kind's name. `register` adds a kind
(a test's toy, or a future built-in) and `unregister` takes it away.

This module imports neither torch nor gymnasium: the gym kind's resolver imports gymnasium when an
experiment names a gym environment, and the runtime loads an entry point only when it makes envs.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mdl.compiler.args import Arg
from mdl.compiler.ir import TensorType

Spaces = tuple[TensorType, int]  # (observation type without the batch dim, number of discrete actions)


@dataclass(frozen=True, slots=True)
class EnvKind:
    """One kind of environment an experiment's `env` can name.

    `observation`/`actions` are the fixed spaces of a kind with one environment (`game2048`); a kind that
    takes an id (`gym("CartPole-v1")`) has `ids` (the known ids) and `spaces` (an id's spaces, or an error
    message) instead. `entry_point` is `"module:function"`, called as `function(num_envs, seed=..., id=...)`
    (the id only for kinds that take one) and returning a gymnasium vector env that autoresets NEXT_STEP.
    `metrics` names what `info` reports per finished episode besides the return (2048's `score` and
    `max_tile`); `renders` says whether `mdlc eval --render` can draw it; `orthogonal_init` is
    `ppo(orthogonal_init=none)`'s meaning for it; `eval_envs` is how many copies eval steps together.
    """

    name: str
    args: tuple[Arg, ...]
    doc: str
    example: str
    entry_point: str
    id: str = ""
    observation: TensorType | None = None
    actions: int | None = None
    ids: Callable[[], tuple[str, ...]] | None = None
    spaces: Callable[[str], Spaces | str] | None = None
    metrics: tuple[str, ...] = ()
    renders: bool = False
    orthogonal_init: bool = True
    eval_envs: int = 16

    @property
    def takes_id(self) -> bool:
        return self.spaces is not None

    def resolve(self, env_id: str | None = None) -> Spaces | str:
        """The spaces of this kind (of `env_id` for a kind that takes one), or an error message."""
        if self.spaces is not None:
            return self.spaces(env_id or "")
        assert self.observation is not None and self.actions is not None, self.name
        return self.observation, self.actions

    def entry(self) -> Callable[..., Any]:
        """The runtime's constructor of this kind's vector env (imported on first use)."""
        module, _, function = self.entry_point.partition(":")
        return getattr(importlib.import_module(module), function)


# ---------------------------------------------------------------------------------------- gymnasium
@functools.cache
def gym_ids() -> tuple[str, ...]:
    import gymnasium

    return tuple(gymnasium.envs.registry.keys())


@functools.cache
def gym_spaces(env_id: str) -> Spaces | str:
    """(observation type, action count) of an installed gymnasium id, or an error message."""
    import gymnasium
    from gymnasium import spaces

    try:
        env = gymnasium.make(env_id)
    except Exception as exc:  # a registered env whose extra (box2d, mujoco, ...) is missing, say
        return f"cannot create `{env_id}`: {exc}"
    try:
        obs, act = env.observation_space, env.action_space
    finally:
        env.close()
    if isinstance(obs, spaces.Box):
        dtype = "int" if obs.dtype.kind in "iu" else "float"
        obs_type = TensorType(dtype, tuple(int(d) for d in obs.shape))
    elif isinstance(obs, spaces.Discrete):
        obs_type = TensorType("int", ())
    elif isinstance(obs, spaces.MultiDiscrete | spaces.MultiBinary):
        obs_type = TensorType("int", tuple(int(d) for d in obs.shape))
    else:
        return f"`{env_id}` has a {type(obs).__name__} observation space; only Box and Discrete are supported"
    if not isinstance(act, spaces.Discrete):
        return f"`{env_id}` has a {type(act).__name__} action space; only Discrete actions are supported"
    return obs_type, int(act.n)


# ------------------------------------------------------------------------------------------ registry
ENV_KINDS: dict[str, EnvKind] = {}


def register(kind: EnvKind) -> EnvKind:
    """Add `kind` to the registry (replacing one of the same name) and return it."""
    ENV_KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    ENV_KINDS.pop(name, None)


register(EnvKind(
    "game2048", (Arg("envs", "int", 64, low=1, high=1_000_000, doc="parallel boards"),),
    "The built-in 2048 environment (int[4, 4] boards, 4 actions).", "game2048(envs=64)",
    "mdl.runtime.envs:make_game2048", id="mdl/Game2048-v0", observation=TensorType("int", (4, 4)), actions=4,
    metrics=("score", "max_tile"), renders=True, orthogonal_init=False, eval_envs=64))
register(EnvKind(
    "gym", (Arg("envs", "int", 8, low=1, high=100_000, doc="parallel environments"),),
    "Any installed gymnasium environment.", 'gym("CartPole-v1", envs=8)',
    "mdl.runtime.envs:make_gym", ids=gym_ids, spaces=gym_spaces))
