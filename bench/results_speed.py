"""How long do `mdlc compare` and `mdlc report` take on a long sweep, against just reading its files?

A synthetic experiment like a long 2048 MoE sweep: 2 points x 3 seeds, each run with UPDATES metrics
lines as `mdlc train` writes them (tile distribution, 2 MoE layers x 8 experts, 4 actions; a 10-minute
fast_2048 run logs about 2,300 updates). Three rows, each the median of `--repeats`, side by side:

1. the baseline: `json.loads` of every metrics line (the floor any reader pays);
2. `compare(points)` (runset reads, statistics, the verdict, the PNG);
3. `report(experiment)` (every picture, metrics.csv, report.html).

The goals: compare within 2 s and report within 20 s at 2,000 updates per run. Exit 1 when missed.

    python bench/results_speed.py                 # 2,000 updates per run, medians of 3
    python bench/results_speed.py --updates 500 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

GOALS = {"compare": 2.0, "report": 20.0}


def _line(update: int, rng: random.Random) -> dict:
    shares = [rng.random() + 0.5 for _ in range(8)]
    total = sum(shares)
    tiles = {"128": 0.1, "256": 0.3, "512": 0.4, "1024": 0.2}
    return {"update": update, "step": update * 4096, "episodes": update * 3, "mean_return": 1000 + update + rng.random(),
            "mean_score": 1000 + update, "policy_loss": rng.random(), "value_loss": rng.random(),
            "entropy": rng.random(), "approx_kl": rng.random() / 100, "clip_fraction": rng.random() / 10,
            "explained_variance": rng.random(), "lr": 3e-4, "steps_per_second": 15000.0, "wall_seconds": update / 4,
            "action_distribution": [0.25] * 4, "memory_bytes": 900 * 2**20, "params": 1_192_837,
            "max_tile_distribution": tiles,
            "moe_usage": {f"layers.{i}.moe": [s / total for s in shares] for i in range(2)}, "moe_aux_loss": 0.01}


def make_experiment(root: Path, updates: int) -> Path:
    rng = random.Random(0)
    experiment = root / "sweep"
    for lr in ("0.0001", "0.0003"):
        for seed in (1, 2, 3):
            run = experiment / f"lr={lr}" / str(seed)
            run.mkdir(parents=True)
            config = {"experiment": "sweep", "source": "missing.mdl", "seed": seed, "point": {"algo.lr": float(lr)},
                      "env": {"kind": "game2048", "id": "mdl/Game2048-v0"}, "model": "Moe2048", "params": 1_192_837,
                      "ppo": {"lr": float(lr)}, "architecture_hash": "0" * 64}
            (run / "config.json").write_text(json.dumps(config))
            (run / "metrics.jsonl").write_text("".join(json.dumps(_line(u, rng)) + "\n" for u in range(1, updates + 1)))
            (run / "summary.json").write_text(json.dumps({"status": "completed", "mean_return_last100": 1000.0 + seed}))
    return experiment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from mdl.runtime.compare import compare
    from mdl.runtime.report import report

    with tempfile.TemporaryDirectory() as tmp:
        experiment = make_experiment(Path(tmp), args.updates)
        files = sorted(experiment.rglob("metrics.jsonl"))
        compare([experiment / "lr=0.0001", experiment / "lr=0.0003"], png=Path(tmp) / "warm.png")  # imports
        times: dict[str, list[float]] = {"read": [], "compare": [], "report": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            for f in files:
                [json.loads(line) for line in f.read_text().splitlines()]
            times["read"].append(time.perf_counter() - start)
            start = time.perf_counter()
            compare([experiment / "lr=0.0001", experiment / "lr=0.0003"], png=Path(tmp) / "c.png")
            times["compare"].append(time.perf_counter() - start)
            start = time.perf_counter()
            report(experiment, Path(tmp) / "report")
            times["report"].append(time.perf_counter() - start)
    base = statistics.median(times["read"])
    print(f"6 runs x {args.updates:,} updates, medians of {args.repeats}")
    print(f"{'':10} {'seconds':>8} {'x reading':>10} {'goal':>8}")
    ok = True
    for name, values in times.items():
        median = statistics.median(values)
        goal = GOALS.get(name)
        ok &= goal is None or median <= goal
        print(f"{name:10} {median:8.2f} {median / base:10.1f} {'' if goal is None else f'<= {goal:g} s':>8}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
