"""The PNG pictures of `mdlc compare` and `mdlc report`, drawn with matplotlib.

Figures are `matplotlib.figure.Figure` objects rendered by the Agg canvas (no pyplot, no global state,
no display needed) and written atomically (mdl.files). Each function takes plain numbers (lists of
steps and values, the curves of mdl.runtime.runset.mean_curve) and returns the path written.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mdl.files import write_bytes_atomic

DPI = 110
Curve = dict[str, list[float]]  # mean_curve's {"steps", "mean", "lo", "hi", "n"}


def _figure(width: float = 7.0, height: float = 4.0, panels: int = 1):
    from matplotlib.figure import Figure

    columns = min(panels, 3)
    rows = math.ceil(panels / columns)
    fig = Figure(figsize=(width if panels == 1 else 4.2 * columns, height if panels == 1 else 3.2 * rows),
                 dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    for extra in axes[panels:]:
        extra.set_visible(False)
    return fig, list(axes[:panels])


def _save(fig: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    write_bytes_atomic(path, buffer.getvalue())
    return path


def _steps_axis(ax: Any) -> None:
    from matplotlib.ticker import EngFormatter

    ax.set_xlabel("environment steps")
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.grid(alpha=0.3)


Panel = tuple[str, str, Sequence[tuple[str, Curve]]]  # (title, y label, (line label, curve) per line)


def _draw(ax: Any, title: str, ylabel: str, entries: Sequence[tuple[str, Curve]]) -> None:
    for label, curve in entries:
        few = len(curve["steps"]) < 30  # a short run: its updates marked, or one update would not show
        (line,) = ax.plot(curve["steps"], curve["mean"], label=label, linewidth=1.5, marker="o" if few else None,
                          markersize=3)
        if curve.get("n", 1) > 1:
            ax.fill_between(curve["steps"], curve["lo"], curve["hi"], color=line.get_color(), alpha=0.22,
                            linewidth=0)
    ax.set_title(title, fontsize="medium")
    ax.set_ylabel(ylabel)
    _steps_axis(ax)
    if len(entries) > 1 or any(c.get("n", 1) > 1 for _, c in entries):
        ax.legend(fontsize="x-small" if len(entries) > 4 else "small", ncol=2 if len(entries) > 6 else 1)


def curves(path: Path, title: str, ylabel: str, entries: Sequence[tuple[str, Curve]]) -> Path:
    """One line per entry (its mean over seeds) with its 95% band shaded."""
    return curve_panels(path, "", [(title, ylabel, entries)])


def curve_panels(path: Path, title: str, panels: Sequence[Panel]) -> Path:
    """Small multiples (up to three across): each panel its lines and bands, as `curves` draws them."""
    fig, axes = _figure(panels=max(1, len(panels)))
    for ax, (name, ylabel, entries) in zip(axes, panels, strict=False):
        _draw(ax, name, ylabel, entries)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def scatter(path: Path, title: str, xlabel: str, ylabel: str,
            points: Sequence[tuple[Any, float, float | None, float | None, str]], front: Sequence[int] = (),
            log_x: bool = False, line: bool = False) -> Path:
    """Points (x, y, y_lo, y_hi, label) with error bars where given; `front` (indices) drawn as the
    Pareto front; x that is not a number is placed on a categorical axis in the given order."""
    fig, (ax,) = _figure()
    numeric = all(isinstance(p[0], int | float) and not isinstance(p[0], bool) for p in points)
    xs = [p[0] if numeric else i for i, p in enumerate(points)]
    ys = [p[1] for p in points]
    errors = [[p[1] - p[2] if p[2] is not None else 0.0 for p in points],
              [p[3] - p[1] if p[3] is not None else 0.0 for p in points]]
    order = sorted(range(len(points)), key=lambda i: xs[i])
    if line:
        ax.plot([xs[i] for i in order], [ys[i] for i in order], color="0.6", linewidth=1, zorder=1)
    ax.errorbar(xs, ys, yerr=errors, fmt="o", capsize=3, zorder=2, label="points (mean, 95% interval)")
    for x, y, (_, _, _, _, label) in zip(xs, ys, points, strict=True):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
    if front:
        best = sorted(front, key=lambda i: xs[i])
        ax.plot([xs[i] for i in best], [ys[i] for i in best], "-s", color="tab:red", markerfacecolor="none",
                markersize=10, linewidth=1.5, zorder=3, label="Pareto front")
    if not numeric:
        ax.set_xticks(xs, [str(p[0]) for p in points], rotation=20, fontsize="small")
    elif log_x and min(xs) > 0 and max(xs) / min(xs) >= 20:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats: none has a cost as low and a score as high with one
    of them strictly better (lower cost is better, higher score is better)."""
    front = []
    for i, (c, s) in enumerate(zip(costs, scores, strict=True)):
        dominated = any((c2 <= c and s2 >= s) and (c2 < c or s2 > s)
                        for j, (c2, s2) in enumerate(zip(costs, scores, strict=True)) if j != i)
        if not dominated:
            front.append(i)
    return front


__all__ = ["Curve", "Panel", "curve_panels", "curves", "pareto_front", "scatter"]
