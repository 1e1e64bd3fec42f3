"""`mdlc train FILE --ray 127.0.0.1:PORT` on a real local Ray cluster (issue 11; `ray_cluster` in
conftest.py, skipped without the `cluster` extra): the same run directories and the same per-run
metrics as the local scheduler, and a trial whose process is killed is retried from its checkpoint.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
import sweeps
from sweeps import TINY_2048, checkpoints, mdlc, metrics, outcome, summaries, wait_for

SEEDS = ("1", "2", "3", "4")


def test_a_grid_on_ray_equals_the_local_one_even_with_a_killed_trial(ray_cluster: str, tiny_grid_reference: Path,
                                                                     tmp_path: Path) -> None:
    runs = tmp_path / "tiny"
    killed: list[int] = []

    def kill_seed_3() -> None:  # seed 3's trial, once it has a checkpoint, is killed like a lost node
        lock = runs / "3" / ".lock"
        wait_for(lambda: len(checkpoints(runs / "3")) >= 2 and sweeps.holders(lock), timeout=240,
                 what="seed 3 under way in a Ray worker")
        for proc in sweeps.holders(lock):
            if proc.pid != os.getpid():
                killed.append(proc.pid)
                proc.kill()

    killer = threading.Thread(target=kill_seed_3, daemon=True)
    killer.start()
    code, _, stderr = mdlc("train", TINY_2048, "--out", tmp_path, "--ray", ray_cluster, "--deterministic")
    killer.join(timeout=5)
    assert code == 0, stderr
    assert killed, "seed 3's trial was never killed"

    after, expected = summaries(runs), summaries(tiny_grid_reference)
    assert sorted(after) == sorted(expected) == list(SEEDS)  # the same layout: OUT/<experiment>/<seed>/
    assert after["3"].get("resumed_from"), "the retried trial started over instead of resuming"
    assert {s: outcome(after[s]) for s in SEEDS} == {s: outcome(expected[s]) for s in SEEDS}
    for s in SEEDS:
        assert metrics(runs / s) == metrics(tiny_grid_reference / s), f"seed {s}'s metrics differ"
    code, stdout, _ = mdlc("runs", tmp_path, "--json")
    assert code == 0 and stdout.count('"completed"') == 4


def test_an_address_where_no_cluster_listens_is_a_one_line_error(tmp_path: Path) -> None:
    pytest.importorskip("ray.tune")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    code, _, stderr = mdlc("train", TINY_2048, "--out", tmp_path, "--ray", f"127.0.0.1:{port}")
    assert code == 2 and time.monotonic() - started < 10
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in stderr and "Traceback" not in stderr
