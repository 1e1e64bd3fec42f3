"""How fast does `mdlc train` get through an experiment's runs: one after another, `--jobs 2`, Ray Tune.

The issue's sweep benchmark: the same 4-run CartPole grid (tests/data/sweep/cartpole_grid.mdl: width
16 and 32 x seeds 1 and 2, 20k steps each) trained by the `mdlc train` command a user types, in a fresh
process each time, with the wall clock of the whole command (imports, planning, workers, the summary):

1. `--jobs 1`: the runs one after another in the command's process (torch's default threads);
2. `--jobs 2`: two worker processes with one torch thread each (the default on 2 cores);
3. `--ray 127.0.0.1:PORT`: Ray Tune trials on a local Ray cluster the benchmark starts first, as a user
   would with `ray start --head` (its start-up is timed on its own line, not in the row).

Each row also gives the sum of the runs' own training time (their `summary.json` `wall_seconds`) and
the overhead per run: (wall x parallel slots - the sum) / runs, the seconds of a slot each run costs
beyond training it (process start, imports, scheduling, Tune's bookkeeping). The goal is `--jobs 2` >=
1.6x the sequential wall clock on 2 cores.

    python bench/sweep_speed.py              # medians of three, interleaved: about 4 minutes on 2 cores
    python bench/sweep_speed.py --repeats 1  # one of each, about 1.5 minutes
    python bench/sweep_speed.py --no-ray     # without Ray (or when the cluster extra is not installed)

Ray is the `cluster` extra: `pip install -e ".[cluster]"`. Exit status 0; 1 when `--jobs 2` is below
the goal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRID = ROOT / "tests" / "data" / "sweep" / "cartpole_grid.mdl"
GOAL = 1.6
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def train(flags: list[str], out: Path) -> tuple[float, float, int]:
    """Run `mdlc train GRID FLAGS` in a fresh process: (wall seconds, sum of the runs' training seconds,
    runs completed)."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "mdl.cli", "train", str(GRID), "--out", str(out), "--json", *flags]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **RAY_ENV})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"`{' '.join(command)}` failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    runs = json.loads(done.stdout)["runs"]
    training = sum(json.loads((Path(r["run_dir"]) / "summary.json").read_text())["wall_seconds"] for r in runs)
    return wall, training, sum(r["status"] == "completed" for r in runs)


def start_ray(temp: Path) -> tuple[str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    subprocess.run(["ray", "start", "--head", "--num-cpus", "2", "--node-ip-address", "127.0.0.1", "--port",
                    str(port), "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", str(temp)],
                   check=True, capture_output=True, env={**os.environ, **RAY_ENV})
    return f"127.0.0.1:{port}", time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each row (medians)")
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray row")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    ray = not args.no_ray and shutil.which("ray") is not None
    if not args.no_ray and not ray:
        print("Ray is not installed (pip install -e \".[cluster]\"): no Ray row")
    work = Path(tempfile.mkdtemp(prefix="sweep-speed-"))
    temp = Path("/tmp") / f"ray-bench-{os.getpid()}"
    rows = {"--jobs 1 (sequential)": (["--jobs", "1"], 1), "--jobs 2": (["--jobs", "2"], 2)}
    try:
        if ray:
            address, ray_start = start_ray(temp)
            rows["--ray (local cluster)"] = (["--ray", address], 2)
            print(f"ray start --head: {ray_start:.1f} s (once per cluster, not in the rows)")
        print(f"the grid: {GRID.relative_to(ROOT)} (4 runs of 20k CartPole steps), {cores} CPU cores, "
              f"{args.repeats} repeat(s)")
        figures: dict[str, list[tuple[float, float, int]]] = {name: [] for name in rows}
        for _ in range(args.repeats):  # interleaved, so a slow minute of the machine hits every row
            for name, (flags, _slots) in rows.items():
                figures[name].append(train(flags, work / "out"))
    finally:
        if ray:
            subprocess.run(["ray", "stop", "--force"], capture_output=True, env={**os.environ, **RAY_ENV})
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)

    sequential = statistics.median(w for w, _, _ in figures["--jobs 1 (sequential)"])
    print(f"\n{'engine':<24}{'wall s':>9}{'speed-up':>10}{'training s':>12}{'overhead s/run':>16}{'completed':>11}")
    for name, (_flags, slots) in rows.items():
        wall = statistics.median(w for w, _, _ in figures[name])
        training = statistics.median(t for _, t, _ in figures[name])
        completed = min(c for _, _, c in figures[name])
        overhead = (wall * min(slots, cores) - training) / 4
        print(f"{name:<24}{wall:>9.1f}{sequential / wall:>9.2f}x{training:>12.1f}{overhead:>16.2f}{completed:>8}/4")
    jobs2 = sequential / statistics.median(w for w, _, _ in figures["--jobs 2"])
    verdict = "meets the goal" if jobs2 >= GOAL else "BELOW THE GOAL"
    print(f"\n--jobs 2 vs sequential: {jobs2:.2f}x (goal >= {GOAL}x on 2 cores): {verdict}")
    if ray:
        ray_wall = statistics.median(w for w, _, _ in figures["--ray (local cluster)"])
        local = statistics.median(w for w, _, _ in figures["--jobs 2"])
        print(f"Ray vs --jobs 2: {ray_wall / local:.2f}x the wall clock, "
              f"{(ray_wall - local) / 2:.2f} s more per run on each of its 2 slots")
    return 0 if jobs2 >= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
