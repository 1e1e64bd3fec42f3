"""The PPO training loop behind `mdlc train`: one experiment, one seed, one run directory.

Read `train` top to bottom, CleanRL-style: build the `TrainState` (model, optimizer, envs; restored
from a checkpoint on resume), then repeat { collect a rollout with GAE (`mdl.runtime.rollout`), run
`ppo.update` (epochs x minibatches of the clipped surrogate), log a metrics line, maybe checkpoint }
until the budget is spent. The math lives in `mdl.runtime.ppo` (pure functions); what a checkpoint
holds, in `mdl.runtime.trainstate`; the run directory's files, in `mdl.runtime.rundir`.

Rewards: with `norm_reward` (the default) they are divided by a running std of the discounted return
before GAE (`ppo.RewardScaler`, saved in checkpoints); returns and scores are logged unscaled.
Observations: with `norm_obs` each is normalised by running statistics as it arrives
(`mdl.runtime.obsnorm`, saved in checkpoints); the trained policy carries them, frozen, in front of
its input (`mdlc eval` and the exports take raw observations).

Autoreset: both env kinds use gymnasium 1.x NEXT_STEP autoreset, so a rollout row that follows a done
step is a reset step (see `mdl.runtime.ppo`'s docstring); `reset_steps` marks those rows, `compute_gae`
skips them and the loss leaves them out (`mask=~starts`).

The run directory `OUT/<experiment>/<seed>/` (`OUT/<experiment>/<point>/<seed>/` for a sweep point,
chosen by `mdl.runtime.plan`) holds:

- `<file>.mdl` (the source), `ir.json` (the model's IR), `config.json` (every resolved setting,
  package versions and the architecture hash);
- `metrics.jsonl`: one JSON object per update (`step`, `episodes`, `mean_return`, the PPO losses and
  diagnostics, `lr`, `steps_per_second`, `action_distribution` (the fraction of the rollout's steps taking each
  action), `memory_bytes` (CUDA's peak allocated bytes, or the process's resident set on the CPU),
  `params`; for 2048 `mean_score` and `max_tile_distribution`; for MoE models `moe_usage` and
  `moe_aux_loss`). Everything but `steps_per_second`, `wall_seconds` and `memory_bytes` is a function
  of the seed, so two `deterministic=True` CPU runs agree on every other key;
- `tensorboard/`: the same metrics as TensorBoard scalars, and at the end the run's swept settings and
  score for the HParams dashboard (`mdl.runtime.metrics`);
- `checkpoints/step_*.pt` (`mdl.runtime.checkpoint`): every `checkpoint_every` steps, at the end, and
  on Ctrl-C; weights, optimizer, counters, RNG states, episode statistics and (2048) the env state;
- `summary.json`, written when the run ends (and removed when it starts, so a crash never reads as the
  old outcome): `status` ("completed", "interrupted" or "diverged"), `steps`, `episodes`,
  `mean_return_last100`, `wall_seconds`, `steps_per_second`, and for 2048 `mean_score_last100` and
  `tile_rates`.

A process holds the run's lock (`RunDir.lock`) while it trains; `report(line, fraction)`, when given,
sees every metrics line and the fraction of the budget spent (the scheduler's live display and Ray
Tune's `tune.report` use it).

Stopping: the budget is checked between updates (steps >= budget_steps or wall time >= budget_seconds).
Ctrl-C (SIGINT, in the main thread) is deferred to the end of the current update, which is then
checkpointed; a second Ctrl-C interrupts at once. A non-finite loss stops the run before the
optimizer step ("diverged"); the checkpoints already written are kept and no new one is.

Resume (`resume(RUN_DIR)`, `mdlc train --resume RUN_DIR`): the experiment, seed and settings come from
the run's `config.json` and its `.mdl` copy; the newest checkpoint that loads is taken (a truncated or
corrupt newer one is skipped with a warning); a design whose architecture hash differs from the
checkpoint's is refused (`DesignMismatch`). The model, optimizer, counters, episode statistics, the
torch / numpy / python / minibatch-shuffle RNG states, the observation statistics, the held
observation and action mask and (2048) the env state are restored, `metrics.jsonl` is cut back to the
checkpoint's update, and the run goes on to its budget. A 2048 run with `deterministic=True` then logs
exactly the metrics of an uninterrupted run (timing keys aside). Gym envs cannot save their state: a gym run resumes with envs re-seeded from
`seed + update` (fresh episodes, running returns dropped), so it is not bit-exact.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mdl.compiler.experiment import ExperimentSpec
from mdl.compiler.ops.moe import MoE
from mdl.files import write_text_atomic
from mdl.runtime import ppo
from mdl.runtime.checkpoint import save_checkpoint
from mdl.runtime.errors import DesignMismatch, TrainError
from mdl.runtime.metrics import HPARAM_SCORE, MetricsLog
from mdl.runtime.obsnorm import ObsNormalizer
from mdl.runtime.rollout import Rollout, make_envs, value_of
from mdl.runtime.rundir import RunDir, read_json, write_json
from mdl.runtime.trainstate import EpisodeStats, TrainState, action_mask


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when available, else the CPU; `cuda` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError("device `cuda` was asked for but no CUDA GPU is available; use `--device cpu`")
    return torch.device(name)


def package_versions() -> dict[str, str]:
    import gymnasium

    from mdl import __version__

    return {"mdl": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "gymnasium": gymnasium.__version__}


def _warn(console: Any, message: str) -> None:
    if console is not None:
        from rich.markup import escape

        console.print(f"[bold yellow]warning[/]: {escape(message)}", highlight=False, soft_wrap=True)
    else:
        import warnings

        warnings.warn(message, stacklevel=3)


def _resumed_config(cfg: ppo.PPOConfig, run: RunDir, state: dict[str, Any]) -> ppo.PPOConfig:
    """`cfg` with every PPO setting as the run's config.json saved it, so a run resumes with the
    settings it started with even after a default changed; a checkpoint without reward-scaler state was trained without reward scaling."""
    config = read_json(run.config_path)
    saved = (config.get("ppo") if isinstance(config, dict) else None) or {}
    fields = {f.name for f in dataclasses.fields(cfg)}
    kept = {k: v for k, v in saved.items() if k in fields}
    if state.get("reward_scaler") is None:
        kept["norm_reward"] = False
    return dataclasses.replace(cfg, **kept)


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


def _progress(enabled: bool, console: Any):
    """The one-run progress bar (percent of the budget, ETA, live step / return / speed)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(TextColumn("[bold]train[/]"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                        TextColumn("{task.fields[live]}"), console=console, disable=not enabled,
                        transient=False)
    task = progress.add_task("train", total=100.0, live="step 0")
    return progress, task


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, spec)


