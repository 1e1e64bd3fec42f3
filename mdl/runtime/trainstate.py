"""The state of a training run, saved and restored in one place: `TrainState`.

Everything a checkpoint holds lives here (the module and optimizer, the counters, the episode
statistics, the reward scaler, the observation statistics of `norm_obs`, every RNG, the observation
and mask the next rollout starts from and, for the 2048 env, the boards), with one `state_dict` / `load_state_dict` pair, so that save and
restore cannot drift apart. A checkpoint holds only tensors and plain containers of primitives, so
`torch.load(weights_only=True)` reads it (the 2048 env's uint64 boards go as int64 bit patterns and the
numpy bit generator's 128-bit state as JSON text).

Gym envs cannot save their state: a restored gym run resets its envs with seed `seed + update` (fresh
episodes, running returns dropped), so it is not bit-exact; a 2048 run is.
"""

from __future__ import annotations

import json
import random
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mdl.runtime import ppo
from mdl.runtime.obsnorm import ObsNormalizer

TILES = (256, 512, 1024, 2048)  # summary.json `tile_rates`
HISTORY = 100  # episodes in the running means (mean_return, mean_score, tile rates)
CHECKPOINT_FORMAT = 1


class EpisodeStats:
    """Finished episodes: running returns per env, and the last HISTORY returns (and 2048 games)."""

    def __init__(self, num_envs: int):
        self.running = np.zeros(num_envs, dtype=np.float64)
        self.episodes = 0
        self.returns: deque[float] = deque(maxlen=HISTORY)
        self.scores: deque[int] = deque(maxlen=HISTORY)
        self.max_tiles: deque[int] = deque(maxlen=HISTORY)

    def record(self, rewards: np.ndarray, done: np.ndarray, infos: dict[str, Any]) -> None:
        # Reset steps return reward 0, so adding every reward and zeroing on done counts each episode once.
        self.running += rewards
        for i in np.flatnonzero(done):
            self.returns.append(float(self.running[i]))
            self.running[i] = 0.0
            self.episodes += 1
        if "_episode_score" in infos:
            ended = np.asarray(infos["_episode_score"], dtype=bool)
            self.scores.extend(int(s) for s in infos["episode_score"][ended])
            self.max_tiles.extend(int(t) for t in infos["episode_max_tile"][ended])

    def mean_return(self) -> float | None:
        return float(np.mean(self.returns)) if self.returns else None

    def mean_score(self) -> float | None:
        return float(np.mean(self.scores)) if self.scores else None

    def max_tile_distribution(self) -> dict[str, float]:
        """Fraction of the last games that ended with each max tile ("256": 0.4, ...)."""
        if not self.max_tiles:
            return {}
        tiles, counts = np.unique(np.asarray(self.max_tiles), return_counts=True)
        return {str(int(t)): float(c) / len(self.max_tiles) for t, c in zip(tiles, counts, strict=True)}

    def tile_rates(self) -> dict[str, float]:
        """Fraction of the last games that reached at least each tile of TILES."""
        tiles = np.asarray(self.max_tiles)
        return {str(t): float((tiles >= t).mean()) if tiles.size else 0.0 for t in TILES}

    def state(self) -> dict[str, Any]:
        return {"running": torch.from_numpy(self.running.copy()), "episodes": self.episodes,
                "returns": list(self.returns), "scores": list(self.scores), "max_tiles": list(self.max_tiles)}

    def load_state(self, state: dict[str, Any], running: bool = True) -> None:
        if running:
            self.running = state["running"].numpy().astype(np.float64).copy()
        self.episodes = int(state["episodes"])
        self.returns = deque((float(r) for r in state["returns"]), maxlen=HISTORY)
        self.scores = deque((int(r) for r in state["scores"]), maxlen=HISTORY)
        self.max_tiles = deque((int(r) for r in state["max_tiles"]), maxlen=HISTORY)


def _plain_env_state(state: dict[str, Any]) -> dict[str, Any]:
    """The 2048 env's `get_state()` in weights_only-loadable form (uint64 boards as int64 bit patterns,
    the numpy bit generator state as JSON text: its 128-bit integers are not tensors)."""
    return {"num_envs": int(state["num_envs"]),
            "boards": torch.from_numpy(np.asarray(state["boards"], dtype=np.uint64).view(np.int64).copy()),
            "scores": torch.from_numpy(np.asarray(state["scores"], dtype=np.int64).copy()),
            "lengths": torch.from_numpy(np.asarray(state["lengths"], dtype=np.int64).copy()),
            "needs_reset": torch.from_numpy(np.asarray(state["needs_reset"], dtype=bool).copy()),
            "rng": json.dumps(state["rng"])}


