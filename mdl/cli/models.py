"""`mdlc models save RUN [--name NAME]`, `mdlc models list`, `mdlc models rm NAME`: saved models and
their leaderboard (mdl.runtime.models). `mdlc eval models/NAME` evaluates one and records its score."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mdl.cli.common import fail
from mdl.runtime.errors import EXIT_OK, MdlRuntimeError


def cmd_save(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Exit 0 when saved, 2 for a path that is not a run, a taken name without --force or a bad name,
    3 when an export does not verify."""
    from mdl.runtime.models import save

    try:
        saved = save(args.source, args.name, root=args.models, force=args.force, pick=args.pick)
    except MdlRuntimeError as exc:
        return fail(err, exc)
    if args.json:
        print(json.dumps(saved, indent=2))
        return EXIT_OK
    exports = ", ".join(f"{e['format']} {'verified' if e['verified'] else 'NOT verified'}" for e in saved["exports"])
    out.print(f"saved [bold]{escape(saved['name'])}[/] in {escape(saved['path'])}: {escape(str(saved['model']))}, "
              f"{saved['params']:,} params, step {saved['steps']:,} ({saved['picked']} checkpoint); {exports}",
              highlight=False, soft_wrap=True)
    out.print(f"evaluate it for the leaderboard: mdlc eval {escape(saved['path'])}", highlight=False, soft_wrap=True)
    return EXIT_OK


def cmd_list(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Exit 0, or 2 for an unknown sort key."""
    from mdl.runtime.models import list_models

    try:
        models = list_models(args.models, args.sort)
    except MdlRuntimeError as exc:
        return fail(err, exc)
    if args.json:
        print(json.dumps(models, indent=2))
        return EXIT_OK
    table = Table(box=None, header_style="bold")
    for column in ("#", "name", "design", "params", "steps", "eval score", "train score", "saved"):
        table.add_column(column, justify="right" if column in ("#", "params", "steps", "eval score", "train score")
                         else "left")
    for rank, m in enumerate(models, start=1):
        table.add_row(str(rank), escape(m["name"]), escape(m["design"]), _count(m.get("params")),
                      _count(m.get("steps")), _score(m.get("score")), _score(m.get("train_score")),
                      escape(str(m.get("saved") or "-")[:16].replace("T", " ")))
    out.print(table)
    out.print(f"{len(models)} saved model{'s' * (len(models) != 1)} in {escape(str(args.models))}"
              + ("; `mdlc eval MODELS/NAME` gives a model its eval score" if any(m["score"] is None for m in models)
                 else ""), highlight=False, soft_wrap=True)
    return EXIT_OK


def cmd_rm(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Exit 0 when removed, 2 for a name that is not saved."""
    from mdl.runtime.models import remove

    try:
        folder = remove(args.name, args.models)
    except MdlRuntimeError as exc:
        return fail(err, exc)
    out.print(f"removed {escape(str(folder))}", highlight=False, soft_wrap=True)
    return EXIT_OK


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="saved models: save a run's checkpoint and exports, list the leaderboard, rm")
    models = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    def with_root(q: argparse.ArgumentParser) -> argparse.ArgumentParser:
        q.add_argument("--models", metavar="DIR", default="models", help="the saved models' folder (default models)")
        return q

    save = with_root(models.add_parser("save", help="save a run's newest (or best) checkpoint with verified exports"))
    save.add_argument("source", metavar="RUN", help="a run directory, or one checkpoint file in its checkpoints/")
    save.add_argument("--name", metavar="NAME", help="the model's name (default <experiment>-<point>-seed<N>)")
    save.add_argument("--pick", choices=("newest", "best"), default="newest",
                      help="the newest checkpoint (default) or the one with the best training score")
    save.add_argument("--force", action="store_true", help="replace a saved model of the same name")
    save.add_argument("--json", action="store_true", help="print the model's metadata as JSON")
    save.set_defaults(run=cmd_save)
    listing = with_root(models.add_parser("list", help="the leaderboard: saved models by evaluated score"))
    listing.add_argument("--sort", metavar="KEY", default="score",
                         help="order by score (the default, best first), train_score, params, steps, saved, name or "
                              "design; -KEY reverses")
    listing.add_argument("--json", action="store_true", help="print the models as JSON")
    listing.set_defaults(run=cmd_list)
    rm = with_root(models.add_parser("rm", help="remove a saved model"))
    rm.add_argument("name", metavar="NAME")
    rm.set_defaults(run=cmd_rm)
