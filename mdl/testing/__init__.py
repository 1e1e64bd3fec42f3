"""`mdl.testing`: laws a user's own tests check of their designs (issue 15, DESIGN.md "Seeing and
testing designs").

Each law takes a compiled model (`mdl.compile_source` / `mdl.compile_file`) or a source text and
raises `AssertionError` with a message that names the node and its place in the design
(`file:line:column`) when the law does not hold:

- `assert_matches_torch(compiled, batches=(1, 3, 8))`: the static parameter count of every node and of
  the model equals the lowered module's, and every node's static shape equals the real one, at each
  batch size (a fresh lowering, independent of the verification `compiled.module` does);
- `assert_batch_independent(compiled)`: a sample's outputs do not depend on the other samples in its
  batch (eval mode; each sample alone against the batch);
- `assert_deterministic(compiled)`: two forwards of the same inputs agree exactly, and two lowerings
  under the same seed have the same weights;
- `assert_exports_match(compiled, formats=("onnx", "py", "pt"), atol=1e-4)`: each format written by
  `mdlc export`'s writer into a temporary folder, read back (the `.pt` by `mdl.runtime.export.load`,
  the `.py` imported, the `.onnx` by onnxruntime) and run on random inputs at several batch sizes:
  its outputs equal `compiled.module`'s within `atol`;
- `assert_flops_match_torch(compiled, rtol=0.1)`: the static forward FLOPs per sample are within `rtol`
  of what `torch.utils.flop_counter.FlopCounterMode` counts for one sample (mdl registers a formula
  for `mdl::moe`, so the expert work is counted; the static figure also counts elementwise work,
  which FlopCounterMode does not, hence a tolerance). The forward runs in training mode under
  no_grad: in eval mode torch's fused attention fast path is invisible to FlopCounterMode;
- `assert_round_trips(source)`: formatting keeps every model's architecture hash, and each model's
  decompiled design compiles to the same hash;
- `check_laws(compiled, laws=LAWS)`: the chosen laws by name, in order.

Nothing heavy is imported here: torch is imported by the laws that need it, when they run; hypothesis
only by `mdl.testing.strategies`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

LAWS = ("matches_torch", "batch_independent", "deterministic", "round_trips", "exports_match", "flops_match_torch")
EXPORT_FORMATS = ("onnx", "py", "pt")


def _where(node: Any) -> str:
    span = node.span
    return f"{span.file or '<source>'}:{span.line}:{span.column}"


def _module_params(gm: Any, name: str) -> int:
    try:
        sub = gm.get_submodule(name)
    except AttributeError:
        return 0
    return sum(p.numel() for p in sub.parameters())


def _shape_prop(gm: Any) -> Any:
    """torch.fx's ShapeProp, a node that fails to run reported as an AssertionError at its design line."""
    from torch.fx.passes.shape_prop import ShapeProp

    class Prop(ShapeProp):
        def run_node(self, n: Any) -> Any:
            try:
                return super().run_node(n)
            except Exception as exc:
                node = n.meta.get("mdl_node")
                if node is None:
                    raise
                cause = exc.__cause__ or exc
                raise AssertionError(f"{_where(node)}: `{node.name}` ({node.op}) with the static input shapes "
                                     f"fails to run in the lowered module: {cause}") from None

    return Prop(gm)


def assert_matches_torch(compiled: Any, batches: Iterable[int] = (1, 3, 8)) -> None:
    """Static params (per node and in total) and every node's static shape equal the lowered module's."""
    import torch

    from mdl.compiler.lower import example_inputs, example_sizes, lower

    graph = compiled.ir
    gm = lower(graph)
    for node in graph.nodes:
        real = _module_params(gm, node.name)
        if node.params != real:
            raise AssertionError(f"{_where(node)}: `{node.name}` ({node.op}) has {node.params:,} parameters "
                                 f"statically, the lowered module {real:,}")
    total = sum(p.numel() for p in gm.parameters())
    if graph.params != total:
        raise AssertionError(f"model `{compiled.name}`: {graph.params:,} parameters statically, the lowered "
                             f"module {total:,}")
    gm.eval()
    for batch in batches:
        sizes = example_sizes(graph, batch)
        with torch.no_grad():
            _shape_prop(gm).propagate(*example_inputs(graph, sizes, torch.Generator().manual_seed(0)))
        for fx_node in gm.graph.nodes:
            node = fx_node.meta.get("mdl_node")
            meta = fx_node.meta.get("tensor_meta")
            if node is None or meta is None or not hasattr(meta, "shape"):
                continue
            want = [d if isinstance(d, int) else sizes.get(d, d) for d in node.type.shape]
            if list(meta.shape) != want:
                raise AssertionError(f"{_where(node)}: `{node.name}` ({node.op}) has the static shape "
                                     f"{list(node.type.shape)} = {want} at B={batch}, the module computes "
                                     f"{list(meta.shape)}")


