"""Checkpoints: crash-safe writes of a training state, keeping the newest K, loadable with weights_only.

A checkpoint is one `torch.save` file `step_<12-digit step>.pt` in a run's `checkpoints/` folder. It is
written to a temporary file in the same folder, flushed and fsynced, then `os.replace`d over its final
name, so a crash (even `kill -9`) during a write leaves at worst a stray `.tmp` file and never a
half-written checkpoint. The state must hold only tensors and plain containers of primitives, so that
`torch.load(path, weights_only=True)` (no arbitrary unpickling) reads it back.

`load_latest_checkpoint` (used by `--resume`) takes the newest file that loads, skipping a truncated or
corrupt newer one (a file damaged after its rename, e.g. by a full disk or a copy cut short).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdl.files import atomic_write

if TYPE_CHECKING:
    import torch

_NAME = re.compile(r"^step_(\d{12})\.pt$")


def checkpoint_path(directory: str | Path, step: int) -> Path:
    """Where the checkpoint of `step` lives in `directory`."""
    return Path(directory) / f"step_{step:012d}.pt"


def list_checkpoints(directory: str | Path) -> list[Path]:
    """The checkpoints in `directory`, oldest (smallest step) first; temporary files are not listed."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def save_checkpoint(directory: str | Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write `state` atomically as the checkpoint of `step`, then delete all but the newest `keep`.

    Returns the checkpoint's path. A failure while writing removes the temporary file and leaves the
    earlier checkpoints as they were.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, step)
    import torch  # here, not at the top: listing a run's checkpoints (`mdlc train`'s driver) needs no torch

    with atomic_write(path, "wb") as f:
        torch.save(state, f)
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint's state, read with `weights_only=True`."""
    import torch

    return torch.load(path, map_location=map_location, weights_only=True)


def load_latest_checkpoint(directory: str | Path, map_location: str | torch.device = "cpu"
                           ) -> tuple[Path, dict[str, Any], list[tuple[Path, str]]] | None:
    """The newest checkpoint in `directory` that loads: (path, state, skipped), where `skipped` lists the
    newer files that did not load (truncated or corrupt) with the reason; None when none loads."""
    skipped: list[tuple[Path, str]] = []
    for path in reversed(list_checkpoints(directory)):
        try:
            state = load_checkpoint(path, map_location)
        except Exception as exc:  # a truncated zip, a bad pickle, an unreadable file
            skipped.append((path, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
            continue
        if not isinstance(state, dict) or "update" not in state or "step" not in state:
            skipped.append((path, "not a training checkpoint"))
            continue
        return path, state, skipped
    return None
