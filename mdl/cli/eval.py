"""`mdlc eval RUN_OR_CHECKPOINT`: play a trained policy greedily and report its scores (for a saved
model, `mdlc eval models/NAME`, the score is recorded in its metadata for `mdlc models list`)."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from mdl.cli.common import fail, positive_int, seconds
from mdl.runtime.errors import EXIT_OK, EXIT_USAGE, MdlRuntimeError


def cmd_eval(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Greedy evaluation of a run's (or one checkpoint's) policy. Exit 0 when it ran, 1 when the run's
    design copy has errors or a different architecture (as `train --resume`), 2 for a usage error (no
    such run, `--render` on a gym env, no CUDA), 3 when the checkpoint cannot be loaded."""
    from rich.markup import escape

    from mdl.runtime.evaluate import evaluate, load_policy
    from mdl.runtime.models import resolve

    try:
        policy = load_policy(resolve(args.path), device=args.device)
    except MdlRuntimeError as exc:  # DesignChanged 1, RunNotFound 2, TrainError (no such device) 2, EvalError 3
        return fail(err, exc)
    for bad, why in policy.skipped:
        err.print(f"[bold yellow]warning[/]: skipping the unreadable checkpoint {escape(str(bad))} "
                  f"({escape(why)}); evaluating {escape(policy.checkpoint.name)}", highlight=False, soft_wrap=True)
    if args.render and not policy.spec.env.definition.renders:
        return fail(err, f"--render draws 2048 boards; experiment `{policy.spec.name}` plays the gym env "
                         f"`{policy.spec.env.id}`; leave out --render", EXIT_USAGE)
    episodes = args.episodes if args.episodes is not None else (1 if args.render else 100)
    render = (err if args.json else out) if args.render else None  # with --json, stdout is only the JSON
    result = evaluate(policy, episodes=episodes, seed=args.seed, render=render, delay=args.delay)
    from mdl.runtime.models import record_eval

    recorded = record_eval(policy.run_dir, result)  # a saved model (models/NAME): its leaderboard score
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_eval(out, result)
        if recorded is not None:
            out.print(f"recorded as the saved model's score: {recorded['score']:,.1f} (mdlc models list)",
                      highlight=False)
    return EXIT_OK


def _print_eval(out: Console, result: dict) -> None:
    from rich.markup import escape

    table = Table(title=f"eval {escape(result['experiment'])} at step {result['step']:,}", title_justify="left",
                  box=None, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("episodes", str(result["episodes"]))
    table.add_row("return", f"{result['mean_return']:.2f} ± {result['std_return']:.2f}")
    table.add_row("min / max return", f"{result['min_return']:g} / {result['max_return']:g}")
    table.add_row("mean length", f"{result['mean_length']:.1f}")
    if "mean_score" in result:
        table.add_row("mean score", f"{result['mean_score']:,.1f}")
        table.add_row("median score", f"{result['median_score']:,.1f}")
        table.add_row("max score", f"{result['max_score']:,}")
        for tile, rate in result["tile_rates"].items():
            table.add_row(f"reached {tile}", f"{rate:.1%}")
        table.add_row("max tiles", "  ".join(f"{t}: {f:.0%}" for t, f in result["max_tile_distribution"].items()))
    out.print(table)
    out.print(f"checkpoint {escape(result['checkpoint'])}  (eval seed {result['seed']})", highlight=False,
              soft_wrap=True)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="play a trained policy greedily (masked argmax) and report its scores")
    p.add_argument("path", metavar="RUN_OR_CHECKPOINT",
                   help="a run directory (its newest checkpoint), a checkpoint file in its checkpoints/, or a "
                        "saved model (models/NAME, or NAME alone)")
    p.add_argument("--episodes", type=positive_int, metavar="N",
                   help="episodes to play (default 100; 1 with --render)")
    p.add_argument("--seed", type=int, default=0, help="the environments' seed (default 0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu", help="default cpu")
    p.add_argument("--render", action="store_true", help="draw the 2048 board live, one game at a time")
    p.add_argument("--delay", type=seconds, default=0.05, metavar="S",
                   help="seconds between moves with --render (default 0.05)")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(run=cmd_eval)
