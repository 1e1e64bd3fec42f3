"""ONNX export of a compiled design, with each `moe` as one node, and its verification.

`export_onnx` runs torch's dynamo exporter (`torch.onnx.export(dynamo=True)`) on the eval-mode lowered
module with a `custom_translation_table` for `mdl::moe` (mdl.compiler.ops.moe_onnx):

- `moe="fused"` (default): each `moe` is one `com.microsoft.MoE` node (onnxruntime's contrib op; the
  router stays a MatMul). Its activations are relu, silu and gelu in the tanh form only, so a `moe`
  with act gelu (mdl's is the exact erf form), tanh or sigmoid, or with top_k=1 (onnxruntime's k=1 path
  disagrees with torch), becomes the portable node instead, listed in the result's `fallbacks`.
  `approximate_gelu=True` accepts the tanh GELU: ~4e-5 off on LANGUAGE.md's example at batch 64, but
  a near-tied router downstream can then pick another expert (6e-3 off on some of 10^4 boards), so
  it is not the default.
- `moe="portable"`: each `moe` is one node in the `mdl` domain whose model-local function uses only
  standard ONNX ops, so any ONNX runtime runs it.

The file is a single `.onnx` (no external data; the exporter's optimiser folds weight transposes into
the initializers), the batch dimension is the dynamic "B" (every symbolic input dim keeps its IR name),
and the inputs and outputs carry the design's names. Inference is dropless, so the ONNX model computes
what the torch module computes in eval mode; `verify_onnx` checks that on random inputs.

`write` is the `onnx` format of `mdl.runtime.export`: both, with the results as the report's checks.
numpy, onnx and onnxruntime are imported only when a file is written or read.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdl.runtime.errors import ExportError  # one error type for every export
from mdl.runtime.export.common import MOE_MODES, Source, Written, check

if TYPE_CHECKING:
    from mdl.compiler.ir import Graph

MAX_BYTES = 2**31 - 1  # protobuf's limit for one file


def export_onnx(module, graph: Graph, path: str | Path, moe: str = "fused", *,
                approximate_gelu: bool = False) -> dict[str, Any]:
    """Write `module` (the lowered GraphModule of `graph`, with its weights) to `path` as one ONNX file.

    Returns {"path", "moe", "bytes", "opset", "inputs", "outputs", "nodes", "moe_nodes", "fallbacks"}:
    `moe_nodes` counts {"com.microsoft.MoE": .., "mdl": ..}; `fallbacks` names each `moe` that
    `moe="fused"` wrote as a portable node, with the reason. Raises ExportError on any failure.
    """
    import onnx
    import torch

    from mdl.compiler.ops import moe_onnx

    if moe not in MOE_MODES:
        raise ExportError(f"unknown moe mode {moe!r}; expected one of {', '.join(MOE_MODES)}")
    path = Path(path)
    if not path.parent.is_dir():
        raise ExportError(f"cannot write {path}: directory {path.parent} does not exist")
    if not graph.outputs:
        raise ExportError(f"model {graph.model} has no outputs to export")

    moe_nodes = [n for n in graph.nodes if n.op == "moe"]
    fallbacks = []
    if moe == "fused":
        for n in moe_nodes:
            why = moe_onnx.unfusable(n.attrs["top_k"], n.attrs["act"], approximate_gelu)
            if why is not None:
                fallbacks.append({"node": n.name, "act": n.attrs["act"], "top_k": n.attrs["top_k"], "reason": why})

    fused, portable = moe_onnx.make_translations(approximate_gelu)
    table = {torch.ops.mdl.moe.default: fused if moe == "fused" else portable} if moe_nodes else {}
    args = tuple(_random_inputs(graph, 3, torch.Generator().manual_seed(0)))
    dims: dict[str, Any] = {}
    dynamic_shapes = tuple(
        {axis: dims.setdefault(d, torch.export.Dim(d)) for axis, d in enumerate(t.shape) if isinstance(d, str)}
        or None
        for t in graph.input_types().values())

    was_training = module.training
    module.eval()
    try:
        with _quiet():
            program = torch.onnx.export(
                module, args, dynamo=True, input_names=list(graph.inputs), output_names=list(graph.outputs),
                dynamic_shapes=dynamic_shapes, custom_translation_table=table, external_data=False,
                verbose=False, report=False)
        model = program.model_proto
    except Exception as exc:  # the exporter's errors are long; keep the first line of the root cause
        raise ExportError(f"ONNX export of {graph.model} failed: {_summary(exc)}") from None
    finally:
        module.train(was_training)

    _fold_weight_layouts(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 18)
    _attach_functions(model, opset)
    counts = _moe_counts(model)
    expected = {"com.microsoft.MoE": len(moe_nodes) - len(fallbacks) if moe == "fused" else 0,
                "mdl": len(fallbacks) if moe == "fused" else len(moe_nodes)}
    if counts != expected:
        raise ExportError(f"internal error: expected moe nodes {expected}, the exported graph has {counts}")
    size = model.ByteSize()
    if size > MAX_BYTES:
        raise ExportError(f"the model is {size / 2**30:.2f} GiB; a single ONNX file must stay below 2 GiB")
    try:
        onnx.save_model(model, str(path))
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    return {"path": str(path), "moe": moe, "bytes": path.stat().st_size, "opset": opset,
            "inputs": list(graph.inputs), "outputs": list(graph.outputs), "nodes": len(model.graph.node),
            "moe_nodes": counts, "fallbacks": fallbacks}


def verify_onnx(path: str | Path, module, graph: Graph, batches: tuple[int, ...] = (1, 64), atol: float = 1e-4,
                seed: int = 0) -> dict[str, Any]:
    """Check the file (`onnx.checker.check_model(full_check=True)`) and compare onnxruntime (CPU) with the
    torch module in eval mode on random inputs at each batch size.

    Int inputs are drawn from their embedding's vocabulary (0..15 when no embedding reads them).
    Returns {"ok", "checked", "max_abs_error": {batch: {output: err}}, "atol", "moe_nodes", "nodes",
    "bytes", "problems"}; `ok` means the check passed and every error is <= atol. Raises ExportError
    if the file cannot be read or onnxruntime cannot load it.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    path = Path(path)
    try:
        model = onnx.load_model(str(path))
    except Exception as exc:
        raise ExportError(f"cannot read {path}: {_summary(exc)}") from None
    problems = []
    try:
        onnx.checker.check_model(model, full_check=True)
        checked = True
    except Exception as exc:
        checked = False
        problems.append(f"check_model: {_summary(exc)}")
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"onnxruntime cannot load {path}: {_summary(exc)}") from None

    generator = torch.Generator().manual_seed(seed)
    errors: dict[int, dict[str, float]] = {}
    was_training = module.training
    module.eval()
    try:
        for batch in batches:
            inputs = _random_inputs(graph, batch, generator)
            with torch.no_grad():
                expected = module(*inputs)
            feeds = {name: x.numpy() for name, x in zip(graph.inputs, inputs, strict=True)}
            try:
                got = session.run(list(graph.outputs), feeds)
            except Exception as exc:  # onnxruntime's errors (a kernel refusing its inputs) are a failed check
                problems.append(f"batch {batch}: onnxruntime failed: {_summary(exc)}")
                continue
            errors[batch] = {}
            for name, value in zip(graph.outputs, got, strict=True):
                want = expected[name].numpy()
                if value.shape != want.shape:
                    problems.append(f"batch {batch}: {name} has shape {value.shape}, torch gives {want.shape}")
                    errors[batch][name] = float("inf")
                    continue
                err = float(np.max(np.abs(value.astype(np.float64) - want))) if value.size else 0.0
                errors[batch][name] = err
                if not err <= atol:
                    problems.append(f"batch {batch}: {name} differs from torch by {err:.3g} > {atol:g}")
    finally:
        module.train(was_training)
    return {"ok": checked and not problems, "checked": checked, "max_abs_error": errors, "atol": atol,
            "moe_nodes": _moe_counts(model), "nodes": len(model.graph.node), "bytes": path.stat().st_size,
            "problems": problems}


