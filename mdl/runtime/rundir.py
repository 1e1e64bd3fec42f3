"""One run directory, read and written in one place: `RunDir`.

A *run* is one (sweep point, seed) of an experiment. Its directory, `OUT/<experiment>/<seed>/` or
`OUT/<experiment>/<point>/<seed>/` with a sweep (DESIGN.md, "Experiments at run time"), holds

| file | written by | what |
|---|---|---|
| `<file>.mdl` | train | the design as it was trained (and the files it imports stay where they were) |
| `ir.json` | train | the model's IR |
| `config.json` | train | every resolved setting: experiment, point, seed, env, PPO, budget, versions, hash |
| `metrics.jsonl`, `tensorboard/` | train (`mdl.runtime.metrics`) | one line / scalars per update |
| `checkpoints/step_*.pt` | train (`mdl.runtime.checkpoint`) | the newest K training states |
| `summary.json` | train, or the scheduler for a run that failed | `status` and the final figures |
| `export/` | the scheduler (`mdl.runtime.export`) | the experiment's `export` list, verified |
| `.lock` | whoever trains the run | held (flock) while a process trains it |

Every module that reads runs (the scheduler, `mdlc runs --reindex`, eval, export, resume) goes
through this class, so a file name is written down once. Reading never imports torch, except
`latest_checkpoint`, which loads one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdl.files import write_text_atomic
from mdl.runtime.errors import DesignChanged, EvalError, RunNotFound

CONFIG, SUMMARY, IR, METRICS = "config.json", "summary.json", "ir.json", "metrics.jsonl"
CHECKPOINTS, TENSORBOARD, EXPORT, LOCK = "checkpoints", "tensorboard", "export", ".lock"
FINISHED = ("completed", "diverged")  # a rerun keeps these; "interrupted" resumes, "failed" runs again


def json_default(value: Any) -> Any:
    """What `json.dumps` writes for tuples, sets and numpy scalars in run files."""
    if isinstance(value, tuple | set):
        return list(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return str(value)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (mdl.files): a crash leaves the old file or the new one."""
    write_text_atomic(path, json.dumps(data, indent=2, default=json_default, allow_nan=True) + "\n")


