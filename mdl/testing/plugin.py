"""The pytest plugin of `mdl.testing` (entry point `pytest11`; it does nothing unless asked):

    pytest --mdl examples/                 # one test per model of every .mdl file below examples/
    pytest --mdl a.mdl --mdl-laws matches_torch,deterministic

Each model of each `.mdl` file named (or found below a folder named) by `--mdl` becomes a test item
`FILE::MODEL` that compiles the model and checks the laws (`--mdl-laws`, default every law of
`mdl.testing.LAWS`). A failure is reported at the design: `FILE:LINE: ...` with the law's message, no
traceback into mdl. A file that does not check is one failing item `FILE::check` with its first error
at its line; an error example (a file starting with `# expect: CODE line N`, as `examples/errors/` has)
is skipped: its diagnostics are what it is for; a file without models (a library) has no test of its
own: the designs that import it test it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

EXPECT = "# expect:"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mdl", "mdl designs (mdl.testing)")
    group.addoption("--mdl", action="append", default=[], metavar="PATH",
                    help="check the laws for every model of these .mdl files (folders: every .mdl below)")
    group.addoption("--mdl-laws", default=None, metavar="LAWS",
                    help="comma-separated laws to check (default: all of mdl.testing.LAWS)")


def _files(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found.extend(sorted(path.rglob("*.mdl")))
        elif path.is_file():
            found.append(path)
        else:
            raise pytest.UsageError(f"--mdl {given}: no such file or folder")
    return found


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    paths = config.getoption("--mdl")
    if not paths:
        return
    from mdl.testing import LAWS

    chosen = config.getoption("--mdl-laws")
    laws = tuple(law.strip() for law in chosen.split(",") if law.strip()) if chosen else LAWS
    unknown = [law for law in laws if law not in LAWS]
    if unknown:
        raise pytest.UsageError(f"--mdl-laws: unknown law(s) {', '.join(unknown)}; laws: {', '.join(LAWS)}")
    for path in _files(paths):
        items.extend(MdlFile.from_parent(session, path=path.resolve(), laws=laws).collect())


class MdlFile(pytest.File):
    def __init__(self, *, laws: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.laws = laws

    def collect(self):
        from mdl.compiler.check import analyze

        text = self.path.read_text(encoding="utf-8")
        if text.startswith(EXPECT):
            yield MdlSkip.from_parent(self, name="error-example", reason=text.splitlines()[0].removeprefix("# "))
            return
        analysis = analyze(text, str(self.path))
        if not analysis.ok and not re.search(r"^\s*model\s", text, re.MULTILINE):
            return  # a library without models: checked through the files that import it
        if not analysis.ok:
            first = next(d for d in analysis.diagnostics if d.is_error)
            yield MdlCheck.from_parent(self, name="check", diagnostic=first)
            return
        for name in analysis.graphs:
            yield MdlModel.from_parent(self, name=name, laws=self.laws)


class MdlFailure(Exception):
    """A law that does not hold, or a design with errors: reported as `FILE:LINE: message`."""


class _Item(pytest.Item):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.funcargs: dict[str, Any] = {}  # no fixtures; some plugins' runtest wrappers read it (pytest-lsp 1.x)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, MdlFailure | AssertionError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class MdlModel(_Item):
    def __init__(self, *, laws: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.laws = laws

    def runtest(self) -> None:
        import mdl
        from mdl.testing import check_laws

        compiled = mdl.compile_file(self.path, self.name)
        try:
            check_laws(compiled, self.laws)
        except AssertionError as exc:
            message = str(exc)
            line = compiled.ir.nodes[0].span.line if compiled.ir.nodes else 1
            where = message if message.startswith(str(self.path)) else f"{self.path}:{line}: {message}"
            raise MdlFailure(where) from None

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::{self.name} ({', '.join(self.laws)})"


class MdlCheck(_Item):
    def __init__(self, *, diagnostic: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.diagnostic = diagnostic

    def runtest(self) -> None:
        d = self.diagnostic
        raise MdlFailure(f"{d.span.file}:{d.span.line}:{d.span.column}: {d.code} {d.message}")

    def reportinfo(self):
        return self.path, self.diagnostic.span.line - 1, f"{self.path.name}::check"


class MdlSkip(_Item):
    def __init__(self, *, reason: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    def runtest(self) -> None:
        pytest.skip(f"an error example ({self.reason})")

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::error-example"
