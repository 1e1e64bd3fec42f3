"""The local scheduler: an experiment's runs in this process or in worker processes, with one display.

One run trains in this process exactly as `mdlc train` always has (its own progress bar). Several runs
with `jobs=1` train here one after another; with `jobs=N > 1` they go to N worker processes (spawned,
so no torch state is forked), each given `threads` torch threads so that jobs x threads <= cores.

Workers and faults:
- a worker runs one `RunJob` at a time (`mdl.runtime.runjob.run_job`) and sends the driver its
  metrics (at most a few lines a second) and then the run's summary;
- a worker that dies (kill -9, out of memory) fails only its run: the driver records it as `failed`
  with the exit code (and `resumable`, so the next `mdlc train` resumes it from its newest checkpoint)
  and starts a new worker for the runs that are left;
- Ctrl-C: the terminal's SIGINT reaches every worker, and the driver also sets a stop event, so each
  run finishes its update, checkpoints and stops ("interrupted"); no new run starts; a second Ctrl-C
  in the driver ends the workers at once;
- if the driver itself dies (even kill -9), each worker sees its parent gone at its next update,
  checkpoints and stops, so at most each run's work since its last checkpoint is lost (and usually
  none); a driver started again waits for such a run's lock before resuming it.

`Board` is the overall display: runs done / running / failed / left, the ETA, and one live line per
active run (step, score, steps/s); the Ray engine (`mdl.runtime.ray_tune`) shows the same board.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from mdl.runtime.runjob import RunJob, record_failure, run_job

REPORT_EVERY = 0.25  # seconds between a worker's progress messages


def default_jobs(runs: int, cores: int | None = None) -> int:
    """As many runs at once as fit the cores (one torch thread each)."""
    return max(1, min(runs, cores or os.cpu_count() or 1))


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """torch threads per worker so that jobs x threads <= cores."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, jobs))


# ---------------------------------------------------------------------------------------------------
# The display


@dataclass
class _Active:
    label: str
    fraction: float = 0.0
    line: dict[str, Any] = field(default_factory=dict)


class Board:
    """What is running and what is left, as a rich renderable (refreshed by a `rich.live.Live`)."""

    def __init__(self, experiment: str, total: int, kept: int = 0):
        self.experiment, self.total = experiment, total
        self.done = self.failed = 0
        self.kept = kept
        self.active: dict[str, _Active] = {}
        self.started = time.monotonic()
        self.done_work = 0.0  # runs finished in this session (1 each), for the ETA

    def start(self, key: str, label: str) -> None:
        self.active[key] = _Active(label)

    def progress(self, key: str, line: dict[str, Any], fraction: float) -> None:
        if key in self.active:
            self.active[key].line, self.active[key].fraction = line, fraction

    def finish(self, key: str, status: str) -> None:
        self.active.pop(key, None)
        self.done_work += 1
        if status in ("completed", "interrupted"):
            self.done += status == "completed"
        else:
            self.failed += 1

    def eta(self) -> float | None:
        work = self.done_work + sum(a.fraction for a in self.active.values())
        left = self.total - self.kept - work
        if work <= 0:
            return None
        return (time.monotonic() - self.started) * left / work

    def __rich__(self):
        from rich.console import Group
        from rich.table import Table

        eta = self.eta()
        left = self.total - self.kept - self.done - self.failed - len(self.active)
        head = (f"[bold]train {self.experiment}[/]: {self.done + self.kept} done, {len(self.active)} running, "
                f"{self.failed} failed, {max(left, 0)} left"
                + (f"  eta {_clock(eta)}" if eta is not None else ""))
        table = Table(box=None, show_header=False, padding=(0, 1))
        for a in self.active.values():
            line = a.line
            score = line.get("mean_score", line.get("mean_return"))
            table.add_row(a.label, f"{100 * a.fraction:5.1f}%", f"step {line.get('step', 0):,}",
                          f"score {score:,.1f}" if isinstance(score, int | float) else "score -",
                          f"{line.get('steps_per_second', 0):,.0f} steps/s")
        return Group(head, table)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def live(board: Board, console: Any):
    """A `rich.live.Live` showing `board` (printing nothing when there is no console)."""
    from rich.live import Live

    return Live(board, console=console, refresh_per_second=4, transient=False,
                redirect_stdout=False, redirect_stderr=False)


# ---------------------------------------------------------------------------------------------------
# Workers


