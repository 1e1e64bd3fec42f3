"""`mdlc compile FILE`: compile a model and print its blocks, shapes, parameters and costs (or the
summary as JSON); `-o OUT.py` also writes the standalone PyTorch module."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mdl.cli.common import Sources, fail, fmt_bytes, positive_int, print_errors, read_text_file
from mdl.files import write_text_atomic
from mdl.runtime.errors import EXIT_ERRORS, EXIT_OK, EXIT_USAGE


def cmd_compile(args: argparse.Namespace, out: Console, err: Console) -> int:
    from mdl.compiler.api import compile_source
    from mdl.compiler.render import print_diagnostics
    from mdl.dsl.diagnostics import CompileError

    text = read_text_file(args.file, err)
    if text is None:
        return EXIT_USAGE
    sources = Sources()
    sources.add(args.file, text)
    try:
        compiled = compile_source(text, args.model, args.file)
    except CompileError as exc:
        return print_errors(exc.diagnostics, args.json, err, sources)
    if args.json:
        status = EXIT_OK if args.output is None else _write_standalone(compiled, args, err, err, sources)
        if status == EXIT_OK:  # stdout stays one JSON document; where the file went is said on stderr
            print(json.dumps(compiled.summary(args.batch), indent=2))
        return status
    print_diagnostics(err, compiled.diagnostics, sources)
    _print_table(out, compiled, args.batch)
    return EXIT_OK if args.output is None else _write_standalone(compiled, args, out, err, sources)


def _write_standalone(compiled, args: argparse.Namespace, out: Console, err: Console, sources: Sources) -> int:
    """`compile -o OUT.py`: the standalone PyTorch module (mdl.compiler.codegen), written atomically."""
    from rich.markup import escape

    from mdl.compiler.codegen import class_name, standalone_source
    from mdl.compiler.render import print_diagnostics
    from mdl.dsl.diagnostics import CompileError

    try:
        text = standalone_source(compiled.ir, args.file)
    except CompileError as exc:
        print_diagnostics(err, exc.diagnostics, sources)
        return EXIT_ERRORS
    path = Path(args.output)
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        return fail(err, f"cannot write {path}: {exc.strerror or exc}", EXIT_USAGE)
    out.print(f"wrote {escape(str(path))} (standalone PyTorch module: class {class_name(compiled.ir)})",
              highlight=False, soft_wrap=True)
    return EXIT_OK


def _print_table(out: Console, compiled, batch: int) -> None:
    from mdl.compiler import cost

    graph = compiled.ir
    table = Table(title=f"model {compiled.name}", title_justify="left", box=None, header_style="bold")
    table.add_column("name")
    table.add_column("op")
    table.add_column("output shape")
    table.add_column("params", justify="right")
    table.add_column("FLOPs/sample", justify="right")
    calls = {c.path: c for c in cost.block_costs(graph)}
    opened: set[str] = set()
    for node in graph.nodes:
        # A block call's subtotal row goes before its first node.
        parts = node.name.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix in calls and prefix not in opened:
                opened.add(prefix)
                c = calls[prefix]
                table.add_row(f"[bold]{prefix}[/]", f"[bold]{c.block}[/]", "", f"[bold]{c.params:,}[/]",
                              f"[bold]{cost.format_count(c.flops)}[/]")
        inside = [i for i in range(1, len(parts)) if ".".join(parts[:i]) in calls]
        short = ".".join(parts[inside[-1]:]) if inside else node.name
        table.add_row("  " * len(inside) + short, node.op, str(node.type), f"{node.params:,}" if node.params else "",
                      cost.format_count(node.flops) if node.flops else "")
    out.print(table)
    mem = compiled.memory(batch)
    out.print(f"[bold]params[/]        {compiled.params:,}")
    out.print(f"[bold]FLOPs/sample[/]  {cost.format_count(compiled.flops)}  (forward; a multiply-add is 2 FLOPs)")
    out.print(f"[bold]memory[/]        training {fmt_bytes(mem.training)} at batch {batch} "
              f"(weights, gradients, Adam, activations); inference {fmt_bytes(mem.inference)}", soft_wrap=True)
    out.print("[bold]inputs[/]        " + ", ".join(f"{k}: {t}" for k, t in graph.input_types().items()))
    out.print("[bold]outputs[/]       " + ", ".join(f"{k}: {t}" for k, t in graph.output_types().items()))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a model; print its blocks, shapes, parameters and costs")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--model", help="the model to compile (default: the file's only model or its experiment's)")
    p.add_argument("--json", action="store_true", help="print model, params, flops, memory_bytes, inputs, outputs")
    p.add_argument("--batch", type=positive_int, default=1, help="batch size for the memory estimate (default 1)")
    p.add_argument("-o", "--output", metavar="OUT.py",
                   help="also write a standalone PyTorch module (needs only torch) that loads mdl's state dict")
    p.set_defaults(run=cmd_compile)
