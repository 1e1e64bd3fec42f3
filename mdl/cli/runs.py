"""`mdlc runs [OUT]`: the run index (`OUT/runs.sqlite`, `mdl.runtime.runindex`), one row per run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mdl.cli.common import fail
from mdl.runtime.errors import EXIT_OK, EXIT_USAGE, RunIndexError

_SHOWN = ("experiment", "point", "seed", "status", "steps", "score", "params", "architecture_hash", "started",
          "wall_seconds", "path")


def cmd_runs(args: argparse.Namespace, out: Console, err: Console) -> int:
    """List the runs under OUT. Exit 0, or 2 for an OUT that is not a folder or an unknown sort key."""
    from mdl.runtime.runindex import INDEX, SORT_KEYS, RunIndex

    root = Path(args.out)
    if not root.is_dir():
        return fail(err, f"no runs folder {root}; train something first (`mdlc train FILE --out {root}`)", EXIT_USAGE)
    if args.sort is not None and args.sort.lstrip("-") not in SORT_KEYS:
        return fail(err, f"cannot sort by {args.sort!r}; keys: {', '.join(SORT_KEYS)} (a leading - reverses)",
                    EXIT_USAGE)
    fresh = not (root / INDEX).exists()
    try:
        with RunIndex(root) as index:
            if args.reindex or fresh:
                count = index.reindex(root)
                if args.reindex and not args.json:
                    err.print(f"reindexed {count} run{'s' * (count != 1)} from {escape(str(root))}", highlight=False)
            rows = index.rows(args.experiment, args.sort)
    except RunIndexError as exc:
        return fail(err, exc)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    table = Table(box=None, header_style="bold")
    for column in _SHOWN:
        table.add_column("hash" if column == "architecture_hash" else "wall s" if column == "wall_seconds" else column,
                         justify="right" if column in ("seed", "steps", "score", "params", "wall_seconds") else "left")
    for row in rows:
        point = ",".join(f"{k.split('.', 1)[-1]}={v}" for k, v in row["point"].items()) or "-"
        table.add_row(escape(row["experiment"]), escape(point), str(row["seed"]), _status(row["status"]),
                      f"{row['steps']:,}" if row["steps"] is not None else "-",
                      f"{row['score']:,.1f}" if row["score"] is not None else "-",
                      f"{row['params']:,}" if row["params"] is not None else "-",
                      (row["architecture_hash"] or "")[:12], row["started"] or "-",
                      f"{row['wall_seconds']:.1f}" if row["wall_seconds"] is not None else "-", escape(row["path"]))
    out.print(table)
    out.print(f"{len(rows)} run{'s' * (len(rows) != 1)}", highlight=False)
    return EXIT_OK


def _status(status: str) -> str:
    colour = {"completed": "green", "interrupted": "yellow", "failed": "bold red", "diverged": "bold red"}.get(status)
    return f"[{colour}]{status}[/]" if colour else status


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list the runs under OUT (experiment, point, seed, status, score, ...)")
    p.add_argument("out", metavar="OUT", nargs="?", default="runs", help="the runs folder (default runs)")
    p.add_argument("--experiment", metavar="E", help="only this experiment's runs")
    p.add_argument("--sort", metavar="KEY",
                   help="order by a column (score: best first; -KEY reverses), e.g. --sort score, --sort -started")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--reindex", action="store_true", help="rebuild OUT/runs.sqlite from the run directories")
    p.set_defaults(run=cmd_runs)
