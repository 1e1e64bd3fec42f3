"""mdl.runtime.metrics: metrics.jsonl lines and the TensorBoard scalars they become."""

from __future__ import annotations

import json
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mdl.runtime.metrics import TENSORBOARD_DIR, MetricsLog, scalars


def _line(update: int, **extra) -> dict:
    return {"update": update, "step": 100 * update, "episodes": 3 * update, "mean_return": 10.0 * update,
            "policy_loss": -0.1, "value_loss": 2.0, "entropy": 1.2, "approx_kl": 0.01, "clip_fraction": 0.1,
            "explained_variance": 0.5, "lr": 1e-3, "steps_per_second": 5000.0, "wall_seconds": 0.1, **extra}


def _events(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir / TENSORBOARD_DIR), purge_orphaned_data=True)
    events.Reload()
    return events


def test_scalars_group_the_metrics_and_drop_what_is_not_a_number() -> None:
    tags = scalars(_line(1, mean_return=None, mean_score=float("nan"),
                         max_tile_distribution={"256": 0.75, "512": 0.25},
                         moe_usage={"layers.0.moe": [0.6, 0.4]}, moe_aux_loss=0.02))
    assert tags["losses/value_loss"] == 2.0 and tags["charts/lr"] == 1e-3 and tags["charts/episodes"] == 3.0
    assert "charts/mean_return" not in tags and "charts/mean_score" not in tags  # None and nan left out
    assert tags["tiles/256"] == 0.75 and tags["tiles/512"] == 0.25
    assert tags["moe/layers.0.moe/expert_0"] == 0.6 and tags["moe/balance_loss"] == 0.02
    assert "update" not in tags and "wall_seconds" not in tags


def test_metrics_log_writes_json_lines_and_tensorboard_events(tmp_path: Path) -> None:
    with MetricsLog(tmp_path) as log:
        for update in (1, 2, 3):
            log.log(_line(update))
    lines = [json.loads(t) for t in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["update"] for line in lines] == [1, 2, 3]
    events = _events(tmp_path)
    returns = events.Scalars("charts/mean_return")
    assert [(e.step, e.value) for e in returns] == [(100, 10.0), (200, 20.0), (300, 30.0)]
    assert {"losses/policy_loss", "losses/entropy", "charts/steps_per_second"} <= set(events.Tags()["scalars"])


def test_a_resumed_log_drops_what_came_after_the_checkpoint(tmp_path: Path) -> None:
    with MetricsLog(tmp_path) as log:
        for update in (1, 2, 3, 4):
            log.log(_line(update))
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"update": 5, "st')  # torn by a crash
    with MetricsLog(tmp_path, resume_update=2, resume_step=200) as log:  # the checkpoint was at update 2
        log.log(_line(3, mean_return=-1.0))
    lines = [json.loads(t) for t in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["update"] for line in lines] == [1, 2, 3] and lines[-1]["mean_return"] == -1.0
    values = {e.step: e.value for e in _events(tmp_path).Scalars("charts/mean_return")}
    assert values == {100: 10.0, 200: 20.0, 300: -1.0}  # the old 300 and 400 are purged


def test_tensorboard_can_be_left_out(tmp_path: Path) -> None:
    with MetricsLog(tmp_path, tensorboard=False) as log:
        log.log(_line(1))
    assert not (tmp_path / TENSORBOARD_DIR).exists()
