"""`mdlc train FILE` (every run of an experiment: `mdl.runtime.plan`, `mdl.runtime.sweep`) and
`mdlc train --resume RUN_DIR` (one run, continued)."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from mdl.cli.common import Sources, fail, fmt_bytes, parse_budget, positive_int, read_text_file
from mdl.runtime.errors import EXIT_ERRORS, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE
from mdl.runtime.rundir import RunDir

LOCAL_RAY = "local"  # mdl.runtime.ray_tune.LOCAL (that module imports Ray's adapter: not at start-up)


def cmd_train(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run an experiment: every sweep point x seed (or those --seed / --point select), continuing what an
    earlier call left. Exit 0 when every run completed (or Ctrl-C stopped them, checkpointed), 1 for a
    design with errors (or, with --resume, a design that no longer matches the checkpoint), 2 for a
    usage error, 3 when a run failed or diverged (the others are kept)."""
    from mdl.compiler.check import analyze
    from mdl.compiler.render import print_diagnostics

    budget_steps = budget_seconds = None
    if args.budget is not None:
        budget = parse_budget(args.budget)
        if budget is None:
            return fail(err, f"cannot read the budget {args.budget!r}; write a step count like `10k steps` "
                             "or a time like `30 s`, `2 min`", EXIT_USAGE)
        budget_steps, budget_seconds = budget
    if args.resume is not None:
        return _resume(args, out, err, budget_steps, budget_seconds)
    if args.file is None:
        return fail(err, "give a FILE to train, or --resume RUN_DIR", EXIT_USAGE)
    text = read_text_file(args.file, err)
    if text is None:
        return EXIT_USAGE
    sources = Sources()
    sources.add(args.file, text)
    analysis = analyze(text, args.file)
    print_diagnostics(err, analysis.diagnostics, sources)
    if not analysis.ok:
        return EXIT_ERRORS
    names = list(analysis.experiments)
    if args.experiment is not None and args.experiment not in names:
        return fail(err, f"no experiment `{args.experiment}` in {args.file}; "
                         f"experiments: {', '.join(names) or 'none'}", EXIT_USAGE)
    if args.experiment is None and len(names) != 1:
        return fail(err, f"{args.file} has {len(names)} experiments; pick one with "
                         f"--experiment ({', '.join(names) or 'none'})", EXIT_USAGE)
    from mdl.runtime.errors import MdlRuntimeError
    from mdl.runtime.plan import plan

    spec = analysis.experiments[args.experiment or names[0]]
    if spec.search.kind == "optuna":
        return _optuna(spec, text, args, out, err, budget_steps, budget_seconds)
    try:
        runs = plan(spec, args.out, seeds=[args.seed] if args.seed is not None else None, point=args.point,
                    budget_steps=budget_steps)
    except MdlRuntimeError as exc:
        return fail(err, exc)
    if args.plan:
        return _print_plan(runs, out, args.json)
    if not runs.runs:
        return fail(err, f"every point of experiment `{spec.name}` is pruned; nothing to train", EXIT_USAGE)
    from mdl.runtime.sweep import Options, run_experiment

    options = Options(jobs=args.jobs, ray=args.ray, fresh=args.fresh, budget_steps=budget_steps,
                      budget_seconds=budget_seconds, device=args.device, deterministic=args.deterministic)
    try:
        whole = plan(spec, args.out, budget_steps=budget_steps) if args.seed is not None or args.point else None
        outcome = run_experiment(runs, text, args.file, options, console=err, whole=whole)
    except MdlRuntimeError as exc:
        return fail(err, exc)
    return _experiment_finished(runs, outcome, out, err, args.json)


