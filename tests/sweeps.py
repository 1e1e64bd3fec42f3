"""Helpers of the experiment-running tests (tests/test_sweep.py, tests/test_continuation.py,
tests/test_ray.py): `mdlc train` in this process with its output captured, run files compared."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mdl.cli import main

DATA = Path(__file__).resolve().parent / "data" / "sweep"
CARTPOLE_GRID = DATA / "cartpole_grid.mdl"  # width [16, 32] x seeds [1, 2], 20k steps
TINY_2048 = DATA / "tiny_2048_grid.mdl"  # seeds 1-4, 8k steps, a checkpoint every 1k
# What differs between two runs of the same seed that are otherwise identical: clocks and paths.
TIMING = {"steps_per_second", "wall_seconds", "started", "run_dir", "resumed_from", "exports", "error_file"}


def mdlc(*argv: str) -> tuple[int, str, str]:
    """`mdlc ARGV` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def summaries(root: Path) -> dict[str, dict[str, Any]]:
    """Every run's summary.json under `root`, keyed by its directory relative to `root`."""
    return {str(p.parent.relative_to(root)): json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))
            if (p.parent / "config.json").exists()}


def outcome(summary: dict[str, Any]) -> dict[str, Any]:
    """A run's summary without its clocks and paths: what must equal between two runs of one seed."""
    return {k: v for k, v in summary.items() if k not in TIMING}


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The run's metrics.jsonl lines without their clocks."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in line.items() if k not in TIMING and "memory" not in k} for line in lines]


def file_hashes(run_dir: Path) -> dict[str, tuple[str, int]]:
    """(sha256, mtime in ns) of every file in a run directory."""
    return {str(p.relative_to(run_dir)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"}


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("*.pt")) if (run_dir / "checkpoints").exists() else []


def status(run_dir: Path) -> str | None:
    path = run_dir / "summary.json"
    try:
        return json.loads(path.read_text()).get("status") if path.exists() else None
    except (OSError, ValueError):
        return None


def holders(path: Path) -> list:
    """The processes that hold `path` open (a run's `.lock`: the process training it)."""
    import psutil

    target = str(path.resolve())
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if any(f.path == target for f in proc.open_files()):
                found.append(proc)
    return found
