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

Every export verifies itself before `export` returns (a failed check raises VerificationFailed):

- `pt`: one `torch.save` file of plain data and tensors only (see `PT_KEYS`), written atomically; it is
  loaded back with `load` (weights_only, rebuilt from the carried source, architecture hash compared) and
  its weights and outputs compared with the in-memory module's on a random batch;
- `json`: the IR (`Graph.to_json()`: every node's op, inputs, attributes, shape, dtype, parameters and
  source span) with a format `version`, the architecture hash and the totals; validated against the JSON
  Schema `IR_SCHEMA` (also `docs/ir.schema.json`, kept equal by a test) with the `jsonschema` package when
  it is installed (a structural check otherwise), and the architecture hash recomputed from the file;
- `py`: the standalone PyTorch module of mdl.compiler.codegen; the written file is imported by path (code
  mdl generated, not a user's), the state dict loaded strictly and the outputs compared;
- `onnx`: mdl.runtime.export.onnx_format (`moe="fused"` uses `com.microsoft.MoE`, `"portable"` standard ops
  only), verified against torch with onnxruntime at batch sizes 1 and 64.

`load(path, device="cpu")` returns the `CompiledModel` with the weights attached (`.module`, in eval
mode): an exported `.pt`, a run directory or a training checkpoint. An exported `.pt` is read with
`torch.load(weights_only=True)` only; a file that is not a zip archive, is truncated or corrupt
(LoadError), that carries pickled code or objects (CarriesCode: refused, nothing in it runs), that is
not an mdl export (NotAnExport), or whose carried source no longer compiles to the carried architecture
hash (ArchitectureMismatch) raises with a message for the user. Each error has an `exit_code` for `mdlc`.

`read_ir(path)` gives the IR and hash that a checkpoint, run, `.pt` or `.json` export carries
(`mdlc decompile` turns it back into a design).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import pickletools
import sys
import tempfile
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from mdl.runtime.errors import (
    ArchitectureMismatch,
    CarriesCode,
    DesignChanged,
    EvalError,
    ExportError,
    LoadError,
    NotAnExport,
    RunNotFound,
    SourceNotFound,
    TrainError,
    VerificationFailed,
)
from mdl.runtime.rundir import RunDir, read_json

FORMATS = ("pt", "json", "py", "onnx")
MOE_MODES = ("fused", "portable")
MARKER = "mdl_export"  # the key (its value: the format version) that makes a .pt an mdl export
PT_VERSION = 1
JSON_VERSION = 1
VERIFY_BATCH = 8
ATOL = 1e-5  # pt and py are the same computation (bit for bit expected); the tolerance only guards BLAS
PT_KEYS = ("mdl_export", "model", "experiment", "architecture_hash", "params", "weights", "source",
           "source_name", "imports", "ir", "training", "obs_norm", "versions", "created")


# -------------------------------------------------------------------------------------- JSON schema
_SPAN = {
    "type": "object",
    "required": ["file", "line", "column", "end_line", "end_column"],
    "properties": {
        "file": {"type": ["string", "null"]},
        "line": {"type": "integer", "minimum": 0},
        "column": {"type": "integer", "minimum": 0},
        "end_line": {"type": "integer", "minimum": 0},
        "end_column": {"type": "integer", "minimum": 0},
    },
}
_DIM = {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "minLength": 1}]}
IR_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://mdl.invalid/schemas/ir.schema.json",
    "title": "mdl graph IR export",
    "description": "The graph IR of one compiled model, as written by `mdlc export --format json`: one node "
                   "per primitive, in topological order, with its shape, dtype, parameter count and source span.",
    "type": "object",
    "required": ["format", "version", "model", "architecture_hash", "params", "args", "inputs", "outputs",
                 "nodes", "calls"],
    "properties": {
        "format": {"const": "mdl-ir"},
        "version": {"const": JSON_VERSION},
        "model": {"type": "string", "minLength": 1},
        "architecture_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "params": {"type": "integer", "minimum": 0},
        "flops": {"type": ["integer", "null"], "minimum": 0},
        "source_name": {"type": ["string", "null"]},
        "args": {"type": "object"},
        "inputs": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "outputs": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "nodes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "name", "op", "inputs", "attrs", "dtype", "shape", "params", "flops",
                             "scope", "span"],
                "properties": {
                    "id": {"type": "integer", "minimum": 0},
                    "name": {"type": "string", "minLength": 1},
                    "op": {"type": "string", "minLength": 1},
                    "inputs": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "attrs": {"type": "object"},
                    "dtype": {"enum": ["float", "int"]},
                    "shape": {"type": "array", "items": _DIM},
                    "params": {"type": "integer", "minimum": 0},
                    "flops": {"type": ["integer", "null"], "minimum": 0},
                    "scope": {"type": "array", "items": {"type": "string"}},
                    "span": _SPAN,
                },
            },
        },
        "calls": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "block", "line"],
                "properties": {"path": {"type": "string"}, "block": {"type": "string"},
                               "line": {"type": "integer", "minimum": 0}},
            },
        },
    },
}


