"""What does lowering cost, and does the lowered module train as fast as hand-written PyTorch?

Two sets of figures (issue 3):

1. **parse -> GraphModule** for the LANGUAGE.md example (`examples/moe_2048.mdl`): `mdl.compile_file`
   plus `.module` (lowering, then verification by ShapeProp under FakeTensorMode), a new
   CompiledModel each run, as the best and the median of N runs after a warm-up; split into the
   front end (`compile_file`), `mdl.compiler.lower.lower` and `mdl.compiler.lower.verify`, each timed
   on its own. Also the first call in a fresh process (cold imports, the parser's LALR tables),
   measured in a subprocess and split the same way.
2. **training-step throughput** of the compiled module against an equivalent hand-written
   `nn.Module` (below, plain PyTorch: the same layers and parameter count, the same `MoE` class from
   mdl.compiler.ops.moe, the weights copied over so both do the same arithmetic), for the LANGUAGE.md
   example (batch 64) and `examples/cartpole_mlp.mdl` (batch 256). A step is forward, cross-entropy on
   `policy` + MSE on `value` + the MoE layers' aux losses, backward, Adam step. The two run in the same
   process with the same torch threads, interleaved in blocks (the first of each pair alternates)
   after a warm-up; the figures are medians over the blocks, and the ratio is the median of the
   per-pair ratios compiled/hand-written (the goal is >= 1.0). A forward-only row (eval mode, no
   grad) shows the wrapper's cost where there is least other work to hide it.

Exits 0, or 1 when a model cannot be built (a compile error, an unequal parameter count, weights
that do not map one to one). `--profile` prints the top cProfile entries of a few training steps of
each model.

    python bench/lowering.py [--quick] [--runs 20] [--rounds 15] [--threads N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import mdl
from mdl.compiler.lower import lower, verify
from mdl.compiler.ops.moe import MoE
from mdl.dsl.diagnostics import CompileError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "moe_2048.mdl"
CARTPOLE = ROOT / "examples" / "cartpole_mlp.mdl"
SEED = 2048


# ------------------------------------------------------------------------------ hand-written models


class EncoderLayer(nn.Module):
    """The example's `encoder_layer`: pre-norm attention and a pre-norm mixture of experts, each residual."""

    def __init__(self, d: int, heads: int, experts: int, top_k: int = 2):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d)
        self.moe = MoE(d, experts, 4 * d, top_k)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.moe(self.norm2(x))


