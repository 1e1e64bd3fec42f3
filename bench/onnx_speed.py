"""onnxruntime against torch eager: inference latency of exported designs, and their file sizes.

For the LANGUAGE.md example (`examples/moe_2048.mdl`) and the CartPole MLP (`examples/cartpole_mlp.mdl`),
each exported with `mdl.runtime.export.onnx_format.export_onnx` in both moe modes (fused, portable) and
verified (`verify_onnx`, batch 1 and 64), this times one forward at batch 1 and 64: the torch module
in eval mode under `torch.inference_mode()` against an onnxruntime CPU session (default graph
optimisations), the same random inputs, the same thread count for both. Figures are medians of
`--runs` calls after warm-up, interleaved in blocks so machine noise hits both; the speedup is
torch / onnxruntime (the goal is >= 2x at batch 1). `--approximate-gelu` also exports moe_2048 with
com.microsoft.MoE's tanh-approximate GELU (the only way its gelu experts become fused nodes).

    python bench/onnx_speed.py [--runs 200] [--threads N] [--approximate-gelu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mdl.compiler.api import compile_file
from mdl.compiler.lower import example_inputs, example_sizes
from mdl.runtime.export.onnx_format import export_onnx, verify_onnx

ROOT = Path(__file__).resolve().parent.parent
DESIGNS = ["examples/moe_2048.mdl", "examples/cartpole_mlp.mdl"]


def _median_us(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--approximate-gelu", action="store_true")
    args = parser.parse_args()
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} threads, "
          f"median of {args.runs} runs\n")
    print("| design | moe mode | MoE nodes (fused/portable) | file | batch | torch eager | onnxruntime | speedup |")
    print("|---|---|---|---|---|---|---|---|")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for design in DESIGNS:
            torch.manual_seed(0)
            compiled = compile_file(ROOT / design)
            module = compiled.module.eval()
            modes = [("fused", False), ("portable", False)]
            if args.approximate_gelu and "moe" in design:
                modes.append(("fused", True))
            for mode, approx in modes:
                path = Path(tmp) / f"{Path(design).stem}_{mode}{'_approx' if approx else ''}.onnx"
                result = export_onnx(module, compiled.ir, path, moe=mode, approximate_gelu=approx)
                report = verify_onnx(path, module, compiled.ir)
                failed |= not report["ok"]
                options = ort.SessionOptions()
                options.intra_op_num_threads = args.threads
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                counts = result["moe_nodes"]
                label = mode + (" (tanh gelu)" if approx else "")
                for batch in (1, 64):
                    tensors = example_inputs(compiled.ir, example_sizes(compiled.ir, batch),
                                             torch.Generator().manual_seed(batch))
                    feeds = {name: t.numpy() for name, t in zip(compiled.ir.inputs, tensors, strict=True)}

                    def run_torch(tensors=tensors, module=module):
                        with torch.inference_mode():
                            module(*tensors)

                    def run_ort(feeds=feeds, session=session):
                        session.run(None, feeds)

                    for _ in range(10):
                        run_torch()
                        run_ort()
                    t_torch, t_ort = [], []
                    for _ in range(5):
                        t_torch.append(_median_us(run_torch, args.runs // 5))
                        t_ort.append(_median_us(run_ort, args.runs // 5))
                    mt, mo = statistics.median(t_torch), statistics.median(t_ort)
                    ok = "" if report["ok"] else " (NOT VERIFIED)"
                    print(f"| {Path(design).name} | {label}{ok} | {counts['com.microsoft.MoE']}/{counts['mdl']} | "
                          f"{result['bytes'] / 1e6:.2f} MB | {batch} | {mt:.0f} µs | {mo:.0f} µs | {mt / mo:.2f}x |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
