"""Diagnostics are values: every stage returns them in a list; the CLI and the language server render them.

They sit at the bottom of the import graph (beside the AST spans they point at): the parser reports
with them as much as the compiler does.

Each code is explained in `docs/errors.md`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mdl.dsl.ast import Span


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace the text under `span` with `new_text` (a machine-applicable fix)."""

    span: Span
    new_text: str


@dataclass(frozen=True, slots=True)
class Fix:
    """A named set of edits, offered as a quick fix (`title` is what the editor shows)."""

    title: str
    edits: tuple[Edit, ...]


@dataclass(frozen=True, slots=True)
class Label:
    """A secondary span with a note, e.g. where a block was called or a bracket opened."""

    span: Span
    message: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str  # "E0203"; each code explained in docs/errors.md
    severity: Severity  # ERROR or WARNING
    span: Span  # file, 1-based start/end line and column
    message: str  # lowercase, no trailing period, states the problem
    help: str | None = None  # the fix, in words, when there is one
    labels: tuple[Label, ...] = ()
    fix: Fix | None = None  # machine-applicable edit -> LSP quick fix

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_json(self) -> dict:
        """The `--json` form: 1-based lines and columns, `end_column` exclusive."""
        s = self.span
        return {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "help": self.help,
            "file": s.file,
            "line": s.line,
            "column": s.column,
            "end_line": s.end_line,
            "end_column": s.end_column,
            "labels": [
                {"message": lab.message, "file": lab.span.file, "line": lab.span.line,
                 "column": lab.span.column, "end_line": lab.span.end_line,
                 "end_column": lab.span.end_column}
                for lab in self.labels
            ],
            "fix": None if self.fix is None else {
                "title": self.fix.title,
                "edits": [{"line": e.span.line, "column": e.span.column, "end_line": e.span.end_line,
                           "end_column": e.span.end_column, "new_text": e.new_text}
                          for e in self.fix.edits],
            },
        }


def error(code: str, span: Span, message: str, help: str | None = None, *,
          labels: tuple[Label, ...] = (), fix: Fix | None = None) -> Diagnostic:
    return Diagnostic(code, Severity.ERROR, span, message, help, labels, fix)


def warning(code: str, span: Span, message: str, help: str | None = None, *,
            labels: tuple[Label, ...] = (), fix: Fix | None = None) -> Diagnostic:
    return Diagnostic(code, Severity.WARNING, span, message, help, labels, fix)


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


def did_you_mean(name: str, candidates) -> str | None:
    """The closest candidate to a misspelt `name`, for a `help: did you mean ...?` line."""
    import difflib

    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return matches[0] if matches else None


class CompileError(Exception):
    """Raised by the API when a design has errors; carries the diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.is_error]
        first = errors[0] if errors else (diagnostics[0] if diagnostics else None)
        summary = f"{first.span}: {first.code}: {first.message}" if first else "compilation failed"
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        super().__init__(summary + more)