class Moe2048Net(nn.Module):
    """LANGUAGE.md's Moe2048 written by hand: board [B, 4, 4] of tile exponents -> (policy, value)."""

    def __init__(self, d: int = 128, layers: int = 2, experts: int = 4):
        super().__init__()
        self.embed = nn.Embedding(16, d)
        self.pos = nn.Parameter(torch.randn(16, d) * 0.02)
        self.layers = nn.ModuleList(EncoderLayer(d, heads=4, experts=experts) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.policy = nn.Linear(d, 4)
        self.value = nn.Linear(d, 1)

    def forward(self, board: Tensor) -> tuple[Tensor, Tensor]:
        x = self.embed(board.flatten(1)) + self.pos
        for layer in self.layers:
            x = layer(x)
        h = self.norm(x).mean(dim=1)
        return self.policy(h), self.value(h)


def moe2048_key(key: str) -> str:
    """The compiled module's state-dict key for a Moe2048Net key."""
    renames = [("embed.", "embedding."), ("pos", "pos_encoding.weight"), ("norm.", "layer_norm.")]
    if key.startswith("layers."):
        _, i, rest = key.split(".", 2)
        part, _, tail = rest.partition(".")
        compiled = {"norm1": "layer_norm", "attn": "attention", "norm2": "layer_norm_1", "moe": "moe"}[part]
        return f"layers.{i}.encoder_layer.{compiled}.{tail}"
    for old, new in renames:
        if key.startswith(old):
            return new + key[len(old):]
    return key


class CartPoleNet(nn.Module):
    """examples/cartpole_mlp.mdl written by hand: two tanh layers, then policy and value heads."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.fc1 = nn.Linear(4, width)
        self.fc2 = nn.Linear(width, width)
        self.policy = nn.Linear(width, 2)
        self.value = nn.Linear(width, 1)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.tanh(self.fc2(torch.tanh(self.fc1(obs))))
        return self.policy(h), self.value(h)


def cartpole_key(key: str) -> str:
    return key.replace("fc1.", "linear.").replace("fc2.", "linear_1.")


# ------------------------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """Seconds over the timed runs: best and median wall time."""

    best: float
    median: float


def measure(fn: Callable[[], object], runs: int, warmup: int = 2) -> Timing:
    """Time `fn()` over `runs` runs after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    wall = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        fn()
        wall.append(time.perf_counter() - start)
    return Timing(min(wall), statistics.median(wall))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def compile_times(path: Path, runs: int) -> dict[str, Timing]:
    """parse -> verified GraphModule, and its three parts, each timed on its own (fresh objects each run)."""
    compiled = mdl.compile_file(path)
    modules = iter([lower(compiled.ir) for _ in range(runs + 2)])  # verify each run a module not seen before
    return {
        "front end (compile_file)": measure(lambda: mdl.compile_file(path), runs),
        "lower (IR -> GraphModule)": measure(lambda: lower(compiled.ir), runs),
        "verify (ShapeProp, fake tensors)": measure(lambda: verify(next(modules), compiled.ir), runs),
        "total (compile_file + .module)": measure(lambda: mdl.compile_file(path).module, runs),
    }


# Run with `python -c` so that nothing is imported before the clock starts; prints JSON.
_COLD = """
import time
start = time.perf_counter()
import sys, json
marks = {}
def mark(name):
    global start
    now = time.perf_counter(); marks[name] = now - start; start = now
import mdl; mark("import mdl")
compiled = mdl.compile_file(sys.argv[1]); mark("compile_file")
from mdl.compiler.lower import lower, verify; mark("import torch + lower")
gm = lower(compiled.ir); mark("lower")
assert not verify(gm, compiled.ir); mark("verify")
print(json.dumps(marks))
"""


def cold_first_call(path: Path, repeats: int) -> dict[str, float]:
    """Median seconds of each phase of the first compile in a fresh interpreter; "process" is the whole
    subprocess (interpreter start and exit included)."""
    samples: dict[str, list[float]] = {}
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _COLD, str(path)], capture_output=True, text=True, check=True)
        whole = time.perf_counter() - start
        for name, seconds in {**json.loads(done.stdout), "process": whole}.items():
            samples.setdefault(name, []).append(seconds)
    return {name: statistics.median(values) for name, values in samples.items()}


# ------------------------------------------------------------------------------------- training step


@dataclass
class Pair:
    """A compiled model and its hand-written twin, with one batch of data for both."""

    name: str
    batch: int
    compiled: nn.Module
    hand: nn.Module
    inputs: Tensor
    actions: Tensor
    returns: Tensor


def build_pair(path: Path, hand: nn.Module, key: Callable[[str], str], batch: int) -> Pair:
    """Compile `path`, check `hand` has the same parameters, copy the compiled weights into it."""
    torch.manual_seed(SEED)
    compiled = mdl.compile_file(path)
    gm = compiled.module
    n_compiled = sum(p.numel() for p in gm.parameters())
    n_hand = sum(p.numel() for p in hand.parameters())
    if not n_compiled == n_hand == compiled.params:
        raise ValueError(f"{compiled.name}: {n_compiled:,} parameters compiled, {n_hand:,} hand-written, "
                         f"{compiled.params:,} in the IR")
    source = gm.state_dict()
    mapped = {k: key(k) for k in hand.state_dict()}
    if sorted(mapped.values()) != sorted(source):
        raise ValueError(f"{compiled.name}: the state dicts do not map one to one: "
                         f"{sorted(set(source) ^ set(mapped.values()))}")
    hand.load_state_dict({k: source[c] for k, c in mapped.items()})
    (board,) = compiled.ir.input_types().values()
    shape = [batch, *board.shape[1:]]
    generator = torch.Generator().manual_seed(SEED)
    if board.dtype == "int":  # 2048 tile exponents
        inputs = torch.randint(0, 16, shape, generator=generator)
    else:
        inputs = torch.randn(shape, generator=generator)
    actions = torch.randint(0, compiled.outputs["policy"][-1], (batch,), generator=generator)
    returns = torch.randn(batch, generator=generator)
    return Pair(compiled.name, batch, gm, hand, inputs, actions, returns)


