"""`mdlc report RUN_OR_EXPERIMENT [-o DIR]`: PNG plots, `metrics.csv` and a self-contained
`report.html` of a run or an experiment (mdl.runtime.report)."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.markup import escape

from mdl.cli.common import fail
from mdl.runtime.errors import EXIT_OK, MdlRuntimeError


def cmd_report(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Exit 0 when written, 2 for a path that is not a run or an experiment, a run without metrics or
    a corrupt metrics line, 3 when the files cannot be written."""
    from mdl.runtime.report import report

    try:
        result = report(args.path, args.output)
    except MdlRuntimeError as exc:
        return fail(err, exc)
    except OSError as exc:
        return fail(err, f"cannot write the report: {exc}")
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    out.print(f"report of {result['runs']} run{'s' * (result['runs'] != 1)}: {escape(result['html'])}",
              highlight=False, soft_wrap=True)
    out.print(f"{len(result['plots'])} pictures, metrics.csv with {result['rows']:,} rows in {escape(result['dir'])}",
              highlight=False, soft_wrap=True)
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="plots, metrics.csv and report.html of a run or an experiment")
    p.add_argument("path", metavar="RUN_OR_EXPERIMENT", help="a run, sweep point or experiment directory")
    p.add_argument("-o", "--output", metavar="DIR", help="where to write (default RUN_OR_EXPERIMENT/report)")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(run=cmd_report)
