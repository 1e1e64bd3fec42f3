"""The PPO training loop behind `mdlc train`: one experiment, one seed, one run directory.

Read `train` top to bottom, CleanRL-style: build the envs and the model, then repeat { collect a
rollout, compute GAE, run `epochs` x `minibatches` clipped-surrogate updates, log a metrics line,
maybe checkpoint } until the budget is spent. The math lives in `mdl.runtime.ppo` (pure functions).

Rewards: on 2048 (or with `norm_reward`) they are divided by a running std of the discounted return
before GAE (`ppo.RewardScaler`, saved in checkpoints); returns and scores are logged unscaled.

Autoreset: both env kinds use gymnasium 1.x NEXT_STEP autoreset, so a rollout row that follows a done
step is a reset step (see `mdl.runtime.ppo`'s docstring); `reset_steps` marks those rows, `compute_gae`
skips them and the loss leaves them out (`mask=~starts`).

The run directory `OUT/<experiment>/<seed>/` holds:

- `<file>.mdl` (the source), `ir.json` (the model's IR), `config.json` (every resolved setting,
  package versions and the architecture hash);
- `metrics.jsonl`: one JSON object per update (`step`, `episodes`, `mean_return`, the PPO losses and
  diagnostics, `lr`, `steps_per_second`; for 2048 `mean_score` and `max_tile_distribution`; for MoE
  models `moe_usage` and `moe_aux_loss`). Everything but `steps_per_second` and `wall_seconds` is a
  function of the seed, so two `deterministic=True` CPU runs agree on every other key;
- `tensorboard/`: the same metrics as TensorBoard scalars (`mdl.runtime.metrics`);
- `checkpoints/step_*.pt` (`mdl.runtime.checkpoint`): every `checkpoint_every` steps, at the end, and
  on Ctrl-C; weights, optimizer, counters, RNG states, episode statistics and (2048) the env state;
- `summary.json`: `status` ("completed", "interrupted" or "diverged"), `steps`, `episodes`,
  `mean_return_last100`, `wall_seconds`, `steps_per_second`, and for 2048 `mean_score_last100` and
  `tile_rates`.

Stopping: the budget is checked between updates (steps >= budget_steps or wall time >= budget_seconds).
Ctrl-C (SIGINT, in the main thread) is deferred to the end of the current update, which is then
checkpointed; a second Ctrl-C interrupts at once. A non-finite loss stops the run before the
optimizer step ("diverged"); the checkpoints already written are kept and no new one is.

Resume (`resume(RUN_DIR)`, `mdlc train --resume RUN_DIR`): the experiment, seed and settings come from
the run's `config.json` and its `.mdl` copy; the newest checkpoint that loads is taken (a truncated or
corrupt newer one is skipped with a warning); a design whose architecture hash differs from the
checkpoint's is refused (`DesignMismatch`). The model, optimizer, counters, episode statistics, the
torch / numpy / python / minibatch-shuffle RNG states, the held observation and action mask and (2048)
the env state are restored, `metrics.jsonl` is cut back to the checkpoint's update, and the run goes on
to its budget. A 2048 run with `deterministic=True` then logs exactly the metrics of an uninterrupted
run (timing keys aside). Gym envs cannot save their state: a gym run resumes with envs re-seeded from
`seed + update` (fresh episodes, running returns dropped), so it is not bit-exact.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mdl.compiler.experiment import PPO_ARGS, EnvSpec, ExperimentSpec
from mdl.compiler.ops.moe import MoE
from mdl.files import write_text_atomic
from mdl.runtime import ppo
from mdl.runtime.checkpoint import load_latest_checkpoint, save_checkpoint
from mdl.runtime.errors import DesignMismatch, TrainError
from mdl.runtime.metrics import TENSORBOARD_DIR, MetricsLog

TILES = (256, 512, 1024, 2048)  # summary.json `tile_rates`
_LOGGED = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "aux_loss")  # PPOLoss fields
HISTORY = 100  # episodes in the running means (mean_return, mean_score, tile rates)


# ---------------------------------------------------------------------------------------------------
# Small pieces


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when available, else the CPU; `cuda` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError("device `cuda` was asked for but no CUDA GPU is available; use `--device cpu`")
    return torch.device(name)


def make_envs(env: EnvSpec, seed: int):
    """The vector env of an experiment (both kinds autoreset NEXT_STEP)."""
    if env.kind == "game2048":
        from mdl.runtime.envs import make_game2048

        return make_game2048(env.envs, seed=seed)
    import gymnasium

    return gymnasium.make_vec(env.id, num_envs=env.envs, vectorization_mode="sync")


def package_versions() -> dict[str, str]:
    import gymnasium

    from mdl import __version__

    return {"mdl": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "gymnasium": gymnasium.__version__}


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


def _observations(obs: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(obs), device=device).to(dtype)


def action_mask(infos: dict[str, Any], num_envs: int, actions: int, device: torch.device) -> torch.Tensor:
    """The envs' `action_mask` info as a bool tensor [num_envs, actions]; all legal when the env gives
    none (gym ids)."""
    mask = infos.get("action_mask")
    if mask is None:  # gym envs: every action is legal
        return torch.ones(num_envs, actions, dtype=torch.bool, device=device)
    return torch.as_tensor(np.asarray(mask, dtype=bool), device=device)


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


def _warn(console: Any, message: str) -> None:
    if console is not None:
        from rich.markup import escape

        console.print(f"[bold yellow]warning[/]: {escape(message)}", highlight=False, soft_wrap=True)
    else:
        import warnings

        warnings.warn(message, stacklevel=3)


def _resumed_config(cfg: ppo.PPOConfig, run_dir: Path, state: dict[str, Any]) -> ppo.PPOConfig:
    """`cfg` with the implementation switches (those `.mdl` cannot set) as the run's config.json saved
    them, so a run resumes with the settings it started with even after a default changed; a
    checkpoint without reward-scaler state was trained without reward scaling."""
    try:
        saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("ppo") or {}
    except (OSError, ValueError, AttributeError):
        saved = {}
    language = {a.name for a in PPO_ARGS}
    fields = {f.name for f in dataclasses.fields(cfg)}
    switches = {k: v for k, v in saved.items() if k in fields and k not in language}
    if state.get("reward_scaler") is None:
        switches["norm_reward"] = False
    return dataclasses.replace(cfg, **switches)


def _value(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return outputs["value"].reshape(-1)  # [B, 1] or [B] -> [B]


@contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic kernels and one CPU thread for the run, restored afterwards."""
    if not enabled:
        yield
        return
    was_deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


