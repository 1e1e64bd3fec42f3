"""`mdlc lsp`: the language server on stdio until the editor exits (mdl.lsp.server)."""

from __future__ import annotations

import argparse

from rich.console import Console


def cmd_lsp(args: argparse.Namespace, out: Console, err: Console) -> int:
    from mdl.lsp.server import main as serve

    return serve()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lsp", help="start the language server on stdio (for editors)")
    p.set_defaults(run=cmd_lsp)