def write(src: Source, path: Path, moe: str, compare) -> Written:
    """Write `src` with `export_onnx` and verify it with `verify_onnx` (checker, onnxruntime vs torch)."""
    try:
        import numpy  # noqa: F401  (what this module's readers and writers need besides torch)
        import onnx  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"ONNX export is not available here ({exc})") from None
    compiled = src.compiled
    module = compiled.module.eval()
    written = export_onnx(module, compiled.ir, path, moe=moe)
    result = verify_onnx(path, module, compiled.ir)
    errors = result.get("max_abs_error") or {}
    worst = max((e for per in errors.values() for e in per.values()), default=0.0)
    batches = ", ".join(str(b) for b in errors)
    problems = [str(p) for p in result.get("problems") or []]
    checks = [
        check("onnx.checker (full)", bool(result.get("checked")), "valid" if result.get("checked") else
              next((p for p in problems if p.startswith("check_model")), "failed")),
        check("onnxruntime matches torch", bool(result.get("ok")) or not result.get("checked"),
              f"batches {batches}, max |diff| {worst:.2g} (atol {result.get('atol')})"
              + (f"; {problems[0]}" if problems and result.get("checked") else "")),
    ]
    extra = {"onnx": _plain({**result, "problems": problems}),
             "export": _plain({k: v for k, v in written.items() if k != "path"})}
    return checks, extra



