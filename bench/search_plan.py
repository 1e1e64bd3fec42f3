"""How fast is `mdlc train FILE --plan` (every sweep point's static costs and what `limits` prunes),
against finding the same parameter counts by building each point's module in torch?

The LANGUAGE.md model (examples/moe_2048.mdl) over a 12-point and a 100-point sweep with
`limits { params = 600k }`. Rows, each the median of `--repeats`, side by side:

1. the baseline: each point's model lowered to a torch module and its parameters counted (what a
   search tool that only sees torch, NNI's FLOPs-profiler filter say, pays before it can prune);
2. `mdlc train FILE --plan` in a process where mdlc is loaded (the file analysed, every point's costs,
   the table printed), torch never imported;
3. the same as a fresh command (`python -m mdl.cli ...`: interpreter start and imports included).

The goal: row 2 within 100 ms for 12 points and for 100 points. Exit 1 when missed.

    python bench/search_plan.py
    python bench/search_plan.py --repeats 1
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = {12: "d = [64, 128, 256]; layers = [1, 2]; experts = [2, 4]",
          100: "d = [32, 64, 96, 128, 256]; layers = [1, 2, 3, 4, 5]; experts = [2, 4, 6, 8]"}
GOAL_MS = 100.0


def _design(folder: Path, points: int) -> Path:
    text = (ROOT / "examples" / "moe_2048.mdl").read_text()
    text = text.replace("    sweep { lr = [1e-4, 3e-4]; experts = [4, 8] }",
                        f"    sweep {{ {SWEEPS[points]} }}\n    limits {{ params = 600k }}")
    path = folder / f"moe_{points}.mdl"
    path.write_text(text)
    return path


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from mdl.cli import main as mdlc
    from mdl.compiler.check import analyze
    from mdl.runtime.plan import plan

    missed = False
    print(f"{'points':>6}  {'torch: build each module':>25}  {'mdlc --plan (loaded)':>21}  {'ratio':>6}  "
          f"{'mdlc --plan (fresh)':>20}")
    with tempfile.TemporaryDirectory() as tmp:
        for points in SWEEPS:
            path = _design(Path(tmp), points)
            argv = ["train", str(path), "--plan", "--out", tmp]

            def plan_in_process(argv=argv) -> None:
                with contextlib.redirect_stdout(io.StringIO()):
                    assert mdlc(argv) == 0

            plan_in_process()  # imports paid once, as in the editor or a second command
            loaded = _median_ms(plan_in_process, args.repeats)
            fresh = _median_ms(lambda argv=argv: subprocess.run([sys.executable, "-m", "mdl.cli", *argv], check=True,
                                                                capture_output=True), max(1, args.repeats // 2))

            def torch_counts(path=path) -> None:
                from mdl.compiler.lower import lower

                spec = analyze(path.read_text(), str(path)).experiments["moe_2048"]
                for p in plan(spec, tmp).points:
                    sum(t.numel() for t in lower(p.spec.graph).parameters())

            torch_counts()  # torch imported once
            baseline = _median_ms(torch_counts, max(1, args.repeats // 2))
            print(f"{points:>6}  {baseline:>22.0f} ms  {loaded:>18.1f} ms  {baseline / loaded:>5.0f}x  "
                  f"{fresh:>17.0f} ms")
            missed |= loaded > GOAL_MS
    print(f"goal: the loaded plan within {GOAL_MS:.0f} ms: {'missed' if missed else 'met'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