def _outputs(gm: Any, inputs: list) -> dict[str, Any]:
    import torch

    with torch.no_grad():
        return gm(*inputs)


def assert_batch_independent(compiled: Any, batch: int = 5, atol: float = 1e-5) -> None:
    """Each sample's outputs alone equal its outputs inside a batch of `batch` (eval mode)."""
    import torch

    from mdl.compiler.lower import example_inputs, example_sizes, lower

    graph = compiled.ir
    gm = lower(graph).eval()
    inputs = example_inputs(graph, example_sizes(graph, batch), torch.Generator().manual_seed(0))
    together = _outputs(gm, inputs)
    for i in range(batch):
        alone = _outputs(gm, [x[i:i + 1] for x in inputs])
        for name, value in alone.items():
            if not torch.allclose(value, together[name][i:i + 1], atol=atol, rtol=1e-4):
                diff = float((value - together[name][i:i + 1]).abs().max())
                raise AssertionError(f"model `{compiled.name}`: output `{name}` of sample {i} changes with the "
                                     f"other samples of its batch (max difference {diff:.3g})")


def assert_deterministic(compiled: Any, seed: int = 0) -> None:
    """Two forwards agree exactly; two lowerings under one seed have the same weights."""
    import torch

    from mdl.compiler.lower import example_inputs, lower

    graph = compiled.ir
    weights = []
    for _ in range(2):
        torch.manual_seed(seed)
        weights.append(lower(graph).state_dict())
    for key, value in weights[0].items():
        if not torch.equal(value, weights[1][key]):
            raise AssertionError(f"model `{compiled.name}`: weight `{key}` differs between two lowerings "
                                 f"under seed {seed}")
    gm = lower(graph).eval()
    inputs = example_inputs(graph, generator=torch.Generator().manual_seed(seed))
    first, second = _outputs(gm, inputs), _outputs(gm, inputs)
    for name, value in first.items():
        if not torch.equal(value, second[name]):
            raise AssertionError(f"model `{compiled.name}`: output `{name}` differs between two forwards "
                                 "of the same inputs")


def assert_round_trips(source: str, path: str | None = None) -> None:
    """Formatting keeps each model's architecture hash; each model decompiles to a design of that hash."""
    from mdl.compiler.api import compile_source
    from mdl.compiler.check import analyze
    from mdl.compiler.decompile import decompile
    from mdl.dsl.format import format_source

    analysis = analyze(source, path)
    if not analysis.ok:
        first = next(d for d in analysis.diagnostics if d.is_error)
        raise AssertionError(f"{path or '<source>'}:{first.span.line}:{first.span.column}: the design has "
                             f"errors ({first.code}: {first.message})")
    formatted = format_source(source, path)
    again = analyze(formatted, path)
    for name, graph in analysis.graphs.items():
        other = again.graphs.get(name)
        if other is None or other.architecture_hash() != graph.architecture_hash():
            raise AssertionError(f"{path or '<source>'}: formatting changes model `{name}`'s architecture")
        text = decompile(graph)
        if compile_source(text, name).architecture_hash != graph.architecture_hash():
            raise AssertionError(f"{path or '<source>'}: model `{name}` decompiles to a different architecture:\n"
                                 f"{text}")


def _max_differences(reference: Any, other: Any, graph: Any, batches: Iterable[int]) -> dict[str, float]:
    import torch

    from mdl.compiler.lower import example_inputs, example_sizes

    worst: dict[str, float] = {}
    reference.eval()
    other.eval()
    for batch in batches:
        inputs = example_inputs(graph, example_sizes(graph, batch), torch.Generator().manual_seed(batch))
        want, got = _outputs(reference, inputs), _outputs(other, inputs)
        for name in graph.outputs:
            a, b = want[name].double(), got[name].double()
            diff = float("inf") if a.shape != b.shape else float((a - b).abs().max()) if a.numel() else 0.0
            worst[name] = max(worst.get(name, 0.0), diff)
    return worst


