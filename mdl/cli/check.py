"""`mdlc check FILE...`: the diagnostics of each file, rendered or as JSON; exit 1 if there are errors."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from mdl.cli.common import Sources, read_text_file
from mdl.runtime.errors import EXIT_ERRORS, EXIT_OK, EXIT_USAGE


def cmd_check(args: argparse.Namespace, out: Console, err: Console) -> int:
    from mdl.compiler.check import check_source
    from mdl.compiler.render import print_diagnostics, summary

    sources = Sources()
    everything = []
    unreadable = 0
    for path in args.files:
        text = read_text_file(path, err)
        if text is None:
            unreadable += 1
            continue
        sources.add(path, text)
        everything += check_source(text, path)
    if args.json:
        print(json.dumps([d.to_json() for d in everything], indent=2))
    else:
        print_diagnostics(out, everything, sources)
        checked = len(args.files) - unreadable
        if checked:  # a file that could not be read was not checked: no "ok" for it
            out.print(summary(everything, checked), highlight=False)
    if unreadable:
        return EXIT_USAGE
    return EXIT_ERRORS if any(d.is_error for d in everything) else EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="report diagnostics (exit 1 if there are errors)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the diagnostics as JSON")
    p.set_defaults(run=cmd_check)
