"""mdl: a compiler and runtime for `.mdl` neural-network policy designs.

The public API is imported lazily so that `import mdl` followed by `mdl.check_source(...)` never
imports torch (the front end answers in milliseconds):

- `mdl.check_source(text, path=None)` -> list of Diagnostic
- `mdl.analyze(text, path=None)` -> Analysis (diagnostics, graphs, experiments)
- `mdl.compile_source(text, model=None)` / `mdl.compile_file(path, model=None)` -> CompiledModel
- `mdl.format_source(text)` -> canonically formatted text
- `mdl.parse(text, path=None)` -> (Module, diagnostics)
- `mdl.export(source, format, out=None, model=None, moe="fused", seed=0)` -> report (a `.mdl` design, a
  run directory, a training checkpoint or an exported `.pt`, written as pt, json, py or onnx and verified)
- `mdl.load(path, device="cpu")` -> CompiledModel with its weights (an exported `.pt`, a run, a checkpoint)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "check_source": "mdl.compiler.check",
    "analyze": "mdl.compiler.check",
    "compile_source": "mdl.compiler.api",
    "compile_file": "mdl.compiler.api",
    "CompiledModel": "mdl.compiler.api",
    "CompileError": "mdl.dsl.diagnostics",
    "Diagnostic": "mdl.dsl.diagnostics",
    "Severity": "mdl.dsl.diagnostics",
    "format_source": "mdl.dsl.format",
    "parse": "mdl.dsl.parser",
    "export": "mdl.runtime.export",
    "load": "mdl.runtime.export",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'mdl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
