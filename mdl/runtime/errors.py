"""Every error the runtime raises for a user to read, each with the exit code `mdlc` ends with.

Exit codes (DESIGN.md): 0 success, 1 a design with errors (or one that no longer matches a checkpoint),
2 a usage error (no such run, a device that is not there), 3 a runtime failure (a file that does not
load, an export that does not verify, a run that failed). The CLI has one `fail()` that prints the
message and returns `exc.exit_code`; no command decides codes in its own `except` blocks.

This module imports nothing of mdl (it sits at the bottom of the import graph, as Lark's
`exceptions.py` does), so every runtime module and the CLI can share it.
"""

from __future__ import annotations

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3


class MdlRuntimeError(Exception):
    """A runtime failure with a message for the user; `exit_code` is what `mdlc` exits with."""

    exit_code = EXIT_RUNTIME


# ------------------------------------------------------------------------------------------- training
class TrainError(MdlRuntimeError):
    """A run that cannot start (no budget, a device that is not there, a bad selection)."""

    exit_code = EXIT_USAGE


class DesignMismatch(TrainError):
    """`--resume` of a run whose design has errors or differs from its checkpoint's architecture."""

    exit_code = EXIT_ERRORS


class RunFailed(MdlRuntimeError):
    """One or more runs of an experiment failed or diverged (the others were kept)."""


# ----------------------------------------------------------------------------------------- run files
class EvalError(TrainError):
    """A policy that cannot be loaded or evaluated (no checkpoint, a damaged file)."""

    exit_code = EXIT_RUNTIME


class RunNotFound(EvalError):
    """The path given is not a run directory or a checkpoint inside one (a usage error)."""

    exit_code = EXIT_USAGE


class DesignChanged(EvalError, DesignMismatch):
    """The run's design copy has errors, or its architecture is not the checkpoint's."""

    exit_code = EXIT_ERRORS


class ResultsError(MdlRuntimeError):
    """Runs that cannot be read back or put side by side (no metrics, a corrupt metrics line, runs of
    different environments, a saved model name taken): `mdlc compare`, `report`, `models`."""

    exit_code = EXIT_USAGE


# -------------------------------------------------------------------------------------------- export
class RunIndexError(MdlRuntimeError):
    """`OUT/runs.sqlite` cannot be opened or written (damaged, read-only); the run directories are fine."""


class ExportError(MdlRuntimeError):
    """An export or load that cannot be done."""


class SourceNotFound(ExportError):
    """No such file or directory, or not a kind of source export knows (a usage error)."""

    exit_code = EXIT_USAGE


class LoadError(ExportError):
    """A file that does not load: not a zip archive, truncated, corrupt, unreadable."""


class CarriesCode(LoadError):
    """A pickle that names code or objects beyond tensors and plain data: refused without running it."""


class NotAnExport(LoadError):
    """A file that loads but is not an mdl export (no `mdl_export` marker)."""


class ArchitectureMismatch(LoadError):
    """The carried design does not compile to the carried architecture (hash), or its design copy changed."""

    exit_code = EXIT_ERRORS


class VerificationFailed(ExportError):
    """The written file does not reproduce the model."""


__all__ = ["EXIT_ERRORS", "EXIT_OK", "EXIT_RUNTIME", "EXIT_USAGE", "ArchitectureMismatch", "CarriesCode",
           "DesignChanged", "DesignMismatch", "EvalError", "ExportError", "LoadError", "MdlRuntimeError",
           "NotAnExport", "ResultsError", "RunFailed", "RunIndexError", "RunNotFound", "SourceNotFound", "TrainError", "VerificationFailed"]
