"""Ray Tune as the cluster engine: `mdlc train FILE --ray [ADDRESS]`.

Each run that needs work becomes one Tune trial (a grid over the runs' indices) whose trainable calls
`mdl.runtime.runjob.run_job`, and so the same `train` as the local scheduler: no second training loop.
The trial reports its metrics as it trains (`tune.report`: step, score, steps/s, the budget fraction;
at most four a second, like the local workers);
a Tune callback on the driver feeds them to the same `Board` display and, as each trial ends, hands
the run's own `summary.json` to the driver (which alone writes `runs.sqlite`).

Faults: `FailureConfig(max_failures=N)` retries a trial whose process died (a killed worker, a lost
node); the retried trial finds the run's checkpoints in its run directory and resumes from the newest
(our checkpoints, not Tune's, so a retry and a later `mdlc train` continue the same way).

Resources: each trial takes one CPU (one torch thread) and, when the cluster has GPUs and the device is
not `cpu`, an equal share of them. Runs write their directories under OUT as locally, and Tune keeps its
own experiment state in `OUT/.ray/`: with several machines, OUT must be on storage every node mounts
at the same path (NFS, a shared volume), and every node needs mdl installed (`pip install mdl[cluster]`).
`pip install -e ".[cluster]"` adds `ray[tune]`; it is not part of the core install.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mdl.runtime.errors import TrainError
from mdl.runtime.plan import Plan
from mdl.runtime.rundir import RunDir
from mdl.runtime.runjob import RunJob, record_failure
from mdl.runtime.scheduler import REPORT_EVERY, Board

LOCAL = "local"  # `--ray` without an address: a Ray started for this command


def _ray():
    try:
        import ray
        from ray import tune
    except ImportError:
        raise TrainError('--ray needs Ray Tune: pip install -e ".[cluster]" (or pip install "ray[tune]")') from None
    return ray, tune


def _host(address: str) -> str:
    return address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once, with a message, when nothing listens at `address` (Ray itself retries for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise TrainError(f"--ray takes HOST:PORT (the head node's GCS address, e.g. 127.0.0.1:6379), not {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise TrainError(f"cannot reach a Ray cluster at {address} ({exc.strerror or exc}); start one with "
                         f"`ray start --head --port {port}` or leave out the address for a local Ray") from None


def _trial(config: dict[str, Any], jobs: list[RunJob]) -> None:
    """The Tune trainable: one run, its metrics reported per update."""
    from ray import tune

    from mdl.runtime.runjob import run_job

    job = jobs[int(config["index"])]
    last = 0.0

    def report(line: dict[str, Any], fraction: float) -> None:
        nonlocal last  # Tune's result handling costs milliseconds: at most REPORT_EVERY apart, as locally
        now = time.monotonic()
        if now - last < REPORT_EVERY and fraction < 1.0:
            return
        last = now
        tune.report({"step": line.get("step", 0), "score": line.get("mean_score", line.get("mean_return")),
                     "steps_per_second": line.get("steps_per_second"), "fraction": fraction})

    summary = run_job(job, report=report)
    tune.report({"step": summary.get("steps", 0), "fraction": 1.0, "status": summary.get("status")})


def run_on_ray(jobs: list[RunJob], address: str, plan: Plan, board: Board,
               on_done: Callable[[RunJob, dict[str, Any]], None], max_failures: int = 2) -> bool:
    """Run `jobs` as Tune trials on the cluster at `address` (LOCAL: a local Ray). Returns False when
    stopped before every trial ended."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if address == LOCAL or _host(address) in ("127.0.0.1", "localhost", "::1"):
        # Ray on Linux swaps 127.0.0.1 for the machine's network address unless this is 0; a cluster on
        # this machine is then reached on the loopback address it was started with.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if address != LOCAL:
        _reachable(address)
    ray, tune = _ray()  # after the environment above: Ray reads it when it is imported
    try:
        ray.init(address=None if address == LOCAL else address, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise TrainError(f"cannot reach a Ray cluster at {address}: {exc}") from None
    try:
        resources = {"cpu": 1}
        gpus = float(ray.cluster_resources().get("GPU", 0))
        if gpus and (jobs[0].device or "auto") != "cpu":
            resources["gpu"] = min(1.0, gpus / len(jobs))
        callback = _progress_callback(tune, jobs, board, on_done)
        storage = (Path(plan.out) / ".ray").resolve()
        # Trials run in other working directories (on other machines): they get absolute run paths,
        # while the driver's records keep the plan's.
        trials = [dataclasses.replace(j, run_dir=str(Path(j.run_dir).resolve())) for j in jobs]
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trial, jobs=trials), resources),
            param_space={"index": tune.grid_search(list(range(len(jobs))))},
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(name=plan.experiment, storage_path=str(storage), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=max_failures),
                                      callbacks=[callback]))
        handler = signal.getsignal(signal.SIGINT)
        try:
            results = tuner.fit()
        finally:  # Tune installs its own Ctrl-C handler and leaves it there
            signal.signal(signal.SIGINT, handler)
        stopped = False
        for i, job in enumerate(jobs):  # a trial that ended without the callback seeing it
            if i not in callback.finished:
                summary = RunDir(Path(job.run_dir)).read_summary()
                error = next((r.error for r in results if r.config.get("index") == i and r.error), None)
                if summary is not None and summary.get("status") in ("completed", "diverged", "failed"):
                    callback.finish(i, summary)
                elif error is not None:  # its retries ran out: the next command resumes it
                    callback.finish(i, record_failure(job, f"the Ray trial failed: {error}", resumable=True))
                else:  # Ctrl-C stopped it (interrupted, with its checkpoints) or it never started
                    stopped = True
        return not stopped and all((RunDir(Path(j.run_dir)).read_summary() or {}).get("status") != "interrupted"
                                   for j in jobs)
    finally:
        ray.shutdown()


