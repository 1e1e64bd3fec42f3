"""Saved models: `mdlc models save RUN [--name NAME]`, `list`, `rm NAME` (the Tetris trainer's model
slots, DESIGN.md "Experiments at run time").

A saved model is a folder `MODELS/NAME/` (MODELS defaults to `models/`) shaped like a run directory,
so `mdlc eval models/NAME` and `mdlc export models/NAME` read it as they read a run:

| file | what |
|---|---|
| `config.json`, `<file>.mdl`, `ir.json`, `summary.json`, `metrics.jsonl` | copied from the run (so `mdlc report models/NAME` works too) |
| `checkpoints/step_<N>.pt` | the one checkpoint saved: the run's newest loadable one, or with `pick="best"` the one whose update logged the best training score |
| `export/<model>.pt`, `export/<model>.onnx` | exports of that checkpoint, each verified as `mdlc export` verifies |
| `metadata.json` | name, experiment, point, seed, model, params, architecture hash, env, steps, training score, where it came from, when, its exports, and `eval` (what the newest `mdlc eval` of it measured; the leaderboard's score) |

Writing is atomic at the folder level: the new model is built in `MODELS/.NAME.tmp-<pid>` and renamed
into place. Replacing one (`force`) renames the old folder to `.NAME.replaced` first, then the new
one into place, then deletes the old; a process killed between the two renames leaves the old model
under the aside name, and every reader (`list`, `save`, `rm`, `resolve`) first puts such a folder back
(`recover`): after any crash there is the old model or the new one, whole, never half of one. An
existing name is refused unless `force`.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mdl.runtime.errors import ResultsError, RunNotFound
from mdl.runtime.rundir import CHECKPOINTS, IR, SUMMARY, RunDir, read_json, write_json
from mdl.runtime.runset import read_metrics

METADATA = "metadata.json"
FORMATS = ("pt", "onnx")
SORT_KEYS = ("score", "name", "params", "steps", "saved", "design", "train_score")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=,+-]{0,99}$")
_TMP, _ASIDE = ".tmp-", ".replaced"


def is_model(path: str | Path) -> bool:
    return (Path(path) / METADATA).is_file()


def default_name(config: dict[str, Any]) -> str:
    point = ",".join(f"{k.split('.', 1)[-1]}={v}" for k, v in (config.get("point") or {}).items())
    name = "-".join(str(p) for p in (config.get("experiment"), point, f"seed{config.get('seed')}") if p)
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)[:100]


def recover(root: Path) -> None:
    """Finish what a killed save or rm left: an aside old model goes back where its name is free (else
    away), a temporary folder whose writer is gone goes away."""
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if not entry.name.startswith("."):
            continue
        if entry.name.endswith(_ASIDE):
            final = root / entry.name[1:-len(_ASIDE)]
            if final.exists():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                os.rename(entry, final)
        elif _TMP in entry.name:
            pid = entry.name.rsplit(_TMP, 1)[1]
            if not pid.isdigit() or not _alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _training_scores(run: RunDir) -> dict[int, float]:
    """The training score logged at each step (the mean game score on 2048, else the mean return)."""
    try:
        rows = read_metrics(run.metrics_path)
    except ResultsError:
        return {}
    scores = {}
    for row in rows:
        value = row.get("mean_score", row.get("mean_return"))
        if isinstance(value, int | float) and math.isfinite(value):
            scores[int(row["step"])] = float(value)
    return scores


def _step(checkpoint: Path) -> int:
    return int(checkpoint.stem.split("_")[1])


def _pick_checkpoint(run: RunDir, pick: str, scores: dict[int, float]) -> Path:
    """The newest checkpoint that loads, or with `pick="best"` the loadable one of the best score."""
    from mdl.runtime.checkpoint import list_checkpoints, load_checkpoint

    candidates = list(reversed(list_checkpoints(run.checkpoints)))
    if pick == "best":
        candidates.sort(key=lambda p: (_step(p) in scores, scores.get(_step(p), 0.0)), reverse=True)
    for path in candidates:
        try:
            state = load_checkpoint(path)
        except Exception:  # a damaged file: the next candidate
            continue
        if isinstance(state, dict) and "step" in state:
            return path
    raise ResultsError(f"{run.path} has no loadable checkpoint to save")


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save(source: str | Path, name: str | None = None, root: str | Path = "models", force: bool = False,
         pick: str = "newest", formats: tuple[str, ...] = FORMATS) -> dict[str, Any]:
    """Save a run's newest (or best) checkpoint with verified exports as `root/name`; its metadata."""
    from mdl.runtime.export import export

    run, checkpoint = RunDir.of(source)
    config = run.read_config()
    name = name or default_name(config)
    if not _NAME.match(name):
        raise ResultsError(f"{name!r} is not a model name: letters, digits and . _ = , + - (up to 100), "
                           "starting with a letter or digit")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    recover(root)
    final = root / name
    if final.exists() and not force:
        raise ResultsError(f"a saved model `{name}` exists ({final}); pass --force to replace it, or choose "
                           "another --name")
    scores = _training_scores(run)
    if checkpoint is None:
        checkpoint = _pick_checkpoint(run, pick, scores)
    step = _step(checkpoint)
    tmp = root / f".{name}{_TMP}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / CHECKPOINTS).mkdir(parents=True)
        for file in (run.config_path, run.design_path(config), run.path / IR, run.path / SUMMARY, run.metrics_path):
            if file.is_file():
                shutil.copy2(file, tmp / file.name)
        shutil.copy2(checkpoint, tmp / CHECKPOINTS / checkpoint.name)
        exports = []
        for fmt in formats:
            done = export(tmp, fmt)
            exports.append({"format": fmt, "path": str(Path(done["path"]).resolve().relative_to(tmp.resolve())),
                            "verified": done["verification"]["ok"]})
        env = config.get("env") or {}
        metadata = {
            "name": name, "experiment": config.get("experiment"), "point": config.get("point") or {},
            "seed": config.get("seed"), "model": config.get("model"), "params": config.get("params"),
            "architecture_hash": config.get("architecture_hash"), "env": env.get("id") or env.get("kind"),
            "steps": step, "checkpoint": f"{CHECKPOINTS}/{checkpoint.name}", "picked": pick,
            "train_score": scores.get(step), "source_run": str(run.path.resolve()),
            "saved": datetime.now(UTC).isoformat(timespec="seconds"), "exports": exports, "eval": None}
        write_json(tmp / METADATA, metadata)
        _fsync_tree(tmp)
        if final.exists():
            aside = root / f".{name}{_ASIDE}"
            shutil.rmtree(aside, ignore_errors=True)
            os.rename(final, aside)
            os.rename(tmp, final)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**metadata, "path": str(final)}