# --------------------------------------------------------------------------------------------- helpers

def _attach_functions(model, opset: int) -> None:
    """Add the model-local function of every portable moe node (once per op type) and the `mdl` opset."""
    from onnx import helper

    from mdl.compiler.ops import moe_onnx

    have = {(f.domain, f.name) for f in model.functions}
    for op_type in sorted({n.op_type for n in model.graph.node if n.domain == moe_onnx.MDL_DOMAIN}):
        if (moe_onnx.MDL_DOMAIN, op_type) not in have:
            model.functions.append(moe_onnx.function_proto(op_type, opset))
    if model.functions and not any(o.domain == moe_onnx.MDL_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(moe_onnx.MDL_DOMAIN, 1))


def _fold_weight_layouts(model) -> None:
    """Fold the Gather/Transpose chains the fused translation puts on weights into new initializers.

    The exporter's optimiser folds them only up to a size budget, and onnxruntime 1.31's CPU
    com.microsoft.MoE gives wrong results (seen with k=1) when its expert weights are computed at run
    time rather than constant initializers; folded here, every MoE node reads initializers. Initializers
    left without a consumer are dropped, so the file holds each weight once.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    values = {i.name: i for i in model.graph.initializer}
    arrays: dict[str, np.ndarray] = {}

    def array(name: str) -> np.ndarray:
        if name not in arrays:
            arrays[name] = numpy_helper.to_array(values[name])
        return arrays[name]

    kept = []
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in ("Gather", "Transpose") and node.input and all(i in values for i in node.input):
            if node.op_type == "Gather":
                folded = np.take(array(node.input[0]), array(node.input[1]), axis=attrs.get("axis", 0))
            else:
                folded = np.transpose(array(node.input[0]), attrs.get("perm"))
            folded = np.ascontiguousarray(folded)
            values[node.output[0]] = numpy_helper.from_array(folded, node.output[0])
            arrays[node.output[0]] = folded
            model.graph.initializer.append(values[node.output[0]])
            continue
        kept.append(node)
    if len(kept) == len(model.graph.node):
        return
    del model.graph.node[:]
    model.graph.node.extend(kept)
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    remaining = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(remaining)


def _moe_counts(model) -> dict[str, int]:
    """Top-level moe nodes: {"com.microsoft.MoE": n, "mdl": m}."""
    from mdl.compiler.ops import moe_onnx

    kinds = Counter("com.microsoft.MoE" if (n.domain, n.op_type) == (moe_onnx.MS_DOMAIN, "MoE") else "mdl"
                    for n in model.graph.node
                    if (n.domain, n.op_type) == (moe_onnx.MS_DOMAIN, "MoE") or n.domain == moe_onnx.MDL_DOMAIN)
    return {"com.microsoft.MoE": kinds["com.microsoft.MoE"], "mdl": kinds["mdl"]}


def _random_inputs(graph: Graph, batch: int, generator) -> list:
    """`lower.example_inputs` at batch size `batch`."""
    from mdl.compiler.lower import example_inputs, example_sizes

    return example_inputs(graph, example_sizes(graph, batch), generator)


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's progress prints and warnings (its errors still raise)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _summary(exc: BaseException) -> str:
    """The innermost cause's first meaningful line."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def _plain(value: Any) -> Any:
    """`value` as JSON-friendly data (paths and other objects as strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)

