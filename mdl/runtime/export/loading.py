"""Reading exports back: `load` (mdl.load), an exported `.pt`'s payload, the IR an export carries, and
the source `export` starts from.

`load(path, device="cpu")` returns the `CompiledModel` with the weights attached (`.module`, in eval
mode): an exported `.pt`, a run directory or a training checkpoint. An exported `.pt` is read with
`torch.load(weights_only=True)` only; a file that is not a zip archive, is truncated or corrupt
(LoadError), that carries pickled code or objects (CarriesCode: refused, nothing in it runs), that is
not an mdl export (NotAnExport), or whose carried source no longer compiles to the carried architecture
hash (ArchitectureMismatch) raises with a message for the user. Each error has an `exit_code` for `mdlc`.

`resolve(source, model, seed)` is what `export` exports: a design, a run, a checkpoint or a `.pt` loaded
here. `read_ir(path)` gives the IR and hash that a checkpoint, run, `.pt` or `.json` export carries, and
`decompile_file` turns it back into a design (mdl.compiler.decompile), checked by compiling it.
"""

from __future__ import annotations

import pickletools
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from mdl.runtime.errors import (
    ArchitectureMismatch,
    CarriesCode,
    ExportError,
    LoadError,
    NotAnExport,
    RunNotFound,
    SourceNotFound,
)
from mdl.runtime.export.common import MARKER, PT_VERSION, Source, from_design, from_run
from mdl.runtime.export.json_format import ir_json_hash, validate_ir_document
from mdl.runtime.rundir import RunDir, read_json


# ------------------------------------------------------------------------------------------- load
def load(path: str | Path, device: str = "cpu"):
    """The `CompiledModel` of an exported `.pt`, a run directory or a training checkpoint, with its
    weights loaded (`.module`, eval mode, on `device`). Raises SourceNotFound, LoadError, CarriesCode,
    NotAnExport or ArchitectureMismatch (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise SourceNotFound(f"no such file or run directory: {path}")
    if path.is_dir() or RunDir.is_checkpoint_in_run(path):
        src = from_run(path, None)
        if device != "cpu":
            src.compiled._module = src.compiled.module.to(_device(device))
        return src.compiled
    compiled, _ = _load_export(path, device)
    return compiled



def _device(device: str):
    """The torch device `device` names (SourceNotFound for one that is not there)."""
    from mdl.runtime.train import TrainError, resolve_device

    try:
        return resolve_device(device)
    except TrainError as exc:
        raise SourceNotFound(str(exc)) from None



def resolve(source: str | Path, model: str | None, seed: int) -> Source:
    """The source of an export: a run directory or checkpoint, a `.mdl` design, or an exported `.pt`."""
    path = Path(source)
    if not path.exists():
        raise SourceNotFound(f"no such design, run directory or checkpoint: {path}")
    if path.is_dir() or RunDir.is_checkpoint_in_run(path):
        return from_run(path, model)
    if path.suffix == ".mdl":
        return from_design(path, model, seed)
    compiled, payload = _load_export(path)
    if model is not None and model != compiled.name:
        raise SourceNotFound(f"{path} holds model `{compiled.name}`, not `{model}`; leave out --model")
    return Source(compiled, "export", path.with_suffix(""), str(payload.get("source_name") or "design.mdl"),
                  experiment=payload.get("experiment"), imports=dict(payload.get("imports") or {}),
                  training=payload.get("training"))



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
    """(CompiledModel with its weights, payload) of an exported `.pt`."""
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
    from mdl.compiler.api import CompiledModel
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
        if graph is not None and graph.model == name and graph.architecture_hash() == wanted:
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
    hashes = [g.architecture_hash() for g in graphs]
    report["architecture_hash"] = expected if expected in hashes else (hashes[0] if hashes else None)
    report["hash_matches"] = expected in hashes
    return text, report