def _worker(conn: Connection, stop: Any, parent: int) -> None:
    """A worker process: run the jobs the driver sends until it sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # between runs; train's own handler covers a run

    def should_stop() -> bool:
        return stop.is_set() or os.getppid() != parent

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:  # every run it trained is written and closed: skip the interpreter's teardown
            _exit_now()
        last = 0.0

        def report(line: dict[str, Any], fraction: float, key: str = job.run_dir) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= REPORT_EVERY or fraction >= 1.0:
                last = now
                with contextlib.suppress(OSError):
                    conn.send(("progress", key, _brief(line), fraction))

        try:
            summary = run_job(job, report=report, should_stop=should_stop)
        except KeyboardInterrupt:  # a second Ctrl-C: the run stops where it is, quietly
            _exit_now()
        try:
            conn.send(("done", job.run_dir, summary, 1.0))
        except OSError:
            return
        if should_stop():
            return


def _exit_now() -> None:
    """End a worker at once. A spawned process otherwise exits through `sys.exit`, whose teardown
    (torch, gymnasium, TensorBoard's threads) took 1.3 s here, as long as a small run's setup."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _brief(line: dict[str, Any]) -> dict[str, Any]:
    return {k: line[k] for k in ("step", "mean_return", "mean_score", "steps_per_second") if k in line}


@dataclass
class _Worker:
    process: Any
    conn: Connection
    job: RunJob | None = None


class LocalScheduler:
    """Runs jobs here (`jobs=1`) or in `jobs` worker processes; `on_done(job, summary)` sees each result."""

    def __init__(self, jobs: int, board: Board | None = None):
        self.jobs = jobs
        self.board = board

    def run(self, jobs: list[RunJob], on_done: Callable[[RunJob, dict[str, Any]], None]) -> bool:
        """Run every job; returns False when stopped by Ctrl-C (the runs left were not started)."""
        if self.jobs <= 1 or len(jobs) <= 1:
            return self._here(jobs, on_done)
        return self._workers(jobs, on_done)

    def _here(self, jobs: list[RunJob], on_done) -> bool:
        stopped = False
        for job in jobs:
            if stopped:
                break
            if self.board is not None:
                self.board.start(job.run_dir, job.label)

            def report(line, fraction, key=job.run_dir):
                if self.board is not None:
                    self.board.progress(key, _brief(line), fraction)

            summary = run_job(job, report=report)
            stopped = summary["status"] == "interrupted"
            if self.board is not None:
                self.board.finish(job.run_dir, summary["status"])
            on_done(job, summary)
        return not stopped

    def _workers(self, jobs: list[RunJob], on_done) -> bool:
        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        queue = list(jobs)
        workers: list[_Worker] = []
        stopping = False

        def spawn() -> _Worker:
            mine, theirs = ctx.Pipe()
            process = ctx.Process(target=_worker, args=(theirs, stop, os.getpid()), daemon=False)
            process.start()
            theirs.close()
            return _Worker(process, mine)

        def dispatch(worker: _Worker) -> None:
            if queue and not stopping:
                worker.job = queue.pop(0)
                worker.conn.send(worker.job)
                if self.board is not None:
                    self.board.start(worker.job.run_dir, worker.job.label)
            else:
                worker.job = None

        def finished(worker: _Worker, summary: dict[str, Any]) -> None:
            job, worker.job = worker.job, None
            if self.board is not None:
                self.board.finish(job.run_dir, summary["status"])
            on_done(job, summary)

        for _ in range(min(self.jobs, len(queue))):
            workers.append(spawn())
            dispatch(workers[-1])
        try:
            while any(w.job is not None for w in workers):
                try:
                    self._poll(workers, finished, dispatch, spawn)
                except KeyboardInterrupt:
                    if stopping:  # a second Ctrl-C: end the workers at once
                        for w in workers:
                            w.process.terminate()
                        raise
                    stopping = True
                    stop.set()
        finally:
            for w in workers:
                with contextlib.suppress(OSError):
                    w.conn.send(None)
            for w in workers:
                w.process.join(timeout=10)
                if w.process.is_alive():
                    w.process.terminate()
        return not stopping

    def _poll(self, workers: list[_Worker], finished, dispatch, spawn) -> None:
        busy = [w for w in workers if w.job is not None]
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=0.5)
        for w in busy:
            if w.conn in ready:
                try:
                    while w.conn.poll():
                        kind, key, payload, fraction = w.conn.recv()
                        if kind == "progress" and self.board is not None:
                            self.board.progress(key, payload, fraction)
                        elif kind == "done":
                            finished(w, payload)
                            dispatch(w)
                            break
                except (EOFError, OSError):
                    pass
            if w.job is not None and not w.process.is_alive():  # died during its run
                code = w.process.exitcode
                summary = record_failure(w.job, f"the worker process died (exit code {code}) during the run",
                                         resumable=True)
                finished(w, summary)
                replacement = spawn()
                workers[workers.index(w)] = replacement
                dispatch(replacement)


__all__ = ["Board", "LocalScheduler", "default_jobs", "live", "threads_per_job"]
