"""The front end in one call: parse, resolve imports, elaborate every model and check every experiment.

`analyze` is what `mdlc check`, `mdlc compile` and the language server run. It never imports torch
and never raises for any input text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mdl.compiler.elaborate import Elaborator, is_tensor_param
from mdl.compiler.experiment import ExperimentChecker, ExperimentSpec
from mdl.compiler.ir import Graph
from mdl.compiler.nameindex import Index, build_index
from mdl.compiler.names import check_names
from mdl.compiler.resolve import Loader, ModuleScope
from mdl.dsl import ast
from mdl.dsl.diagnostics import Diagnostic, Severity, error


@dataclass
class Analysis:
    """Everything the front end learned about one file."""

    diagnostics: list[Diagnostic]
    scope: ModuleScope | None = None
    graphs: dict[str, Graph] = field(default_factory=dict)  # model name -> graph at its default arguments
    experiments: dict[str, ExperimentSpec] = field(default_factory=dict)
    _names: dict[str | None, Index] = field(default_factory=dict, repr=False, compare=False)

    def name_index(self, text: str, key: str | None = None) -> Index:
        """The name index of the analysed `text` (mdl.compiler.nameindex; `key` names the document's file),
        built on first use and kept with the analysis, so it lives and goes with it."""
        found = self._names.get(key)
        if found is None:
            found = self._names[key] = build_index(text, self.scope, key)
        return found

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)


def analyze(text: str, path: str | None = None, overlay: Mapping[str, str] | None = None) -> Analysis:
    """`overlay` maps resolved file paths to texts read instead of those files (unsaved editor buffers)."""
    diagnostics: list[Diagnostic] = []
    try:
        return _analyze(text, path, diagnostics, overlay)
    except RecursionError:
        # Only absurdly deep nesting gets here (thousands of brackets); say so rather than crash.
        span = ast.Span(path, 1, 1, 1, 1)
        diagnostics.append(error("E0006", span, "the file is nested too deeply to check",
                                 "split deeply nested expressions into several statements"))
        return Analysis(diagnostics)


def _analyze(text: str, path: str | None, diagnostics: list[Diagnostic],
             overlay: Mapping[str, str] | None = None) -> Analysis:
    loader = Loader(diagnostics, overlay)
    scope = loader.load_source(text, path)
    result = Analysis(diagnostics, scope)
    if not scope.syntax_ok:
        return _sorted(result)
    check_names(scope, diagnostics)
    el = Elaborator(diagnostics)
    for item in scope.module.items:
        if isinstance(item, ast.Const) and scope.definitions.get(item.name) is item:
            el.const_value(item, scope)
        elif (isinstance(item, ast.Model) and scope.definitions.get(item.name) is item
              and all(p.default is not None or is_tensor_param(p) for p in item.params)):
            # A tensor parameter has no default, but it is a mistake to report (E0216), not a reason to skip.
            graph = el.model(item, scope, {})
            if graph is not None:
                result.graphs[item.name] = graph
    checker = ExperimentChecker(el, scope)
    for exp in scope.experiments.values():
        spec = checker.check(exp)
        if spec is not None:
            result.experiments[exp.name] = spec
    return _sorted(result)


def _sorted(result: Analysis) -> Analysis:
    root = result.scope.path if result.scope else None
    result.diagnostics.sort(key=lambda d: (d.span.file != root, d.span.file or "", d.span.line, d.span.column))
    return result


def check_source(text: str, path: str | None = None) -> list[Diagnostic]:
    """All diagnostics for a source text (errors and warnings, sorted by place)."""
    return analyze(text, path).diagnostics