def _progress_callback(tune: Any, jobs: list[RunJob], board: Board,
                       on_done: Callable[[RunJob, dict[str, Any]], None]):
    """A Tune callback on the driver: trial starts and results to the board, ended trials to `on_done`.

    The class is made once, when Ray is there, and kept as this module's `Progress`, so that Tune's
    pickling of its run config finds it by name; `__getstate__` leaves the display and the index out."""
    global Progress
    if "Progress" not in globals():
        Progress = type("Progress", (tune.Callback, _ProgressHooks), {"__module__": __name__})
    return Progress(jobs, board, on_done)


class _ProgressHooks:
    def __init__(self, jobs: list[RunJob], board: Board, on_done: Callable[[RunJob, dict[str, Any]], None]):
        self.jobs, self.board, self.on_done = jobs, board, on_done
        self.finished: set[int] = set()

    def __getstate__(self) -> dict[str, Any]:
        return {"jobs": [], "board": None, "on_done": None, "finished": set()}

    def finish(self, i: int, summary: dict[str, Any]) -> None:
        if i in self.finished or self.board is None:
            return
        self.finished.add(i)
        self.board.finish(self.jobs[i].run_dir, summary.get("status", "failed"))
        self.on_done(self.jobs[i], summary)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.board is not None:
            job = self.jobs[int(trial.config["index"])]
            self.board.start(job.run_dir, job.label)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if self.board is not None:
            job = self.jobs[int(trial.config["index"])]
            line = {"step": result.get("step", 0), "mean_score": result.get("score"),
                    "steps_per_second": result.get("steps_per_second") or 0}
            self.board.progress(job.run_dir, line, float(result.get("fraction") or 0.0))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.board is not None:
            i = int(trial.config["index"])
            summary = RunDir(Path(self.jobs[i].run_dir)).read_summary() or {
                "status": "failed", "error": "the trial wrote no summary"}
            self.finish(i, summary)


__all__ = ["LOCAL", "run_on_ray"]
