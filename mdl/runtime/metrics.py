"""Where a run's per-update metrics go: `metrics.jsonl` and TensorBoard event files.

`MetricsLog(run_dir)` takes one dict per update (the trainer's metrics line) and writes it

- as one JSON line to `run_dir/metrics.jsonl`, flushed at once (a crash loses at most a torn last line,
  which `truncate_metrics` drops on resume);
- as TensorBoard scalars under `run_dir/tensorboard/` at x = `step` (the environment steps so far),
  grouped the way CleanRL's curves are: `charts/` (returns, scores, episodes, lr, speed), `losses/`
  (the PPO terms and diagnostics), `tiles/` (2048: the fraction of recent games ending on each max
  tile) and `moe/` (per layer: each expert's share of the tokens, and the balance loss).

`tensorboard --logdir runs/` then shows every experiment and seed side by side. When a run ends,
`hparams(settings, figures)` writes its swept settings and final score into the same event files, so
TensorBoard's HParams dashboard shows a sweep as one table (and parallel coordinates) with a row per
run. torch's `SummaryWriter.add_hparams` would write them into a new sub-run named by the clock,
apart from the run's curves; here the run's own writer writes the three HParams summaries and the
figures as scalars. On resume the writer
is opened with `purge_step` just past the checkpoint's step, so TensorBoard hides the events a crashed
run wrote after its last checkpoint and the curves continue without a fold.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mdl.files import write_text_atomic

TENSORBOARD_DIR = "tensorboard"
_CHARTS = ("mean_return", "mean_score", "episodes", "lr", "steps_per_second")
_LOSSES = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance")
_SYSTEM = ("memory_bytes", "params")
HPARAM_SCORE = "hparams/score"  # the run's score (summary.json `mean_return_last100`) in the HParams table


def scalars(line: dict[str, Any]) -> dict[str, float]:
    """The TensorBoard tags and values of one metrics line (missing and non-finite values left out)."""
    out: dict[str, float] = {}
    for group, keys in (("charts", _CHARTS), ("losses", _LOSSES), ("system", _SYSTEM)):
        for key in keys:
            out[f"{group}/{key}"] = line.get(key)
    for tile, fraction in (line.get("max_tile_distribution") or {}).items():
        out[f"tiles/{tile}"] = fraction
    for action, fraction in enumerate(line.get("action_distribution") or ()):
        out[f"actions/{action}"] = fraction
    for layer, usage in (line.get("moe_usage") or {}).items():
        for expert, share in enumerate(usage):
            out[f"moe/{layer}/expert_{expert}"] = share
    if "moe_aux_loss" in line:
        out["moe/balance_loss"] = line["moe_aux_loss"]
    return {tag: float(v) for tag, v in out.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def truncate_metrics(path: Path, update: int) -> None:
    """Keep the metrics lines up to `update` (those after it are logged again); a torn last line goes."""
    kept: list[str] = []
    if path.exists():
        for text in path.read_text(encoding="utf-8").splitlines():
            try:
                line = json.loads(text)
            except ValueError:
                break
            if not isinstance(line, dict) or int(line.get("update", 0)) > update:
                break
            kept.append(text)
    write_text_atomic(path, "".join(t + "\n" for t in kept))


class MetricsLog:
    """`metrics.jsonl` and TensorBoard for one run. A resumed run passes its checkpoint's `resume_update`
    and `resume_step`: the lines and events logged after them are dropped, and logging goes on."""

    def __init__(self, run_dir: str | Path, resume_update: int | None = None, resume_step: int = 0,
                 tensorboard: bool = True):
        from torch.utils.tensorboard import SummaryWriter

        run_dir = Path(run_dir)
        self.path = run_dir / "metrics.jsonl"
        if resume_update is not None:
            truncate_metrics(self.path, resume_update)
        self._file = self.path.open("a" if resume_update is not None else "w", encoding="utf-8")
        self._writer = None
        if tensorboard:
            self._writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR), flush_secs=10,
                                         purge_step=resume_step + 1 if resume_update is not None else None)

    def log(self, line: dict[str, Any]) -> None:
        self._file.write(json.dumps(line, allow_nan=True) + "\n")
        self._file.flush()
        if self._writer is not None:
            step = int(line["step"])
            for tag, value in scalars(line).items():
                self._writer.add_scalar(tag, value, step)

    def hparams(self, settings: dict[str, Any], figures: dict[str, float | None], step: int) -> None:
        """The run's settings (name -> value; values other than numbers, strings and booleans are
        written as text) and final figures (tag -> value; None left out) in the HParams dashboard."""
        if self._writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        plain = {k: v if isinstance(v, bool | int | float | str) else json.dumps(v) for k, v in settings.items()}
        known = {k: float(v) for k, v in figures.items() if isinstance(v, int | float) and math.isfinite(v)}
        writer = self._writer._get_file_writer()
        for summary in hparams(plain, known):
            writer.add_summary(summary)
        for tag, value in known.items():
            self._writer.add_scalar(tag, value, step)
        self._writer.flush()

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["HPARAM_SCORE", "TENSORBOARD_DIR", "MetricsLog", "scalars", "truncate_metrics"]
