"""`mdlc train --resume`: a run killed with SIGKILL and resumed logs exactly an uninterrupted run's
metrics (2048, `--deterministic`); a damaged newest checkpoint is skipped; bad resumes are clear errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mdl.cli import main
from mdl.compiler.check import analyze
from mdl.runtime import checkpoint as ckpt
from mdl.runtime.train import resume, train

SMALL_2048 = """\
model Small {
    input board: int[B, 4, 4]
    h = board -> flatten(start=1) -> embedding(vocab=16, dim=8) -> flatten(start=1) -> linear(out=32) -> tanh
    output policy = h -> linear(out=4)
    output value = h -> linear(out=1)
}

experiment small {
    model = Small()
    env = game2048(envs=4)
    algo = ppo(rollout=16, minibatches=2, epochs=2)
    budget = 640 steps
    seeds = [11]
    checkpoint = every(64 steps, keep=3)
}
"""
UPDATES = 10  # 640 steps / (4 envs x 16 steps); a checkpoint after every update
TIMING_KEYS = ("steps_per_second", "wall_seconds", "memory_bytes")


def _metrics(run_dir: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in TIMING_KEYS} for line in lines]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path, dict]:
    """The design file and run A: uninterrupted, deterministic, to the budget."""
    tmp = tmp_path_factory.mktemp("reference")
    path = tmp / "small.mdl"
    path.write_text(SMALL_2048, encoding="utf-8")
    analysis = analyze(SMALL_2048, str(path))
    assert analysis.ok, analysis.diagnostics
    summary = train(analysis.experiments["small"], SMALL_2048, path, out_dir=tmp / "a", deterministic=True)
    run = tmp / "a" / "small" / "11"
    assert summary["status"] == "completed" and summary["updates"] == UPDATES
    assert len(_metrics(run)) == UPDATES
    return path, run, summary


_KILLABLE = """\
import sys, time
import mdl.runtime.train as t

real = t.save_checkpoint

def slow_after(directory, step, state, keep):
    path = real(directory, step, state, keep)
    if step >= {stall_step}:
        time.sleep(120)  # never finishes: the test kills it with SIGKILL first
    return path

t.save_checkpoint = slow_after
from mdl.cli import main
sys.exit(main({argv!r}))
"""


def test_sigkill_then_resume_matches_an_uninterrupted_run(reference, tmp_path: Path) -> None:
    path, run_a, summary_a = reference
    k = 3
    argv = ["train", str(path), "--out", str(tmp_path / "b"), "--deterministic"]
    script = tmp_path / "killable.py"
    # Stall (so the kill lands mid-run) only once more than k updates are logged.
    script.write_text(textwrap.dedent(_KILLABLE.format(stall_step=64 * (k + 2), argv=argv)))
    run_b = tmp_path / "b" / "small" / "11"
    metrics = run_b / "metrics.jsonl"
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= k:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.005)
        else:
            pytest.fail("the run logged no metrics in time")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_b / "summary.json").exists()
    killed_at = len(metrics.read_text().splitlines())
    assert k <= killed_at < UPDATES

    assert main(["train", "--resume", str(run_b)]) == 0
    assert _metrics(run_b) == _metrics(run_a)
    summary_b = json.loads((run_b / "summary.json").read_text())
    for key in ("status", "steps", "updates", "episodes", "mean_return_last100", "mean_score_last100",
                "tile_rates"):
        assert summary_b[key] == summary_a[key], key
    assert int(Path(summary_b["resumed_from"]).stem.split("_")[1]) <= 64 * killed_at


def test_a_damaged_newest_checkpoint_is_skipped(reference, tmp_path: Path) -> None:
    """A kill during a checkpoint write: a partial `.tmp` and a truncated newest file; the previous loads."""
    _path, run_a, summary_a = reference
    run = tmp_path / "run"
    shutil.copytree(run_a, run)
    checkpoints = ckpt.list_checkpoints(run / "checkpoints")
    assert [p.name for p in checkpoints] == [f"step_{64 * u:012d}.pt" for u in (8, 9, 10)]
    newest = checkpoints[-1]
    data = newest.read_bytes()
    (run / "checkpoints" / f".{newest.name}.abc123.tmp").write_bytes(data[: len(data) // 3])
    newest.write_bytes(data[: len(data) // 2])

    path, state, skipped = ckpt.load_latest_checkpoint(run / "checkpoints")
    assert path == checkpoints[-2] and state["update"] == 9 and [p for p, _ in skipped] == [newest]

    with pytest.warns(UserWarning, match="skipping the unreadable checkpoint"):
        summary = resume(run)
    assert summary["resumed_from"] == str(checkpoints[-2])
    assert _metrics(run) == _metrics(run_a)  # the 10th update is logged again, once, identically
    assert summary["steps"] == summary_a["steps"] and summary["episodes"] == summary_a["episodes"]
    assert ckpt.load_checkpoint(ckpt.list_checkpoints(run / "checkpoints")[-1])["update"] == UPDATES


def test_a_failed_checkpoint_write_keeps_the_previous(reference, tmp_path: Path, monkeypatch) -> None:
    _path, run_a, _summary = reference
    run = tmp_path / "run"
    shutil.copytree(run_a, run)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())

    import torch

    def torn(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")
        raise OSError("killed mid-write")

    monkeypatch.setattr(torch, "save", torn)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(run / "checkpoints", 64 * 11, {"update": 11, "step": 704}, keep=3)
    monkeypatch.undo()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before
    _latest, state, skipped = ckpt.load_latest_checkpoint(run / "checkpoints")
    assert state["update"] == UPDATES and not skipped


def test_resume_without_checkpoints_is_a_clear_error(reference, tmp_path: Path, capsys) -> None:
    _path, run_a, _summary = reference
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "--resume", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and "Traceback" not in err

    run = tmp_path / "run"
    shutil.copytree(run_a, run)
    shutil.rmtree(run / "checkpoints")
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "no loadable checkpoint" in err and "Traceback" not in err

    assert main(["train", "--resume", str(tmp_path / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err

    assert main(["train", str(_path), "--resume", str(run_a)]) == 2
    assert "leave out FILE" in capsys.readouterr().err


def test_resume_of_a_changed_design_exits_1(reference, tmp_path: Path, capsys) -> None:
    _path, run_a, _summary = reference
    run = tmp_path / "run"
    shutil.copytree(run_a, run)
    (run / "small.mdl").write_text(SMALL_2048.replace("linear(out=32)", "linear(out=48)"), encoding="utf-8")
    before = (run / "metrics.jsonl").read_text()
    assert main(["train", "--resume", str(run)]) == 1
    err = capsys.readouterr().err
    assert "has changed" in err and "architecture hash" in err and "Traceback" not in err
    assert (run / "metrics.jsonl").read_text() == before  # nothing touched

    (run / "small.mdl").write_text(SMALL_2048.replace("output value", "output valeu"), encoding="utf-8")
    assert main(["train", "--resume", str(run)]) == 1
    err = capsys.readouterr().err
    assert "has errors" in err and "Traceback" not in err