def ir_document(compiled, source_name: str | None = None) -> dict[str, Any]:
    """The `.json` export of a compiled model: `Graph.to_json()` with a format, version, hash and totals."""
    graph = compiled.ir
    return {"format": "mdl-ir", "version": JSON_VERSION, "model": graph.model,
            "architecture_hash": compiled.architecture_hash, "params": graph.params, "flops": compiled.flops,
            "source_name": source_name, **graph.to_json()}


def ir_json_hash(ir: dict[str, Any]) -> str:
    """The architecture hash computed from an IR in its JSON form (equal to `architecture_hash(graph)`)."""
    from mdl.compiler.api import ir_architecture_hash

    return ir_architecture_hash(ir)


# ---------------------------------------------------------------------------------------- sources
@dataclasses.dataclass
class _Source:
    compiled: Any  # CompiledModel with `_module` set
    kind: str  # "design", "run", "checkpoint" or "export"
    default_base: Path  # the default output path without its extension
    source_name: str
    experiment: str | None = None
    imports: dict[str, str] = dataclasses.field(default_factory=dict)
    training: dict[str, Any] | None = None


def _file_imports(text: str, path: Path) -> dict[str, str]:
    """The text of every file the design imports by path (transitively), by path relative to its folder."""
    from mdl.dsl import ast
    from mdl.dsl.parser import parse

    root = path.parent.resolve()
    found: dict[str, str] = {}
    todo = [(text, path.resolve())]
    seen = {path.resolve()}
    while todo:
        body, where = todo.pop()
        module, _ = parse(body, str(where))
        for item in module.items:
            if not isinstance(item, ast.Import) or item.path is None:
                continue
            target = (where.parent / item.path).resolve()
            if target in seen:
                continue
            seen.add(target)
            try:
                imported = target.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue  # compilation already reported it
            found[_relative(target, root)] = imported
            todo.append((imported, target))
    return found


def _relative(target: Path, root: Path) -> str:

    return PurePosixPath(*Path(os.path.relpath(target, root)).parts).as_posix()


def _from_design(path: Path, model: str | None, seed: int) -> _Source:
    import torch

    from mdl.compiler.api import compile_source

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceNotFound(f"cannot read {path}: {exc}") from None
    compiled = compile_source(text, model, str(path))  # CompileError: the CLI renders the diagnostics
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        compiled.module.eval()
    return _Source(compiled, "design", path.parent / compiled.name, path.name,
                   imports=_file_imports(text, path))


def _from_run(path: Path, model: str | None) -> _Source:
    from mdl.compiler.api import CompiledModel
    policy = _load_policy(path)
    spec, text, source = RunDir(policy.run_dir).design(policy.config)
    graph = spec.graph
    if model is not None and model != graph.model:
        raise SourceNotFound(f"{path} holds a run of model `{graph.model}`, not `{model}`; leave out --model")
    compiled = CompiledModel(graph.model, graph, text, str(source))
    compiled._module = policy.module.cpu().eval()
    summary = RunDir(policy.run_dir).read_summary()
    training = {"experiment": spec.name, "seed": int(policy.config["seed"]), "step": policy.step,
                "checkpoint": policy.checkpoint.name, "run_dir": str(policy.run_dir),
                "config": policy.config, "summary": summary}
    one_file = path.is_file()
    base = RunDir(policy.run_dir).export_dir / (f"{graph.model}.step_{policy.step}" if one_file else graph.model)
    imports = _file_imports(text, source)
    return _Source(compiled, "checkpoint" if one_file else "run", base, source.name, experiment=spec.name,
                   imports=imports, training=training)