class _StopRequest:
    """Ctrl-C deferred to the end of the current update (main thread only); a second one interrupts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _progress(enabled: bool, console: Any, total: float, unit: str):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(TextColumn("[bold]train[/]"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                        TextColumn("{task.fields[live]}"), console=console, disable=not enabled,
                        transient=False)
    task = progress.add_task("train", total=total, live=f"0 {unit}")
    return progress, task


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, spec)


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple | set):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (mdl.files)."""
    write_text_atomic(path, json.dumps(data, indent=2, default=_json_default, allow_nan=True) + "\n")


# ---------------------------------------------------------------------------------------------------
# The loop


def train(spec: ExperimentSpec, source_text: str, source_path: str | Path, out_dir: str | Path = "runs",
          seed: int | None = None, budget_steps: int | None = None, budget_seconds: float | None = None,
          device: str | None = None, deterministic: bool = False, progress: bool = False,
          console: Any = None, resume: str | Path | None = None) -> dict[str, Any]:
    """Train `spec` with PPO for one seed; returns the summary (also written to `summary.json`).

    `seed` defaults to the experiment's first seed; a `budget_steps` or `budget_seconds` given here
    replaces the experiment's budget (both may be given: the first reached stops the run). `device`
    defaults to the experiment's (`auto`: CUDA when available). `deterministic` turns on torch's
    deterministic algorithms and one CPU thread. The summary's `run_dir` says where the run went.
    Raises TrainError for a run that cannot start.

    `resume` (a run directory) continues that run from its newest loadable checkpoint instead of
    starting afresh; `resume(RUN_DIR)` fills in the experiment's settings from the run's own files.
    """
    from mdl.compiler.api import architecture_hash
    from mdl.compiler.lower import lower

    if spec.graph is None or spec.env is None:
        raise TrainError(f"experiment `{spec.name}` has no checked model or environment")
    if budget_steps is None and budget_seconds is None:
        budget_steps, budget_seconds = spec.budget_steps, spec.budget_seconds
    if budget_steps is None and budget_seconds is None:
        raise TrainError(f"experiment `{spec.name}` has no budget; add `budget = 100k steps` or pass --budget")
    resume_state: dict[str, Any] | None = None
    resume_path: Path | None = None
    if resume is not None:
        resume_dir = Path(resume)
        found = load_latest_checkpoint(resume_dir / "checkpoints")
        if found is None:
            raise TrainError(f"no loadable checkpoint in {resume_dir / 'checkpoints'}; nothing to resume")
        resume_path, resume_state, skipped = found
        for bad, why in skipped:
            _warn(console, f"skipping the unreadable checkpoint {bad} ({why}); resuming from {resume_path.name}")
        saved_hash = resume_state.get("architecture_hash")
        if saved_hash is None:
            try:
                saved_hash = json.loads((resume_dir / "config.json").read_text(encoding="utf-8")).get(
                    "architecture_hash")
            except (OSError, ValueError):
                saved_hash = None
        if saved_hash is not None and saved_hash != architecture_hash(spec.graph):
            raise DesignMismatch(
                f"the design of experiment `{spec.name}` has changed since {resume_path} was written "
                f"(architecture hash {architecture_hash(spec.graph)[:12]}, checkpoint {str(saved_hash)[:12]}); "
                "a checkpoint resumes only the architecture it was trained with")
        if resume_state.get("experiment", spec.name) != spec.name:
            raise DesignMismatch(f"{resume_path} is a checkpoint of experiment `{resume_state['experiment']}`, "
                                 f"not `{spec.name}`")
        if seed is None:
            seed = int(resume_state["seed"])
        elif int(resume_state["seed"]) != int(seed):
            raise TrainError(f"{resume_path} was trained with seed {resume_state['seed']}, not {seed}")
    seed = spec.seeds[0] if seed is None else int(seed)
    dev = resolve_device(device or spec.device)
    cfg = ppo.PPOConfig.from_experiment(spec.algo)
    env_spec = spec.env
    if cfg.norm_reward is None:
        cfg = dataclasses.replace(cfg, norm_reward=env_spec.kind == "game2048")
    if resume_state is not None:  # switches `.mdl` cannot set keep the values the run started with
        cfg = _resumed_config(cfg, Path(resume), resume_state)
    num_envs, batch_size = env_spec.envs, cfg.batch_size(env_spec.envs)
    if cfg.minibatches > batch_size:
        raise TrainError(f"minibatches={cfg.minibatches} exceeds the batch size {batch_size} (rollout x envs)")
    # The lr anneals over the step budget; with only a time budget, over the elapsed fraction of it.
    total_updates = math.ceil(budget_steps / batch_size) if budget_steps is not None else None

    run_dir = Path(resume) if resume is not None else Path(out_dir) / spec.name / str(seed)
    checkpoint_dir = run_dir / "checkpoints"
    if resume is None:
        for old in (checkpoint_dir, run_dir / TENSORBOARD_DIR):  # a fresh run replaces an old one there
            if old.exists():
                shutil.rmtree(old)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / Path(source_path).name).write_text(source_text, encoding="utf-8")
        _write_json(run_dir / "ir.json", spec.graph.to_json())
    config = {
        "experiment": spec.name, "source": str(source_path), "seed": seed, "device": str(dev),
        "deterministic": deterministic,
        "env": {"kind": env_spec.kind, "id": env_spec.id, "envs": num_envs,
                "observation": str(env_spec.observation), "actions": env_spec.actions},
        "model": spec.model, "model_args": spec.model_args, "params": spec.graph.params,
        "architecture_hash": architecture_hash(spec.graph),
        "ppo": dataclasses.asdict(cfg), "batch_size": batch_size, "minibatch_size": cfg.minibatch_size(num_envs),
        "budget_steps": budget_steps, "budget_seconds": budget_seconds,
        "checkpoint_every": spec.checkpoint_every, "checkpoint_keep": spec.checkpoint_keep,
        "versions": package_versions(),
    }
    if resume is None:  # a resumed run keeps the config it was started with
        _write_json(run_dir / "config.json", config)

    with _deterministic(deterministic), _StopRequest() as stop:
        # Seeding: python-side numpy, torch (weights, action sampling), the minibatch shuffles, the envs.
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        shuffle = torch.Generator().manual_seed(seed)
        module = lower(spec.graph).to(dev)
        if cfg.orthogonal_init:
            ppo.orthogonal_init_(module)
        has_moe = any(isinstance(m, MoE) for m in module.modules())  # else no balance loss to look up
        optimizer = torch.optim.Adam(module.parameters(), lr=cfg.lr, eps=cfg.adam_eps, fused=True)
        obs_type = next(iter(spec.graph.input_types().values()))
        obs_dtype = torch.long if obs_type.dtype == "int" else torch.float32
        obs_shape = tuple(env_spec.observation.shape)

        envs = make_envs(env_spec, seed)
        stats = EpisodeStats(num_envs)
        scaler = ppo.RewardScaler(num_envs, cfg.gamma) if cfg.norm_reward else None
        next_obs_np, infos = envs.reset(seed=seed)
        next_obs = _observations(next_obs_np, obs_dtype, dev)
        masked = "action_mask" in infos  # 2048 masks illegal moves; gym ids have no mask
        next_mask = action_mask(infos, num_envs, env_spec.actions, dev) if masked else None
        last_done = torch.zeros(num_envs, dtype=torch.bool, device=dev)  # did the previous step end an episode?

        # Rollout storage, [T, N, ...] (layout: mdl.runtime.ppo's docstring).
        T = cfg.rollout
        obs_buf = torch.zeros((T, num_envs, *obs_shape), dtype=obs_dtype, device=dev)
        mask_buf = torch.zeros((T, num_envs, env_spec.actions), dtype=torch.bool, device=dev) if masked else None
        actions_buf = torch.zeros((T, num_envs), dtype=torch.long, device=dev)
        logprobs_buf = torch.zeros((T, num_envs), device=dev)
        rewards_buf = torch.zeros((T, num_envs), device=dev)
        terms_buf = torch.zeros((T, num_envs), dtype=torch.bool, device=dev)
        truncs_buf = torch.zeros((T, num_envs), dtype=torch.bool, device=dev)
        values_buf = torch.zeros((T, num_envs), device=dev)

        def checkpoint_state() -> dict[str, Any]:
            state = {
                "format": 1, "experiment": spec.name, "seed": seed, "update": update, "step": step,
                "architecture_hash": config["architecture_hash"],
                "wall_seconds": time.perf_counter() - start,
                "model": module.state_dict(), "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(), "shuffle_rng": shuffle.get_state(),
                "numpy_rng": _numpy_rng_state(), "python_rng": _python_rng_state(),
                "episode_stats": stats.state(),
                "reward_scaler": scaler.state() if scaler is not None else None,
                "next_obs": next_obs.cpu(), "next_mask": next_mask.cpu() if masked else None,
                "last_done": last_done.cpu(),
            }
            if dev.type == "cuda":
                state["cuda_rng"] = torch.cuda.get_rng_state(dev)
            if hasattr(envs, "get_state"):
                state["env_state"] = _plain_env_state(envs.get_state())
            return state

        def save() -> None:
            save_checkpoint(checkpoint_dir, step, checkpoint_state(), spec.checkpoint_keep)

        update, step, status, message = 0, 0, "completed", None
        resumed_seconds = 0.0  # the wall time of the run before its checkpoint
        if resume_state is not None:
            st = resume_state
            module.load_state_dict(st["model"])
            optimizer.load_state_dict(st["optimizer"])
            update, step = int(st["update"]), int(st["step"])
            resumed_seconds = float(st.get("wall_seconds", 0.0))
            if "env_state" in st and hasattr(envs, "set_state"):
                envs.set_state(_env_state_from_plain(st["env_state"]))
                stats.load_state(st["episode_stats"])
                next_obs = st["next_obs"].to(device=dev, dtype=obs_dtype)
                next_mask = st["next_mask"].to(dev)
                last_done = st["last_done"].to(dev)
            else:  # gym envs: their state is not saved; start fresh episodes (not bit-exact)
                stats.load_state(st["episode_stats"], running=False)
                next_obs_np, infos = envs.reset(seed=seed + update)
                next_obs = _observations(next_obs_np, obs_dtype, dev)
                next_mask = action_mask(infos, num_envs, env_spec.actions, dev) if masked else None
            if scaler is not None and st.get("reward_scaler") is not None:
                scaler.load_state(st["reward_scaler"])
            torch.set_rng_state(st["torch_rng"])
            shuffle.set_state(st["shuffle_rng"])
            _set_numpy_rng_state(st["numpy_rng"])
            if "python_rng" in st:
                _set_python_rng_state(st["python_rng"])
            if "cuda_rng" in st and dev.type == "cuda":
                torch.cuda.set_rng_state(st["cuda_rng"], dev)
        next_checkpoint = spec.checkpoint_every
        if next_checkpoint is not None:
            while next_checkpoint <= step:
                next_checkpoint += spec.checkpoint_every
        unit_total = budget_steps if budget_steps is not None else budget_seconds
        bar, task = _progress(progress, console, float(unit_total),
                              "steps" if budget_steps is not None else "s")
        metrics = MetricsLog(run_dir, resume_update=update if resume_state is not None else None,
                             resume_step=step)
        start = time.perf_counter() - resumed_seconds  # the clock runs from here: setup is not training
        try:
            with bar:
                while True:
                    elapsed = time.perf_counter() - start
                    if (budget_steps is not None and step >= budget_steps) or (
                            budget_seconds is not None and elapsed >= budget_seconds):
                        break
                    if stop.requested:
                        status = "interrupted"
                        break
                    if total_updates is not None:
                        lr = ppo.linear_lr(update, total_updates, cfg.lr) if cfg.anneal_lr else cfg.lr
                    else:
                        lr = cfg.lr * max(0.0, 1.0 - elapsed / budget_seconds) if cfg.anneal_lr else cfg.lr
                    for group in optimizer.param_groups:
                        group["lr"] = lr

                    # ---- rollout: T steps of every env, sampling the masked policy
                    first_done = last_done
                    reset_row = first_done.cpu().numpy()  # is this step a reset step (per env)?
                    module.eval()
                    for t in range(T):
                        obs_buf[t] = next_obs
                        if masked:
                            mask_buf[t] = next_mask
                        with torch.no_grad():
                            outputs = module(next_obs)
                            log_probs = ppo.policy_log_probs(outputs["policy"], next_mask)
                            action = ppo.sample_actions(log_probs)
                            logprobs_buf[t] = ppo.log_prob_of(log_probs, action)
                            values_buf[t] = _value(outputs)
                        actions_buf[t] = action
                        next_obs_np, reward, terminated, truncated, infos = envs.step(action.cpu().numpy())
                        reward = np.asarray(reward, dtype=np.float64)
                        done = np.logical_or(terminated, truncated)
                        stats.record(reward, done, infos)
                        if scaler is not None:
                            rewards_buf[t] = scaler(reward, done, valid=~reset_row).to(dev)
                        else:
                            rewards_buf[t] = torch.as_tensor(reward, dtype=torch.float32, device=dev)
                        reset_row = done
                        terms_buf[t] = torch.as_tensor(np.asarray(terminated, dtype=bool), device=dev)
                        truncs_buf[t] = torch.as_tensor(np.asarray(truncated, dtype=bool), device=dev)
                        next_obs = _observations(next_obs_np, obs_dtype, dev)
                        if masked:
                            next_mask = action_mask(infos, num_envs, env_spec.actions, dev)
                    step += T * num_envs
                    last_done = terms_buf[-1] | truncs_buf[-1]

                    # ---- advantages: reset-step rows (after a done) get none and leave the loss
                    with torch.no_grad():
                        next_value = _value(module(next_obs))
                    starts = ppo.reset_steps(terms_buf, truncs_buf, first=first_done)
                    advantages, returns = ppo.compute_gae(
                        rewards_buf, values_buf, terms_buf, truncs_buf, next_value, terms_buf[-1],
                        cfg.gamma, cfg.gae_lambda, starts=starts)

                    b_obs = obs_buf.reshape(batch_size, *obs_shape)
                    b_mask = mask_buf.reshape(batch_size, -1) if masked else None
                    b_actions, b_logprobs = actions_buf.reshape(-1), logprobs_buf.reshape(-1)
                    b_advantages, b_returns = advantages.reshape(-1), returns.reshape(-1)
                    b_values, b_valid = values_buf.reshape(-1), ~starts.reshape(-1)

                    # ---- optimisation: epochs x minibatches of the clipped surrogate
                    module.train()
                    sums: dict[str, float] = {}
                    count = 0
                    for _epoch in range(cfg.epochs):
                        for idx in ppo.minibatch_indices(batch_size, cfg.minibatches, shuffle, device=dev):
                            outputs = module(b_obs[idx])
                            log_probs = ppo.policy_log_probs(outputs["policy"],
                                                             b_mask[idx] if masked else None)
                            result = ppo.ppo_loss(
                                ppo.log_prob_of(log_probs, b_actions[idx]), b_logprobs[idx], b_advantages[idx],
                                _value(outputs), b_values[idx], b_returns[idx], ppo.entropy_of(log_probs), cfg.clip,
                                cfg.vf_coef, cfg.ent_coef, cfg.clip_vloss, cfg.norm_adv,
                                aux_loss=ppo.moe_aux_loss(module) if has_moe else 0.0, mask=b_valid[idx])
                            if not torch.isfinite(result.loss):
                                raise FloatingPointError(
                                    f"the loss became {float(result.loss.detach())} at step {step} (update {update + 1})")
                            optimizer.zero_grad(set_to_none=True)
                            result.loss.backward()
                            ppo.global_grad_norm_clip(module.parameters(), cfg.max_grad_norm)
                            optimizer.step()
                            for key in _LOGGED:
                                sums[key] = sums.get(key, 0.0) + float(getattr(result, key))
                            count += 1
                        if cfg.target_kl is not None and float(result.approx_kl) > cfg.target_kl:
                            break
                    update += 1

                    # ---- log
                    elapsed = time.perf_counter() - start
                    means = {k: v / count for k, v in sums.items()}
                    valid = b_valid
                    line: dict[str, Any] = {
                        "update": update, "step": step, "episodes": stats.episodes,
                        "mean_return": stats.mean_return(),
                        "policy_loss": means["policy_loss"], "value_loss": means["value_loss"],
                        "entropy": means["entropy"], "approx_kl": means["approx_kl"],
                        "clip_fraction": means["clip_fraction"],
                        "explained_variance": ppo.explained_variance(b_values[valid], b_returns[valid]),
                        "lr": lr, "steps_per_second": step / max(elapsed, 1e-9), "wall_seconds": elapsed,
                    }
                    if env_spec.kind == "game2048":
                        line["mean_score"] = stats.mean_score()
                        line["max_tile_distribution"] = stats.max_tile_distribution()
                    usage = ppo.moe_stats(module)
                    if usage:
                        line["moe_usage"] = usage
                        line["moe_aux_loss"] = means["aux_loss"]
                    metrics.log(line)
                    done_units = step if budget_steps is not None else elapsed
                    if budget_steps is not None and budget_seconds is not None:
                        done_units = max(step / budget_steps, elapsed / budget_seconds) * unit_total
                    bar.update(task, completed=min(done_units, unit_total),
                               live=f"step {step:,}  return {_fmt(stats.mean_return())}  "
                                    f"{line['steps_per_second']:,.0f} steps/s")
                    if next_checkpoint is not None and step >= next_checkpoint:
                        save()
                        while next_checkpoint <= step:
                            next_checkpoint += spec.checkpoint_every
            save()  # at the end and on Ctrl-C: the state after the last completed update
        except FloatingPointError as exc:
            status, message = "diverged", f"{exc}; training stopped, the last good checkpoint is kept"
        finally:
            metrics.close()
            envs.close()

    wall = time.perf_counter() - start
    summary: dict[str, Any] = {
        "status": status, "experiment": spec.name, "seed": seed, "run_dir": str(run_dir),
        "steps": step, "updates": update, "episodes": stats.episodes,
        "mean_return_last100": stats.mean_return(), "wall_seconds": wall,
        "steps_per_second": step / max(wall, 1e-9),
    }
    if env_spec.kind == "game2048":
        summary["mean_score_last100"] = stats.mean_score()
        summary["tile_rates"] = stats.tile_rates()
        summary["max_tile_distribution"] = stats.max_tile_distribution()
    if resume_path is not None:
        summary["resumed_from"] = str(resume_path)
    if message:
        summary["message"] = message
    _write_json(run_dir / "summary.json", summary)
    return summary