def max_difference(pair: Pair) -> float:
    """Largest difference between the two models' outputs (eval mode) on the pair's batch."""
    pair.compiled.eval()
    pair.hand.eval()
    with torch.no_grad():
        out = pair.compiled(pair.inputs)
        policy, value = pair.hand(pair.inputs)
    return max((out["policy"] - policy).abs().max().item(), (out["value"] - value).abs().max().item())


def training_step(pair: Pair, which: str) -> Callable[[], None]:
    """One PPO-shaped supervised step on the pair's batch for the compiled or the hand-written model."""
    model = pair.compiled if which == "compiled" else pair.hand
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    moes = [m for m in model.modules() if isinstance(m, MoE)]
    inputs, actions, returns = pair.inputs, pair.actions, pair.returns
    compiled = which == "compiled"

    def step() -> None:
        out = model(inputs)
        policy, value = (out["policy"], out["value"]) if compiled else out
        loss = F.cross_entropy(policy, actions) + F.mse_loss(value.squeeze(-1), returns)
        for moe in moes:
            loss = loss + moe.aux_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def forward_only(pair: Pair, which: str) -> Callable[[], None]:
    model = pair.compiled if which == "compiled" else pair.hand
    model.eval()

    def step() -> None:
        with torch.no_grad():
            model(pair.inputs)

    return step


@dataclass(frozen=True)
class Throughput:
    """Steps per second over interleaved blocks: the median for each side, and the median of the
    per-pair ratios compiled/hand-written with their range."""

    compiled: float
    hand: float
    ratio: float
    ratio_low: float
    ratio_high: float


def interleaved(steps: dict[str, Callable[[], None]], rounds: int, block_s: float, warmup_s: float) -> Throughput:
    """Run the two steps in alternating blocks of the same number of steps; a block lasts about `block_s`."""
    per_step = {}
    for name, step in steps.items():  # warm-up, and a first estimate of each step's time
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < warmup_s or count < 3:
            step()
            count += 1
        per_step[name] = (time.perf_counter() - start) / count
    block = max(1, round(block_s / max(per_step.values())))
    rates: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            step = steps[name]
            gc.collect()
            start = time.perf_counter()
            for _ in range(block):
                step()
            rates[name].append(block / (time.perf_counter() - start))
    ratios = sorted(c / h for c, h in zip(rates["compiled"], rates["hand"], strict=True))
    return Throughput(statistics.median(rates["compiled"]), statistics.median(rates["hand"]),
                      statistics.median(ratios), ratios[0], ratios[-1])


