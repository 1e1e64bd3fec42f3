"""`mdlc report RUN_OR_EXPERIMENT [-o DIR]`: a run's or an experiment's results as files people read.

`report(path, out)` writes into `out` (default `<path>/report/`):

- one PNG per picture (`PICTURES` for the curves: score, losses, entropy, approx-KL, clip fraction,
  explained variance, lr, steps/s, memory, params; `tiles.png` for 2048's tile rates, `actions.png`,
  and for MoE models `moe_shares.png` and `moe_balance.png`); every curve is a group's mean over its
  seeds with a 95% band (mdl.runtime.runset), one line per sweep point;
- for an experiment (several points), `points` in the result, one `sensitivity_<key>.png` per swept
  key (each point's mean score and interval against that setting) and `pareto_params.png` /
  `pareto_flops.png` (score against cost, the Pareto front marked: the points no other point beats on
  both);
- `metrics.csv`: a row per update of every run (`experiment`, `point`, `seed`, then every scalar of
  runset.flat_line);
- `report.html`: one self-contained page (images inlined as data URIs) with the design facts (model,
  params, FLOPs, architecture hash), the per-point table, the pictures, the settings and the design's
  source. Everything that comes from files is HTML-escaped.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mdl.files import write_text_atomic
from mdl.runtime import plots
from mdl.runtime.compare import differences, unit_of
from mdl.runtime.results import point_stats
from mdl.runtime.rundir import read_json
from mdl.runtime.runset import TILES, Group, RunData, load_groups, mean_curve

MIB = 2**20
# file, title, (panel title, metric key, y label, scale) per panel: the curves every run has.
PICTURES: tuple[tuple[str, str, tuple[tuple[str, str, str, float], ...]], ...] = (
    ("score.png", "score and return", (("mean return (last 100 episodes)", "mean_return", "return", 1.0),
                                       ("mean game score (last 100 games)", "mean_score", "score", 1.0))),
    ("losses.png", "PPO losses", (("policy loss", "policy_loss", "loss", 1.0),
                                  ("value loss", "value_loss", "loss", 1.0))),
    ("entropy.png", "", (("policy entropy", "entropy", "nats", 1.0),)),
    ("approx_kl.png", "", (("approximate KL (old || new)", "approx_kl", "KL", 1.0),)),
    ("clip_fraction.png", "", (("clip fraction", "clip_fraction", "fraction", 1.0),)),
    ("explained_variance.png", "", (("explained variance of the value head", "explained_variance", "", 1.0),)),
    ("lr.png", "", (("learning rate", "lr", "lr", 1.0),)),
    ("steps_per_second.png", "", (("environment steps per second", "steps_per_second", "steps/s", 1.0),)),
    ("memory.png", "", (("memory in use (CUDA peak allocated, else resident set)", "memory_bytes", "MiB", MIB),)),
    ("params.png", "", (("parameters", "params", "parameters", 1.0),)),
)
MAX_PANELS = 6


def _scaled(curve: dict[str, list[float]] | None, scale: float) -> dict[str, list[float]] | None:
    if curve is None or scale == 1.0:
        return curve
    return {k: [x / scale for x in v] if k != "steps" and isinstance(v, list) else v for k, v in curve.items()}


def _by_group(groups: list[Group], key: str, scale: float = 1.0) -> list[tuple[str, dict]]:
    entries = [(g.label, _scaled(mean_curve(g.runs, key), scale)) for g in groups]
    return [(label, curve) for label, curve in entries if curve is not None]


def _components(groups: list[Group], keys: Callable[[RunData], list[str]], name: Callable[[str], str], ylabel: str,
                ) -> list[plots.Panel]:
    """A panel per group (up to MAX_PANELS), a line per component key."""
    panels: list[plots.Panel] = []
    for group in groups[:MAX_PANELS]:
        lines = [(name(k), mean_curve(group.runs, k)) for k in keys(group.first)]
        lines = [(label, c) for label, c in lines if c is not None]
        if lines:
            panels.append((group.label, ylabel, lines))
    return panels


def _moe_layers(run: RunData) -> list[str]:
    return list(dict.fromkeys(k.split("/")[1] for k in run.metric_keys() if k.startswith("moe/") and k.endswith("/cv")))


def _pictures(groups: list[Group], out: Path) -> list[tuple[str, str]]:
    """Every curve picture this data has: (file name, caption)."""
    made: list[tuple[str, str]] = []
    for file, title, specs in PICTURES:
        panels = [(t, ylabel, _by_group(groups, key, scale)) for t, key, ylabel, scale in specs]
        panels = [p for p in panels if p[2]]
        if panels:
            plots.curve_panels(out / file, title, panels)
            made.append((file, title or panels[0][0]))
    first = groups[0].first
    components = (
        ("tiles.png", "2048: fraction of recent games reaching each tile", "fraction",
         lambda r: [f"tile_rate_{t}" for t in TILES if f"tile_rate_{t}" in r.metric_keys()],
         lambda k: "≥ " + k.removeprefix("tile_rate_")),
        ("actions.png", "action distribution of the rollouts", "fraction of steps",
         lambda r: [k for k in r.metric_keys() if k.startswith("action_")], lambda k: "action " + k.removeprefix("action_")),
    )
    for file, title, ylabel, keys, name in components:
        panels = _components(groups, keys, name, ylabel)
        if panels:
            plots.curve_panels(out / file, title, panels)
            made.append((file, title))
    layers = _moe_layers(first)
    if layers:
        shares: list[plots.Panel] = []
        for group in groups:
            for layer in layers:
                keys = [k for k in group.first.metric_keys() if k.startswith(f"moe/{layer}/expert_")]
                lines = [(k.rsplit("/", 1)[1].replace("_", " "), mean_curve(group.runs, k)) for k in keys]
                shares.append((f"{group.label}: {layer}" if len(groups) > 1 else layer, "share of tokens",
                               [(label, c) for label, c in lines if c is not None]))
        plots.curve_panels(out / "moe_shares.png", "MoE: each expert's share of the tokens", shares[:MAX_PANELS])
        balance = [(f"{layer}: {what}", ylabel, _by_group(groups, f"moe/{layer}/{key}"))
                   for layer in layers for key, what, ylabel in (("cv", "coefficient of variation", "CV"),
                                                                ("max_violation", "max violation", "max/mean - 1"))]
        plots.curve_panels(out / "moe_balance.png", "MoE load imbalance (0 = balanced)", balance[:MAX_PANELS])
        made += [("moe_shares.png", "MoE expert shares"), ("moe_balance.png", "MoE load imbalance")]
    return made


def _points(groups: list[Group], facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"label": g.label, "point": g.first.point, **point_stats(g.scores), "params": f["params"],
             "flops": f["flops"], "runs": len(g.runs),
             "statuses": sorted({r.status for r in g.runs})} for g, f in zip(groups, facts, strict=True)]


def _experiment_pictures(points: list[dict[str, Any]], unit: str, out: Path) -> list[tuple[str, str]]:
    made: list[tuple[str, str]] = []
    scored = [p for p in points if p["mean"] is not None]
    swept = list(dict.fromkeys(k for p in scored for k in p["point"]))
    for key in swept:
        rows = sorted((p for p in scored if key in p["point"]), key=lambda p: _sortable(p["point"][key]))
        values = [p["point"][key] for p in rows]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        xs = values if numeric else [json.dumps(v) if not isinstance(v, str) else v for v in values]
        log = numeric and all(v > 0 for v in values)
        file = f"sensitivity_{_safe(key)}.png"
        plots.scatter(out / file, f"{unit} against {key}", key, f"mean {unit}",
                      [(x, p["mean"], *p["ci95"], p["label"]) for x, p in zip(xs, rows, strict=True)],
                      log_x=log, line=True)
        made.append((file, f"sensitivity: {unit} against {key}"))
    for cost in ("params", "flops"):
        rows = [p for p in scored if isinstance(p[cost], int | float)]
        if len(rows) < 2:
            continue
        front = plots.pareto_front([p[cost] for p in rows], [p["mean"] for p in rows])
        file = f"pareto_{cost}.png"
        what = "parameters" if cost == "params" else "forward FLOPs per sample"
        plots.scatter(out / file, f"{unit} against {what} (Pareto front in red)", what, f"mean {unit}",
                      [(p[cost], p["mean"], *p["ci95"], p["label"]) for p in rows], front=front, log_x=True)
        made.append((file, f"Pareto: {unit} against {what}"))
    return made


def _sortable(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, int | float) and not isinstance(value, bool) else (1, 0, str(value))


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in key)


def write_csv(groups: list[Group], path: Path) -> int:
    """metrics.csv: a row per update of every run; returns the number of rows."""
    keys = list(dict.fromkeys(k for g in groups for r in g.runs for k in r.metric_keys()))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["experiment", "point", "seed", *keys])
    count = 0
    for group in groups:
        for run in group.runs:
            point = ",".join(f"{k}={v}" for k, v in run.point.items())
            for row in run.rows:
                writer.writerow([run.config.get("experiment"), point, run.seed,
                                 *(_cell(row.get(k)) for k in keys)])
                count += 1
    write_text_atomic(path, buffer.getvalue())
    return count


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def report(path: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write the report of a run or an experiment (see the module docstring); returns what it wrote."""
    path = Path(path)
    groups = load_groups([path])
    target = Path(out) if out is not None else path / "report"
    target.mkdir(parents=True, exist_ok=True)
    facts = [g.first.design_facts() for g in groups]
    unit = unit_of(groups)
    points = _points(groups, facts)
    pictures = _pictures(groups, target)
    if len(groups) > 1:
        pictures += _experiment_pictures(points, unit, target)
    rows = write_csv(groups, target / "metrics.csv")
    pruned = [p for p in ((read_json(path / "summary.json") or {}).get("points") or [])
              if isinstance(p, dict) and p.get("pruned")]
    page = _html(path, groups, facts, points, pruned, pictures, unit, target)
    write_text_atomic(target / "report.html", page)
    return {"dir": str(target), "html": str(target / "report.html"), "csv": str(target / "metrics.csv"),
            "rows": rows, "plots": [file for file, _ in pictures], "points": points if len(groups) > 1 else None,
            "runs": sum(len(g.runs) for g in groups)}