def assert_exports_match(compiled: Any, formats: Iterable[str] = EXPORT_FORMATS, atol: float = 1e-4,
                         batches: tuple[int, ...] = (1, 7)) -> None:
    """Each export, read back, computes `compiled.module`'s outputs within `atol` (module docstring)."""
    import tempfile
    from pathlib import Path

    from mdl.runtime.export import common, load, onnx_format, pt, py

    module = compiled.module
    graph = compiled.ir
    writers = {"pt": pt.write, "py": py.write, "onnx": onnx_format.write}
    with tempfile.TemporaryDirectory(prefix="mdl-testing-") as tmp:
        where = Path(compiled.path) if compiled.path else Path(tmp) / "design.mdl"
        imports = common._file_imports(compiled.source, where) if compiled.path else {}
        src = common.Source(compiled, "design", Path(tmp) / compiled.name, where.name, imports=imports)
        for fmt in formats:
            if fmt not in writers:
                raise ValueError(f"unknown export format {fmt!r}; formats: {', '.join(writers)}")
            path = Path(tmp) / f"{compiled.name}.{fmt}"
            writers[fmt](src, path, "fused", common.compare_outputs)
            if fmt == "onnx":
                result = onnx_format.verify_onnx(path, module, graph, batches=batches, atol=atol)
                if not result["ok"]:
                    raise AssertionError(f"model `{compiled.name}`: the ONNX export differs from the module: "
                                         + "; ".join(str(p) for p in result["problems"]))
                continue
            if fmt == "pt":
                other = load(path).module
            else:
                other = py.import_standalone(path, graph)
                other.load_state_dict(module.state_dict(), strict=True)
            worst = _max_differences(module, other, graph, batches)
            bad = {k: v for k, v in worst.items() if not v <= atol}
            if bad:
                detail = ", ".join(f"`{k}` by {v:.3g}" for k, v in bad.items())
                raise AssertionError(f"model `{compiled.name}`: the {fmt} export differs from the module "
                                     f"(outputs {detail} > atol {atol:g})")


def assert_flops_match_torch(compiled: Any, rtol: float = 0.1) -> None:
    """The static FLOPs per sample within `rtol` of FlopCounterMode's count (module docstring)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mdl.compiler.lower import example_inputs, example_sizes

    static = compiled.flops
    if static is None:
        raise AssertionError(f"model `{compiled.name}` has no static FLOP count (a dim other than B is symbolic)")
    module = compiled.module
    was_training = module.training
    module.train()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(*example_inputs(compiled.ir, example_sizes(compiled.ir, 1), torch.Generator().manual_seed(0)))
    finally:
        module.train(was_training)
    counted = counter.get_total_flops()
    if abs(counted - static) > rtol * static:
        by_op = ", ".join(f"{op}: {n:,}" for op, n in counter.get_flop_counts().get("Global", {}).items())
        raise AssertionError(f"model `{compiled.name}`: {static:,} FLOPs per sample statically, FlopCounterMode "
                             f"counts {counted:,} ({by_op or 'nothing'}); more than {rtol:.0%} apart")


_BY_NAME: dict[str, Callable[[Any], None]] = {
    "matches_torch": assert_matches_torch,
    "batch_independent": assert_batch_independent,
    "deterministic": assert_deterministic,
    "round_trips": lambda compiled: assert_round_trips(compiled.source, compiled.path),
    "exports_match": assert_exports_match,
    "flops_match_torch": assert_flops_match_torch,
}


def check_laws(compiled: Any, laws: Iterable[str] = LAWS) -> None:
    """Run the named laws (LAWS) on `compiled`, in order; the first that fails raises."""
    for law in laws:
        if law not in _BY_NAME:
            raise ValueError(f"unknown law {law!r}; laws: {', '.join(LAWS)}")
        _BY_NAME[law](compiled)


__all__ = ["EXPORT_FORMATS", "LAWS", "assert_batch_independent", "assert_deterministic", "assert_exports_match",
           "assert_flops_match_torch", "assert_matches_torch",
           "assert_round_trips", "check_laws"]