def profile_steps(step: Callable[[], None], steps: int, top: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run: fewer runs, rounds and shorter blocks")
    parser.add_argument("--runs", type=int, help="timed compiles per figure (default 20, quick 5)")
    parser.add_argument("--cold", type=int, help="fresh processes for the first-call figure (default 3, quick 1)")
    parser.add_argument("--rounds", type=int, help="interleaved block pairs per model (default 15, quick 5)")
    parser.add_argument("--block-ms", type=float, help="length of a timed block (default 300, quick 100)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help=f"torch threads for both models (default {torch.get_num_threads()}, torch's own)")
    parser.add_argument("--profile", action="store_true", help="print the top cProfile entries of training steps")
    parser.add_argument("--top", type=int, default=25, help="entries to print with --profile (default 25)")
    args = parser.parse_args(argv)
    quick = args.quick
    runs = args.runs or (5 if quick else 20)
    cold = args.cold or (1 if quick else 3)
    rounds = args.rounds or (5 if quick else 15)
    block_s = (args.block_ms or (100 if quick else 300)) / 1000
    warmup_s = 0.5 if quick else 2.0
    torch.set_num_threads(args.threads)

    try:
        compiled = mdl.compile_file(EXAMPLE)
        pairs = [build_pair(EXAMPLE, Moe2048Net(), moe2048_key, 64),
                 build_pair(CARTPOLE, CartPoleNet(), cartpole_key, 256)]
    except (CompileError, ValueError, OSError) as exc:
        print(f"cannot build the models: {exc}", file=sys.stderr)
        return 1

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print()
    print(f"parse -> GraphModule: {EXAMPLE.relative_to(ROOT)} ({compiled.name}, {compiled.params:,} parameters, "
          f"{len(compiled.ir.nodes)} IR nodes); {runs} timed runs after 2 warm-up runs")
    times = compile_times(EXAMPLE, runs)
    total = times["total (compile_file + .module)"].median
    print(f"{'':36}{'best':>11}{'median':>11}{'of total':>10}")
    for name, t in times.items():
        print(f"{name:36}{ms(t.best):>11}{ms(t.median):>11}{t.median / total:>10.0%}")
    first = cold_first_call(EXAMPLE, cold)
    phases = ", ".join(f"{name} {ms(s)}" for name, s in first.items() if name != "process")
    print(f"first call in a fresh process (median of {cold}): {ms(first['process'])} in all, python start and "
          f"exit included; {phases}")
    print()

    print("training step (forward, cross-entropy + MSE + MoE aux losses, backward, Adam), same weights;")
    print(f"medians of {rounds} interleaved block pairs of ~{block_s * 1000:.0f} ms after a warm-up; "
          f"ratio = median of per-pair compiled/hand-written (min-max); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    header = f"{'':30}{'batch':>6}{'compiled':>20}{'hand-written':>20}{'ratio':>8}  {'range':>11}"
    print(header)
    results = []
    for pair in pairs:
        diff = max_difference(pair)
        for label, make in (("train", training_step), ("forward, no grad", forward_only)):
            t = interleaved({"compiled": make(pair, "compiled"), "hand": make(pair, "hand")},
                            rounds, block_s, warmup_s)
            results.append((f"{pair.name} {label}", pair.batch, t))
            compiled_rate = f"{t.compiled:8.1f} st/s {t.compiled * pair.batch / 1000:5.1f}k"
            hand_rate = f"{t.hand:8.1f} st/s {t.hand * pair.batch / 1000:5.1f}k"
            print(f"{pair.name + ' ' + label:30}{pair.batch:>6}{compiled_rate:>20}{hand_rate:>20}"
                  f"{t.ratio:>8.3f}  {t.ratio_low:.3f}-{t.ratio_high:.3f}")
        print(f"{'':30}outputs agree after copying the weights: max |difference| {diff:.1e}")
    print("(st/s: training steps per second; k: thousands of samples per second)")
    slow = [name for name, _, t in results if t.ratio < 0.97]
    print("goal compiled/hand-written >= 1.0 (within 3%): "
          + ("met" if not slow else "not met on " + ", ".join(slow)))
    noisy = [name for name, _, t in results if t.ratio_high > 1.5 * t.ratio_low]
    if noisy:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"noisy (per-pair ratios spread over more than 1.5x): {', '.join(noisy)}; load average {load} on "
              f"{os.cpu_count()} CPUs: other work shares the machine; try --threads 1, or more --rounds")

    if args.profile:
        for pair in pairs:
            for which in ("compiled", "hand"):
                print()
                print(f"== cProfile: {pair.name}, {which}, 20 training steps")
                print(profile_steps(training_step(pair, which), 20, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