def list_models(root: str | Path = "models", sort: str = "score") -> list[dict[str, Any]]:
    """Every saved model's metadata (with `path` and `score`, the evaluated score or None), sorted:
    score, train_score, params and steps best (largest) first, the others ascending; `-KEY` reverses."""
    root = Path(root)
    key = sort.lstrip("-")
    if key not in SORT_KEYS:
        raise ResultsError(f"cannot sort by {sort!r}; keys: {', '.join(SORT_KEYS)} (a leading - reverses)")
    recover(root)
    models = []
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        meta = read_json(folder / METADATA) if not folder.name.startswith(".") else None
        if isinstance(meta, dict):
            evaluated = meta.get("eval") or {}
            models.append({**meta, "path": str(folder), "score": evaluated.get("score"),
                           "design": f"{meta.get('model')} ({meta.get('experiment')})"})
    descending = key in ("score", "train_score", "params", "steps", "saved")
    present = [m for m in models if m.get(key) is not None]
    present.sort(key=lambda m: m[key], reverse=descending != sort.startswith("-"))
    return present + [m for m in models if m.get(key) is None]


def remove(name: str, root: str | Path = "models") -> Path:
    root = Path(root)
    recover(root)
    folder = root / name
    if not _NAME.match(name) or not is_model(folder):
        known = ", ".join(m["name"] for m in list_models(root, "name")) or "none"
        raise RunNotFound(f"no saved model `{name}` in {root} (saved: {known})")
    aside = root / f".{name}{_TMP}removed"
    os.rename(folder, aside)
    shutil.rmtree(aside, ignore_errors=True)
    return folder


def resolve(path: str | Path, root: str | Path = "models") -> Path:
    """`path` itself when it exists, else the saved model `root/path` when there is one (`mdlc eval
    NAME`), else `path` (whose error the caller reports)."""
    path = Path(path)
    if path.exists():
        return path
    recover(Path(root))
    return Path(root) / path if is_model(Path(root) / path) else path


def record_eval(folder: str | Path, result: dict[str, Any]) -> dict[str, Any] | None:
    """Write an `mdlc eval` result into a saved model's metadata (its leaderboard score: the mean game
    score on 2048, else the mean return); None when `folder` is not a saved model."""
    folder = Path(folder)
    meta = read_json(folder / METADATA)
    if not isinstance(meta, dict):
        return None
    score = result.get("mean_score", result.get("mean_return"))
    meta["eval"] = {"score": score, "mean_return": result.get("mean_return"), "episodes": result.get("episodes"),
                    "seed": result.get("seed"), "step": result.get("step"),
                    "evaluated": datetime.now(UTC).isoformat(timespec="seconds")}
    write_json(folder / METADATA, meta)
    return meta["eval"]


__all__ = ["FORMATS", "METADATA", "SORT_KEYS", "default_name", "is_model", "list_models", "record_eval", "recover",
           "remove", "resolve", "save"]