def resume(run_dir: str | Path, budget_steps: int | None = None, budget_seconds: float | None = None,
           device: str | None = None, deterministic: bool | None = None, progress: bool = False,
           console: Any = None) -> dict[str, Any]:
    """Continue the run in `run_dir` to its budget: the experiment, seed, budget, device and
    determinism come from its `config.json`, the design from its `.mdl` copy (a budget or device
    given here replaces the saved one). Raises TrainError (DesignMismatch for a design with errors
    or a changed architecture) for a run that cannot be resumed."""
    from mdl.runtime.evaluate import read_run_config, run_design  # evaluate imports this module

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TrainError(f"cannot resume {run_dir}: no such run directory")
    config = read_run_config(run_dir)
    if not (run_dir / "checkpoints").is_dir() or load_latest_checkpoint(run_dir / "checkpoints") is None:
        raise TrainError(f"no loadable checkpoint in {run_dir / 'checkpoints'}; nothing to resume")
    spec, text, source = run_design(run_dir, config)
    if budget_steps is None and budget_seconds is None:
        budget_steps, budget_seconds = config.get("budget_steps"), config.get("budget_seconds")
    if deterministic is None:
        deterministic = bool(config.get("deterministic", False))
    return train(spec, text, source, seed=int(config["seed"]), budget_steps=budget_steps,
                 budget_seconds=budget_seconds, device=device or config.get("device"),
                 deterministic=deterministic, progress=progress, console=console, resume=run_dir)


__all__ = ["DesignMismatch", "EpisodeStats", "TrainError", "action_mask", "make_envs", "package_versions",
           "resolve_device", "resume", "train"]
