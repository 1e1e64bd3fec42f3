"""Greedy evaluation of a trained policy: `mdlc eval RUN_OR_CHECKPOINT`.

`load_policy(path)` rebuilds the design of a run from its own files (the `.mdl` copy named by
`config.json["source"]`, the experiment named by `config.json["experiment"]`), checks that its
architecture hash is the checkpoint's, and loads the weights (weights_only) into an eval-mode module
(a `norm_obs` run's module has its frozen observation statistics in front: it takes raw observations).
`path` is a run directory (its newest loadable checkpoint, a damaged newer one skipped) or one
checkpoint file `<run>/checkpoints/step_*.pt`. The export command reuses it.

`evaluate(policy, episodes, seed)` plays exactly `episodes` episodes with the masked argmax action
(an action the env marks illegal in `info["action_mask"]` is never taken) and returns their statistics.
The envs are batched (2048: min(episodes, 64) boards; gym ids: min(episodes, 16) sync envs) and each
env slot plays a fixed quota of episodes, so the episodes counted are not biased toward short ones
(stopping at the first `episodes` finished games would be). With `render` (a rich Console, 2048 only)
the games are played one at a time on a single board drawn live.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mdl.compiler.experiment import ExperimentSpec
from mdl.runtime import obsnorm, ppo
from mdl.runtime.checkpoint import load_checkpoint
from mdl.runtime.errors import DesignChanged, EvalError, RunNotFound
from mdl.runtime.rollout import make_envs
from mdl.runtime.rundir import RunDir
from mdl.runtime.train import resolve_device
from mdl.runtime.trainstate import TILES, action_mask

ACTION_NAMES = ("up", "right", "down", "left")  # 2048's actions 0..3


@dataclasses.dataclass(frozen=True)
class LoadedPolicy:
    """A trained model ready to act: `module` is in eval mode on `device` with the checkpoint's weights."""

    spec: ExperimentSpec
    module: torch.nn.Module
    run_dir: Path
    checkpoint: Path
    step: int
    config: dict[str, Any]
    device: torch.device
    skipped: tuple[tuple[Path, str], ...] = ()  # newer checkpoints that did not load (run-directory paths)

    @property
    def obs_dtype(self) -> torch.dtype:
        obs_type = next(iter(self.spec.graph.input_types().values()))
        return torch.long if obs_type.dtype == "int" else torch.float32


# ---------------------------------------------------------------------------------------------------
# Loading


