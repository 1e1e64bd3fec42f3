"""How fast does `mdl.check_source` answer? The budget for interactive feedback is 100 ms (DESIGN.md).

Generates (deterministically) a realistic 1,000-line `.mdl` design — consts, many blocks, several models
that stack those blocks with `repeat`, experiments on game2048 with sweeps — and times, each as the best
and the median of N runs after a warm-up:

- `mdl.check_source` on that file (the figure held to the budget),
- the parse alone (`mdl.dsl.parser.parse`),
- `mdl.check_source` on the LANGUAGE.md example (`examples/moe_2048.mdl`),
- and, as a yardstick that travels across machines, CPython's own `ast.parse` and `compile` of a
  generated 1,000-line Python file of about the same size.

Exits 1 when the median (wall) time of the 1,000-line check is over budget (`--cpu-time`: the median
CPU time, which other work on a shared machine does not inflate). `--profile` prints the top cProfile
entries of one check.

    python bench/check_speed.py [--runs 20] [--lines 1000] [--budget-ms 100] [--cpu-time] [--profile]
                                [--write FILE]
"""

from __future__ import annotations

import argparse
import ast
import cProfile
import gc
import io
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "moe_2048.mdl"
SEED = 2048


# ----------------------------------------------------------------------------------- the .mdl design


def _block(rng: random.Random, k: int) -> list[str]:
    """One block of a few kinds, each a realistic policy-network layer."""
    kind = k % 4
    if kind == 0:
        return [
            f"# Pre-norm transformer layer {k}: attention and an MLP, each in a residual.",
            f"block encoder_{k}(x, heads: int, hidden: int = {rng.choice([128, 256])}) {{",
            "    x = x + (x -> layer_norm -> attention(heads=heads))",
            "    x = x + (x -> layer_norm -> mlp(hidden=hidden))",
            "    return x",
            "}",
        ]
    if kind == 1:
        return [
            f"# Transformer layer {k} whose feed-forward part is a mixture of experts.",
            f"block moe_layer_{k}(x, heads: int, experts: int, top_k: int = 2) {{",
            "    x = x + (x -> layer_norm -> attention(heads=heads))",
            "    h = x -> rms_norm",
            "    x = x + (h -> moe(experts=experts, top_k=top_k, hidden=2 * dim(x)))",
            "    return x",
            "}",
        ]
    if kind == 2:
        act = rng.choice(["gelu", "silu", "relu"])
        return [
            f"# Residual MLP {k} on flat features.",
            f"block residual_{k}(x, hidden: int) {{",
            f"    h = x -> layer_norm -> linear(out=hidden) -> {act}",
            f"    h = h -> dropout(p=0.{rng.randint(0, 3)}) -> linear(out=dim(x))",
            "    return x + h",
            "}",
        ]
    return [
        f"# Policy head {k}: a hidden layer, then one logit per action.",
        f"block head_{k}(h, actions: int, hidden: int = 64) {{",
        "    return h -> linear(out=hidden) -> tanh -> linear(out=actions)",
        "}",
    ]


def _model(rng: random.Random, k: int, blocks: list[int]) -> list[str]:
    encoders = [b for b in blocks if b % 4 == 0]
    moes = [b for b in blocks if b % 4 == 1]
    residuals = [b for b in blocks if b % 4 == 2]
    heads = [b for b in blocks if b % 4 == 3]
    d = rng.choice([64, 96, 128])
    lines = [
        f"# Model {k}: embeds the board, stacks encoder and MoE layers, pools, and reads out two heads.",
        f"model Net{k}(d: int = D{k % 4}, layers: int = {rng.randint(1, 3)}, experts: int = 4) {{",
        "    input board: int[B, 4, 4]                  # log2 tile exponents",
        "    x = board -> flatten(start=1) -> embedding(vocab=16, dim=d) -> pos_encoding(kind=\"learned\")",
        "    repeat layers {",
        f"        x = encoder_{rng.choice(encoders)}(x, heads=4)",
        "    }",
        "    repeat 2 as i {",
        f"        x = moe_layer_{rng.choice(moes)}(x, heads=8, experts=experts)",
        "    }",
        "    h = x -> layer_norm -> mean(dim=1)         # [B, d]",
        f"    h = residual_{rng.choice(residuals)}(h, hidden=2 * d)",
        "    h = h",
        "        -> layer_norm",
        f"        -> linear(out={d})",
        "        -> gelu",
        f"    output policy = h -> head_{rng.choice(heads)}(actions=4)",
        "    output value = h -> linear(out=1)",
        "}",
    ]
    return lines