def _env_state_from_plain(state: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `_plain_env_state`: what the 2048 env's `set_state` takes."""
    return {"num_envs": int(state["num_envs"]), "boards": state["boards"].numpy().view(np.uint64).copy(),
            "scores": state["scores"].numpy().copy(), "lengths": state["lengths"].numpy().copy(),
            "needs_reset": state["needs_reset"].numpy().copy(), "rng": json.loads(state["rng"])}


def _numpy_rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_rng_state(state: dict[str, Any]) -> None:
    np.random.set_state((state["name"], state["keys"].numpy().astype(np.uint32), int(state["pos"]),
                         int(state["has_gauss"]), float(state["cached_gaussian"])))


def _python_rng_state() -> dict[str, Any]:
    version, internal, gauss_next = random.getstate()
    return {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next}


def _set_python_rng_state(state: dict[str, Any]) -> None:
    internal = tuple(int(x) for x in state["internal"].tolist())
    random.setstate((int(state["version"]), internal, state["gauss_next"]))


def observations(obs: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Env observations as the model's input tensor (int designs take torch.long, float ones float32)."""
    return torch.as_tensor(np.asarray(obs), device=device).to(dtype)


def action_mask(infos: dict[str, Any], num_envs: int, actions: int, device: torch.device) -> torch.Tensor:
    """The envs' `action_mask` info as a bool tensor [num_envs, actions]; all legal when the env gives
    none (gym ids)."""
    mask = infos.get("action_mask")
    if mask is None:  # gym envs: every action is legal
        return torch.ones(num_envs, actions, dtype=torch.bool, device=device)
    return torch.as_tensor(np.asarray(mask, dtype=bool), device=device)


@dataclass
class TrainState:
    """One run's training state between updates."""

    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator  # the minibatch permutations
    envs: Any  # the vector env
    stats: EpisodeStats
    scaler: ppo.RewardScaler | None
    seed: int
    actions: int  # the env's action count
    obs_dtype: torch.dtype
    device: torch.device
    next_obs: torch.Tensor | None = None  # what the next rollout starts from
    next_mask: torch.Tensor | None = None  # its legal actions (None: the env has no mask)
    last_done: torch.Tensor | None = None  # did the previous step end an episode (per env)?
    update: int = 0
    step: int = 0
    wall_seconds: float = 0.0  # training time before this process took the run over
    obs_norm: ObsNormalizer | None = None  # `norm_obs`: next_obs and the rollout hold normalised observations

    @property
    def masked(self) -> bool:
        return self.next_mask is not None

    def observe(self, obs: Any) -> torch.Tensor:
        """The envs' observations as the model's input: normalised (updating the running statistics)
        when the run has `norm_obs`."""
        tensor = observations(obs, self.obs_dtype, self.device)
        return self.obs_norm(tensor) if self.obs_norm is not None else tensor

    def reset_envs(self, seed: int) -> None:
        """Start every env afresh (seeded) and take its first observation."""
        obs, infos = self.envs.reset(seed=seed)
        self.next_obs = self.observe(obs)
        num_envs = self.next_obs.shape[0]
        # 2048 masks illegal moves; gym ids have no mask
        self.next_mask = action_mask(infos, num_envs, self.actions, self.device) if "action_mask" in infos else None
        if self.last_done is None:
            self.last_done = torch.zeros(num_envs, dtype=torch.bool, device=self.device)

    def state_dict(self, wall_seconds: float) -> dict[str, Any]:
        """The checkpoint's contents (`experiment`, `seed`, `architecture_hash` are added by the trainer)."""
        state = {
            "format": CHECKPOINT_FORMAT, "update": self.update, "step": self.step, "wall_seconds": wall_seconds,
            "model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(), "shuffle_rng": self.shuffle.get_state(),
            "numpy_rng": _numpy_rng_state(), "python_rng": _python_rng_state(),
            "episode_stats": self.stats.state(),
            "reward_scaler": self.scaler.state() if self.scaler is not None else None,
            "obs_norm": self.obs_norm.state() if self.obs_norm is not None else None,
            "next_obs": self.next_obs.cpu(), "next_mask": self.next_mask.cpu() if self.masked else None,
            "last_done": self.last_done.cpu(),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        if hasattr(self.envs, "get_state"):
            state["env_state"] = _plain_env_state(self.envs.get_state())
        return state

    def load_state_dict(self, st: dict[str, Any]) -> None:
        """Continue from a checkpoint's contents (the inverse of `state_dict`)."""
        dev = self.device
        self.module.load_state_dict(st["model"])
        self.optimizer.load_state_dict(st["optimizer"])
        self.update, self.step = int(st["update"]), int(st["step"])
        self.wall_seconds = float(st.get("wall_seconds", 0.0))
        if self.obs_norm is not None and st.get("obs_norm") is not None:  # before the envs reset (they update it)
            self.obs_norm.load_state(st["obs_norm"])
        if "env_state" in st and hasattr(self.envs, "set_state"):
            self.envs.set_state(_env_state_from_plain(st["env_state"]))
            self.stats.load_state(st["episode_stats"])
            self.next_obs = st["next_obs"].to(device=dev, dtype=self.obs_dtype)
            self.next_mask = st["next_mask"].to(dev) if st.get("next_mask") is not None else None
            self.last_done = st["last_done"].to(dev)
        else:  # gym envs: their state is not saved; start fresh episodes (not bit-exact)
            self.stats.load_state(st["episode_stats"], running=False)
            self.reset_envs(self.seed + self.update)
        if self.scaler is not None and st.get("reward_scaler") is not None:
            self.scaler.load_state(st["reward_scaler"])
        torch.set_rng_state(st["torch_rng"])
        self.shuffle.set_state(st["shuffle_rng"])
        _set_numpy_rng_state(st["numpy_rng"])
        if "python_rng" in st:
            _set_python_rng_state(st["python_rng"])
        if "cuda_rng" in st and dev.type == "cuda":
            torch.cuda.set_rng_state(st["cuda_rng"], dev)


__all__ = ["HISTORY", "TILES", "EpisodeStats", "TrainState", "action_mask", "observations"]