def _load_policy(path: Path, device: str = "cpu"):
    from mdl.runtime.evaluate import load_policy

    try:
        return load_policy(path, device=device)
    except DesignChanged as exc:
        raise ArchitectureMismatch(str(exc)) from None
    except RunNotFound as exc:
        raise SourceNotFound(str(exc)) from None
    except EvalError as exc:
        raise LoadError(str(exc)) from None
    except TrainError as exc:  # a device that is not there
        raise SourceNotFound(str(exc)) from None


def _resolve(source: str | Path, model: str | None, seed: int) -> _Source:
    path = Path(source)
    if not path.exists():
        raise SourceNotFound(f"no such design, run directory or checkpoint: {path}")
    if path.is_dir() or RunDir.is_checkpoint_in_run(path):
        return _from_run(path, model)
    if path.suffix == ".mdl":
        return _from_design(path, model, seed)
    compiled, payload = _load_export(path)
    if model is not None and model != compiled.name:
        raise SourceNotFound(f"{path} holds model `{compiled.name}`, not `{model}`; leave out --model")
    return _Source(compiled, "export", path.with_suffix(""), str(payload.get("source_name") or "design.mdl"),
                   experiment=payload.get("experiment"), imports=dict(payload.get("imports") or {}),
                   training=payload.get("training"))


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
        raise SourceNotFound(f"unknown MoE mode {moe!r}; choose fused or portable")
    if out is not None:
        _check_target(Path(out), Path(source))
    src = _resolve(source, model, seed)
    path = Path(out) if out is not None else src.default_base.with_name(src.default_base.name + "." + format)
    _check_target(path, Path(source))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the folder {path.parent}: {exc.strerror or exc}") from None
    writer = {"pt": _export_pt, "json": _export_json, "py": _export_py, "onnx": _export_onnx}[format]
    started = time.perf_counter()
    # Written and verified under a temporary name in the same folder; only a file that passed every
    # check replaces `path` (an earlier good export is never replaced by one that does not verify).
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        checks, extra = writer(src, tmp, moe)
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
    if path.is_dir():
        raise SourceNotFound(f"{path} is a directory; give the file to write with -o")
    with contextlib.suppress(OSError):
        if path.resolve() == source.resolve():
            raise SourceNotFound(f"exporting {source} would overwrite it; give another path with -o")


def _check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"check": name, "ok": bool(ok), "detail": detail}


def verify_inputs(graph, batch: int = VERIFY_BATCH, seed: int = 0) -> list:
    """The random inputs every verification feeds both sides (`lower.example_inputs`, seeded)."""
    import torch

    from mdl.compiler.lower import example_inputs, example_sizes

    return example_inputs(graph, example_sizes(graph, batch), torch.Generator().manual_seed(seed))


def _compare_outputs(reference, other, graph, label: str) -> dict[str, Any]:
    """Both modules in eval mode on one random batch: the largest absolute difference per output."""
    import torch

    inputs = verify_inputs(graph)
    modes = (reference.training, other.training)
    reference.eval()
    other.eval()
    try:
        with torch.no_grad():
            want = reference(*inputs)
            got = other(*inputs)
    finally:
        reference.train(modes[0])
        other.train(modes[1])
    errors: dict[str, float] = {}
    for name in graph.outputs:
        a, b = want[name].float(), got[name].float()
        if a.shape != b.shape:
            return _check(label, False, f"output `{name}` has shape {list(b.shape)}, expected {list(a.shape)}")
        errors[name] = float((a - b).abs().max()) if a.numel() else 0.0
    worst = max(errors.values(), default=0.0)
    detail = f"batch {VERIFY_BATCH}, max |diff| " + ", ".join(f"{k} {v:.2g}" for k, v in errors.items())
    return _check(label, worst <= ATOL, detail)


def _same_weights(reference, other, label: str) -> dict[str, Any]:
    import torch

    a, b = reference.state_dict(), other.state_dict()
    if a.keys() != b.keys():
        return _check(label, False, f"state-dict keys differ: {sorted(a.keys() ^ b.keys())[:4]}")
    different = [k for k in a if not torch.equal(a[k].cpu(), b[k].cpu())]
    return _check(label, not different, f"{len(a)} tensors identical" if not different
                  else f"{len(different)} tensors differ, e.g. {different[0]}")


