"""`mdlc train FILE` and `mdlc train --resume RUN_DIR`: PPO for one seed, into a run directory."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from mdl.cli.common import Sources, fail, parse_budget, read_text_file
from mdl.runtime.errors import EXIT_ERRORS, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE


def cmd_train(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Train one experiment for one seed. Exit 0 when the run completes or is stopped by Ctrl-C (it is
    checkpointed first), 1 for a design with errors (or, with --resume, a design that no longer matches
    the checkpoint), 2 for a usage error, 3 when the loss diverges."""
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
    from mdl.runtime.train import TrainError, train

    spec = analysis.experiments[args.experiment or names[0]]
    try:
        summary = train(spec, text, args.file, out_dir=args.out, seed=args.seed, budget_steps=budget_steps,
                        budget_seconds=budget_seconds, device=args.device, deterministic=args.deterministic,
                        progress=True, console=err)
    except TrainError as exc:  # exit 2 (a run that cannot start); without --resume, never a DesignMismatch
        return fail(err, exc)
    return _train_finished(summary, out, err)


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
    p = sub.add_parser("train", help="train an experiment with PPO for one seed; write a run directory")
    p.add_argument("file", metavar="FILE", nargs="?", help="the design (leave out with --resume)")
    p.add_argument("--experiment", metavar="NAME", help="the experiment to run (default: the file's only one)")
    p.add_argument("--out", metavar="DIR", default="runs", help="where runs go: DIR/<experiment>/<seed>/ (default runs)")
    p.add_argument("--seed", type=int, help="the seed (default: the experiment's first)")
    p.add_argument("--budget", metavar="Q", help='replace the budget: "10k steps", "30 s", "2 min"')
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the experiment's (auto)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic torch kernels and one CPU thread (identical metrics per seed on CPU)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its newest loadable checkpoint to its budget "
                        "(2048 runs bit-exactly; gym runs restart their episodes)")
    p.set_defaults(run=cmd_train)