# ---------------------------------------------------------------------------------------------------
# The loop


@dataclass(frozen=True)
class _Budget:
    """When the run stops, and the lr schedule over it: steps, seconds, or both (the first reached)."""

    steps: int | None
    seconds: float | None
    batch_size: int

    def spent(self, step: int, elapsed: float) -> bool:
        return (self.steps is not None and step >= self.steps) or (
            self.seconds is not None and elapsed >= self.seconds)

    def fraction(self, step: int, elapsed: float) -> float:
        parts = [step / self.steps] if self.steps is not None else []
        parts += [elapsed / self.seconds] if self.seconds is not None else []
        return min(1.0, max(parts))

    def lr(self, cfg: ppo.PPOConfig, update: int, elapsed: float) -> float:
        """Annealed over the step budget; with only a time budget, over the elapsed fraction of it."""
        if not cfg.anneal_lr:
            return cfg.lr
        if self.steps is not None:
            return ppo.linear_lr(update, math.ceil(self.steps / self.batch_size), cfg.lr)
        return cfg.lr * max(0.0, 1.0 - elapsed / self.seconds)


def train(spec: ExperimentSpec, source_text: str, source_path: str | Path, out_dir: str | Path = "runs",
          seed: int | None = None, budget_steps: int | None = None, budget_seconds: float | None = None,
          device: str | None = None, deterministic: bool = False, progress: bool = False,
          console: Any = None, resume: str | Path | None = None, run_dir: str | Path | None = None,
          report: Callable[[dict[str, Any], float], None] | None = None,
          should_stop: Callable[[], bool] | None = None, lock_wait: float = 0.0) -> dict[str, Any]:
    """Train `spec` (one sweep point: `spec.at(point)`) with PPO for one seed; returns the summary (also
    written to `summary.json`).

    `seed` defaults to the experiment's first seed; a `budget_steps` or `budget_seconds` given here
    replaces the experiment's budget (both may be given: the first reached stops the run). `device`
    defaults to the experiment's (`auto`: CUDA when available). `deterministic` turns on torch's
    deterministic algorithms and one CPU thread. The run goes to `run_dir`, by default
    `out_dir/<experiment>/<seed>/`; the summary's `run_dir` says where. Raises TrainError for a run
    that cannot start (RunBusy when another process trains it and does not let go in `lock_wait` s).
    `should_stop()`, asked between updates, stops the run as Ctrl-C does (checkpointed, "interrupted"):
    the scheduler's workers stop so when the driver asks them to or dies.

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
    run = RunDir(resume if resume is not None else run_dir if run_dir is not None
                 else Path(out_dir) / spec.name / str(spec.seeds[0] if seed is None else seed))
    with run.lock(lock_wait):
        resume_path, resume_state = _checkpoint_to_resume(spec, run, console) if resume is not None else (None, None)
        if resume_state is not None:
            if seed is None:
                seed = int(resume_state["seed"])
            elif int(resume_state["seed"]) != int(seed):
                raise TrainError(f"{resume_path} was trained with seed {resume_state['seed']}, not {seed}")
        seed = spec.seeds[0] if seed is None else int(seed)
        dev = resolve_device(device or spec.device)
        cfg = ppo.PPOConfig.from_experiment(spec.algo)
        env_spec = spec.env
        if cfg.orthogonal_init is None:
            cfg = dataclasses.replace(cfg, orthogonal_init=env_spec.definition.orthogonal_init)
        if resume_state is not None:  # every setting keeps the value the run started with
            cfg = _resumed_config(cfg, run, resume_state)
        num_envs, batch_size = env_spec.envs, cfg.batch_size(env_spec.envs)
        if cfg.minibatches > batch_size:
            raise TrainError(f"minibatches={cfg.minibatches} exceeds the batch size {batch_size} (rollout x envs)")
        budget = _Budget(budget_steps, budget_seconds, batch_size)
        config = {
            "experiment": spec.name, "source": str(source_path), "point": spec.point, "seed": seed,
            "device": str(dev), "deterministic": deterministic,
            "env": {"kind": env_spec.kind, "id": env_spec.id, "envs": num_envs,
                    "observation": str(env_spec.observation), "actions": env_spec.actions},
            "model": spec.model, "model_args": spec.model_args, "params": spec.graph.params,
            "architecture_hash": architecture_hash(spec.graph),
            "ppo": dataclasses.asdict(cfg), "batch_size": batch_size, "minibatch_size": cfg.minibatch_size(num_envs),
            "budget_steps": budget_steps, "budget_seconds": budget_seconds,
            "checkpoint_every": spec.checkpoint_every, "checkpoint_keep": spec.checkpoint_keep,
            "export": list(spec.export), "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": package_versions(),
        }
        if resume is None:  # a fresh run replaces an old one there; a resumed run keeps its config
            _start_fresh(run, source_text, source_path, spec, config)
        run.clear_summary()

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
            state = TrainState(module, optimizer, shuffle, make_envs(env_spec, seed), EpisodeStats(num_envs),
                               ppo.RewardScaler(num_envs, cfg.gamma) if cfg.norm_reward else None, seed,
                               env_spec.actions, torch.long if obs_type.dtype == "int" else torch.float32, dev,
                               obs_norm=ObsNormalizer(tuple(env_spec.observation.shape), dev) if cfg.norm_obs else None)
            state.reset_envs(seed)
            rollout = Rollout(cfg.rollout, state, tuple(env_spec.observation.shape))
            if resume_state is not None:
                state.load_state_dict(resume_state)
            checkpoints = _Checkpoints(run, spec, state, config["architecture_hash"])
            bar, task = _progress(progress, console)
            metrics = MetricsLog(run.path, resume_update=state.update if resume_state is not None else None,
                                 resume_step=state.step)
            start = time.perf_counter() - state.wall_seconds  # the clock runs from here: setup is not training
            status, message = "completed", None
            try:
                with bar:
                    while not budget.spent(state.step, time.perf_counter() - start):
                        if stop.requested or (should_stop is not None and should_stop()):
                            status = "interrupted"
                            break
                        lr = budget.lr(cfg, state.update, time.perf_counter() - start)
                        for group in optimizer.param_groups:
                            group["lr"] = lr
                        batch = rollout.collect(state, cfg.gamma, cfg.gae_lambda)
                        try:
                            losses = ppo.update(module, optimizer, batch, cfg, shuffle, value_of, moe=has_moe)
                        except FloatingPointError as exc:
                            raise FloatingPointError(f"{exc} at step {state.step} (update {state.update + 1})") from None
                        state.update += 1
                        elapsed = time.perf_counter() - start
                        line = _metrics_line(state, batch, losses, lr, elapsed, env_spec.definition.metrics,
                                             spec.graph.params)
                        metrics.log(line)
                        fraction = budget.fraction(state.step, elapsed)
                        if report is not None:
                            report(line, fraction)
                        bar.update(task, completed=100 * fraction,
                                   live=f"step {state.step:,}  return {_fmt(state.stats.mean_return())}  "
                                        f"{line['steps_per_second']:,.0f} steps/s")
                        checkpoints.maybe_save(time.perf_counter() - start)
                checkpoints.save(time.perf_counter() - start)  # at the end and on Ctrl-C
                metrics.hparams(_hparam_settings(spec, seed), {HPARAM_SCORE: state.stats.mean_return()}, state.step)
            except FloatingPointError as exc:
                status, message = "diverged", f"{exc}; training stopped, the last good checkpoint is kept"
            finally:
                metrics.close()
                state.envs.close()

        summary = _summary(spec, run, state, status, message, time.perf_counter() - start, resume_path)
        run.write_summary(summary)
    return summary


def _hparam_settings(spec: ExperimentSpec, seed: int) -> dict[str, Any]:
    """What the HParams table shows of a run: its swept settings (`model.width`, `algo.lr`, ...), the
    seed, and the model and environment it trained."""
    return {**spec.point, "seed": seed, "model": spec.model, "env": spec.env.id or spec.env.kind}


def memory_in_use(device: torch.device) -> int | None:
    """The memory the run holds: CUDA's peak allocated bytes on a GPU, else the process's resident set
    (Linux `/proc/self/statm`; the peak resident set from getrusage elsewhere; None if neither reads)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        import os

        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux
    except (ImportError, OSError):
        return None