def _export_pt(src: _Source, path: Path, moe: str) -> tuple[list, dict]:
    import torch

    from mdl.files import atomic_write
    from mdl.runtime import obsnorm
    from mdl.runtime.train import package_versions

    compiled = src.compiled
    versions = {k: str(v) for k, v in package_versions().items()}  # torch's is a TorchVersion object
    versions["python"] = sys.version.split()[0]
    payload = {
        "mdl_export": PT_VERSION, "model": compiled.name, "experiment": src.experiment,
        "architecture_hash": compiled.architecture_hash, "params": compiled.params,
        "weights": {k: v.detach().cpu().clone() for k, v in compiled.module.state_dict().items()},
        "source": compiled.source, "source_name": src.source_name, "imports": src.imports,
        "ir": compiled.ir.to_json(), "training": src.training, "obs_norm": obsnorm.settings(compiled.module),
        "versions": versions,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)
    loaded = load(path)
    checks = [
        _check("architecture hash", loaded.architecture_hash == compiled.architecture_hash,
               loaded.architecture_hash[:16]),
        _same_weights(compiled.module, loaded.module, "weights"),
        _compare_outputs(compiled.module, loaded.module, compiled.ir, "outputs match the model"),
    ]
    return checks, {}


def _export_json(src: _Source, path: Path, moe: str) -> tuple[list, dict]:
    from mdl.files import write_text_atomic

    document = ir_document(src.compiled, src.source_name)
    write_text_atomic(path, json.dumps(document, indent=1) + "\n")
    try:
        written = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        return [_check("parses as JSON", False, str(exc))], {}
    checks = [_check("parses as JSON", True, "UTF-8 JSON")]
    problems, validator = validate_ir_document(written)
    checks.append(_check(f"matches docs/ir.schema.json ({validator})", not problems,
                         "valid" if not problems else "; ".join(problems[:3])))
    if not problems:
        recomputed = ir_json_hash(written)
        checks.append(_check("architecture hash from the file", recomputed == src.compiled.architecture_hash,
                             recomputed[:16]))
    return checks, {}


def validate_ir_document(document: Any) -> tuple[list[str], str]:
    """(problems, validator): against IR_SCHEMA with jsonschema if installed, else a structural check."""
    try:
        import jsonschema
    except ImportError:
        return _structural_check(document), "structural check"
    validator = jsonschema.Draft202012Validator(IR_SCHEMA)
    problems = [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                for e in validator.iter_errors(document)]
    return problems, "jsonschema"


def _structural_check(document: Any) -> list[str]:
    if not isinstance(document, dict):
        return ["(root): not an object"]
    problems = [f"(root): missing `{k}`" for k in IR_SCHEMA["required"] if k not in document]
    if document.get("format") != "mdl-ir" or document.get("version") != JSON_VERSION:
        problems.append("(root): not an mdl-ir document of this version")
    node_keys = IR_SCHEMA["properties"]["nodes"]["items"]["required"]
    for i, node in enumerate(document.get("nodes") or []):
        if not isinstance(node, dict):
            problems.append(f"nodes/{i}: not an object")
            continue
        problems += [f"nodes/{i}: missing `{k}`" for k in node_keys if k not in node]
    return problems


def _export_py(src: _Source, path: Path, moe: str) -> tuple[list, dict]:
    from mdl.compiler.codegen import class_name, standalone_source
    from mdl.files import write_text_atomic
    from mdl.runtime import obsnorm

    compiled = src.compiled
    write_text_atomic(path, standalone_source(compiled.ir, src.source_name, obsnorm.settings(compiled.module)))
    # The file is mdl's own generated code (written just now), imported by path to check it.
    name = f"mdl_export_check_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return [_check("imports", False, f"cannot import {path}")], {}
    generated = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(generated)
        model = getattr(generated, class_name(compiled.ir))()
        model.load_state_dict(compiled.module.state_dict(), strict=True)
    except Exception as exc:  # a generated file that does not run is a bug in mdl: report it
        return [_check("imports and builds", False, f"{type(exc).__name__}: {exc}")], {}
    finally:
        sys.modules.pop(name, None)
    checks = [_check("imports, builds and loads the weights (strict)", True,
                     f"class {class_name(compiled.ir)}, torch only, {len(compiled.module.state_dict())} tensors"),
              _compare_outputs(compiled.module, model, compiled.ir, "outputs match the model")]
    return checks, {}


