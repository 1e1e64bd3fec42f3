"""`mdlc fmt FILE...`: format files in place in the canonical style (`--check`: change nothing, exit 1
if a file would be reformatted)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from mdl.cli.common import Sources, read_text_file
from mdl.files import write_text_atomic
from mdl.runtime.errors import EXIT_ERRORS, EXIT_OK, EXIT_USAGE


def cmd_fmt(args: argparse.Namespace, out: Console, err: Console) -> int:
    from mdl.compiler.render import print_diagnostics
    from mdl.dsl.format import FormatError, format_source

    sources = Sources()
    status = EXIT_OK
    changed = []
    for path in args.files:
        text = read_text_file(path, err)
        if text is None:
            status = EXIT_USAGE
            continue
        sources.add(path, text)
        try:
            formatted = format_source(text, path)
        except FormatError as exc:
            print_diagnostics(err, exc.diagnostics, sources)
            status = max(status, EXIT_ERRORS)
            continue
        if formatted == text:
            continue
        changed.append(path)
        if not args.check:
            write_text_atomic(Path(path), formatted)
    verb = "would reformat" if args.check else "reformatted"
    for path in changed:
        out.print(f"{verb} {path}", highlight=False)
    unchanged = len(args.files) - len(changed)
    out.print(f"{len(changed)} file{'s' * (len(changed) != 1)} {verb}, {unchanged} unchanged", highlight=False)
    if args.check and changed:
        status = max(status, EXIT_ERRORS)
    return status


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fmt", help="format files in place in the canonical style")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file would be reformatted")
    p.set_defaults(run=cmd_fmt)