def _action_distribution(batch: ppo.Batch, actions: int) -> list[float]:
    """The fraction of the rollout's (valid) steps that took each action."""
    taken = batch.actions[batch.valid]
    if taken.numel() == 0:
        return [0.0] * actions
    counts = torch.bincount(taken.long().flatten(), minlength=actions)[:actions]
    return [float(c) for c in (counts.double() / taken.numel()).cpu()]


def _metrics_line(state: TrainState, batch: ppo.Batch, losses: dict[str, float], lr: float, elapsed: float,
                  metrics: tuple[str, ...], params: int) -> dict[str, Any]:
    """One line of metrics.jsonl (and TensorBoard) after an update."""
    valid = batch.valid
    line: dict[str, Any] = {
        "update": state.update, "step": state.step, "episodes": state.stats.episodes,
        "mean_return": state.stats.mean_return(),
        **{k: losses[k] for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")},
        "explained_variance": ppo.explained_variance(batch.values[valid], batch.returns[valid]),
        "lr": lr, "steps_per_second": state.step / max(elapsed, 1e-9), "wall_seconds": elapsed,
        "action_distribution": _action_distribution(batch, state.actions),
        "memory_bytes": memory_in_use(state.device), "params": params,
    }
    if "score" in metrics:  # the env kind's per-episode metrics (mdl.compiler.envs)
        line["mean_score"] = state.stats.mean_score()
    if "max_tile" in metrics:
        line["max_tile_distribution"] = state.stats.max_tile_distribution()
    usage = ppo.moe_stats(state.module)
    if usage:
        line["moe_usage"] = usage
        line["moe_aux_loss"] = losses["aux_loss"]
    return line


class _Checkpoints:
    """Every `checkpoint_every` steps (the next multiple past the current step), at the end, on Ctrl-C."""

    def __init__(self, run: RunDir, spec: ExperimentSpec, state: TrainState, architecture: str):
        self.run, self.spec, self.state, self.architecture = run, spec, state, architecture
        self.every = spec.checkpoint_every
        self.next = None if self.every is None else (state.step // self.every + 1) * self.every

    def maybe_save(self, wall_seconds: float) -> None:
        if self.next is not None and self.state.step >= self.next:
            self.save(wall_seconds)
            self.next = (self.state.step // self.every + 1) * self.every

    def save(self, wall_seconds: float) -> None:
        state = {"experiment": self.spec.name, "seed": self.state.seed, "architecture_hash": self.architecture,
                 **self.state.state_dict(wall_seconds)}
        save_checkpoint(self.run.checkpoints, self.state.step, state, self.spec.checkpoint_keep)


def _start_fresh(run: RunDir, source_text: str, source_path: str | Path, spec: ExperimentSpec,
                 config: dict[str, Any]) -> None:
    for old in (run.checkpoints, run.tensorboard, run.export_dir):
        if old.exists():
            shutil.rmtree(old)
    write_text_atomic(run.path / Path(source_path).name, source_text)
    write_json(run.ir_path, spec.graph.to_json())
    run.write_config(config)


def _checkpoint_to_resume(spec: ExperimentSpec, run: RunDir, console: Any) -> tuple[Path, dict[str, Any]]:
    """The newest loadable checkpoint of `run`, checked to be this experiment's and architecture's."""
    from mdl.compiler.api import architecture_hash

    found = run.latest_checkpoint()
    if found is None:
        raise TrainError(f"no loadable checkpoint in {run.checkpoints}; nothing to resume")
    resume_path, resume_state, skipped = found
    for bad, why in skipped:
        _warn(console, f"skipping the unreadable checkpoint {bad} ({why}); resuming from {resume_path.name}")
    saved_hash = resume_state.get("architecture_hash")
    if saved_hash is None:
        saved_hash = (read_json(run.config_path) or {}).get("architecture_hash")
    if saved_hash is not None and saved_hash != architecture_hash(spec.graph):
        raise DesignMismatch(
            f"the design of experiment `{spec.name}` has changed since {resume_path} was written "
            f"(architecture hash {architecture_hash(spec.graph)[:12]}, checkpoint {str(saved_hash)[:12]}); "
            "a checkpoint resumes only the architecture it was trained with")
    if resume_state.get("experiment", spec.name) != spec.name:
        raise DesignMismatch(f"{resume_path} is a checkpoint of experiment `{resume_state['experiment']}`, "
                             f"not `{spec.name}`")
    return resume_path, resume_state


def _summary(spec: ExperimentSpec, run: RunDir, state: TrainState, status: str, message: str | None,
             wall: float, resume_path: Path | None) -> dict[str, Any]:
    stats = state.stats
    summary: dict[str, Any] = {
        "status": status, "experiment": spec.name, "point": spec.point, "seed": state.seed,
        "run_dir": str(run.path), "steps": state.step, "updates": state.update, "episodes": stats.episodes,
        "mean_return_last100": stats.mean_return(), "wall_seconds": wall,
        "steps_per_second": state.step / max(wall, 1e-9),
    }
    metrics = spec.env.definition.metrics
    if "score" in metrics:
        summary["mean_score_last100"] = stats.mean_score()
    if "max_tile" in metrics:
        summary["tile_rates"] = stats.tile_rates()
        summary["max_tile_distribution"] = stats.max_tile_distribution()
    if resume_path is not None:
        summary["resumed_from"] = str(resume_path)
    if message:
        summary["message"] = message
    return summary


def resume(run_dir: str | Path, budget_steps: int | None = None, budget_seconds: float | None = None,
           device: str | None = None, deterministic: bool | None = None, progress: bool = False,
           console: Any = None, report: Callable[[dict[str, Any], float], None] | None = None,
           lock_wait: float = 0.0) -> dict[str, Any]:
    """Continue the run in `run_dir` to its budget: the experiment, sweep point, seed, budget, device
    and determinism come from its `config.json`, the design from its `.mdl` copy (a budget or device
    given here replaces the saved one). Raises TrainError (DesignMismatch for a design with errors
    or a changed architecture) for a run that cannot be resumed."""
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise TrainError(f"cannot resume {run.path}: no such run directory")
    config = run.read_config()
    if run.latest_checkpoint() is None:
        raise TrainError(f"no loadable checkpoint in {run.checkpoints}; nothing to resume")
    spec, text, source = run.design(config)
    if budget_steps is None and budget_seconds is None:
        budget_steps, budget_seconds = config.get("budget_steps"), config.get("budget_seconds")
    if deterministic is None:
        deterministic = bool(config.get("deterministic", False))
    return train(spec, text, source, seed=int(config["seed"]), budget_steps=budget_steps,
                 budget_seconds=budget_seconds, device=device or config.get("device"),
                 deterministic=deterministic, progress=progress, console=console, resume=run.path,
                 report=report, lock_wait=lock_wait)


__all__ = ["DesignMismatch", "EpisodeStats", "TrainError", "action_mask", "make_envs", "package_versions",
           "resolve_device", "resume", "train"]
