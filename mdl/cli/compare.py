"""`mdlc compare RUN_OR_POINT... [-o FILE.png] [--json]`: runs or sweep points side by side
(mdl.runtime.compare): the overlaid score curves, final scores with intervals, the settings that
differ, and whether the difference is real at these seeds."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mdl.cli.common import fail
from mdl.runtime.errors import EXIT_OK, MdlRuntimeError


def cmd_compare(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Exit 0 when compared, 2 for paths that are not runs, runs without metrics or a score, a corrupt
    metrics line, or runs of different environments."""
    from mdl.runtime.compare import compare

    try:
        result = compare(args.paths, png=args.output)
    except MdlRuntimeError as exc:
        return fail(err, exc)
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    scores = Table(title=f"final {result['unit']} (mean of the last 100 episodes, per run)", title_justify="left",
                   box=None, header_style="bold")
    for column in ("", "n", "mean", "std", "IQM", "95% interval", "min", "max", "params"):
        scores.add_column(column, justify="left" if column == "" else "right")
    for g in result["groups"]:
        scores.add_row(escape(g["label"]), str(g["n"]), _num(g["mean"]), _num(g["std"]), _num(g["iqm"]),
                       f"[{_num(g['ci95'][0])}, {_num(g['ci95'][1])}]", _num(g["min"]), _num(g["max"]),
                       f"{g['params']:,}" if isinstance(g["params"], int) else "-")
    out.print(scores)
    if result["differences"]:
        diff = Table(title="settings that differ", title_justify="left", box=None, header_style="bold")
        diff.add_column("setting")
        for g in result["groups"]:
            diff.add_column(escape(g["label"]), justify="right")
        for key, values in result["differences"].items():
            diff.add_row(escape(key), *(escape(_value(v)) for v in values))
        out.print(diff)
    else:
        out.print("settings: the same in every group (only the seeds differ)")
    for comparison in result["comparisons"]:
        colour = "bold green" if comparison["significant"] else "yellow"
        out.print(f"[{colour}]{escape(comparison['verdict'])}[/]", highlight=False, soft_wrap=True)
    if result["png"]:
        out.print(f"curves: {escape(result['png'])}", highlight=False, soft_wrap=True)
    return EXIT_OK


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.2f}"


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and len(value) > 24:
        return value[:12] + "…"
    return "-" if value is None else str(value)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="runs or sweep points side by side: curves, scores, settings, verdict")
    p.add_argument("paths", metavar="RUN_OR_POINT", nargs="+",
                   help="run directories, sweep point directories (their seeds together) or an experiment")
    p.add_argument("-o", "--output", metavar="FILE.png", default="compare.png",
                   help="the curves picture (default compare.png)")
    p.add_argument("--json", action="store_true", help="print every number as JSON")
    p.set_defaults(run=cmd_compare)
