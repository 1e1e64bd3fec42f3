"""What several `mdlc` commands share: source lookup for diagnostics, reading a file the user named,
the argparse types, the budget parser, byte sizes, and `fail()`, the one way a command reports an error.

Nothing heavy is imported here (every command module imports this one, and `mdlc check` must not
import torch).
"""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from mdl.runtime.errors import EXIT_ERRORS, EXIT_RUNTIME


def fail(err: Console, problem: Exception | str, code: int | None = None) -> int:
    """Print `error: <problem>` on `err` and return the exit code: `code` when given, else the
    problem's `exit_code` (every mdl.runtime error has one), else EXIT_RUNTIME.

    The message is plain text (rich markup in it is escaped); soft_wrap keeps a long path whole, on
    one line, for the reader to copy.
    """
    err.print(f"[bold red]error[/]: {escape(str(problem))}", highlight=False, soft_wrap=True)
    if code is not None:
        return code
    return getattr(problem, "exit_code", EXIT_RUNTIME)


def print_errors(diagnostics: list, as_json: bool, err: Console, sources: Sources) -> int:
    """A design's errors: as `{"errors": [...]}` on stdout with --json, else rendered on `err`."""
    from mdl.compiler.render import print_diagnostics

    if as_json:
        print(json.dumps({"errors": [d.to_json() for d in diagnostics]}, indent=2))
    else:
        print_diagnostics(err, diagnostics, sources)
    return EXIT_ERRORS


class Sources:
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


def read_text_file(path: str, console: Console) -> str | None:
    """The text of a file the user named, or None after saying on `console` why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        problem = f"no such file: {path}"
    except IsADirectoryError:
        problem = f"{path} is a directory"
    except UnicodeDecodeError as exc:
        problem = f"{path} is not UTF-8 text ({exc.reason})"
    except OSError as exc:
        problem = f"cannot read {path}: {exc.strerror}"
    fail(console, problem)
    return None


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


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


# ------------------------------------------------------------------------------------- argparse types
def positive_int(text: str) -> int:
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def _whole_number(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number of seconds, 0 or more")
    return value


__all__ = ["Sources", "fail", "fmt_bytes", "non_negative_int", "parse_budget", "positive_int", "print_errors", "read_text_file",
           "seconds"]
