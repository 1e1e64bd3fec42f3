"""`search = optuna(trials=N, seed=S)`: Optuna's default sampler (TPE, seeded with S) proposes sweep
points one after another and is told each point's score, the mean over the experiment's seeds.

- The study lives in the experiment's directory, `OUT/<experiment>/optuna.journal` (Optuna's journal
  file storage), so running the same command again continues it: trials told before are kept, and a
  trial whose runs a stopped driver left unfinished is run again (its runs resume from their
  checkpoints) before new ones are asked for.
- A proposal over a limit, or whose model does not build, is answered `PRUNED` without training (its
  reason in the trial's `pruned` attribute) and counted; it does not count towards `trials`, which is
  the number of trained points. At most `MAX_DRAWS x trials` proposals are made in all.
- Up to `--jobs` points train at once: a batch is asked for, run by the same runner as every other
  experiment (`mdl.runtime.sweep.run_experiment`), and told as it finishes.
- Each trial keeps its point (`point` attribute, the sweep's keys) so the summary and the plan read
  the study back exactly; floats are rounded to 4 significant digits, as a random search draws them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mdl.compiler.experiment import ExperimentSpec
from mdl.compiler.search import MAX_DRAWS, Range
from mdl.runtime.errors import TrainError
from mdl.runtime.plan import Plan, Point, make_point, runs_of
from mdl.runtime.results import score_of

JOURNAL = "optuna.journal"


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise TrainError('`search = optuna(...)` needs Optuna: pip install "mdl[search]"') from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_study(spec: ExperimentSpec, out: Path, create: bool) -> Any | None:
    """The experiment's study (created when `create`; None when there is none yet and not `create`)."""
    path = out / spec.name / JOURNAL
    if not create and not path.exists():
        return None
    optuna = _optuna()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.create_study(storage=storage, study_name=spec.name, direction="maximize", load_if_exists=True,
                               sampler=optuna.samplers.TPESampler(seed=spec.search.seed))


def suggest(trial: Any, sweep: dict[str, Any]) -> dict[str, Any]:
    """A point from `trial`: each list a categorical choice, each range a float or int suggestion."""
    point: dict[str, Any] = {}
    for key, axis in sweep.items():
        if isinstance(axis, Range):
            if axis.kind == "int_uniform":
                point[key] = trial.suggest_int(key, int(axis.low), int(axis.high))
            else:
                value = trial.suggest_float(key, axis.low, axis.high, log=axis.kind == "log_uniform")
                point[key] = min(max(float(f"{value:.4g}"), axis.low), axis.high)
        else:
            choices = list(axis)
            index = trial.suggest_categorical(key, list(range(len(choices))))  # any value, by its index
            point[key] = choices[index]
    return point


def study_points(spec: ExperimentSpec, study: Any | None, budget_steps: int | None) -> list[tuple[Any, Point]]:
    """(trial, point) for each trial of the study that has a point, in trial order."""
    if study is None:
        return []
    out = []
    for trial in study.get_trials(deepcopy=False):
        values = trial.user_attrs.get("point")
        if isinstance(values, dict):
            out.append((trial, make_point(spec, {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()},
                                          budget_steps)))
    return out


def study_plan(spec: ExperimentSpec, out: Path, seeds: list[int], budget_steps: int | None,
               study: Any | None = None) -> Plan:
    """The plan of what the study holds so far: its points (pruned proposals listed, pruned) and their runs."""
    study = study if study is not None else open_study(spec, out, create=False)
    seen: dict[str, Point] = {}
    for _, point in study_points(spec, study, budget_steps):
        seen.setdefault(point.name or "", point)
    points = list(seen.values())
    return Plan(spec.name, out, points, runs_of(spec, out, points, seeds), tuple(seeds))


def run_optuna(spec: ExperimentSpec, out: Path, seeds: list[int], budget_steps: int | None, run_batch,
               width: int) -> tuple[Plan, bool]:
    """Ask, train and tell until `trials` points are trained (see the module docstring). `run_batch(plan,
    whole)` trains a plan's runs and returns (scores by point name, stopped). Returns the study's plan
    and whether a Ctrl-C stopped it."""
    study = open_study(spec, out, create=True)  # imports optuna (or says how to install it)
    from optuna.trial import TrialState

    trials = spec.search.trials
    proposals = len(study.get_trials(deepcopy=False))
    while True:
        known = study_points(spec, study, budget_steps)
        trained = {p.name: t.value for t, p in known if t.state == TrialState.COMPLETE and "repeat_of" not in t.user_attrs}
        batch = [(t, p) for t, p in known if t.state == TrialState.RUNNING]
        while len(trained) + len(batch) < trials and len(batch) < width and proposals < MAX_DRAWS * trials:
            trial = study.ask()
            proposals += 1
            values = suggest(trial, spec.sweep)
            trial.set_user_attr("point", {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()})
            point = make_point(spec, values, budget_steps)
            if point.pruned is not None:
                trial.set_user_attr("pruned", point.pruned)
                study.tell(trial, state=TrialState.PRUNED)
            elif point.name in trained:  # proposed again: told what its runs scored, not trained twice
                trial.set_user_attr("repeat_of", point.name)
                study.tell(trial, trained[point.name])
            elif any(point.name == p.name for _, p in batch):  # already training: asked again later
                trial.set_user_attr("repeat_of", point.name)
                study.tell(trial, state=TrialState.FAIL)
            else:
                batch.append((trial, point))
        if not batch:
            break
        points = [p for _, p in batch]
        scores, stopped = run_batch(Plan(spec.name, out, points, runs_of(spec, out, points, seeds), tuple(seeds)),
                                    study_plan(spec, out, seeds, budget_steps, study))
        if stopped:  # Ctrl-C: the batch's trials stay RUNNING; the same command runs them again
            return study_plan(spec, out, seeds, budget_steps, study), True
        for trial, point in batch:
            score = scores.get(point.name or "")
            if score is None:
                study.tell(trial.number, state=TrialState.FAIL)
            else:
                study.tell(trial.number, score)
    return study_plan(spec, out, seeds, budget_steps, study), False


def mean_scores(plan: Plan, summaries: dict[str, dict[str, Any] | None]) -> dict[str, float | None]:
    """Each point's mean score over its completed runs (by point name); None when none completed."""
    scores: dict[str, list[float]] = {}
    for run in plan.runs:
        summary = summaries.get(str(run.run_dir)) or {}
        score = score_of(summary)
        bucket = scores.setdefault(run.point.name or "", [])
        if summary.get("status") == "completed" and score is not None:
            bucket.append(score)
    return {name: sum(v) / len(v) if v else None for name, v in scores.items()}


__all__ = ["JOURNAL", "mean_scores", "open_study", "run_optuna", "study_plan", "suggest"]
