"""`mdlc`: parse arguments, call the library, render, set the exit code.

Exit codes: 0 success, 1 diagnostics with errors, 2 usage error, 3 runtime failure. A user's mistake
never produces a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mdl.files import write_text_atomic

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3


class _Sources:
    """Source text by the path a span names (files on disk, or the stdlib inside the package)."""

    def __init__(self) -> None:
        self._texts: dict[str | None, str | None] = {}

    def add(self, path: str | None, text: str) -> None:
        self._texts[path] = text

    def __call__(self, path: str | None) -> str | None:
        if path not in self._texts:
            self._texts[path] = self._read(path)
        return self._texts[path]

    @staticmethod
    def _read(path: str | None) -> str | None:
        if path is None:
            return None
        if path.startswith("stdlib/"):
            parts = path.removeprefix("stdlib/").split("/")
            try:
                return resources.files("mdl.stdlib").joinpath(*parts).read_text(encoding="utf-8")
            except OSError:
                return None
        try:
            return Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None


def _read(path: str, console: Console) -> str | None:
    # soft_wrap: a long path stays on one line, whole, for the reader to copy.
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        console.print(f"[bold red]error[/]: no such file: {path}", highlight=False, soft_wrap=True)
    except IsADirectoryError:
        console.print(f"[bold red]error[/]: {path} is a directory", highlight=False, soft_wrap=True)
    except UnicodeDecodeError as exc:
        console.print(f"[bold red]error[/]: {path} is not UTF-8 text ({exc.reason})", highlight=False, soft_wrap=True)
    except OSError as exc:
        console.print(f"[bold red]error[/]: cannot read {path}: {exc.strerror}", highlight=False, soft_wrap=True)
    return None


def cmd_check(args: argparse.Namespace, out: Console, err: Console) -> int:
    from mdl.compiler.check import check_source
    from mdl.compiler.render import print_diagnostics, summary

    sources = _Sources()
    everything = []
    unreadable = 0
    for path in args.files:
        text = _read(path, err)
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


def cmd_compile(args: argparse.Namespace, out: Console, err: Console) -> int:
    from mdl.compiler.api import compile_source
    from mdl.compiler.diagnostics import CompileError
    from mdl.compiler.render import print_diagnostics

    text = _read(args.file, err)
    if text is None:
        return EXIT_USAGE
    sources = _Sources()
    sources.add(args.file, text)
    try:
        compiled = compile_source(text, args.model, args.file)
    except CompileError as exc:
        if args.json:
            print(json.dumps({"errors": [d.to_json() for d in exc.diagnostics]}, indent=2))
        else:
            print_diagnostics(err, exc.diagnostics, sources)
        return EXIT_ERRORS
    if args.json:
        status = EXIT_OK if args.output is None else _write_standalone(compiled, args, err, err, sources)
        if status == EXIT_OK:  # stdout stays one JSON document; where the file went is said on stderr
            print(json.dumps(compiled.summary(args.batch), indent=2))
        return status
    print_diagnostics(err, compiled.diagnostics, sources)
    _print_table(out, compiled, args.batch)
    return EXIT_OK if args.output is None else _write_standalone(compiled, args, out, err, sources)


def _write_standalone(compiled, args: argparse.Namespace, out: Console, err: Console, sources: _Sources) -> int:
    """`compile -o OUT.py`: the standalone PyTorch module (mdl.compiler.codegen), written atomically."""
    from rich.markup import escape

    from mdl.compiler.codegen import class_name, standalone_source
    from mdl.compiler.diagnostics import CompileError
    from mdl.compiler.render import print_diagnostics

    try:
        text = standalone_source(compiled.ir, args.file)
    except CompileError as exc:
        print_diagnostics(err, exc.diagnostics, sources)
        return EXIT_ERRORS
    path = Path(args.output)
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        reason = escape(exc.strerror or str(exc))
        err.print(f"[bold red]error[/]: cannot write {escape(str(path))}: {reason}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    out.print(f"wrote {escape(str(path))} (standalone PyTorch module: class {class_name(compiled.ir)})",
              highlight=False, soft_wrap=True)
    return EXIT_OK


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


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
    out.print(f"[bold]memory[/]        training {_fmt_bytes(mem.training)} at batch {batch} "
              f"(weights, gradients, Adam, activations); inference {_fmt_bytes(mem.inference)}", soft_wrap=True)
    out.print("[bold]inputs[/]        " + ", ".join(f"{k}: {t}" for k, t in graph.input_types().items()))
    out.print("[bold]outputs[/]       " + ", ".join(f"{k}: {t}" for k, t in graph.output_types().items()))


def cmd_lsp(args: argparse.Namespace, out: Console, err: Console) -> int:
    """`mdlc lsp`: the language server on stdio until the editor exits (`mdl.lsp.server`)."""
    from mdl.lsp.server import main as serve

    return serve()


def cmd_fmt(args: argparse.Namespace, out: Console, err: Console) -> int:
    from mdl.compiler.render import print_diagnostics
    from mdl.dsl.format import FormatError, format_source

    sources = _Sources()
    status = EXIT_OK
    changed = []
    for path in args.files:
        text = _read(path, err)
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


def cmd_train(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Train one experiment for one seed. Exit 0 when the run completes or is stopped by Ctrl-C (it is
    checkpointed first), 1 for a design with errors (or, with --resume, a design that no longer matches
    the checkpoint), 2 for a usage error, 3 when the loss diverges."""
    from rich.markup import escape

    from mdl.compiler.check import analyze
    from mdl.compiler.render import print_diagnostics

    budget_steps = budget_seconds = None
    if args.budget is not None:
        budget = parse_budget(args.budget)
        if budget is None:
            err.print(f"[bold red]error[/]: cannot read the budget {escape(args.budget)!r}; "
                      "write a step count like `10k steps` or a time like `30 s`, `2 min`", highlight=False)
            return EXIT_USAGE
        budget_steps, budget_seconds = budget
    if args.resume is not None:
        return _resume(args, out, err, budget_steps, budget_seconds)
    if args.file is None:
        err.print("[bold red]error[/]: give a FILE to train, or --resume RUN_DIR", highlight=False)
        return EXIT_USAGE
    text = _read(args.file, err)
    if text is None:
        return EXIT_USAGE
    sources = _Sources()
    sources.add(args.file, text)
    analysis = analyze(text, args.file)
    print_diagnostics(err, analysis.diagnostics, sources)
    if not analysis.ok:
        return EXIT_ERRORS
    names = list(analysis.experiments)
    if args.experiment is not None and args.experiment not in names:
        err.print(f"[bold red]error[/]: no experiment `{escape(args.experiment)}` in {escape(args.file)}; "
                  f"experiments: {', '.join(names) or 'none'}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    if args.experiment is None and len(names) != 1:
        err.print(f"[bold red]error[/]: {escape(args.file)} has {len(names)} experiments; pick one with "
                  f"--experiment ({', '.join(names) or 'none'})", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    from mdl.runtime.train import TrainError, train

    spec = analysis.experiments[args.experiment or names[0]]
    try:
        summary = train(spec, text, args.file, out_dir=args.out, seed=args.seed, budget_steps=budget_steps,
                        budget_seconds=budget_seconds, device=args.device, deterministic=args.deterministic,
                        progress=True, console=err)
    except TrainError as exc:
        err.print(f"[bold red]error[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    return _train_finished(summary, out, err)


def _resume(args: argparse.Namespace, out: Console, err: Console, budget_steps: int | None,
            budget_seconds: float | None) -> int:
    """`mdlc train --resume RUN_DIR`: the design, experiment and seed come from the run directory."""
    from rich.markup import escape

    from mdl.runtime.train import DesignMismatch, TrainError, resume

    given = [flag for flag, value in (("FILE", args.file), ("--experiment", args.experiment),
                                      ("--seed", args.seed)) if value is not None]
    if given:
        err.print(f"[bold red]error[/]: --resume takes the design, experiment and seed from the run "
                  f"directory; leave out {', '.join(given)}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    try:
        summary = resume(args.resume, budget_steps=budget_steps, budget_seconds=budget_seconds,
                         device=args.device, deterministic=True if args.deterministic else None,
                         progress=True, console=err)
    except DesignMismatch as exc:
        err.print(f"[bold red]error[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_ERRORS
    except TrainError as exc:
        err.print(f"[bold red]error[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    return _train_finished(summary, out, err)


def _train_finished(summary: dict, out: Console, err: Console) -> int:
    from rich.markup import escape

    out.print(f"run: {escape(summary['run_dir'])}", highlight=False, soft_wrap=True)
    out.print(json.dumps(summary, indent=2), highlight=False, soft_wrap=True)
    if summary["status"] == "diverged":
        err.print(f"[bold red]error[/]: {escape(summary.get('message', 'the loss diverged'))}", highlight=False)
        return EXIT_RUNTIME
    if summary["status"] == "interrupted":
        err.print("interrupted: checkpointed and stopped", highlight=False)
    return EXIT_OK


def cmd_eval(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Greedy evaluation of a run's (or one checkpoint's) policy. Exit 0 when it ran, 1 when the run's
    design copy has errors or a different architecture (as `train --resume`), 2 for a usage error (no
    such run, `--render` on a gym env, no CUDA), 3 when the checkpoint cannot be loaded."""
    from rich.markup import escape

    from mdl.runtime.evaluate import DesignChanged, EvalError, RunNotFound, evaluate, load_policy
    from mdl.runtime.train import TrainError

    def fail(exc: Exception, code: int) -> int:
        err.print(f"[bold red]error[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        return code

    try:
        policy = load_policy(args.path, device=args.device)
    except DesignChanged as exc:
        return fail(exc, EXIT_ERRORS)
    except RunNotFound as exc:
        return fail(exc, EXIT_USAGE)
    except EvalError as exc:
        return fail(exc, EXIT_RUNTIME)
    except TrainError as exc:  # a device that is not there
        return fail(exc, EXIT_USAGE)
    for bad, why in policy.skipped:
        err.print(f"[bold yellow]warning[/]: skipping the unreadable checkpoint {escape(str(bad))} "
                  f"({escape(why)}); evaluating {escape(policy.checkpoint.name)}", highlight=False, soft_wrap=True)
    if args.render and policy.spec.env.kind != "game2048":
        err.print(f"[bold red]error[/]: --render draws 2048 boards; experiment `{escape(policy.spec.name)}` "
                  f"plays the gym env `{escape(policy.spec.env.id)}`; leave out --render", highlight=False,
                  soft_wrap=True)
        return EXIT_USAGE
    episodes = args.episodes if args.episodes is not None else (1 if args.render else 100)
    render = (err if args.json else out) if args.render else None  # with --json, stdout is only the JSON
    result = evaluate(policy, episodes=episodes, seed=args.seed, render=render, delay=args.delay)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_eval(out, result)
    return EXIT_OK


def _print_eval(out: Console, result: dict) -> None:
    from rich.markup import escape

    table = Table(title=f"eval {escape(result['experiment'])} at step {result['step']:,}", title_justify="left",
                  box=None, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("episodes", str(result["episodes"]))
    table.add_row("return", f"{result['mean_return']:.2f} ± {result['std_return']:.2f}")
    table.add_row("min / max return", f"{result['min_return']:g} / {result['max_return']:g}")
    table.add_row("mean length", f"{result['mean_length']:.1f}")
    if "mean_score" in result:
        table.add_row("mean score", f"{result['mean_score']:,.1f}")
        table.add_row("median score", f"{result['median_score']:,.1f}")
        table.add_row("max score", f"{result['max_score']:,}")
        for tile, rate in result["tile_rates"].items():
            table.add_row(f"reached {tile}", f"{rate:.1%}")
        table.add_row("max tiles", "  ".join(f"{t}: {f:.0%}" for t, f in result["max_tile_distribution"].items()))
    out.print(table)
    out.print(f"checkpoint {escape(result['checkpoint'])}  (eval seed {result['seed']})", highlight=False,
              soft_wrap=True)


def cmd_export(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Export a design, run, checkpoint or exported .pt and verify the file. Exit 0 when written and
    verified, 1 for a design with errors or a changed architecture, 2 for a usage error (no such
    source, --model that is not there), 3 when a file does not load or the export does not verify."""
    from rich.markup import escape

    from mdl.compiler.diagnostics import CompileError
    from mdl.compiler.render import print_diagnostics
    from mdl.runtime.export import ExportError, VerificationFailed, export

    try:
        report = export(args.source, args.format, out=args.output, model=args.model, moe=args.moe, seed=args.seed)
    except CompileError as exc:
        sources = _Sources()
        if args.json:
            print(json.dumps({"errors": [d.to_json() for d in exc.diagnostics]}, indent=2))
        else:
            print_diagnostics(err, exc.diagnostics, sources)
        return EXIT_ERRORS
    except ExportError as exc:
        report = getattr(exc, "report", None)
        if isinstance(exc, VerificationFailed) and report is not None:
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                _print_export(out, report)
        err.print(f"[bold red]error[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_export(out, report)
    return EXIT_OK


def _print_export(out: Console, report: dict) -> None:
    from rich.markup import escape

    verdict = "[bold green]verified[/]" if report["verification"]["ok"] else "[bold red]NOT verified[/]"
    out.print(f"wrote {escape(report['path'])} ({report['format']}, {_fmt_bytes(report['bytes'])}): {verdict}",
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


def cmd_decompile(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Turn the architecture a checkpoint, run or export carries back into a formatted `.mdl` design, and
    check it compiles to the same architecture hash. Exit 0 when it does, 2 for a usage error, 3 when
    the file does not load or the design does not round-trip (it is still written, for inspection)."""
    from rich.markup import escape

    from mdl.runtime.export import ExportError, decompile_file

    try:
        text, report = decompile_file(args.path, name=args.name, out=args.output)
    except ImportError as exc:
        err.print(f"[bold red]error[/]: decompiling is not available here ({escape(str(exc))})", highlight=False)
        return EXIT_RUNTIME
    except ExportError as exc:
        err.print(f"[bold red]error[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    if args.output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            write_text_atomic(Path(args.output), text)
        except OSError as exc:
            err.print(f"[bold red]error[/]: cannot write {escape(args.output)}: {escape(exc.strerror or str(exc))}",
                      highlight=False, soft_wrap=True)
            return EXIT_USAGE
    say = err if args.output is None else out  # stdout holds only the design when it is printed
    if args.output is not None:
        say.print(f"wrote {escape(args.output)} (model {escape(str(report['model']))})", highlight=False,
                  soft_wrap=True)
    if report["hash_matches"]:
        say.print(f"architecture hash round-trips: {report['expected_hash'][:16]}", highlight=False)
        return EXIT_OK
    problem = ("; ".join(report["errors"]) if report["errors"] else
               f"it compiles to {str(report['architecture_hash'])[:16]}, not {report['expected_hash'][:16]}")
    err.print(f"[bold red]error[/]: the decompiled design does not round-trip ({escape(problem)}); "
              "this is a bug in mdl, please report it", highlight=False, soft_wrap=True)
    return EXIT_RUNTIME


def parse_budget(text: str) -> tuple[int | None, float | None] | None:
    """`10k steps` -> (10000, None); `30 s`, `2 min`, `1.5 h` -> (None, seconds); None if unreadable."""
    import re

    from mdl.compiler.experiment import STEP_UNITS, TIME_UNITS
    from mdl.dsl.parser import parse_number

    match = re.fullmatch(r"\s*([0-9][0-9_]*(?:\.[0-9][0-9_]*)?(?:[eE][+-]?[0-9]+)?[kMG]?)\s*([A-Za-z]+)\s*", text)
    if match is None:
        return None
    value, unit = parse_number(match.group(1)), match.group(2)
    if value is None or value <= 0:
        return None
    if unit in STEP_UNITS and float(value).is_integer():
        return int(value), None
    if unit in TIME_UNITS:
        return None, float(value) * TIME_UNITS[unit]
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdlc", description="Compile, check and format .mdl designs.")
    parser.add_argument("--version", action="version", version=f"mdlc {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="report diagnostics (exit 1 if there are errors)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the diagnostics as JSON")
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("compile", help="compile a model; print its blocks, shapes, parameters and costs")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--model", help="the model to compile (default: the file's only model or its experiment's)")
    p.add_argument("--json", action="store_true", help="print model, params, flops, memory_bytes, inputs, outputs")
    p.add_argument("--batch", type=_positive_int, default=1, help="batch size for the memory estimate (default 1)")
    p.add_argument("-o", "--output", metavar="OUT.py",
                   help="also write a standalone PyTorch module (needs only torch) that loads mdl's state dict")
    p.set_defaults(run=cmd_compile)

    p = sub.add_parser("fmt", help="format files in place in the canonical style")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file would be reformatted")
    p.set_defaults(run=cmd_fmt)

    p = sub.add_parser("lsp", help="start the language server on stdio (for editors)")
    p.set_defaults(run=cmd_lsp)

    p = sub.add_parser("train", help="train an experiment with PPO for one seed; write a run directory")
    p.add_argument("file", metavar="FILE", nargs="?", help="the design (leave out with --resume)")
    p.add_argument("--experiment", metavar="NAME", help="the experiment to run (default: the file's only one)")
    p.add_argument("--out", metavar="DIR", default="runs", help="where runs go: DIR/<experiment>/<seed>/ (default runs)")
    p.add_argument("--seed", type=int, help="the seed (default: the experiment's first)")
    p.add_argument("--budget", metavar="Q", help='replace the budget: "10k steps", "30 s", "2 min"')
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the experiment's (auto)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic torch kernels and one CPU thread (identical metrics per seed on CPU)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its newest loadable checkpoint to its budget "
                        "(2048 runs bit-exactly; gym runs restart their episodes)")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("eval", help="play a trained policy greedily (masked argmax) and report its scores")
    p.add_argument("path", metavar="RUN_OR_CHECKPOINT",
                   help="a run directory (its newest checkpoint) or a checkpoint file in its checkpoints/")
    p.add_argument("--episodes", type=_positive_int, metavar="N",
                   help="episodes to play (default 100; 1 with --render)")
    p.add_argument("--seed", type=int, default=0, help="the environments' seed (default 0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu", help="default cpu")
    p.add_argument("--render", action="store_true", help="draw the 2048 board live, one game at a time")
    p.add_argument("--delay", type=_seconds, default=0.05, metavar="S",
                   help="seconds between moves with --render (default 0.05)")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser("export", help="export a design, run or checkpoint as onnx, pt, py or json, and verify it")
    p.add_argument("source", metavar="SOURCE",
                   help="a .mdl design (fresh weights), a run directory, a training checkpoint or an exported .pt")
    p.add_argument("--format", required=True, choices=("onnx", "pt", "py", "json"), help="what to write")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="where (default: <run>/export/<model>.<ext>, or <model>.<ext> next to the design)")
    p.add_argument("--model", metavar="NAME", help="the model of a .mdl design (default: its only model)")
    p.add_argument("--moe", choices=("fused", "portable"), default="fused",
                   help="ONNX MoE nodes: com.microsoft.MoE (fused, default) or standard ops only (portable)")
    p.add_argument("--seed", type=int, default=0, help="seed of a design's fresh weights (default 0)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("decompile", help="turn a checkpoint's architecture back into a formatted .mdl design")
    p.add_argument("path", metavar="CHECKPOINT",
                   help="an exported .pt or .json, a run directory or a training checkpoint")
    p.add_argument("-o", "--output", metavar="DESIGN.mdl", help="write the design here (default: print it)")
    p.add_argument("--name", metavar="NAME", help="the model's name in the design (default: the original's)")
    p.set_defaults(run=cmd_decompile)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number of seconds, 0 or more")
    return value


def _version() -> str:
    from mdl import __version__

    return __version__


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


if __name__ == "__main__":
    sys.exit(main())