def _export_onnx(src: _Source, path: Path, moe: str) -> tuple[list, dict]:

    try:
        from mdl.runtime.export import onnx_format as onnx_export
    except ImportError as exc:
        raise ExportError(f"ONNX export is not available here ({exc})") from None
    compiled = src.compiled
    module = compiled.module.eval()
    written = onnx_export.export_onnx(module, compiled.ir, path, moe=moe)
    result = onnx_export.verify_onnx(path, module, compiled.ir)
    errors = result.get("max_abs_error") or {}
    worst = max((e for per in errors.values() for e in per.values()), default=0.0)
    batches = ", ".join(str(b) for b in errors)
    problems = [str(p) for p in result.get("problems") or []]
    checks = [
        _check("onnx.checker (full)", bool(result.get("checked")), "valid" if result.get("checked") else
               next((p for p in problems if p.startswith("check_model")), "failed")),
        _check("onnxruntime matches torch", bool(result.get("ok")) or not result.get("checked"),
               f"batches {batches}, max |diff| {worst:.2g} (atol {result.get('atol')})"
               + (f"; {problems[0]}" if problems and result.get("checked") else "")),
    ]
    extra = {"onnx": _plain({**result, "problems": problems}),
             "export": _plain({k: v for k, v in written.items() if k != "path"})}
    return checks, extra


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_short(v)}" for k, v in value.items())
    return str(value)


def _plain(value: Any) -> Any:
    """`value` as JSON-friendly data (paths and other objects as strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


# ------------------------------------------------------------------------------------------- load
def load(path: str | Path, device: str = "cpu"):
    """The `CompiledModel` of an exported `.pt`, a run directory or a training checkpoint, with its
    weights loaded (`.module`, eval mode, on `device`). Raises SourceNotFound, LoadError, CarriesCode,
    NotAnExport or ArchitectureMismatch (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise SourceNotFound(f"no such file or run directory: {path}")
    if path.is_dir() or RunDir.is_checkpoint_in_run(path):
        src = _from_run(path, None)
        if device != "cpu":
            src.compiled._module = src.compiled.module.to(_device(device))
        return src.compiled
    compiled, _ = _load_export(path, device)
    return compiled


def _device(device: str):
    from mdl.runtime.train import TrainError, resolve_device

    try:
        return resolve_device(device)
    except TrainError as exc:
        raise SourceNotFound(str(exc)) from None


def read_export(path: str | Path) -> dict[str, Any]:
    """The payload of an exported `.pt` (weights_only; nothing in the file runs), checked for the marker."""
    import torch

    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except IsADirectoryError:
        raise SourceNotFound(f"{path} is a directory, not an exported .pt") from None
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head != b"PK\x03\x04":
        _refuse_non_zip(path, head)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler's errors are of many types; none is a bug of ours
        message = str(exc)
        if "Weights only load failed" in message and "GLOBAL" in message:
            what = next((line.strip() for line in message.splitlines() if "GLOBAL" in line), "")
            raise CarriesCode(f"{path} carries pickled code and is refused (nothing in it was run): {what}; "
                              "an mdl export holds only tensors and plain data") from None
        first = message.splitlines()[0] if message else type(exc).__name__
        first = first.split(". ")[0]
        if "Weights only load failed" in message:
            first = next((line.strip() for line in message.splitlines()
                          if line.strip() and "Weights only" not in line and "file an issue" not in line
                          and "documentation" not in line), first)
        raise LoadError(f"{path} is truncated or corrupt and cannot be loaded ({type(exc).__name__}: "
                        f"{first[:160]})") from None
    if not isinstance(payload, dict) or MARKER not in payload:
        hint = ""
        if isinstance(payload, dict) and "optimizer" in payload and "step" in payload:
            hint = "; it looks like a training checkpoint: keep it in its run's checkpoints/ folder or pass the run"
        raise NotAnExport(f"{path} is not an mdl export (no `{MARKER}` marker){hint}")
    version = payload[MARKER]
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= PT_VERSION:
        raise LoadError(f"{path} is an mdl export of format {version!r}; this mdl reads format {PT_VERSION}")
    missing = [k for k in ("model", "architecture_hash", "weights", "source", "ir") if k not in payload]
    if missing or not isinstance(payload["source"], str) or not isinstance(payload["weights"], dict):
        raise LoadError(f"{path} is a damaged mdl export (missing or bad: {', '.join(missing) or 'source/weights'})")
    imports, training = payload.get("imports") or {}, payload.get("training")
    bad = [key for key, ok in (
        ("imports", isinstance(imports, dict) and all(isinstance(k, str) and k.strip("./") and isinstance(v, str)
                                                      for k, v in imports.items())),
        ("training", training is None or isinstance(training, dict)),
        ("source_name", payload.get("source_name") is None or isinstance(payload.get("source_name"), str)),
        ("ir", isinstance(payload["ir"], dict)), ("model", isinstance(payload["model"], str)),
        ("obs_norm", _valid_obs_norm(payload.get("obs_norm")))) if not ok]
    if bad:
        raise LoadError(f"{path} is a damaged mdl export (bad {', '.join(bad)})")
    return payload


def _valid_obs_norm(saved: Any) -> bool:
    """None, or `obsnorm.settings(...)`: a list of positive ints and two positive numbers."""
    if saved is None:
        return True
    number = (int, float)
    return (isinstance(saved, dict) and isinstance(saved.get("shape"), list)
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in saved["shape"])
            and all(isinstance(saved.get(k), number) and not isinstance(saved.get(k), bool) and saved[k] > 0
                    for k in ("clip", "epsilon")))


