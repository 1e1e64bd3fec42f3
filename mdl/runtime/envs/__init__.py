"""Environments. Importing this package registers ``mdl/Game2048-v0`` with gymnasium.

Trainers (and anything that calls ``gymnasium.make("mdl/Game2048-v0")``) import ``mdl.runtime.envs``
first; ``import mdl`` alone does not, so the front end never loads numpy or gymnasium. Without the
import, ``gymnasium.make("mdl.runtime.envs:mdl/Game2048-v0")`` imports it on the way.

- `Game2048VectorEnv` / `make_game2048(num_envs, seed=None)`: the batched numpy env (gymnasium
  ``VectorEnv``, NEXT_STEP autoreset); ``gymnasium.make_vec("mdl/Game2048-v0", num_envs=N,
  vectorization_mode="vector_entry_point")`` builds it too.
- `Game2048Env`: one game (``gymnasium.Env``), the registered single env.
- `make_gym(num_envs, seed=None, id=...)`: a sync vector env of any installed gymnasium id.

`make_game2048` and `make_gym` are the entry points of the `game2048` and `gym` env kinds
(mdl.compiler.envs).
"""

from __future__ import annotations

import gymnasium

from mdl.runtime.envs.game2048 import Game2048Env, Game2048VectorEnv, make_game2048

__all__ = ["GAME2048_ID", "Game2048Env", "Game2048VectorEnv", "make_game2048", "make_gym", "register_envs"]

GAME2048_ID = "mdl/Game2048-v0"


def register_envs() -> None:
    """Register ``mdl/Game2048-v0`` (idempotent: a second call, or a re-import, does nothing)."""
    if GAME2048_ID in gymnasium.registry:
        return
    gymnasium.register(
        id=GAME2048_ID,
        entry_point="mdl.runtime.envs.game2048:Game2048Env",
        vector_entry_point="mdl.runtime.envs.game2048:Game2048VectorEnv",
    )


register_envs()


def make_gym(num_envs: int, seed: int | None = None, id: str = "CartPole-v1") -> gymnasium.vector.VectorEnv:
    """`num_envs` copies of gymnasium id `id`, stepped in this process (NEXT_STEP autoreset, gymnasium's
    default); `seed` is given at the first reset, as for every kind."""
    return gymnasium.make_vec(id, num_envs=num_envs, vectorization_mode="sync")
