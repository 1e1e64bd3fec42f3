"""The run index `OUT/runs.sqlite`: one row per run, for `mdlc runs` to list and sort.

Only the process that drives the runs writes it (workers and Ray trials never do, so there is one
writer and none of SQLite's concurrent-writer trouble); it is opened in WAL mode with a busy timeout,
so `mdlc runs` can read it while a sweep writes. The run directories stay the truth: `reindex` rebuilds
the index from them (`mdlc runs --reindex`), and `mdlc runs` builds it that way when it is missing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mdl.runtime.errors import RunIndexError
from mdl.runtime.results import score_of
from mdl.runtime.rundir import RunDir

INDEX = "runs.sqlite"
COLUMNS = ("experiment", "point", "seed", "status", "steps", "score", "params", "architecture_hash",
           "started", "wall_seconds", "path", "error")
SORT_KEYS = COLUMNS
_SCHEMA = """CREATE TABLE IF NOT EXISTS runs (
    path TEXT PRIMARY KEY, experiment TEXT, point TEXT, seed INTEGER, status TEXT, steps INTEGER,
    score REAL, params INTEGER, architecture_hash TEXT, started TEXT, wall_seconds REAL, error TEXT)"""

_INSERT = f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"


def row_of(run: RunDir, status: str | None = None) -> dict[str, Any] | None:
    """The index row of a run directory (None when it is not one); `status` overrides the summary's."""
    try:
        config = run.read_config()
    except Exception:
        return None
    summary = run.read_summary() or {}
    return {"experiment": str(config.get("experiment")), "point": json.dumps(config.get("point") or {}, sort_keys=True),
            "seed": int(config["seed"]), "status": status or run.status() or "pending",
            "steps": summary.get("steps"), "score": score_of(summary), "params": config.get("params"),
            "architecture_hash": config.get("architecture_hash"), "started": config.get("started"),
            "wall_seconds": summary.get("wall_seconds"), "path": str(run.path.resolve()), "error": summary.get("error")}


class RunIndex:
    """`OUT/runs.sqlite`, opened for reading and writing."""

    def __init__(self, out: str | Path):
        self.path = Path(out) / INDEX
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._errors():
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute(_SCHEMA)
            self._db.commit()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise RunIndexError(f"cannot use the run index {self.path} ({exc}); the run directories are "
                                f"untouched: remove {self.path.name} and `mdlc runs --reindex` rebuilds it") from None

    def put(self, rows: Iterable[dict[str, Any]]) -> None:
        with self._errors(), self._db:
            self._db.executemany(_INSERT, list(rows))

    def rows(self, experiment: str | None = None, sort: str | None = None) -> list[dict[str, Any]]:
        if sort is not None and sort.lstrip("-") not in SORT_KEYS:
            raise ValueError(f"cannot sort by {sort!r}; keys: {', '.join(SORT_KEYS)}")
        query = f"SELECT {', '.join(COLUMNS)} FROM runs"
        args: tuple = ()
        if experiment is not None:
            query, args = query + " WHERE experiment = ?", (experiment,)
        key = (sort or "path").lstrip("-")
        order = "DESC" if (sort or "").startswith("-") or key == "score" else "ASC"
        query += f" ORDER BY {key} IS NULL, {key} {order}, path ASC"
        with self._errors():
            rows = [dict(zip(COLUMNS, r, strict=True)) for r in self._db.execute(query, args).fetchall()]
        for row in rows:
            row["point"] = json.loads(row["point"] or "{}")
        return rows

    def reindex(self, out: str | Path) -> int:
        """Replace the index with the runs found under `out`; returns how many."""
        rows = [r for r in (row_of(run) for run in RunDir.find(out)) if r is not None]
        with self._errors(), self._db:  # one transaction: a crash leaves the old index or the new one, never an empty one
            self._db.execute("DELETE FROM runs")
            self._db.executemany(_INSERT, rows)
        return len(rows)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunIndex:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["COLUMNS", "INDEX", "RunIndex", "row_of"]