def _refuse_non_zip(path: Path, head: bytes) -> None:
    """A file that is not a zip archive: a plain pickle naming code is refused as such; anything else is
    not a .pt file. The opcodes are only listed (pickletools), never run."""
    if head[:1] == b"\x80":  # a pickle protocol header
        code_ops = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"}
        names: list[str] = []
        strings: list[str] = []  # the last strings pushed: STACK_GLOBAL's module and name
        try:
            with path.open("rb") as f:
                for op, arg, _ in pickletools.genops(f):
                    if isinstance(arg, str):
                        strings = [*strings[-1:], arg]
                    if op.name == "STACK_GLOBAL" and len(strings) == 2:
                        names.append(f"{strings[0]}.{strings[1]}")
                    elif op.name in code_ops:
                        names.append(op.name if arg is None else f"{op.name} {arg}".replace(" ", ".", 1)
                                     if op.name == "GLOBAL" else op.name)
                    if op.name == "STOP":
                        break
        except Exception:  # a broken pickle (genops only parses): corrupt, as below
            pass
        if names:
            raise CarriesCode(f"{path} is a pickle that carries code ({', '.join(names[:3])}) and is refused "
                              "(nothing in it was run); an mdl export is a torch.save zip of tensors and plain data")
    if not head:
        raise LoadError(f"{path} is empty")
    raise LoadError(f"{path} is not an mdl export: not a zip archive as torch.save writes (corrupt, or another kind "
                    "of file; export takes a .mdl design, a run directory, a training checkpoint or an exported .pt)")


