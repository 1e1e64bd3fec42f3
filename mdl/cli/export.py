"""`mdlc export SOURCE --format F`: write a design, run, checkpoint or exported .pt as onnx, pt, py or
json, verify the file, and print the report (what was checked; each ONNX MoE fallback)."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from mdl.cli.common import Sources, fail, fmt_bytes, print_errors
from mdl.compiler.ops import MOE_MODES
from mdl.runtime.errors import EXIT_OK, ExportError, VerificationFailed


def cmd_export(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Export a design, run, checkpoint or exported .pt and verify the file. Exit 0 when written and
    verified, 1 for a design with errors or a changed architecture, 2 for a usage error (no such
    source, --model that is not there), 3 when a file does not load or the export does not verify."""
    from mdl.dsl.diagnostics import CompileError
    from mdl.runtime.export import export

    try:
        report = export(args.source, args.format, out=args.output, model=args.model, moe=args.moe, seed=args.seed)
    except CompileError as exc:
        return print_errors(exc.diagnostics, args.json, err, Sources())
    except ExportError as exc:
        report = getattr(exc, "report", None)
        if isinstance(exc, VerificationFailed) and report is not None:
            _show(out, report, args.json)  # what did not verify, then the error
        return fail(err, exc)
    _show(out, report, args.json)
    return EXIT_OK


def _show(out: Console, report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        _print_export(out, report)


def _print_export(out: Console, report: dict) -> None:
    from rich.markup import escape

    verdict = "[bold green]verified[/]" if report["verification"]["ok"] else "[bold red]NOT verified[/]"
    out.print(f"wrote {escape(report['path'])} ({report['format']}, {fmt_bytes(report['bytes'])}): {verdict}",
              highlight=False, soft_wrap=True)
    training = report.get("training")
    where = (f"experiment {training['experiment']}, seed {training['seed']}, step {training['step']:,}"
             if training else f"from {report['source_kind']} {report['source']}")
    out.print(f"model {escape(report['model'])}  params {report['params']:,}  "
              f"architecture {report['architecture_hash'][:16]}  {escape(where)}", highlight=False, soft_wrap=True)
    table = Table(box=None, header_style="bold")
    table.add_column("check")
    table.add_column("", justify="center")
    table.add_column("detail")
    for check in report["verification"]["checks"]:
        table.add_row(escape(check["check"]), "[green]ok[/]" if check["ok"] else "[bold red]FAIL[/]",
                      escape(check["detail"]))
    out.print(table)
    # ONNX with --moe fused: each moe that com.microsoft.MoE cannot compute exactly (mdl.runtime.export.onnx_format)
    for fallback in (report["verification"].get("export") or {}).get("fallbacks") or []:
        out.print(f"fallback: moe `{escape(str(fallback['node']))}` written as the portable mdl node "
                  f"({escape(str(fallback['reason']))})", highlight=False, soft_wrap=True)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a design, run or checkpoint as onnx, pt, py or json, and verify it")
    p.add_argument("source", metavar="SOURCE",
                   help="a .mdl design (fresh weights), a run directory, a training checkpoint or an exported .pt")
    p.add_argument("--format", required=True, choices=("onnx", "pt", "py", "json"), help="what to write")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="where (default: <run>/export/<model>.<ext>, or <model>.<ext> next to the design)")
    p.add_argument("--model", metavar="NAME", help="the model of a .mdl design (default: its only model)")
    p.add_argument("--moe", choices=MOE_MODES, default="fused",
                   help="ONNX MoE nodes: com.microsoft.MoE (fused, default) or standard ops only (portable)")
    p.add_argument("--seed", type=int, default=0, help="seed of a design's fresh weights (default 0)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=cmd_export)
