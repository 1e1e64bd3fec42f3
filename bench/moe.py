"""How fast is the fused `mdl::moe` (Triton) against the reference, a naive loop and torch._grouped_mm?

The issue's MoE benchmark. Four implementations of the same dropless token-choice MoE layer
(softmax router, top-k, renormalised weights for k > 1, gelu experts of hidden 4*d), each a function
(x, router_weight, w1, b1, w2, b2, top_k, act) -> y that autograd can differentiate:

- `fused`: the Triton kernels (`mdl.compiler.kernels.moe_triton`), through `torch.ops.mdl.moe` with
  MDL_MOE_BACKEND=triton when the op dispatches on it, else called directly; skipped with a note when
  the kernels are missing or `available()` is False;
- `reference`: `mdl.compiler.ops.moe.moe_reference` (sort by expert, one matmul pair per expert);
- `naive`: the per-expert Python loop users write (`torch.where` per expert, `index_add` back);
- `grouped_mm`: `torch._grouped_mm` on the expert-sorted tokens (offsets from the counts, no host sync);
  skipped with a note where torch, the device or the dtype does not support it.

Each is timed forward and forward+backward over the grid T x d x E x k x dtype, with the speedups of
`fused` over the others, the fraction of the device's peak FLOP/s the fused path reaches, the issue's
goal lines, the kernel launches of one fused forward (torch.profiler) and a CUDA graph capture of it.

    python bench/moe.py              # the full grid on a CUDA device
    python bench/moe.py --quick      # a reduced grid (the goal shapes included)
    python bench/moe.py --smoke      # tiny shapes on CPU: checks every implementation against the
                                     # reference (TRITON_INTERPRET=1 runs the fused kernels on CPU)

Exit status: 0; 1 when a goal is measured and not met; 2 when an implementation disagrees with the
reference.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IMPLS = ("fused", "reference", "naive", "grouped_mm")
MODES = ("forward", "forward+backward")
GOAL_SHAPE = {"T": 32768, "E": 8, "k": 2}
GOALS = ((lambda d: d <= 128, "d <= 128", 5.0), (lambda d: d == 512, "d = 512", 2.0))

# Dense peak TFLOP/s by device name: (fp32 without tensor cores, tf32, bf16). Datasheet figures.
PEAKS = (
    ("H200", (67.0, 495.0, 989.0)),
    ("H100 NVL", (60.0, 418.0, 835.0)),
    ("H100 PCIe", (51.0, 378.0, 756.0)),
    ("H100", (67.0, 495.0, 989.0)),  # SXM ("NVIDIA H100 80GB HBM3")
    ("A100", (19.5, 156.0, 312.0)),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true",
                   help="tiny shapes (T 16, 64; d 32; E 4; k 2; fp32), checked against the reference")
    p.add_argument("--quick", action="store_true", help="a reduced grid: T 1024, 32768; d 64, 512; E 8; k 2")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--T", type=int, nargs="+", help="token counts (overrides the grid)")
    p.add_argument("--d", type=int, nargs="+", help="model widths (overrides the grid)")
    p.add_argument("--E", type=int, nargs="+", help="expert counts (overrides the grid)")
    p.add_argument("--k", type=int, nargs="+", help="top-k values (overrides the grid)")
    p.add_argument("--dtypes", nargs="+", choices=("fp32", "bf16"), help="(overrides the grid)")
    p.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--act", default="gelu")
    p.add_argument("--runs", type=int, default=None, help="timed runs per figure (default 20; smoke 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 5; smoke 1)")
    p.add_argument("--peak-tflops", nargs="+", default=[], metavar="DTYPE=TFLOPS",
                   help="the device's dense peak, e.g. fp32=67 bf16=989 (default: by device name)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default torch's own; 1 with --smoke on CPU, steadier when shared)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write the rows and the header as JSON")
    return p.parse_args(argv)


args = parse_args()
# Before torch/triton/mdl are imported: the op reads the backend, triton the interpreter switch.
os.environ["MDL_MOE_BACKEND"] = "triton"
_cuda_visible = None
if args.smoke:
    import torch

    _cuda_visible = torch.cuda.is_available()
    if not _cuda_visible and args.device in (None, "cpu"):
        os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mdl.compiler.ops import moe as moe_module  # noqa: E402

ACTS: dict[str, Callable] = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu, "tanh": torch.tanh,
                             "sigmoid": torch.sigmoid}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


# ---------------------------------------------------------------------------------------------------
# the implementations: (x, router_weight, w1, b1, w2, b2, top_k, act) -> y


def _route(x, router_weight, top_k):
    """Softmax over experts (float32 for half precision) and the top k, renormalised when k > 1."""
    logits = x @ router_weight.T
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    top_p, top_e = probs.topk(top_k, dim=-1)
    if top_k > 1:
        top_p = top_p / top_p.sum(dim=-1, keepdim=True)
    return top_p.to(x.dtype), top_e


def reference(x, router_weight, w1, b1, w2, b2, top_k, act):
    return moe_module.moe_reference(x, router_weight, w1, b1, w2, b2, top_k, act, None)[0]


def naive(x, router_weight, w1, b1, w2, b2, top_k, act):
    """The plain eager loop: for each expert, find its tokens, run it, add the weighted output back."""
    f = ACTS[act]
    top_p, top_e = _route(x, router_weight, top_k)
    y = torch.zeros_like(x)
    for e in range(router_weight.shape[0]):
        token, slot = torch.where(top_e == e)
        if token.numel() == 0:
            continue
        out = f(x[token] @ w1[e] + b1[e]) @ w2[e] + b2[e]
        y = y.index_add(0, token, out * top_p[token, slot].unsqueeze(-1))
    return y


def make_grouped_mm(column_major: bool):
    def grouped_mm(x, router_weight, w1, b1, w2, b2, top_k, act):
        """Sort the assignments by expert and run all experts in two grouped matmuls (no host sync)."""
        f = ACTS[act]
        top_p, top_e = _route(x, router_weight, top_k)
        expert_of = top_e.reshape(-1)  # token-major [T*k]
        order = torch.argsort(expert_of, stable=True)
        token = order // top_k
        expert = expert_of[order]
        offs = torch.cumsum(torch.bincount(expert_of, minlength=router_weight.shape[0]), 0).to(torch.int32)
        if column_major:  # some builds want mat_b with K contiguous
            w1, w2 = w1.transpose(1, 2).contiguous().transpose(1, 2), w2.transpose(1, 2).contiguous().transpose(1, 2)
        hidden = f(torch._grouped_mm(x[token], w1, offs=offs) + b1[expert])
        out = torch._grouped_mm(hidden, w2, offs=offs) + b2[expert]
        weight = top_p.reshape(-1)[order].unsqueeze(-1)
        return torch.zeros_like(x).index_add(0, token, out * weight)

    return grouped_mm


def load_fused() -> tuple[Callable | None, str]:
    """The fused path, or None and why not."""
    try:
        import mdl.compiler.kernels as kernels
    except Exception as e:  # the kernels are being written beside this benchmark
        return None, f"mdl.compiler.kernels does not import ({type(e).__name__}: {e})"
    if not hasattr(kernels, "available") or not hasattr(kernels, "moe_triton"):
        return None, "mdl.compiler.kernels has no available()/moe_triton yet"
    try:
        ok = kernels.available()
    except Exception as e:
        return None, f"kernels.available() raised {type(e).__name__}: {e}"
    if not ok:
        return None, "kernels.available() is False (no CUDA device and no TRITON_INTERPRET=1, or no triton)"
    if "MDL_MOE_BACKEND" in inspect.getsource(moe_module):
        def fused(x, router_weight, w1, b1, w2, b2, top_k, act):
            return torch.ops.mdl.moe(x, router_weight, w1, b1, w2, b2, top_k, act, None)[0]

        return fused, "torch.ops.mdl.moe with MDL_MOE_BACKEND=triton"

    def fused_direct(x, router_weight, w1, b1, w2, b2, top_k, act):
        return kernels.moe_triton(x, router_weight, w1, b1, w2, b2, top_k, act, None)[0]

    return fused_direct, "kernels.moe_triton called directly (the op does not dispatch on MDL_MOE_BACKEND yet)"


def load_grouped_mm(device: torch.device, dtypes: list[str]) -> dict[str, tuple[Callable | None, str]]:
    """Per dtype: the grouped_mm implementation if a small probe (forward and backward) runs, else why not."""
    result = {}
    for name in dtypes:
        if not hasattr(torch, "_grouped_mm"):
            result[name] = (None, f"torch {torch.__version__} has no torch._grouped_mm")
            continue
        errors = []
        for column_major in (False, True):
            fn = make_grouped_mm(column_major)
            try:
                inputs = make_inputs(64, 32, 4, device, DTYPES[name], seed=0, grad=True)
                y = fn(*inputs, 2, "gelu")
                y.backward(torch.ones_like(y))
                layout = "K-contiguous weights, copied per call" if column_major else "weights as stored"
                result[name] = (fn, f"torch._grouped_mm ({layout})")
                break
            except Exception as e:
                errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:120]}")
        else:
            result[name] = (None, f"torch._grouped_mm does not run for {name} here ({errors[0]})")
    return result


# ---------------------------------------------------------------------------------------------------
# inputs, timing, checks


def make_inputs(T, d, E, device, dtype, seed, grad=False):
    g = torch.Generator(device="cpu").manual_seed(seed)
    h = 4 * d

    def u(*shape, fan_in):
        bound = 1 / math.sqrt(fan_in)
        t = (torch.rand(*shape, generator=g) * 2 - 1) * bound
        return t.to(device=device, dtype=dtype).requires_grad_(grad)

    x = torch.randn(T, d, generator=g).to(device=device, dtype=dtype).requires_grad_(grad)
    return (x, u(E, d, fan_in=d), u(E, d, h, fan_in=d), u(E, h, fan_in=d), u(E, h, d, fan_in=h),
            u(E, d, fan_in=h))


def run_once(fn, inputs, top_k, act, mode, grad_y):
    if mode == "forward":
        with torch.no_grad():
            return fn(*inputs, top_k, act)
    for t in inputs:
        t.grad = None
    y = fn(*inputs, top_k, act)
    y.backward(grad_y)
    return y


def median_ms(call: Callable[[], object], device: torch.device, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        call()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize()
        for _ in range(runs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(runs):
            t0 = time.perf_counter()
            call()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def tolerance(dtype: torch.dtype, device: torch.device) -> float:
    if dtype == torch.bfloat16:
        return 5e-2
    return 1e-2 if device.type == "cuda" else 1e-4  # Triton's tl.dot may use tf32 for fp32 on a GPU


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return ((a - b).abs().max() / b.abs().max().clamp(min=1.0)).item() if b.numel() else 0.0


def compare(fn, inputs, top_k, act, mode, grad_y, ref_out) -> float:
    """The largest relative difference from the reference, over y (and the six gradients)."""
    y = run_once(fn, inputs, top_k, act, mode, grad_y)
    diffs = [rel_diff(y.detach(), ref_out[0])]
    if mode != "forward":
        diffs += [rel_diff(t.grad, r) for t, r in zip(inputs, ref_out[1:], strict=True)]
    return max(diffs)


def useful_flops(T, d, E, k):
    h = 4 * d
    return 2 * T * k * (d * h * 2) + 2 * T * d * E


def peak_tflops(device: torch.device, overrides: list[str]) -> dict[str, float | None]:
    peaks: dict[str, float | None] = {"fp32": None, "bf16": None}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, (fp32, tf32, bf16) in PEAKS:
            if key in name:
                peaks = {"fp32": tf32 if torch.backends.cuda.matmul.allow_tf32 else fp32, "bf16": bf16}
                break
    for item in overrides:
        key, _, value = item.partition("=")
        if key not in peaks or not value:
            sys.exit(f"--peak-tflops wants DTYPE=TFLOPS with DTYPE fp32 or bf16, got {item!r}")
        peaks[key] = float(value)
    return peaks


# ---------------------------------------------------------------------------------------------------
# launches and CUDA graphs (CUDA only)


def count_launches(fn, inputs, top_k, act) -> tuple[int, int, list[str]]:
    """Kernels, and memcpy/memset, on the device during one forward (after a warm-up compiles them)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        fn(*inputs, top_k, act)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            fn(*inputs, top_k, act)
            torch.cuda.synchronize()
    names = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    copies = [n for n in names if n.startswith(("Memcpy", "Memset"))]
    kernels = [n for n in names if not n.startswith(("Memcpy", "Memset"))]
    return len(kernels), len(copies), kernels