def _optuna(spec, text: str, args: argparse.Namespace, out: Console, err: Console, budget_steps, budget_seconds) -> int:
    """`search = optuna(...)`: the study proposes the points (mdl.runtime.optuna_search)."""
    from pathlib import Path

    from mdl.runtime.errors import MdlRuntimeError
    from mdl.runtime.optuna_search import JOURNAL, mean_scores, run_optuna, study_plan
    from mdl.runtime.results import experiment_summary, read_summaries, write_experiment_summary
    from mdl.runtime.scheduler import default_jobs
    from mdl.runtime.sweep import Options, Outcome, run_experiment

    if args.point:
        return fail(err, "--point selects points of a grid or random search; an optuna search proposes its own",
                    EXIT_USAGE)
    seeds = [args.seed] if args.seed is not None else list(spec.seeds)
    steps = budget_steps if budget_steps is not None else spec.budget_steps
    try:
        if args.plan:
            plan = study_plan(spec, Path(args.out), seeds, steps)
            if not args.json:
                out.print(f"optuna search: {spec.search.trials} trained points proposed one after another "
                          f"(seed {spec.search.seed}); the study so far:", highlight=False)
            return _print_plan(plan, out, args.json)
        if args.fresh:  # a new study; the runs of the points it proposes start over
            (Path(args.out) / spec.name / JOURNAL).unlink(missing_ok=True)
        options = Options(jobs=args.jobs, ray=args.ray, fresh=args.fresh, budget_steps=budget_steps,
                          budget_seconds=budget_seconds, device=args.device, deterministic=args.deterministic)

        def run_batch(batch, whole):
            outcome = run_experiment(batch, text, args.file, options, console=err, whole=whole)
            return mean_scores(batch, read_summaries(batch)), outcome.stopped

        width = args.jobs or min(default_jobs(spec.search.trials * len(seeds)), spec.search.trials)
        plan, stopped = run_optuna(spec, Path(args.out), seeds, steps, run_batch, max(1, width))
    except MdlRuntimeError as exc:
        return fail(err, exc)
    summary = experiment_summary(plan, read_summaries(plan))
    write_experiment_summary(plan, summary)
    outcome = Outcome(summary, [], len(plan.runs), stopped, frozenset(str(r.run_dir) for r in plan.runs))
    return _experiment_finished(plan, outcome, out, err, args.json)


