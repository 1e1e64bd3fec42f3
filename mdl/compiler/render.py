"""Render diagnostics for a person (rustc/Elm style, with the source line and carets) or as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

from rich.console import Console
from rich.text import Text

from mdl.dsl.ast import Span
from mdl.dsl.diagnostics import Diagnostic, Severity

SourceOf = Callable[[str | None], str | None]

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "bold yellow"}


def _line(source: str | None, n: int) -> str | None:
    if source is None:
        return None
    lines = source.split("\n")
    return lines[n - 1].rstrip("\r") if 1 <= n <= len(lines) else None


def _display_col(line: str, col: int) -> int:
    """The screen column of 1-based character column `col`, with tabs expanded to 4."""
    return len(line[: col - 1].expandtabs(4)) + 1


def _snippet(out: Text, span: Span, source: str | None, gutter: int, mark: str, style: str, note: str) -> None:
    line = _line(source, span.line)
    pad = " " * gutter
    if line is None:
        return
    out.append(f"{pad} |\n", style="bold blue")
    out.append(f"{span.line:>{gutter}} | ", style="bold blue")
    out.append(line.expandtabs(4) + "\n")
    start = _display_col(line, span.column)
    if span.end_line == span.line:
        end = max(_display_col(line, span.end_column), start + 1)
    else:
        end = max(len(line.expandtabs(4)) + 1, start + 1)
    out.append(f"{pad} | ", style="bold blue")
    out.append(" " * (start - 1) + mark * (end - start), style=style)
    if note:
        out.append(" " + note, style=style)
    out.append("\n")


def render_diagnostic(d: Diagnostic, source_of: SourceOf) -> Text:
    style = _STYLE[d.severity]
    out = Text()
    out.append(f"{d.severity}[{d.code}]", style=style)
    out.append(f": {d.message}\n", style="bold")
    spans = [d.span, *(lab.span for lab in d.labels)]
    gutter = max(len(str(s.line)) for s in spans)
    pad = " " * gutter
    out.append(f"{pad}--> ", style="bold blue")
    out.append(f"{d.span}\n")
    _snippet(out, d.span, source_of(d.span.file), gutter, "^", style, "")
    for lab in d.labels:
        if lab.span.file != d.span.file:
            out.append(f"{pad}::: ", style="bold blue")
            out.append(f"{lab.span}\n")
        _snippet(out, lab.span, source_of(lab.span.file), gutter, "-", "bold blue", lab.message)
    if d.help:
        out.append(f"{pad} = ", style="bold blue")
        out.append("help", style="bold")
        out.append(f": {d.help}\n")
    return out


def summary(diagnostics: list[Diagnostic], files: int) -> Text:
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' * (errors != 1)}")
    if warnings:
        parts.append(f"{warnings} warning{'s' * (warnings != 1)}")
    checked = f"{files} file{'s' * (files != 1)} checked"
    if not parts:
        return Text(f"ok: {checked}", style="bold green")
    return Text(f"{', '.join(parts)} ({checked})", style="bold red" if errors else "bold yellow")


def print_diagnostics(console: Console, diagnostics: list[Diagnostic], source_of: SourceOf) -> None:
    for d in diagnostics:
        console.print(render_diagnostic(d, source_of), end="", soft_wrap=True, highlight=False)
        console.print()


def to_json(diagnostics: list[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diagnostics], indent=2)
