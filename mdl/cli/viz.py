"""`mdlc viz FILE [--model NAME] [-o graph.svg|graph.png|graph.dot] [--depth N]`: a picture of a model's
graph IR (mdl.compiler.viz_scene, viz_draw). Front end only: no torch, no system Graphviz."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from mdl.cli.common import Sources, fail, non_negative_int, print_errors, read_text_file
from mdl.files import write_bytes_atomic, write_text_atomic
from mdl.runtime.errors import EXIT_OK, EXIT_USAGE


def cmd_viz(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Exit 0 when the picture was written, 1 when the design has errors, 2 for a usage error."""
    from rich.markup import escape

    from mdl.compiler.api import select_model
    from mdl.compiler.check import analyze
    from mdl.compiler.viz_draw import FORMATS, picture

    path = Path(args.output) if args.output else Path(Path(args.file).stem + ".svg")
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        return fail(err, f"-o {args.output}: the picture's format comes from its extension; "
                         f"use .svg, .png or .dot", EXIT_USAGE)
    text = read_text_file(args.file, err)
    if text is None:
        return EXIT_USAGE
    sources = Sources()
    sources.add(args.file, text)
    analysis = analyze(text, args.file)
    errors = [d for d in analysis.diagnostics if d.is_error]
    if errors:  # a picture of a broken design would show something the design does not say
        return print_errors(errors, False, err, sources)
    graph, problems = select_model(analysis, args.model, args.file)
    if graph is None or any(d.is_error for d in problems):
        return print_errors(problems, False, err, sources)
    drawn = picture(graph, fmt, args.depth)
    try:
        (write_bytes_atomic if isinstance(drawn, bytes) else write_text_atomic)(path, drawn)
    except OSError as exc:
        return fail(err, f"cannot write {path}: {exc.strerror or exc}", EXIT_USAGE)
    collapsed = "" if args.depth is None else f", blocks below depth {args.depth} collapsed"
    out.print(f"wrote {escape(str(path))} ({graph.model}: {len(graph.nodes)} nodes, {graph.params:,} params"
              f"{collapsed})", highlight=False, soft_wrap=True)
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("viz", help="draw a model's graph (SVG, PNG or Graphviz DOT; no Graphviz needed)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--model", metavar="NAME", help="the model to draw (default: the file's only model, or "
                                                   "its first experiment's)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="graph.svg, graph.png or graph.dot (default: FILE's name with .svg, here)")
    p.add_argument("--depth", type=non_negative_int, metavar="N",
                   help="collapse blocks and repeats nested N or more levels deep into one box with their "
                        "summed parameters (0: every block; default: none)")
    p.set_defaults(run=cmd_viz)
