"""Running the same `mdlc train` again continues an experiment (issue 11): a kill -9 of the driving
process, a run whose env raises, and a killed worker each lose at most the work since a checkpoint, and
the other runs go on. The design is tests/data/sweep/tiny_2048_grid.mdl (four seeds of a tiny 2048
policy, a checkpoint every 1k steps; about 6 s with `--jobs 2 --deterministic`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import sweeps
from sweeps import TINY_2048, checkpoints, file_hashes, mdlc, metrics, outcome, status, summaries, wait_for

SEEDS = ("1", "2", "3", "4")


def test_kill_9_of_the_driver_then_the_same_command_equals_an_uninterrupted_grid(tiny_grid_reference: Path,
                                                                                 tmp_path: Path) -> None:
    out = tmp_path / "out"
    runs = out / "tiny"
    command = [sys.executable, "-m", "mdl.cli", "train", str(TINY_2048), "--out", str(out), "--jobs", "2",
               "--deterministic"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # seeds 1 and 2 go first; kill the driver once they are done and a later run is under way
        wait_for(lambda: all(status(runs / s) == "completed" for s in ("1", "2"))
                 and any(checkpoints(runs / s) and status(runs / s) is None for s in ("3", "4")),
                 timeout=120, what="two finished runs and one under way")
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.wait(timeout=30)
    assert driver.returncode == -signal.SIGKILL
    # its workers see their parent gone, checkpoint and stop; a rerun waits for their locks
    finished = {s: file_hashes(runs / s) for s in ("1", "2")}
    interrupted = [s for s in ("3", "4") if checkpoints(runs / s)]

    code, _, stderr = mdlc(*command[3:])
    assert code == 0, stderr
    assert "kept 2 finished runs of 4" in stderr
    assert {s: file_hashes(runs / s) for s in ("1", "2")} == finished  # not one byte rewritten
    after = summaries(runs)
    for s in interrupted:
        assert after[s].get("resumed_from"), f"seed {s} started over instead of resuming"
    reference = tiny_grid_reference
    expected = summaries(reference)
    assert {s: outcome(after[s]) for s in SEEDS} == {s: outcome(expected[s]) for s in SEEDS}
    for s in SEEDS:
        assert metrics(runs / s) == metrics(reference / s), f"seed {s}'s metrics differ"


class _Exploding:
    """A vector env whose `step` raises after `after` calls."""

    def __init__(self, envs, after: int):
        self.envs, self.left = envs, after

    def __getattr__(self, name: str):
        return getattr(self.envs, name)

    def step(self, actions):
        self.left -= 1
        if self.left < 0:
            raise RuntimeError("the board's cable came loose")
        return self.envs.step(actions)


def test_a_run_whose_env_raises_fails_alone_and_the_rerun_retries_only_it(tmp_path: Path, monkeypatch) -> None:
    import mdl.runtime.train as train_module

    make_envs = train_module.make_envs
    monkeypatch.setattr(train_module, "make_envs",
                        lambda env, seed: _Exploding(make_envs(env, seed), 100) if seed == 2 else make_envs(env, seed))
    argv = ("train", TINY_2048, "--out", tmp_path, "--jobs", "1", "--budget", "2k steps")
    code, _, stderr = mdlc(*argv)  # --jobs 1: the runs train in this process, where the patch is
    assert code == 3
    assert "seed 2: failed" in stderr and "the board's cable came loose" in stderr
    assert "1 failed of 4 runs" in stderr and "Traceback" not in stderr
    runs = tmp_path / "tiny"
    first = summaries(runs)
    assert {s: first[s]["status"] for s in SEEDS} == {"1": "completed", "2": "failed", "3": "completed",
                                                      "4": "completed"}
    assert first["2"]["error"] == "RuntimeError: the board's cable came loose"
    assert "Traceback" in (runs / "2" / "error.txt").read_text()  # the details, for whoever debugs it
    experiment = json.loads((runs / "summary.json").read_text())
    failed = [r for r in experiment["runs"] if r["status"] == "failed"]
    assert [(r["seed"], r["error"]) for r in failed] == [(2, "RuntimeError: the board's cable came loose")]
    assert experiment["points"][0]["n"] == 3  # the statistics count completed runs

    monkeypatch.setattr(train_module, "make_envs", make_envs)  # the env is fixed
    kept = {s: file_hashes(runs / s) for s in ("1", "3", "4")}
    code, _, stderr = mdlc(*argv)
    assert code == 0, stderr
    assert "kept 3 finished runs of 4" in stderr
    assert {s: file_hashes(runs / s) for s in ("1", "3", "4")} == kept
    assert summaries(runs)["2"]["status"] == "completed" and not (runs / "2" / "error.txt").exists()


def test_a_killed_worker_fails_its_run_the_others_go_on_and_the_rerun_resumes_it(tmp_path: Path) -> None:
    runs = tmp_path / "tiny"
    killed: list[int] = []

    def kill_seed_1() -> None:
        wait_for(lambda: len(checkpoints(runs / "1")) > 0 and sweeps.holders(runs / "1" / ".lock"), timeout=120,
                 what="seed 1 under way in a worker")
        for proc in sweeps.holders(runs / "1" / ".lock"):
            if proc.pid != os.getpid():
                killed.append(proc.pid)
                proc.kill()

    killer = threading.Thread(target=kill_seed_1, daemon=True)
    killer.start()
    code, _, stderr = mdlc("train", TINY_2048, "--out", tmp_path, "--jobs", "2")
    killer.join(timeout=5)
    assert killed, "no worker was killed"
    assert code == 3
    first = summaries(runs)
    assert {s: first[s]["status"] for s in SEEDS} == {"1": "failed", "2": "completed", "3": "completed",
                                                      "4": "completed"}
    assert first["1"]["error"] == "the worker process died (exit code -9) during the run"
    assert first["1"]["resumable"] is True

    code, _, stderr = mdlc("train", TINY_2048, "--out", tmp_path, "--jobs", "2")
    assert code == 0, stderr
    again = summaries(runs)["1"]
    assert again["status"] == "completed" and again["steps"] >= 8_000
    assert again["resumed_from"], "the rerun started seed 1 over instead of resuming it"