def _experiment(rng: random.Random, k: int) -> list[str]:
    return [
        f"experiment run{k} {{",
        f"    model = Net{k}(d={rng.choice([64, 128])}, experts=4)",
        f"    env = game2048(envs={rng.choice([16, 32, 64])})",
        f"    algo = ppo(lr={rng.choice(['1e-4', '3e-4', '1e-3'])}, gamma=0.99, gae_lambda=0.95, clip=0.2,",
        "               epochs=4, minibatches=4, rollout=128)",
        f"    budget = {rng.choice(['2M steps', '500k steps', '10 min', '2 h'])}",
        "    seeds = [1, 2, 3]",
        "    sweep { lr = [1e-4, 3e-4]; experts = [4, 8] }",
        "    checkpoint = every(100k steps, keep=3)",
        "    export = [onnx, pt]",
        "}",
    ]


def generate_mdl(lines: int = 1000, seed: int = SEED) -> str:
    """A clean design of exactly `lines` lines; the same text for the same arguments."""
    rng = random.Random(seed)
    out = [f"# A generated {lines}-line design for bench/check_speed.py (seed {seed}).", "import stdlib.blocks", ""]
    out += [f"const D{i} = {w}" for i, w in enumerate((64, 96, 128, 64))]
    out += ["const VOCAB = 16", ""]
    chunks: list[list[str]] = []
    blocks: list[int] = []
    k = 0
    # A library of blocks first, then models that use them, each followed by its experiment.
    for b in range(16):
        chunks.append(_block(rng, b))
        blocks.append(b)
    while True:
        chunk = [*_model(rng, k, blocks), "", *_experiment(rng, k)]
        if len(out) + sum(len(c) + 1 for c in chunks) + len(chunk) + 1 > lines:
            break
        chunks.append(chunk)
        k += 1
        if k % 3 == 0:  # a few more blocks now and then, as a real file grows
            chunks.append(_block(rng, len(blocks)))
            blocks.append(len(blocks))
    for c in chunks:
        out += [*c, ""]
    while len(out) < lines:
        out.append(f"const PAD{len(out)} = {rng.randint(1, 512)}  # padding to an exact line count")
    return "\n".join(out[:lines]) + "\n"


# ------------------------------------------------------------------------------------ the yardstick


def generate_python(lines: int, target_chars: int, seed: int = SEED) -> str:
    """A plain Python module of `lines` lines and about `target_chars` characters."""
    rng = random.Random(seed)
    out: list[str] = ["import math", ""]
    k = 0
    while len(out) < lines - 8:
        out += [
            f"class Layer{k}:",
            f"    def __init__(self, width: int = {rng.choice([64, 128])}, heads: int = 4) -> None:",
            "        self.width = width",
            "        self.heads = heads",
            "",
            "    def params(self) -> int:",
            "        return 4 * self.width * self.width + 4 * self.width + math.prod([self.heads, 2])",
            "",
        ]
        k += 1
    out += ["", "def total() -> int:", "    return sum(1 for _ in range(3))"]
    while len(out) < lines:
        out.append(f"PAD_{len(out)} = {rng.randint(1, 512)}")
    text = "\n".join(out[:lines]) + "\n"
    if len(text) < target_chars:  # widen comments until the sizes match
        extra = (target_chars - len(text)) // lines
        text = "\n".join(line + ("  # " + "x" * extra if extra > 3 else "") for line in out[:lines]) + "\n"
    return text


