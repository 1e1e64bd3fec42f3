"""Running an experiment as written: every planned run, kept, resumed or trained, then the results.

`run_experiment(plan, ...)` is what `mdlc train FILE` does once `mdl.runtime.plan` has listed the runs:

1. with `fresh`, every planned run's directory is removed first (not one that a live process trains);
2. each run's directory says what it needs (`RunDir.status`): finished runs (completed, diverged) are
   kept as they are; interrupted ones resume from their newest checkpoint; failed and new ones train;
3. the runs that need work go to an engine: the local scheduler (`mdl.runtime.scheduler`: in this
   process, or `jobs` worker processes) or Ray Tune (`mdl.runtime.ray_tune`), which all call the same
   `run_job` and so the same `train`;
4. as each run ends, its row goes into `OUT/runs.sqlite` (`mdl.runtime.runindex`; only this process
   writes it) and a line is printed; at the end `OUT/<experiment>/summary.json` (`mdl.runtime.results`)
   is written from the run directories, which stay the truth.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdl.runtime.errors import RunIndexError, TrainError
from mdl.runtime.plan import Plan, PlannedRun
from mdl.runtime.results import (
    experiment_summary,
    preload,
    read_summaries,
    score_of,
    write_experiment_summary,
)
from mdl.runtime.rundir import FINISHED, RunBusy, RunDir
from mdl.runtime.runindex import RunIndex, row_of
from mdl.runtime.runjob import RunJob, run_job
from mdl.runtime.scheduler import Board, LocalScheduler, default_jobs, live, threads_per_job

FAILED = ("failed", "diverged")


@dataclass(frozen=True)
class Options:
    """How to run: what `mdlc train` flags say."""

    jobs: int | None = None  # runs at once in local processes (None: what fits the cores)
    ray: str | None = None  # a Ray address, "local" for a local Ray; None: the local scheduler
    fresh: bool = False  # start every selected run over
    budget_steps: int | None = None
    budget_seconds: float | None = None
    device: str | None = None
    deterministic: bool = False
    ray_max_failures: int = 2  # Ray Tune retries of a trial whose process died


@dataclass
class Outcome:
    """What happened: the experiment summary, the runs kept as they were, and whether all ran."""

    summary: dict[str, Any]
    kept: list[PlannedRun]
    trained: int
    stopped: bool  # Ctrl-C: runs were left unstarted or interrupted
    selected: frozenset[str] = frozenset()  # the run directories this command ran or kept

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The selected runs that failed or diverged."""
        return [r for r in self.summary["runs"] if r["status"] in FAILED and r["run_dir"] in self.selected]


def jobs_of(plan: Plan, runs: list[PlannedRun], source_text: str, source_path: str, options: Options,
            threads: int | None) -> list[RunJob]:
    return [RunJob(source_text, str(source_path), plan.experiment, run.point.values, run.seed, str(run.run_dir),
                   label=run.label, budget_steps=options.budget_steps, budget_seconds=options.budget_seconds,
                   device=options.device, deterministic=options.deterministic, threads=threads)
            for run in runs]