def _print_plan(runs, out: Console, as_json: bool) -> int:
    """`--plan`: the runs and each point's static costs; nothing is trained."""
    from rich.markup import escape

    from mdl.compiler.cost import format_count

    if as_json:
        print(json.dumps(runs.to_json(), indent=2))
        return EXIT_OK
    pruned = sum(p.pruned is not None for p in runs.points)
    kept = len(runs.points) - pruned
    points = f"{kept} point{'s' * (kept != 1)}" + (f" of {len(runs.points)}, {pruned} pruned," if pruned else "")
    out.print(f"experiment {escape(runs.experiment)}: {len(runs.runs)} run{'s' * (len(runs.runs) != 1)} "
              f"({points} x seeds {', '.join(map(str, runs.seeds))}) "
              f"under {escape(str(runs.experiment_dir))}", highlight=False, soft_wrap=True)
    # Plain aligned text, not a rich Table: a 100-point plan prints in a millisecond instead of 45.
    header = ("point", "params", "FLOPs/sample", "train memory", "compute", "pruned")
    rows = [(p.name or "(no sweep)", f"{p.params:,}", format_count(p.flops), fmt_bytes(p.memory_bytes),
             f"{p.compute:.3g}" if p.compute is not None else "-", p.pruned or "") for p in runs.points]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r: tuple[str, ...]) -> str:
        cells = [c.ljust(w) if i in (0, 5) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        return "  ".join(cells).rstrip()

    out.print("\n".join([line(header), *map(line, rows)]), markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK


def _experiment_finished(runs, outcome, out: Console, err: Console, as_json: bool) -> int:
    from rich.markup import escape

    summary = outcome.summary
    if as_json:
        print(json.dumps(summary, indent=2))
    elif len(runs.runs) == 1:
        run = RunDir(runs.runs[0].run_dir)
        out.print(f"run: {escape(str(run.path))}", highlight=False, soft_wrap=True)
        out.print(json.dumps(run.read_summary() or summary["runs"][0], indent=2), highlight=False, soft_wrap=True)
    else:
        _print_points(summary, out)
        out.print(f"summary: {escape(str(runs.experiment_dir / 'summary.json'))}", highlight=False, soft_wrap=True)
    for run in outcome.failed:
        fail(err, f"{run['run_dir']}: {run['status']}: {run['error'] or 'see its summary.json'}")
    if outcome.failed:
        failed = sum(r["status"] == "failed" for r in outcome.failed)
        diverged = len(outcome.failed) - failed
        what = ", ".join(f"{n} {word}" for n, word in ((failed, "failed"), (diverged, "diverged")) if n)
        retry = ("run the same command again to retry the failed ones" if failed else "")
        keep = ("diverged runs are kept as they ended (--fresh starts them over)" if diverged else "")
        err.print(f"{what} of {len(runs.runs)} runs; the others are kept; {'; '.join(filter(None, (retry, keep)))}",
                  highlight=False, soft_wrap=True)
        return EXIT_RUNTIME
    if outcome.stopped:
        err.print("interrupted: checkpointed and stopped; run the same command again to continue",
                  highlight=False, soft_wrap=True)
    return EXIT_OK


def _print_points(summary: dict, out: Console) -> None:
    """The per-point table: n, mean ± std, min, max, IQM, bootstrap 95% interval; the best point marked."""
    from rich.markup import escape

    def num(x) -> str:
        return "-" if x is None else f"{x:,.1f}"

    best = (summary.get("best") or {}).get("point")
    table = Table(title=f"experiment {escape(summary['experiment'])}: score (mean return of the last 100 episodes)",
                  title_justify="left", box=None, header_style="bold")
    for column in ("point", "n", "mean ± std", "min", "max", "IQM", "95% CI", "params"):
        table.add_column(column, justify="left" if column == "point" else "right")
    for p in summary["points"]:
        mark = " [bold green]best[/]" if best is not None and p["point"] == best and len(summary["points"]) > 1 else ""
        spread = f"{num(p['mean'])} ± {num(p['std'])}" if p["std"] is not None else num(p["mean"])
        if p.get("pruned"):
            spread = "[dim]pruned[/]"
        ci = f"[{num(p['ci95'][0])}, {num(p['ci95'][1])}]" if p["ci95"] else "-"
        table.add_row(escape(p.get("name") or "(no sweep)") + mark, str(p["n"]), spread, num(p["min"]),
                      num(p["max"]), num(p["iqm"]), ci, f"{p['params']:,}")
    out.print(table)


def _resume(args: argparse.Namespace, out: Console, err: Console, budget_steps: int | None,
            budget_seconds: float | None) -> int:
    """`mdlc train --resume RUN_DIR`: the design, experiment and seed come from the run directory."""
    from mdl.runtime.train import DesignMismatch, TrainError, resume

    given = [flag for flag, value in (("FILE", args.file), ("--experiment", args.experiment),
                                      ("--seed", args.seed)) if value is not None]
    if given:
        return fail(err, "--resume takes the design, experiment and seed from the run directory; "
                         f"leave out {', '.join(given)}", EXIT_USAGE)
    try:
        summary = resume(args.resume, budget_steps=budget_steps, budget_seconds=budget_seconds,
                         device=args.device, deterministic=True if args.deterministic else None,
                         progress=True, console=err)
    except DesignMismatch as exc:  # exit 1, DesignChanged included
        return fail(err, exc)
    except TrainError as exc:
        # Exit 2 for every other TrainError, as before: an EvalError from reading the run (its design
        # copy does not read) carries exit_code 3, which `mdlc eval` uses but --resume does not.
        return fail(err, exc, EXIT_USAGE)
    return _train_finished(summary, out, err)


def _train_finished(summary: dict, out: Console, err: Console) -> int:
    from rich.markup import escape

    out.print(f"run: {escape(summary['run_dir'])}", highlight=False, soft_wrap=True)
    out.print(json.dumps(summary, indent=2), highlight=False, soft_wrap=True)
    if summary["status"] == "diverged":
        return fail(err, summary.get("message", "the loss diverged"), EXIT_RUNTIME)
    if summary["status"] == "interrupted":
        err.print("interrupted: checkpointed and stopped", highlight=False)
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="run an experiment with PPO: every sweep point and seed, continuing "
                                     "where an earlier call stopped")
    p.add_argument("file", metavar="FILE", nargs="?", help="the design (leave out with --resume)")
    p.add_argument("--experiment", metavar="NAME", help="the experiment to run (default: the file's only one)")
    p.add_argument("--out", metavar="DIR", default="runs",
                   help="where runs go: DIR/<experiment>/<seed>/, DIR/<experiment>/<point>/<seed>/ with a sweep "
                        "(default runs)")
    p.add_argument("--seed", type=int, help="run only this seed (default: every seed of the experiment)")
    p.add_argument("--point", metavar="K=V,...", help="run only the sweep points with these values, e.g. experts=8")
    p.add_argument("--jobs", type=positive_int, metavar="N",
                   help="runs at once in local worker processes (default: as many as fit the cores)")
    p.add_argument("--ray", nargs="?", const=LOCAL_RAY, metavar="ADDRESS",
                   help="hand the runs to Ray Tune on the cluster at ADDRESS (host:port); a local Ray without one")
    p.add_argument("--plan", action="store_true", help="print the runs and each point's static costs; train nothing")
    p.add_argument("--fresh", action="store_true", help="start the selected runs over instead of continuing them")
    p.add_argument("--json", action="store_true",
                   help="print the experiment summary (with --plan: the plan) as JSON on stdout")
    p.add_argument("--budget", metavar="Q", help='replace the budget: "10k steps", "30 s", "2 min"')
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the experiment's (auto)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic torch kernels and one CPU thread (identical metrics per seed on CPU)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its newest loadable checkpoint to its budget "
                        "(2048 runs bit-exactly; gym runs restart their episodes)")
    p.set_defaults(run=cmd_train)