def try_graph(fn, inputs, top_k, act) -> str:
    """Capture one forward in a CUDA graph, replay it and compare with an eager call."""
    try:
        with torch.no_grad():
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):
                    fn(*inputs, top_k, act)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = fn(*inputs, top_k, act)
            graph.replay()
            torch.cuda.synchronize()
            diff = rel_diff(out, fn(*inputs, top_k, act))
        return f"captured, replay matches eager (max rel diff {diff:.1e})" if diff < 1e-3 else \
            f"captured, but the replay differs from eager (max rel diff {diff:.1e})"
    except Exception as e:
        return f"FAILED ({type(e).__name__}: {str(e).splitlines()[0][:160]})"


# ---------------------------------------------------------------------------------------------------
# the table


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms * 1e3:.0f} us" if ms < 1 else f"{ms:.2f} ms"


def fmt_x(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b is not None and b > 0 else "-"


def print_table(rows: list[dict], mode: str, impls: list[str]) -> None:
    head = ["T", "d", "E", "k", "dtype", *impls, "naive/fused", "ref/fused", "gmm/fused", "roofline",
            "max diff"]
    lines = []
    for r in rows:
        if r["mode"] != mode:
            continue
        t = r["ms"]
        roof = f"{r['roofline'] * 100:.1f}%" if r.get("roofline") is not None else "-"
        diff = max((v for v in r["diff"].values() if v is not None), default=None)
        lines.append([str(r["T"]), str(r["d"]), str(r["E"]), str(r["k"]), r["dtype"],
                      *(fmt_ms(t.get(i)) for i in impls),
                      fmt_x(t.get("naive"), t.get("fused")), fmt_x(t.get("reference"), t.get("fused")),
                      fmt_x(t.get("grouped_mm"), t.get("fused")), roof,
                      "-" if diff is None else f"{diff:.1e}"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]
    print(f"\n{mode}: median time per call; X/fused = X's time over fused's (the speedup of fused)")
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for line in lines:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))