def _load_export(path: Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    import torch

    from mdl.compiler.lower import lower
    from mdl.runtime import obsnorm

    payload = read_export(path)
    compiled = _rebuild(payload, path)
    with torch.random.fork_rng(devices=[]):  # building the module draws initial weights: leave the RNG be
        module = lower(compiled.ir)
    if payload.get("obs_norm") is not None:  # a norm_obs run's policy: its statistics are in the weights
        obsnorm.attach(module, obsnorm.layer_from_settings(payload["obs_norm"]))
    compiled._module = module
    try:
        module.load_state_dict(payload["weights"], strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LoadError(f"the weights in {path} do not fit model `{compiled.name}` ({first})") from None
    module.to(_device(device)).eval()
    return compiled, payload


def _rebuild(payload: dict[str, Any], path: Path):
    """The CompiledModel of the carried source whose architecture hash is the carried one."""
    from mdl.compiler.api import CompiledModel, architecture_hash
    from mdl.compiler.check import analyze

    text, name = payload["source"], str(payload["model"])
    source_name = Path(str(payload.get("source_name") or "design.mdl")).name
    imports = payload.get("imports") or {}
    with tempfile.TemporaryDirectory(prefix="mdl-load-") as tmp:
        if imports:  # the design imports files: lay them out as they were, relative to the design
            depth = max((PurePosixPath(p).parts.count("..") for p in imports), default=0)
            folder = Path(tmp, *[f"d{i}" for i in range(depth)])
            folder.mkdir(parents=True, exist_ok=True)
            for rel, body in imports.items():
                target = (folder / rel).resolve()
                if not target.is_relative_to(Path(tmp).resolve()) or target == folder.resolve():
                    raise LoadError(f"{path} carries an import outside its design's folder ({rel!r})")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(body, encoding="utf-8")
            where = str(folder / source_name)
        else:
            where = source_name
        analysis = analyze(text, where)
    if not analysis.ok:
        first = next(d for d in analysis.diagnostics if d.is_error)
        raise ArchitectureMismatch(f"the design carried by {path} no longer compiles ({first.code}: {first.message}); "
                                   "was it made by another version of mdl?")
    candidates = []
    experiment = payload.get("experiment")
    if experiment in analysis.experiments:
        candidates.append(analysis.experiments[experiment].graph)
    candidates.append(analysis.graphs.get(name))
    candidates += [spec.graph for spec in analysis.experiments.values()]
    wanted = payload["architecture_hash"]
    for graph in candidates:
        if graph is not None and graph.model == name and architecture_hash(graph) == wanted:
            return CompiledModel(graph.model, graph, text, source_name,
                                 [d for d in analysis.diagnostics if not d.is_error])
    raise ArchitectureMismatch(
        f"the design carried by {path} does not compile to the architecture of its weights (model `{name}`, "
        f"architecture hash {str(wanted)[:12]}); the file was edited or made by another version of mdl")


# ------------------------------------------------------------------------------------- decompile
def read_ir(path: str | Path) -> tuple[dict[str, Any], str | None, str]:
    """(IR json, architecture hash or None, where it came from) of an exported `.pt` or `.json`, a run
    directory or a training checkpoint."""
    path = Path(path)
    if not path.exists():
        raise SourceNotFound(f"no such checkpoint, run directory or export: {path}")
    if path.is_dir() or RunDir.is_checkpoint_in_run(path):
        try:
            run, _file = RunDir.of(path)
            config = run.read_config()
        except RunNotFound as exc:
            raise SourceNotFound(str(exc)) from None
        ir = read_json(run.ir_path)
        if not isinstance(ir, dict) or "nodes" not in ir:
            raise LoadError(f"{run.ir_path} is missing or damaged")
        return ir, config.get("architecture_hash"), f"{run.ir_path}"
    if path.suffix == ".json":
        document = read_json(path)
        problems, _ = validate_ir_document(document)
        if problems:
            raise NotAnExport(f"{path} is not an mdl IR export ({problems[0]})")
        return document, document["architecture_hash"], str(path)
    payload = read_export(path)
    ir = payload["ir"]
    if not isinstance(ir, dict) or "nodes" not in ir:
        raise LoadError(f"{path} is a damaged mdl export (no IR)")
    return ir, str(payload["architecture_hash"]), str(path)


def decompile_file(path: str | Path, name: str | None = None, out: str | Path | None = None) -> tuple[str, dict]:
    """The `.mdl` text of the architecture `path` carries (mdl.compiler.decompile), checked by compiling it
    back: (text, report with `hash_matches`, `architecture_hash`, `expected_hash`, `model`)."""
    from mdl.compiler.api import architecture_hash
    from mdl.compiler.check import analyze
    from mdl.compiler.decompile import DecompileError, decompile

    ir, expected, origin = read_ir(path)
    graph_keys = ("model", "args", "inputs", "outputs", "nodes", "calls")
    ir = {k: ir[k] for k in graph_keys if k in ir}
    if expected is None:
        expected = ir_json_hash(ir)
    try:
        text = decompile(ir, name)
    except DecompileError as exc:
        raise ExportError(f"cannot decompile {origin}: {exc}") from None
    analysis = analyze(text, str(out) if out is not None else "decompiled.mdl")
    report = {"from": origin, "model": name or ir.get("model"), "expected_hash": expected,
              "architecture_hash": None, "hash_matches": False, "errors": []}
    if not analysis.ok:
        report["errors"] = [f"{d.code}: {d.message}" for d in analysis.diagnostics if d.is_error][:5]
        return text, report
    graphs = [g for g in analysis.graphs.values() if g is not None]
    graphs += [s.graph for s in analysis.experiments.values() if s.graph is not None]
    hashes = [architecture_hash(g) for g in graphs]
    report["architecture_hash"] = expected if expected in hashes else (hashes[0] if hashes else None)
    report["hash_matches"] = expected in hashes
    return text, report
