"""Export a design, a run or a checkpoint as `.pt`, `.json`, `.py` or `.onnx`, verified; load a `.pt` back.

`export(source, format, out=None, model=None, moe="fused", seed=0)` writes one file and returns a report
(path, format, bytes, model, architecture hash, and `verification`: what was checked and how it went).
`source` is one of:

- a `.mdl` design: compiled (`model` by name, else the file's only model or its experiment's), with
  fresh weights drawn under `torch.manual_seed(seed)`; the default output is `<design folder>/<model>.<ext>`;
- a run directory `OUT/<experiment>/<seed>/` (its newest loadable checkpoint) or one training checkpoint
  `<run>/checkpoints/step_*.pt`, loaded by `mdl.runtime.evaluate.load_policy`; the default output is
  `<run>/export/<model>.<ext>` (`<model>.step_<N>.<ext>` for one checkpoint), and a `.pt` carries the
  run's training metadata;
- an exported `.pt`: loaded with `load`; the default output is next to it, `<stem>.<ext>`.

A run trained with `ppo(norm_obs=true)` is exported with its frozen observation statistics in front of
the design (mdl.runtime.obsnorm): the `.pt` (its `obs_norm` settings, the statistics among the weights),
the `.py` (an `ObsNorm` layer) and the `.onnx` take raw observations, and each is verified on them. The
`.json` is the design's IR, without them.

Every export verifies itself before `export` returns (a failed check raises VerificationFailed); each
format is one module of this package, with its `write` and its checks:

- `pt` (export.pt): one `torch.save` file of plain data and tensors only (see `PT_KEYS`), loaded back
  with `load` and its weights and outputs compared with the in-memory module's on a random batch;
- `json` (export.json_format): the IR with a format `version`, the architecture hash and the totals,
  validated against the JSON Schema `IR_SCHEMA` (also `docs/ir.schema.json`) and its hash recomputed;
- `py` (export.py): the standalone PyTorch module of mdl.compiler.codegen, imported by path, the state
  dict loaded strictly and the outputs compared;
- `onnx` (export.onnx_format: `moe="fused"` uses `com.microsoft.MoE`, `"portable"` standard ops only),
  verified against torch with onnxruntime at batch sizes 1 and 64.

`load(path, device="cpu")` (export.loading) returns the `CompiledModel` with the weights attached: an
exported `.pt` (read with `torch.load(weights_only=True)` only; LoadError, CarriesCode, NotAnExport or
ArchitectureMismatch for one that cannot be trusted), a run directory or a training checkpoint.
`read_ir(path)` gives the IR and hash that a checkpoint, run, `.pt` or `.json` export carries (`mdlc
decompile` turns it back into a design).

What the formats share (the source of an export, the checks, the constants) is export.common; the
formats import it and loading, never this module, which imports them all and is the public face.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

from mdl.runtime.errors import (
    ArchitectureMismatch,
    CarriesCode,
    ExportError,
    LoadError,
    NotAnExport,
    SourceNotFound,
    VerificationFailed,
)
from mdl.runtime.export import json_format, onnx_format, pt, py
from mdl.runtime.export.common import (
    ATOL,
    FORMATS,
    MARKER,
    MOE_MODES,
    PT_KEYS,
    PT_VERSION,
    VERIFY_BATCH,
    verify_inputs,
)
from mdl.runtime.export.common import check as _check  # noqa: F401  (the earlier private names, kept)
from mdl.runtime.export.common import compare_outputs as _compare_outputs  # looked up here at each export
from mdl.runtime.export.json_format import (
    IR_SCHEMA,
    JSON_VERSION,
    ir_document,
    ir_json_hash,
    validate_ir_document,
)
from mdl.runtime.export.loading import decompile_file, load, read_export, read_ir, resolve
from mdl.runtime.export.onnx_format import export_onnx, verify_onnx

__all__ = [
    "ATOL", "FORMATS", "IR_SCHEMA", "JSON_VERSION", "MARKER", "MOE_MODES", "PT_KEYS", "PT_VERSION", "VERIFY_BATCH",
    "ArchitectureMismatch", "CarriesCode", "ExportError", "LoadError", "NotAnExport", "SourceNotFound",
    "VerificationFailed", "decompile_file", "export", "export_onnx", "ir_document", "ir_json_hash", "load",
    "read_export", "read_ir", "validate_ir_document", "verify_inputs", "verify_onnx",
]


# ----------------------------------------------------------------------------------------- export
def export(source: str | Path, format: str, out: str | Path | None = None, model: str | None = None,
           moe: str = "fused", seed: int = 0) -> dict[str, Any]:
    """Export `source` (a `.mdl` design, a run directory, a training checkpoint or an exported `.pt`) as
    `format` to `out` (default: see the module docstring), verify the written file, and return the report.

    Raises SourceNotFound (bad path, format or model), CompileError (a design with errors), LoadError and
    its kinds (a source that does not load), VerificationFailed, or ExportError (cannot write).
    """
    if format not in FORMATS:
        raise SourceNotFound(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if moe not in MOE_MODES:
        raise SourceNotFound(f"unknown MoE mode {moe!r}; choose {' or '.join(MOE_MODES)}")
    if out is not None:
        _check_target(Path(out), Path(source))
    src = resolve(source, model, seed)
    path = Path(out) if out is not None else src.default_base.with_name(src.default_base.name + "." + format)
    _check_target(path, Path(source))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the folder {path.parent}: {exc.strerror or exc}") from None
    writer = {"pt": pt.write, "json": json_format.write, "py": py.write, "onnx": onnx_format.write}[format]
    started = time.perf_counter()
    # Written and verified under a temporary name in the same folder; only a file that passed every
    # check replaces `path` (an earlier good export is never replaced by one that does not verify).
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        checks, extra = writer(src, tmp, moe, _compare_outputs)
        ok = all(c["ok"] for c in checks)
        size = tmp.stat().st_size
        if ok:
            os.replace(tmp, path)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    except ExportError as exc:
        raise type(exc)(str(exc).replace(str(tmp), str(path))) from None
    finally:
        tmp.unlink(missing_ok=True)
    compiled = src.compiled
    report = {
        "path": str(path), "format": format, "bytes": size, "model": compiled.name,
        "architecture_hash": compiled.architecture_hash, "params": compiled.params, "source": str(source),
        "source_kind": src.kind,
        "training": ({k: src.training.get(k) for k in ("experiment", "seed", "step", "checkpoint")}
                     if src.training else None),
        "verification": {"ok": ok, "checks": checks, **extra},
        "seconds": round(time.perf_counter() - started, 3),
    }
    if format == "onnx":
        report["moe"] = moe
    if not ok:
        failed = "; ".join(f"{c['check']}: {c['detail']}" for c in checks if not c["ok"])
        error = VerificationFailed(f"the export to {path} does not reproduce the model ({failed}); "
                                   "nothing was written")
        error.report = report  # type: ignore[attr-defined]
        raise error
    return report


def _check_target(path: Path, source: Path) -> None:
    """Refuse to write over a directory or over the source itself."""
    if path.is_dir():
        raise SourceNotFound(f"{path} is a directory; give the file to write with -o")
    with contextlib.suppress(OSError):
        if path.resolve() == source.resolve():
            raise SourceNotFound(f"exporting {source} would overwrite it; give another path with -o")