# ------------------------------------------------------------------------------------------------ HTML
_STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;
text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}figure{margin:1em 0}
img{max-width:100%;border:1px solid #eee}pre{background:#f6f8fa;padding:1em;overflow:auto}h1{font-size:1.5em}"""


def _e(value: Any) -> str:
    return html.escape("-" if value is None else value if isinstance(value, str) else _num(value), quote=True)


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return json.dumps(value) if isinstance(value, list | dict) else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="{"n" if isinstance(c, int | float) else ""}">{_e(c)}</td>'
                                    for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(path: Path, groups: list[Group], facts: list[dict[str, Any]], points: list[dict[str, Any]],
          pruned: list[dict[str, Any]], pictures: list[tuple[str, str]], unit: str, target: Path) -> str:
    first = groups[0].first
    config = first.config
    title = f"{config.get('experiment')} — {path.name}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>",
             f"<p>{_e(str(path))}: {len(groups)} point(s), {sum(len(g.runs) for g in groups)} run(s), "
             f"environment {_e(first.env)}</p>"]
    parts.append("<h2>Design</h2>" + _table(
        ["point", "model", "params", "forward FLOPs / sample", "architecture hash"],
        [[g.label, f["model"], f["params"], f["flops"], f["architecture_hash"]] for g, f in zip(groups, facts,
                                                                                              strict=True)]))
    parts.append(f"<h2>Final {_e(unit)}</h2>" + _table(
        ["point", "runs", "n", "mean", "std", "IQM", "95% interval", "min", "max", "status"],
        [[p["label"], p["runs"], p["n"], p["mean"], p["std"], p["iqm"],
          None if p["ci95"] is None else f"[{_num(p['ci95'][0])}, {_num(p['ci95'][1])}]", p["min"], p["max"],
          ", ".join(p["statuses"])] for p in points]
        + [[json.dumps(p.get("point")), 0, 0, None, None, None, None, None, None, f"pruned: {p['pruned']}"]
           for p in pruned]))
    parts.append("<h2>Pictures</h2>")
    for file, caption in pictures:
        data = base64.b64encode((target / file).read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{_e(caption)}</figcaption></figure>")
    if len(groups) > 1:
        diff = differences(groups, facts)
        parts.append("<h2>Settings that differ</h2>" + _table(
            ["setting", *(g.label for g in groups)], [[k, *v] for k, v in diff.items()]))
    parts.append("<h2>Settings</h2>" + _table(["setting", "value"], sorted(
        [k, v] for k, v in first.settings().items() if len(groups) == 1 or k not in differences(groups, facts))))
    source = first.run.design_path(config)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = "(the design copy cannot be read)"
    parts.append(f"<h2>Design source: {_e(source.name)}</h2><pre>{html.escape(text)}</pre></body></html>")
    return "\n".join(parts)


__all__ = ["PICTURES", "report", "write_csv"]
