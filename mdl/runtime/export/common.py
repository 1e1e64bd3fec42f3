"""What the export formats share: the accepted formats and MoE modes, the exported `.pt`'s format
constants, the source of an export (a design compiled with fresh weights, or a run's or checkpoint's
trained policy) and the checks every format's verification is made of.

Each format module (`pt`, `json_format`, `py`, `onnx_format`) has `write(src, path, moe, compare)`:
it writes `src`'s model to `path` and returns `Written`, its checks (`check(...)` records) and any
extra entries for the report's `verification`. `compare` is `compare_outputs` unless a caller
substitutes it (the package's `export` hands it over). Nothing here imports a format module.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path, PurePosixPath
from typing import Any

from mdl.compiler.ops import MOE_MODES as MOE_MODES  # the ONNX MoE modes, defined with the ops
from mdl.runtime.errors import (
    ArchitectureMismatch,
    DesignChanged,
    EvalError,
    LoadError,
    RunNotFound,
    SourceNotFound,
    TrainError,
)
from mdl.runtime.rundir import RunDir

FORMATS = ("pt", "json", "py", "onnx")
MARKER = "mdl_export"  # the key (its value: the format version) that makes a .pt an mdl export
PT_VERSION = 1
VERIFY_BATCH = 8
ATOL = 1e-5  # pt and py are the same computation (bit for bit expected); the tolerance only guards BLAS
PT_KEYS = ("mdl_export", "model", "experiment", "architecture_hash", "params", "weights", "source",
           "source_name", "imports", "ir", "training", "obs_norm", "versions", "created")

Written = tuple[list[dict[str, Any]], dict[str, Any]]  # a writer's checks and its extra report entries


# ---------------------------------------------------------------------------------------- sources
@dataclasses.dataclass
class Source:
    """What is exported: the compiled model with its weights, and what the `.pt` carries besides."""

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


def from_design(path: Path, model: str | None, seed: int) -> Source:
    """A `.mdl` design compiled (CompileError on errors), with fresh weights drawn under `seed`."""
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
    return Source(compiled, "design", path.parent / compiled.name, path.name,
                  imports=_file_imports(text, path))


def from_run(path: Path, model: str | None) -> Source:
    """The trained policy of a run directory (its newest loadable checkpoint) or of one checkpoint."""
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
    return Source(compiled, "checkpoint" if one_file else "run", base, source.name, experiment=spec.name,
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


# ------------------------------------------------------------------------------------ verification
def check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    """One line of a report's `verification.checks`: what was checked, whether it held, and how."""
    return {"check": name, "ok": bool(ok), "detail": detail}


def verify_inputs(graph, batch: int = VERIFY_BATCH, seed: int = 0) -> list:
    """The random inputs every verification feeds both sides (`lower.example_inputs`, seeded)."""
    import torch

    from mdl.compiler.lower import example_inputs, example_sizes

    return example_inputs(graph, example_sizes(graph, batch), torch.Generator().manual_seed(seed))


def compare_outputs(reference, other, graph, label: str) -> dict[str, Any]:
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
            return check(label, False, f"output `{name}` has shape {list(b.shape)}, expected {list(a.shape)}")
        errors[name] = float((a - b).abs().max()) if a.numel() else 0.0
    worst = max(errors.values(), default=0.0)
    detail = f"batch {VERIFY_BATCH}, max |diff| " + ", ".join(f"{k} {v:.2g}" for k, v in errors.items())
    return check(label, worst <= ATOL, detail)