def load_policy(path: str | Path, device: str = "cpu") -> LoadedPolicy:
    """The trained policy of a run directory (its newest loadable checkpoint) or of one checkpoint file.

    Raises RunNotFound for a path that is not a run or a checkpoint in one, DesignChanged when the
    run's design copy has errors or an architecture other than the checkpoint's, and EvalError for a
    run without a loadable checkpoint or a checkpoint file that does not load (truncated, corrupt).
    TrainError for a device that is not there.
    """
    from mdl.compiler.api import architecture_hash
    from mdl.compiler.lower import lower

    run, file = RunDir.of(path)
    run_dir, config = run.path, run.read_config()
    dev = resolve_device(device)
    skipped: tuple[tuple[Path, str], ...] = ()
    if file is None:
        found = run.latest_checkpoint()
        if found is None:
            raise EvalError(f"no loadable checkpoint in {run.checkpoints}; nothing to evaluate")
        file, state, skipped_list = found
        skipped = tuple(skipped_list)
    else:
        try:
            state = load_checkpoint(file)
        except Exception as exc:  # a truncated zip, a bad pickle, an unreadable file
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise EvalError(f"{file} is not a readable checkpoint ({type(exc).__name__}: {first})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or "step" not in state:
        raise EvalError(f"{file} is not a training checkpoint (no model weights and step)")

    spec, _text, _source = run.design(config)
    if state.get("experiment", spec.name) != spec.name:
        raise EvalError(f"{file} is a checkpoint of experiment `{state['experiment']}`, not `{spec.name}`")
    saved_hash = state.get("architecture_hash") or config.get("architecture_hash")
    current = architecture_hash(spec.graph)
    if saved_hash is not None and saved_hash != current:
        raise DesignChanged(
            f"the design copy of experiment `{spec.name}` in {run_dir} has a different architecture from "
            f"{file.name} (architecture hash {current[:12]}, checkpoint {str(saved_hash)[:12]}); "
            "restore the run's .mdl copy to evaluate it")

    with torch.random.fork_rng(devices=[]):  # building the module draws initial weights: leave the RNG be
        module = lower(spec.graph)
    try:
        module.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EvalError(f"the weights in {file} do not fit experiment `{spec.name}` ({first})") from None
    if state.get("obs_norm") is not None:  # a norm_obs run: its frozen statistics go in front of the design
        obsnorm.attach(module, obsnorm.frozen_layer(state["obs_norm"]))
    module.to(dev).eval()
    return LoadedPolicy(spec=spec, module=module, run_dir=run_dir, checkpoint=file, step=int(state["step"]),
                        config=config, device=dev, skipped=skipped)


# ---------------------------------------------------------------------------------------------------
# Acting


def greedy_actions(logits: torch.Tensor, action_mask: torch.Tensor | None) -> torch.Tensor:
    """The most likely legal action of each row: argmax of `ppo.masked_logits` (illegal logits become
    the dtype's most negative value; ties go to the lowest index). Legal logits are first kept above
    that value (nan, -inf and huge negatives raised to half of it), so even a broken model never
    picks an illegal action while a legal one exists."""
    low = torch.finfo(logits.dtype).min / 2
    logits = torch.nan_to_num(logits, nan=low).clamp(min=low)
    return ppo.masked_logits(logits, action_mask).argmax(dim=-1)


def _act(policy: LoadedPolicy, obs: Any, mask: torch.Tensor) -> torch.Tensor:
    """Greedy actions for a batch of observations (converted as the trainer does: int designs take
    torch.long, float designs float32)."""
    with torch.inference_mode():
        x = torch.as_tensor(np.asarray(obs), device=policy.device).to(policy.obs_dtype)
        return greedy_actions(policy.module(x)["policy"], mask)


def _quotas(episodes: int, slots: int) -> np.ndarray:
    """Episodes per env slot, as even as possible, summing to `episodes`."""
    return np.array([episodes // slots + (i < episodes % slots) for i in range(slots)], dtype=np.int64)


def _play_batched(policy: LoadedPolicy, episodes: int, seed: int) -> list[dict[str, Any]]:
    """Exactly `episodes` finished episodes (returns, lengths; 2048 scores and max tiles), slot by slot."""
    spec = policy.spec
    metrics = spec.env.definition.metrics
    slots = min(episodes, spec.env.definition.eval_envs)
    quota = _quotas(episodes, slots)
    done_per_slot: list[list[dict[str, Any]]] = [[] for _ in range(slots)]
    returns = np.zeros(slots, dtype=np.float64)
    lengths = np.zeros(slots, dtype=np.int64)
    resetting = np.zeros(slots, dtype=bool)  # NEXT_STEP autoreset: this step starts a new episode
    envs = make_envs(dataclasses.replace(spec.env, envs=slots), seed)
    try:
        obs, infos = envs.reset(seed=seed)
        while any(len(d) < q for d, q in zip(done_per_slot, quota, strict=True)):
            mask = action_mask(infos, slots, spec.env.actions, policy.device)
            actions = _act(policy, obs, mask)
            obs, reward, terminated, truncated, infos = envs.step(actions.cpu().numpy())
            playing = ~resetting
            returns[playing] += np.asarray(reward, dtype=np.float64)[playing]
            lengths[playing] += 1
            done = np.logical_or(terminated, truncated) & playing
            for i in np.flatnonzero(done):
                if len(done_per_slot[i]) < quota[i]:
                    episode: dict[str, Any] = {"return": float(returns[i]), "length": int(lengths[i])}
                    for name in metrics:  # the kind's per-episode metrics, as `info["episode_<name>"]`
                        episode[name] = int(infos[f"episode_{name}"][i])
                    done_per_slot[i].append(episode)
                returns[i], lengths[i] = 0.0, 0
            resetting = done
    finally:
        envs.close()
    return [e for slot in done_per_slot for e in slot]


def _play_rendered(policy: LoadedPolicy, episodes: int, seed: int, console: Any, delay: float) -> list[dict[str, Any]]:
    """2048 games one at a time on a single board: drawn live on a terminal console, `delay` seconds
    between moves; on any other console (a file, a pipe) each game's final board is printed instead."""
    from contextlib import nullcontext

    from rich.live import Live

    from mdl.runtime.envs import Game2048Env

    live_mode = console.is_terminal and not console.is_dumb_terminal
    env = Game2048Env()
    played: list[dict[str, Any]] = []
    try:
        obs, info = env.reset(seed=seed)
        view = board_view(obs, 0, 0, None, 1, episodes)
        with Live(view, console=console, auto_refresh=False) if live_mode else nullcontext() as live:
            for k in range(1, episodes + 1):
                if k > 1:
                    obs, info = env.reset()
                total, moves, terminated, truncated = 0.0, 0, False, False
                if live is not None:
                    live.update(board_view(obs, 0, 0, None, k, episodes), refresh=True)
                while not (terminated or truncated):
                    mask = torch.as_tensor(np.asarray(info["action_mask"], dtype=bool), device=policy.device)
                    action = int(_act(policy, obs[None], mask[None])[0])
                    obs, reward, terminated, truncated, info = env.step(action)
                    total += float(reward)
                    moves += 1
                    view = board_view(obs, int(info["score"]), moves, action, k, episodes, over=terminated)
                    if live is not None:
                        live.update(view, refresh=True)
                        if delay > 0:
                            time.sleep(delay)
                if live is None:
                    console.print(view)
                played.append({"return": total, "length": moves, "score": int(info["score"]),
                               "max_tile": int(info["max_tile"])})
    finally:
        env.close()
    return played


_TILE_STYLES = {  # exponent -> style; larger tiles share the last one
    1: "#776e65 on #eee4da", 2: "#776e65 on #ede0c8", 3: "bold #f9f6f2 on #f2b179",
    4: "bold #f9f6f2 on #f59563", 5: "bold #f9f6f2 on #f67c5f", 6: "bold #f9f6f2 on #f65e3b",
    7: "bold #f9f6f2 on #edcf72", 8: "bold #f9f6f2 on #edcc61", 9: "bold #f9f6f2 on #edc850",
    10: "bold #f9f6f2 on #edc53f", 11: "bold #f9f6f2 on #edc22e", 12: "bold #f9f6f2 on #3c3a32",
}
_CELL = 7  # characters per cell


def board_view(exponents: Any, score: int, moves: int, action: int | None, episode: int, episodes: int,
               over: bool = False):
    """A rich renderable of one 2048 board (exponents [4, 4]): colored tiles, empty cells blank, and a
    status line (episode, score, moves, the last move)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    grid = Table(show_header=False, box=box.SQUARE, show_lines=True, padding=0, pad_edge=False)
    for _ in range(4):
        grid.add_column(width=_CELL, no_wrap=True)  # the labels come centered
    for row in np.asarray(exponents).reshape(4, 4):
        cells = []
        for e in row.tolist():
            if e == 0:
                cells.append(Text("\n".join([" " * _CELL] * 3)))
            else:
                label = str(1 << int(e))
                cells.append(Text(f"{'':{_CELL}}\n{label:^{_CELL}}\n{'':{_CELL}}",
                                  style=_TILE_STYLES[min(int(e), 12)]))
        grid.add_row(*cells)
    move = "-" if action is None else ACTION_NAMES[action]
    status = Text.assemble(("episode ", "dim"), f"{episode}/{episodes}", ("  score ", "dim"), f"{score:,}",
                           ("  moves ", "dim"), str(moves), ("  move ", "dim"), move)
    if over:
        status.append("  game over", style="bold red")
    return Group(status, grid)


# ---------------------------------------------------------------------------------------------------
# Evaluating


def evaluate(policy: LoadedPolicy, episodes: int = 100, seed: int = 0, render: Any = None,
             delay: float = 0.05, threads: int | None = 1) -> dict[str, Any]:
    """Play `episodes` greedy episodes and return their statistics.

    Keys: `experiment`, `checkpoint`, `step`, `run_seed` (the training seed), `seed` (this evaluation's),
    `episodes`, `mean_return`, `std_return`, `min_return`, `max_return`, `mean_length`; for 2048 also
    `mean_score`, `median_score`, `max_score`, `tile_rates` (fraction of games reaching at least 256,
    512, 1024, 2048) and `max_tile_distribution` (fraction of games ending with each max tile).
    The result is a function of the checkpoint and `seed` (on one device). `render` (a rich Console,
    2048 only) plays the games one at a time on one board drawn live, `delay` seconds between moves.

    `threads`: torch's CPU threads while playing (restored afterwards; None leaves them). One is the
    default because the batches are small (at most 64 rows): extra threads gain little there, and on a
    busy machine (say, next to a training run) their spinning made small models 50x slower.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    spec = policy.spec
    metrics = spec.env.definition.metrics
    if render is not None and not spec.env.definition.renders:
        raise EvalError(f"--render draws 2048 boards; experiment `{spec.name}` plays the gym env "
                        f"`{spec.env.id}`, which cannot be rendered here")
    previous_threads = torch.get_num_threads()
    if threads is not None and policy.device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        if render is not None:
            played = _play_rendered(policy, episodes, seed, render, delay)
        else:
            played = _play_batched(policy, episodes, seed)
    finally:
        torch.set_num_threads(previous_threads)
    returns = np.array([e["return"] for e in played], dtype=np.float64)
    result: dict[str, Any] = {
        "experiment": spec.name, "checkpoint": str(policy.checkpoint), "step": policy.step,
        "run_seed": policy.config.get("seed"), "seed": seed, "episodes": len(played),
        "mean_return": float(returns.mean()), "std_return": float(returns.std()),
        "min_return": float(returns.min()), "max_return": float(returns.max()),
        "mean_length": float(np.mean([e["length"] for e in played])),
    }
    if "score" in metrics:
        scores = np.array([e["score"] for e in played], dtype=np.int64)
        result.update({"mean_score": float(scores.mean()), "median_score": float(np.median(scores)),
                       "max_score": int(scores.max())})
    if "max_tile" in metrics:
        tiles = np.array([e["max_tile"] for e in played], dtype=np.int64)
        values, counts = np.unique(tiles, return_counts=True)
        result.update({
            "tile_rates": {str(t): float((tiles >= t).mean()) for t in TILES},
            "max_tile_distribution": {str(int(v)): float(c) / len(tiles)
                                      for v, c in zip(values, counts, strict=True)},
        })
    return result


__all__ = ["DesignChanged", "EvalError", "LoadedPolicy", "RunNotFound", "board_view", "evaluate",
           "greedy_actions", "load_policy"]
