"""The `.py` export: the standalone PyTorch module of mdl.compiler.codegen (torch only; a norm_obs run's
`ObsNorm` layer in front), verified by importing the written file by path (code mdl generated, not a
user's), loading the state dict strictly and comparing the outputs with the in-memory module's.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path

from mdl.runtime.export.common import Source, Written, check


def import_standalone(path: Path, graph):
    """The module class of a standalone `.py` export, imported by path and built (fresh weights).
    The file is mdl's own generated code (`write` wrote it, or a law checking an export), not a user's."""
    from mdl.compiler.codegen import class_name

    name = f"mdl_export_check_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    generated = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(generated)
        return getattr(generated, class_name(graph))()
    finally:
        sys.modules.pop(name, None)


def write(src: Source, path: Path, moe: str, compare) -> Written:
    """Write `src` as a standalone module, import it back and check it computes the same outputs."""
    from mdl.compiler.codegen import class_name, standalone_source
    from mdl.files import write_text_atomic
    from mdl.runtime import obsnorm

    compiled = src.compiled
    write_text_atomic(path, standalone_source(compiled.ir, src.source_name, obsnorm.settings(compiled.module)))
    try:
        model = import_standalone(path, compiled.ir)
        model.load_state_dict(compiled.module.state_dict(), strict=True)
    except Exception as exc:  # a generated file that does not run is a bug in mdl: report it
        return [check("imports and builds", False, f"{type(exc).__name__}: {exc}")], {}
    checks = [check("imports, builds and loads the weights (strict)", True,
                    f"class {class_name(compiled.ir)}, torch only, {len(compiled.module.state_dict())} tensors"),
              compare(compiled.module, model, compiled.ir, "outputs match the model")]
    return checks, {}