def read_json(path: Path) -> Any:
    """The JSON in `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


class RunBusy(RunNotFound):
    """Another process is training this run right now."""


@dataclass(frozen=True)
class RunDir:
    """The files of one run; `path` is the run directory."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # -------------------------------------------------------------------------------------- paths
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY

    @property
    def ir_path(self) -> Path:
        return self.path / IR

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD

    @property
    def export_dir(self) -> Path:
        return self.path / EXPORT

    def design_path(self, config: dict[str, Any]) -> Path:
        """The run's copy of its `.mdl` design (named after the source in `config.json`)."""
        return self.path / Path(str(config["source"])).name

    # -------------------------------------------------------------------------------------- reading
    def is_run(self) -> bool:
        return self.config_path.is_file()

    def read_config(self) -> dict[str, Any]:
        """`config.json`, checked to name a source, an experiment and a seed; RunNotFound otherwise."""
        try:
            config = json.loads(self.config_path.read_text(encoding="utf-8"))
            if not isinstance(config, dict) or not isinstance(config.get("source"), str):
                raise ValueError("no `source` in a JSON object")
            if "experiment" not in config:
                raise KeyError("experiment")
            int(config["seed"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunNotFound(f"{self.path} has no readable config.json ({type(exc).__name__}: {exc}); "
                              "is it a run directory (OUT/<experiment>/<seed>/)?") from None
        return config

    def read_summary(self) -> dict[str, Any] | None:
        summary = read_json(self.summary_path)
        return summary if isinstance(summary, dict) else None

    def has_checkpoint(self) -> bool:
        from mdl.runtime.checkpoint import list_checkpoints

        return bool(list_checkpoints(self.checkpoints))

    def status(self) -> str | None:
        """What a rerun does with this run: `summary.json`'s status ("completed", "diverged",
        "interrupted", "failed"); "interrupted" for a run with checkpoints but no summary (killed while
        training); None for a run that never started (or never reached its first checkpoint)."""
        summary = self.read_summary()
        if summary is not None and isinstance(summary.get("status"), str):
            return summary["status"]
        return "interrupted" if self.has_checkpoint() else None

    def latest_checkpoint(self, map_location: Any = "cpu"):
        """`mdl.runtime.checkpoint.load_latest_checkpoint` of this run: (path, state, skipped) or None."""
        from mdl.runtime.checkpoint import load_latest_checkpoint

        return load_latest_checkpoint(self.checkpoints, map_location)

    def design(self, config: dict[str, Any]):
        """The run's experiment rebuilt from its `.mdl` copy, at the run's sweep point: (spec, the copy's
        text, its path). DesignChanged when the copy has errors or lacks the experiment (for `eval`,
        `train --resume` and export)."""
        from mdl.compiler.check import analyze

        source = self.design_path(config)
        name = str(config["experiment"])
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise EvalError(f"cannot read the design copy {source} ({exc})") from None
        analysis = analyze(text, str(source))
        if not analysis.ok:
            first = next(d for d in analysis.diagnostics if d.is_error)
            raise DesignChanged(f"the design copy {source} has errors ({first.code}: {first.message})")
        spec = analysis.experiments.get(name)
        if spec is None:
            raise DesignChanged(f"the design copy {source} has no experiment `{name}`")
        point = config.get("point") or {}
        if not isinstance(point, dict) or any(key not in spec.sweep for key in point):
            raise DesignChanged(f"the design copy {source} has no sweep point {point} in experiment `{name}`")
        spec = spec.at({k: tuple(v) if isinstance(v, list) else v for k, v in point.items()})
        if spec.graph is None or spec.env is None:
            raise DesignChanged(f"experiment `{name}` in {source} has no checked model or environment")
        return spec, text, source

    @staticmethod
    def of(path: str | Path) -> tuple[RunDir, Path | None]:
        """The run a path names and the checkpoint file it names (None: "the newest"): a run directory,
        its `checkpoints/` folder, or a checkpoint file inside it. RunNotFound otherwise."""
        path = Path(path)
        if not path.exists():
            raise RunNotFound(f"no such run directory or checkpoint: {path}")
        if path.is_dir():
            if path.name == CHECKPOINTS and (path.parent / CONFIG).is_file():
                return RunDir(path.parent), None
            return RunDir(path), None
        if not RunDir.is_checkpoint_in_run(path):
            raise RunNotFound(f"{path} is not a run directory, nor a checkpoint in a run's checkpoints/ folder")
        return RunDir(path.parent.parent), path

    @staticmethod
    def is_checkpoint_in_run(path: Path) -> bool:
        return path.parent.name == CHECKPOINTS and (path.parent.parent / CONFIG).is_file()

    @staticmethod
    def find(root: str | Path) -> Iterator[RunDir]:
        """Every run directory below `root` (those with a `config.json`), in path order."""
        root = Path(root)
        for config in sorted(root.rglob(CONFIG)):
            if CHECKPOINTS in config.parts or EXPORT in config.parts:
                continue
            yield RunDir(config.parent)

    # -------------------------------------------------------------------------------------- writing
    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.config_path, config)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_path, summary)

    def clear_summary(self) -> None:
        """A run that starts (or resumes) has no outcome yet: a crash now must not read as the old one."""
        self.summary_path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self, wait: float = 0.0) -> Iterator[None]:
        """Hold the run's lock while training it. A second process (a driver restarted while the worker
        of the killed one still checkpoints and stops) waits up to `wait` seconds, then gets RunBusy,
        instead of writing the same files. The kernel drops the lock when the holder dies, even by
        kill -9."""
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # not on Windows: no lock there
            yield
            return
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise RunBusy(f"{self.path} is being trained by another process") from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


__all__ = ["FINISHED", "RunBusy", "RunDir", "json_default", "read_json", "write_json"]
