"""`mdlc`: parse the arguments, call the library, render what it returns, exit with a code.

The CLI owns only that: the work is the library's (mdl.compiler, mdl.dsl, mdl.runtime, mdl.lsp), and
a command never decides what a failure means. Exit codes (mdl.runtime.errors): 0 success, 1 a design
with errors (or one that no longer matches a checkpoint), 2 a usage error, 3 a runtime failure. A
user's mistake never produces a traceback: a command reports it through `common.fail()`, which prints
`error: <message>` and returns the error's `exit_code`.

Commands live one module per group under mdl.cli (`COMMANDS`, in the order `mdlc --help` lists them);
each has `register(sub)` adding its subparser(s) with `set_defaults(run=cmd)`, where
`cmd(args, out, err) -> int` returns the exit code. Adding a command is one module and one name in
COMMANDS. `python -m mdl.cli` runs `main` too (`__main__.py`). A command module imports only light things at the top (`mdlc check` never imports torch);
what a command needs it imports when it runs.
"""

from __future__ import annotations

import argparse
import importlib

from rich.console import Console

from mdl import __version__
from mdl.cli.common import parse_budget
from mdl.runtime.errors import EXIT_OK, EXIT_RUNTIME

# Command modules under mdl.cli, each with `register(sub: argparse._SubParsersAction) -> None`.
COMMANDS = ("check", "compile", "viz", "fmt", "lsp", "train", "runs", "compare", "report", "models", "eval", "export",
            "decompile")


def build_parser() -> argparse.ArgumentParser:
    """The `mdlc` parser with every command in COMMANDS registered."""
    parser = argparse.ArgumentParser(prog="mdlc", description="Compile, check and format .mdl designs.")
    parser.add_argument("--version", action="version", version=f"mdlc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"mdl.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Console(highlight=False, width=max(Console().width, 100))
    err = Console(stderr=True, highlight=False)
    try:
        return args.run(args, out, err)
    except KeyboardInterrupt:
        err.print("interrupted")
        return EXIT_RUNTIME
    except BrokenPipeError:
        return EXIT_OK


__all__ = ["COMMANDS", "build_parser", "main", "parse_budget"]