def main() -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    threads = args.threads or (1 if args.smoke and device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    if args.smoke:
        grid = {"T": [16, 64], "d": [32], "E": [4], "k": [2], "dtypes": ["fp32"]}
        runs, warmup = args.runs or 3, args.warmup if args.warmup is not None else 1
    elif args.quick:
        grid = {"T": [1024, 32768], "d": [64, 512], "E": [8], "k": [2], "dtypes": ["fp32", "bf16"]}
        runs, warmup = args.runs or 10, args.warmup if args.warmup is not None else 3
    else:
        grid = {"T": [16, 1024, 32768], "d": [64, 128, 512], "E": [4, 8], "k": [1, 2],
                "dtypes": ["fp32", "bf16"]}
        runs, warmup = args.runs or 20, args.warmup if args.warmup is not None else 5
    for key in ("T", "d", "E", "k", "dtypes"):
        if getattr(args, key):
            grid[key] = getattr(args, key)
    if device.type == "cpu" and not args.smoke and "bf16" in grid["dtypes"]:
        print("note: on CPU this is not the benchmark the issue asks for (use a CUDA device or --smoke)")

    try:
        import triton
        triton_version = triton.__version__
    except Exception:
        triton_version = "not installed"
    if device.type == "cuda":
        cap = torch.cuda.get_device_capability(device)
        dev = (f"{torch.cuda.get_device_name(device)} (sm{cap[0]}{cap[1]}), CUDA {torch.version.cuda}, "
               f"tf32 matmul {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}")
    else:
        dev = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
              f"{torch.get_num_threads()} torch threads)"
    peaks = peak_tflops(device, args.peak_tflops)
    header = {"torch": torch.__version__, "triton": triton_version, "python": platform.python_version(),
              "device": dev, "peak_tflops": peaks, "runs": runs, "warmup": warmup,
              "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET", ""), "act": args.act}
    print(f"torch {torch.__version__}  triton {triton_version}  python {platform.python_version()}  {dev}")
    print(f"median of {runs} runs after {warmup} warm-up; hidden = 4*d, act {args.act}, dropless; "
          f"peak TFLOP/s fp32 {peaks['fp32'] or '?'}, bf16 {peaks['bf16'] or '?'}"
          + ("; TRITON_INTERPRET=1" if os.environ.get("TRITON_INTERPRET") == "1" else ""))

    fused, fused_note = load_fused()
    gmm = load_grouped_mm(device, grid["dtypes"])
    notes = {"fused": fused_note, "reference": "moe_reference", "naive": "per-expert Python loop"}
    print(f"fused: {fused_note}")
    if device.type == "cpu":
        print("on CPU every time is a smoke figure, not a speed figure (fused runs in Triton's interpreter)")
    for name, (_fn, note) in gmm.items():
        print(f"grouped_mm ({name}): {note}")
    impls = [i for i in args.impls]

    rows: list[dict] = []
    disagree = []
    for dtype_name in grid["dtypes"]:
        dtype = DTYPES[dtype_name]
        fns = {"fused": fused, "reference": reference, "naive": naive, "grouped_mm": gmm[dtype_name][0]}
        for T in grid["T"]:
            for d in grid["d"]:
                for E in grid["E"]:
                    for k in grid["k"]:
                        if k > E:
                            continue
                        for mode in args.modes:
                            grad = mode != "forward"
                            inputs = make_inputs(T, d, E, device, dtype, args.seed, grad=grad)
                            grad_y = torch.randn(T, d, generator=torch.Generator().manual_seed(1)).to(
                                device=device, dtype=dtype)
                            ref_y = run_once(reference, inputs, k, args.act, mode, grad_y)
                            ref_out = [ref_y.detach()] + ([t.grad.clone() for t in inputs] if grad else [])
                            row = {"T": T, "d": d, "E": E, "k": k, "dtype": dtype_name, "mode": mode,
                                   "ms": {}, "diff": {}, "errors": {}}
                            for name in impls:
                                fn = fns[name]
                                if fn is None:
                                    continue
                                try:
                                    diff = None if name == "reference" else compare(
                                        fn, inputs, k, args.act, mode, grad_y, ref_out)
                                    row["diff"][name] = diff
                                    if diff is not None and diff > tolerance(dtype, device):
                                        disagree.append(f"{name} {mode} T={T} d={d} E={E} k={k} "
                                                        f"{dtype_name}: max rel diff {diff:.1e}")
                                    row["ms"][name] = median_ms(
                                        lambda fn=fn, inputs=inputs, k=k, mode=mode, grad_y=grad_y:
                                        run_once(fn, inputs, k, args.act, mode, grad_y),
                                        device, runs, warmup)
                                except Exception as e:  # e.g. no backward: report it and go on
                                    row["errors"][name] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
                            fused_ms = row["ms"].get("fused")
                            peak = peaks[dtype_name]
                            flops = useful_flops(T, d, E, k) * (1 if mode == "forward" else 3)
                            row["useful_flops"] = flops
                            row["roofline"] = flops / (fused_ms * 1e-3) / (peak * 1e12) \
                                if fused_ms and peak else None
                            rows.append(row)
                            del inputs, ref_out, ref_y
                            for name, err in row["errors"].items():
                                print(f"  {name} {mode} T={T} d={d} E={E} k={k} {dtype_name}: {err}")

    for mode in args.modes:
        print_table(rows, mode, impls)
    print("\nroofline: useful FLOPs (2*T*k*(2*d*h) experts + 2*T*d*E router; x3 for forward+backward) "
          "per second of fused, over the peak")
    for name in impls:
        if name == "grouped_mm":
            missing = [f"{n}: {note}" for n, (fn, note) in gmm.items() if fn is None]
            if missing:
                print(f"skipped grouped_mm ({'; '.join(missing)})")
        elif name == "fused" and fused is None:
            print(f"skipped fused ({notes['fused']})")

    # The goals: fused >= 5x naive at d <= 128 and >= 2x at d = 512, for T=32768, E=8, k=2.
    goal_failed = False
    print("\ngoals (T=32768, E=8, k=2; naive/fused):")
    for mode in args.modes:
        for dtype_name in grid["dtypes"]:
            for test, label, goal in GOALS:
                picked = [r for r in rows if r["mode"] == mode and r["dtype"] == dtype_name and test(r["d"])
                          and all(r[key] == v for key, v in GOAL_SHAPE.items())
                          and "fused" in r["ms"] and "naive" in r["ms"]]
                if not picked:
                    print(f"  {mode:17} {dtype_name} {label:9} >= {goal:.0f}x: not measured")
                    continue
                worst = min(r["ms"]["naive"] / r["ms"]["fused"] for r in picked)
                met = worst >= goal
                goal_failed |= not met
                print(f"  {mode:17} {dtype_name} {label:9} >= {goal:.0f}x: {worst:.2f}x "
                      f"{'met' if met else 'NOT MET'}")

    extras: dict[str, object] = {}
    if device.type == "cuda" and fused is not None:
        print("\nlaunches in one forward, routing to combine (goal <= 2 for fused), and CUDA graph capture:")
        T, d, E, k = 1024, 128, 8, 2
        for dtype_name in grid["dtypes"]:
            inputs = make_inputs(T, d, E, device, DTYPES[dtype_name], args.seed)
            for name in impls:
                fn = {"fused": fused, "reference": reference, "naive": naive,
                      "grouped_mm": gmm[dtype_name][0]}[name]
                if fn is None:
                    continue
                try:
                    n_kernels, n_copies, names = count_launches(fn, inputs, k, args.act)
                    line = f"{n_kernels} kernels, {n_copies} memcpy/memset"
                    if name == "fused":
                        line += f" ({'met' if n_kernels <= 2 else 'over 2'}): {', '.join(names)[:200]}"
                except Exception as e:
                    n_kernels, line = None, f"profiler failed ({type(e).__name__}: {e})"
                print(f"  {name:10} {dtype_name} T={T} d={d} E={E} k={k}: {line}")
                extras[f"launches/{name}/{dtype_name}"] = n_kernels
            for name in ("grouped_mm", "fused"):  # fused last: a failed capture may upset the stream
                fn = fused if name == "fused" else gmm[dtype_name][0]
                if fn is None or name not in impls:
                    continue
                result = try_graph(fn, inputs, k, args.act)
                print(f"  CUDA graph, {name} forward, {dtype_name}: {result}")
                extras[f"cuda_graph/{name}/{dtype_name}"] = result
    elif device.type != "cuda":
        print("\nlaunch counts and CUDA graph capture: CUDA only, not measured here")

    if disagree:
        print("\nDISAGREES with the reference (tolerance: fp32 1e-4 on CPU, 1e-2 on CUDA; bf16 5e-2):")
        for line in disagree:
            print(f"  {line}")
    else:
        print("\nall measured implementations agree with the reference")

    if args.out:
        args.out.write_text(json.dumps({"header": header, "notes": notes, "rows": rows, "extras": extras},
                                       indent=1))
        print(f"wrote {args.out}")
    if disagree:
        return 2
    return 1 if goal_failed else 0


if __name__ == "__main__":
    sys.exit(main())