# ------------------------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """Seconds over the timed runs: best and median wall time, and median CPU time of this process
    (the CPU figure stays meaningful when other work shares the machine)."""

    best: float
    median: float
    cpu_median: float


def measure(fn: Callable[[], object], runs: int, warmup: int = 2) -> Timing:
    """Time `fn()` over `runs` runs after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(runs):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return Timing(min(wall), statistics.median(wall), statistics.median(cpu))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def profile(fn: Callable[[], object], top: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per figure (default 20)")
    parser.add_argument("--lines", type=int, default=1000, help="lines in the generated design (default 1000)")
    parser.add_argument("--budget-ms", type=float, default=100.0, help="budget for the median check (default 100)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="judge the budget on the median CPU time instead of wall time (for a shared machine)")
    parser.add_argument("--profile", action="store_true", help="print the top cProfile entries of one check")
    parser.add_argument("--top", type=int, default=25, help="entries to print with --profile (default 25)")
    parser.add_argument("--write", type=Path, metavar="FILE", help="also write the generated design to FILE")
    args = parser.parse_args(argv)

    import_start = time.perf_counter()
    import mdl
    from mdl.dsl.parser import parse

    mdl.check_source("model M { }")  # first use builds the parser tables; not part of any figure
    first_use = time.perf_counter() - import_start

    source = generate_mdl(args.lines)
    if args.write:
        args.write.write_text(source)
    found = mdl.check_source(source, "generated.mdl")
    errors = [d for d in found if d.is_error]
    if errors:
        for d in errors[:5]:
            print(f"{d.span}: {d.code} {d.message}", file=sys.stderr)
        print("the generated design has errors; the figures would not mean anything", file=sys.stderr)
        return 2
    py_source = generate_python(args.lines, len(source))

    check = measure(lambda: mdl.check_source(source, "generated.mdl"), args.runs)
    parsed = measure(lambda: parse(source, "generated.mdl"), args.runs)
    example = EXAMPLE.read_text() if EXAMPLE.exists() else None
    rows = [("mdl check_source, generated", check), ("mdl parse only, generated", parsed)]
    if example is not None:
        rows.append(("mdl check_source, LANGUAGE.md ex.", measure(lambda: mdl.check_source(example, str(EXAMPLE)),
                                                                   args.runs)))
    py_parse = measure(lambda: ast.parse(py_source), args.runs)
    py_compile = measure(lambda: compile(py_source, "<bench>", "exec"), args.runs)
    rows += [("python ast.parse, same size", py_parse), ("python compile, same size", py_compile)]

    analysis = mdl.analyze(source, "generated.mdl")
    elaborated = len(analysis.graphs) + sum(1 for s in analysis.experiments.values() if s.graph is not None)
    budget = args.budget_ms / 1000

    print(f"generated design: {args.lines} lines, {len(source):,} chars, {len(analysis.graphs)} models, "
          f"{len(analysis.experiments)} experiments with sweeps, {len(found)} warnings")
    print(f"python {sys.version.split()[0]}; import mdl + first check {ms(first_use).strip()}; "
          f"{args.runs} timed runs after a warm-up; {elaborated} graphs kept")
    print()
    print(f"{'':36}{'best':>11}{'median':>11}{'cpu median':>12}")
    for name, t in rows:
        print(f"{name:36}{ms(t.best):>11}{ms(t.median):>11}{ms(t.cpu_median):>12}")
    print()
    judged = check.cpu_median if args.cpu_time else check.median
    verdict = "within budget" if judged <= budget else "OVER BUDGET"
    print(f"budget: median {'CPU' if args.cpu_time else 'wall'} time of the check of the generated design <= "
          f"{args.budget_ms:.0f} ms; measured {judged * 1000:.1f} ms = {judged / budget:.2f}x the budget ({verdict})")
    # The yardstick uses CPU medians: they hold still when other work shares the machine.
    print(f"yardstick (CPU medians): the check takes {check.cpu_median / py_compile.cpu_median:.1f}x python's "
          f"compile() and {check.cpu_median / py_parse.cpu_median:.1f}x ast.parse() of a python file of the same "
          f"size; the parse alone {parsed.cpu_median / py_compile.cpu_median:.1f}x and "
          f"{parsed.cpu_median / py_parse.cpu_median:.1f}x")
    print(f"the parse is {parsed.cpu_median / check.cpu_median:.0%} of the check (CPU medians)")

    if args.profile:
        print()
        print(profile(lambda: mdl.check_source(source, "generated.mdl"), args.top))
    return 0 if judged <= budget else 1


if __name__ == "__main__":
    sys.exit(main())
