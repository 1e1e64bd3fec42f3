"""One run of an experiment as a job any engine can carry out: `RunJob` and `run_job`.

The in-process path, the local worker processes and the Ray Tune trials all call `run_job`, which
calls the one `train` (no second training loop). A job is small and picklable (the design's text,
the experiment's name, the sweep point and the seed, not compiled objects), so it travels to a spawned
process or to another machine and is rebuilt there by the front end in milliseconds.

`run_job` decides from the run directory what to do: a run with checkpoints and no outcome (killed,
or stopped by Ctrl-C), or whose process died, resumes from its newest checkpoint; any other run that
reaches it starts afresh (the driver keeps finished runs and never sends them). When a run completes, the experiment's
`export` list is written to `<run>/export/` and verified (`mdl.runtime.export`); a failed export is
recorded in the run's `summary.json` (`exports`) without losing the run. An exception (an env that
raises, a bad setting) becomes `status: "failed"` with its `error` in `summary.json`, and the
traceback in `<run>/error.txt`: one failing run never takes the others down.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdl.files import write_text_atomic
from mdl.runtime.errors import MdlRuntimeError
from mdl.runtime.rundir import RunBusy, RunDir

ERROR_FILE = "error.txt"
LOCK_WAIT = 120.0  # seconds a job waits for a run still held by another process (an orphaned worker stopping)


@dataclass(frozen=True)
class RunJob:
    """What one run needs, in plain data."""

    source_text: str
    source_path: str
    experiment: str
    point: dict[str, Any]
    seed: int
    run_dir: str
    label: str = ""
    budget_steps: int | None = None  # replaces the experiment's budget when given (with budget_seconds)
    budget_seconds: float | None = None
    device: str | None = None
    deterministic: bool = False
    threads: int | None = None  # torch CPU threads for this run (None: leave torch's default)

    def spec(self):
        """The experiment at this job's point, rebuilt from the design's text."""
        from mdl.compiler.check import analyze
        from mdl.runtime.errors import TrainError

        analysis = analyze(self.source_text, self.source_path)
        spec = analysis.experiments.get(self.experiment)
        if not analysis.ok or spec is None:
            raise TrainError(f"the design {self.source_path} no longer checks; run `mdlc check` on it")
        return spec.at(self.point)


def run_job(job: RunJob, report: Callable[[dict[str, Any], float], None] | None = None,
            should_stop: Callable[[], bool] | None = None, progress: bool = False, console: Any = None,
            ) -> dict[str, Any]:
    """Train (or resume) the job's run, then write its exports; returns the run's summary. Never raises
    for a failure of the run itself: that is the summary's `status: "failed"` and `error`."""
    run = RunDir(Path(job.run_dir))
    try:
        if job.threads is not None:
            import torch

            torch.set_num_threads(job.threads)
        from mdl.runtime.train import train

        spec = job.spec()
        # Decide only once no other process trains the run (a worker of a killed driver may still be
        # checkpointing and stopping it): what it leaves decides between resuming and starting afresh.
        if run.path.exists():
            with run.lock(wait=LOCK_WAIT):
                pass
        resume = run.path if _resumable(run) else None
        summary = train(spec, job.source_text, job.source_path, run_dir=run.path, seed=job.seed,
                        budget_steps=job.budget_steps, budget_seconds=job.budget_seconds, device=job.device,
                        deterministic=job.deterministic, progress=progress, console=console, resume=resume,
                        report=report, should_stop=should_stop, lock_wait=LOCK_WAIT)
    except RunBusy as exc:  # another process trains it: write nothing into its directory
        return _failed(job, str(exc))
    except Exception as exc:
        return record_failure(job, exc, traceback.format_exc())
    (run.path / ERROR_FILE).unlink(missing_ok=True)
    if summary["status"] == "completed" and spec.export:
        summary["exports"] = export_run(run, spec.export)
        run.write_summary(summary)
    return summary


def _failed(job: RunJob, error: str) -> dict[str, Any]:
    """The summary of a failed run (`error` one line)."""
    return {"status": "failed", "experiment": job.experiment, "point": job.point, "seed": job.seed,
            "run_dir": str(Path(job.run_dir)), "error": error}


def _resumable(run: RunDir) -> bool:
    """Interrupted (stopped, or killed with no summary), or failed because its process died, and with a
    checkpoint: the next attempt continues it. A run that failed by itself (an exception) starts over."""
    summary = run.read_summary()
    if summary is None:  # killed before it wrote one
        return run.has_checkpoint()
    died = summary.get("status") == "failed" and summary.get("resumable") is True
    return (summary.get("status") == "interrupted" or died) and run.has_checkpoint()


def record_failure(job: RunJob, exc: BaseException | str, details: str = "", resumable: bool = False,
                   ) -> dict[str, Any]:
    """Write and return the summary of a run that failed (`error` is one line; `error.txt` the details).
    `resumable`: the run did not fail by itself (its process died), so the next attempt resumes it from
    its newest checkpoint instead of starting over."""
    run = RunDir(Path(job.run_dir))
    error = exc if isinstance(exc, str) else (
        str(exc) if isinstance(exc, MdlRuntimeError) else f"{type(exc).__name__}: {exc}")
    summary = _failed(job, error.splitlines()[0] if error else "failed")
    if resumable:
        summary["resumable"] = True
    try:
        run.path.mkdir(parents=True, exist_ok=True)
        if details:
            write_text_atomic(run.path / ERROR_FILE, details)
            summary["error_file"] = str(run.path / ERROR_FILE)
        previous = run.read_summary() or {}
        for key in ("steps", "updates", "episodes", "mean_return_last100"):  # what it did before it failed
            if key in previous:
                summary[key] = previous[key]
        run.write_summary(summary)
    except OSError:
        pass  # the run's folder cannot be written: the driver still records the failure in its index
    return summary


def export_run(run: RunDir, formats: tuple[str, ...]) -> list[dict[str, Any]]:
    """Write and verify each format to `<run>/export/`: one entry per format with `ok`, `path`, and the
    MoE `fallbacks` of an ONNX export, or the `error` that stopped it."""
    from mdl.runtime.export import export

    results = []
    for fmt in formats:
        try:
            report = export(run.path, fmt)
        except Exception as exc:  # an export failure marks the export, never the run
            results.append({"format": fmt, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
            continue
        entry = {"format": fmt, "ok": bool(report["verification"]["ok"]), "path": report["path"],
                 "bytes": report["bytes"]}
        fallbacks = (report["verification"].get("export") or {}).get("fallbacks")
        if fallbacks:
            entry["fallbacks"] = fallbacks
        results.append(entry)
    return results


__all__ = ["RunJob", "export_run", "record_failure", "run_job"]