def run_experiment(plan: Plan, source_text: str, source_path: str | Path, options: Options,
                   console: Any = None, whole: Plan | None = None) -> Outcome:
    """Run what `plan` lists (see the module docstring). `whole` is the experiment's plan without a
    `--seed` / `--point` selection: the experiment's summary covers all of its runs that have run,
    not only the selected ones. Raises TrainError for a run that another process is training when
    `fresh` would remove it."""
    if options.fresh:
        _remove(plan.runs)
    status = {str(r.run_dir): RunDir(r.run_dir).status() for r in plan.runs}
    kept = [r for r in plan.runs if status[str(r.run_dir)] in FINISHED]
    todo = [r for r in plan.runs if r not in kept]
    with RunIndex(plan.out) as index:
        index.put(row for row in (row_of(RunDir(r.run_dir)) for r in kept) if row is not None)
        if kept and console is not None:
            console.print(f"kept {len(kept)} finished run{'s' * (len(kept) != 1)} of {len(plan.runs)} "
                          "(--fresh starts them over)", highlight=False)

        def on_done(job: RunJob, summary: dict[str, Any]) -> None:
            row = row_of(RunDir(job.run_dir), summary.get("status"))
            try:
                if row is not None:
                    index.put([row])
            except RunIndexError as exc:  # the index is a cache of the run directories: never stop for it
                if console is not None:
                    console.print(f"warning: {exc}", highlight=False, soft_wrap=True, markup=False)
            if console is not None and len(plan.runs) > 1:
                console.print(_done_line(job, summary), highlight=False, soft_wrap=True)

        stopped = False
        if len(plan.runs) == 1 and todo:  # one run: in this process, with its own progress bar, as ever
            job = jobs_of(plan, todo, source_text, str(source_path), options, None)[0]
            summary = run_job(job, progress=True, console=console)
            on_done(job, summary)
            stopped = summary["status"] == "interrupted"
        elif todo:
            preload()
            stopped = not _run_many(plan, todo, source_text, str(source_path), options, console, on_done)
    whole = _whole(plan, whole)
    summary = experiment_summary(whole, read_summaries(whole))
    write_experiment_summary(whole, summary)
    return Outcome(summary, kept, len(todo), stopped, frozenset(str(r.run_dir) for r in plan.runs))


def _run_many(plan: Plan, todo: list[PlannedRun], source_text: str, source_path: str, options: Options,
              console: Any, on_done) -> bool:
    board = Board(plan.experiment, len(plan.runs), kept=len(plan.runs) - len(todo))
    if options.ray is not None:
        from mdl.runtime.ray_tune import run_on_ray

        jobs = jobs_of(plan, todo, source_text, source_path, options, 1)
        with live(board, console):
            return run_on_ray(jobs, options.ray, plan, board, on_done, options.ray_max_failures)
    n = options.jobs or default_jobs(len(todo))
    threads = threads_per_job(n) if n > 1 else None
    jobs = jobs_of(plan, todo, source_text, source_path, options, threads)
    with live(board, console):
        return LocalScheduler(n, board).run(jobs, on_done)


def _whole(plan: Plan, whole: Plan | None) -> Plan:
    """`whole`'s points and runs, and the selected ones it lacks (a `--seed` the experiment does not list)."""
    if whole is None:
        return plan
    dirs = {str(r.run_dir) for r in whole.runs}
    names = {p.name for p in whole.points}
    return dataclasses.replace(whole, runs=[*whole.runs, *(r for r in plan.runs if str(r.run_dir) not in dirs)],
                               points=[*whole.points, *(p for p in plan.points if p.name not in names)])


def _done_line(job: RunJob, summary: dict[str, Any]) -> str:
    from rich.markup import escape

    status = summary.get("status", "?")
    score = score_of(summary)
    text = f"{job.label}: {status}"
    if score is not None:
        text += f", score {score:,.1f}"
    if isinstance(summary.get("wall_seconds"), int | float):
        text += f" in {summary['wall_seconds']:.1f} s"
    if summary.get("error"):
        text += f" ({summary['error']})"
    bad = [e["format"] for e in summary.get("exports") or [] if not e.get("ok")]
    if bad:
        text += f"; export failed: {', '.join(bad)}"
    colour = "green" if status == "completed" else "yellow" if status == "interrupted" else "bold red"
    return f"[{colour}]{escape(text)}[/]"


def _remove(runs: list[PlannedRun]) -> None:
    for run in runs:
        rd = RunDir(run.run_dir)
        if not rd.path.exists():
            continue
        try:
            with rd.lock():
                pass
        except RunBusy as exc:
            raise TrainError(f"{exc}; --fresh cannot start it over now") from None
        shutil.rmtree(rd.path)


__all__ = ["Options", "Outcome", "run_experiment"]
