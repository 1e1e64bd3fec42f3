"""`mdlc decompile CHECKPOINT`: the architecture a checkpoint, run or export carries, back as a formatted
`.mdl` design, checked to compile to the same architecture hash."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from mdl.cli.common import fail
from mdl.files import write_text_atomic
from mdl.runtime.errors import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, ExportError


def cmd_decompile(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Turn the architecture a checkpoint, run or export carries back into a formatted `.mdl` design, and
    check it compiles to the same architecture hash. Exit 0 when it does, 2 for a usage error, 3 when
    the file does not load or the design does not round-trip (it is still written, for inspection)."""
    from rich.markup import escape

    from mdl.runtime.export import decompile_file

    try:
        text, report = decompile_file(args.path, name=args.name, out=args.output)
    except ImportError as exc:
        return fail(err, f"decompiling is not available here ({exc})", EXIT_RUNTIME)
    except ExportError as exc:
        return fail(err, exc)
    if args.output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            write_text_atomic(Path(args.output), text)
        except OSError as exc:
            return fail(err, f"cannot write {args.output}: {exc.strerror or exc}", EXIT_USAGE)
    say = err if args.output is None else out  # stdout holds only the design when it is printed
    if args.output is not None:
        say.print(f"wrote {escape(args.output)} (model {escape(str(report['model']))})", highlight=False,
                  soft_wrap=True)
    if report["hash_matches"]:
        say.print(f"architecture hash round-trips: {report['expected_hash'][:16]}", highlight=False)
        return EXIT_OK
    problem = ("; ".join(report["errors"]) if report["errors"] else
               f"it compiles to {str(report['architecture_hash'])[:16]}, not {report['expected_hash'][:16]}")
    return fail(err, f"the decompiled design does not round-trip ({problem}); this is a bug in mdl, please report it",
                EXIT_RUNTIME)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decompile", help="turn a checkpoint's architecture back into a formatted .mdl design")
    p.add_argument("path", metavar="CHECKPOINT",
                   help="an exported .pt or .json, a run directory or a training checkpoint")
    p.add_argument("-o", "--output", metavar="DESIGN.mdl", help="write the design here (default: print it)")
    p.add_argument("--name", metavar="NAME", help="the model's name in the design (default: the original's)")
    p.set_defaults(run=cmd_decompile)
