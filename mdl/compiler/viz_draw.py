"""`mdlc viz`, second half: a laid-out `Scene` (mdl.compiler.viz_scene) as SVG, PNG or DOT text.

- `svg(scene)`: a standalone SVG. Every drawn node is a `<g class="node">` whose `data-name`, `data-op`,
  `data-shape` and `data-params` attributes carry the IR's facts (what the tests and the editor's graph
  view read back); boxes are `<g class="box">` with `data-path` and `data-params`.
- `png(scene)`: the same picture drawn with Pillow (at twice the size, then scaled down: smooth edges).
- `dot(scene)`: Graphviz's language, blocks and repeats as nested clusters, for users who have `dot`.

All text from a design (names, ops, labels) is escaped for the format it lands in.
"""

from __future__ import annotations

from html import escape

from mdl.compiler.viz_scene import LABEL_HEIGHT, LINE_HEIGHT, PAD, Item, Scene

COLORS = {  # fill, stroke
    "input": ("#e3f4e1", "#3c8d40"),
    "output": ("#fde8d4", "#c8641b"),
    "node": ("#e4eefb", "#3b6db3"),
    "join": ("#f1f1f1", "#6b6b6b"),
    "collapsed": ("#ece4f7", "#6b4ea8"),
}
BOX_FILLS = ("#f7f7fa", "#eff0f5", "#e7e9f1", "#dfe2ec")
TEXT = "#1f2328"
MUTED = "#57606a"
EDGE = "#6e7781"


def _facts(scene: Scene, item: Item) -> dict[str, str]:
    return {"name": item.key, "kind": item.kind, "op": item.title if item.kind == "node" else "",
            "shape": item.lines[0] if item.lines else "", "params": str(item.params),
            "nodes": str(len(item.ids))}


# ---------------------------------------------------------------------------------------------------
# SVG


def svg(scene: Scene) -> str:
    w, h = scene.width, scene.height
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.1f} {h:.1f}" '
           f'font-family="Helvetica, Arial, sans-serif" font-size="12" data-model="{escape(scene.model)}" '
           f'data-params="{scene.params}">',
           f'<title>{escape(scene.model)} · {scene.params:,} params</title>',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           f'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="{EDGE}"/></marker></defs>',
           '<rect width="100%" height="100%" fill="#ffffff"/>']
    for box in scene.boxes:
        fill = BOX_FILLS[min(box.depth, len(BOX_FILLS) - 1)]
        out.append(f'<g class="box" data-path="{escape(box.path)}" data-params="{box.params}">'
                   f'<rect x="{box.x0:.1f}" y="{box.y0:.1f}" width="{box.x1 - box.x0:.1f}" '
                   f'height="{box.y1 - box.y0:.1f}" rx="8" fill="{fill}" stroke="#8c959f" stroke-dasharray="5 3"/>'
                   f'<text x="{box.x0 + PAD:.1f}" y="{box.y0 + LABEL_HEIGHT - 4:.1f}" fill="{MUTED}" '
                   f'font-weight="bold">{escape(box.label)}</text></g>')
    for edge in scene.edges:
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in edge.points)
        out.append(f'<polyline class="edge" data-source="{escape(edge.source)}" data-target="{escape(edge.target)}" '
                   f'points="{points}" fill="none" stroke="{EDGE}" stroke-width="1.3" stroke-linejoin="round" '
                   f'marker-end="url(#arrow)"/>')
    for item in scene.items:
        fill, stroke = COLORS[item.kind]
        attrs = " ".join(f'data-{k}="{escape(v)}"' for k, v in _facts(scene, item).items())
        x0, y0 = item.x - item.w / 2, item.y - item.h / 2
        radius = item.h / 2 if item.kind in ("join", "input") else 6
        parts = [f'<g class="node" {attrs}><title>{escape(item.key)}</title>',
                 f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{item.w:.1f}" height="{item.h:.1f}" rx="{radius:.1f}" '
                 f'fill="{fill}" stroke="{stroke}" stroke-width="{2 if item.kind == "collapsed" else 1.2}"/>']
        for k, line in enumerate(_lines(item)):
            weight = ' font-weight="bold"' if k == 0 else ""
            color = TEXT if k == 0 else MUTED
            parts.append(f'<text x="{item.x:.1f}" y="{y0 + 4 + LINE_HEIGHT * (k + 0.8):.1f}" text-anchor="middle" '
                         f'fill="{color}"{weight}>{escape(line)}</text>')
        out.append("".join(parts) + "</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _lines(item: Item) -> list[str]:
    return ([item.title] if item.title else []) + item.lines


# ---------------------------------------------------------------------------------------------------
# PNG


def png(scene: Scene, scale: float = 2.0) -> bytes:
    """The picture as PNG bytes, `scale` pixels per SVG unit (drawn at twice that, then halved)."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    s = 2 * scale
    image = Image.new("RGB", (max(1, round(scene.width * s)), max(1, round(scene.height * s))), "#ffffff")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(_font_file(), size=round(12 * s))
    for box in scene.boxes:
        fill = BOX_FILLS[min(box.depth, len(BOX_FILLS) - 1)]
        draw.rounded_rectangle([box.x0 * s, box.y0 * s, box.x1 * s, box.y1 * s], radius=8 * s, fill=fill,
                               outline="#8c959f", width=max(1, round(s)))
        draw.text(((box.x0 + PAD) * s, (box.y0 + LABEL_HEIGHT - 4) * s), box.label, fill=MUTED, font=font,
                  anchor="ls")
    for edge in scene.edges:
        points = [(x * s, y * s) for x, y in edge.points]
        draw.line(points, fill=EDGE, width=max(1, round(1.3 * s)), joint="curve")
        _arrow_head(draw, points[-2], points[-1], s)
    for item in scene.items:
        fill, stroke = COLORS[item.kind]
        x0, y0 = item.x - item.w / 2, item.y - item.h / 2
        radius = item.h / 2 if item.kind in ("join", "input") else 6
        draw.rounded_rectangle([x0 * s, y0 * s, (x0 + item.w) * s, (y0 + item.h) * s], radius=radius * s,
                               fill=fill, outline=stroke, width=max(1, round((2 if item.kind == "collapsed" else 1.2) * s)))
        for k, line in enumerate(_lines(item)):
            draw.text((item.x * s, (y0 + 4 + LINE_HEIGHT * (k + 0.8)) * s), line, fill=TEXT if k == 0 else MUTED,
                      font=font, anchor="ms")
    image = image.resize((max(1, round(scene.width * scale)), max(1, round(scene.height * scale))),
                         Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _font_file() -> str:
    """DejaVu Sans, which matplotlib (a dependency) ships: it has every glyph the labels use (×, −, ÷)."""
    from pathlib import Path

    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")


def _arrow_head(draw, start: tuple[float, float], end: tuple[float, float], s: float) -> None:
    import math

    angle = math.atan2(end[1] - start[1], end[0] - start[0])
    size = 7 * s
    left = (end[0] - size * math.cos(angle - 0.4), end[1] - size * math.sin(angle - 0.4))
    right = (end[0] - size * math.cos(angle + 0.4), end[1] - size * math.sin(angle + 0.4))
    draw.polygon([end, left, right], fill=EDGE)


# ---------------------------------------------------------------------------------------------------
# DOT


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(scene: Scene) -> str:
    """Graphviz source: `dot -Tsvg graph.dot` draws it where Graphviz is installed (nothing here needs it)."""
    ids = {item.key: f"n{k}" for k, item in enumerate(scene.items)}
    shapes = {"input": "oval", "output": "box", "node": "box", "join": "circle", "collapsed": "box3d"}
    lines = [f"digraph {_quote(scene.model)} {{",
             f"  label={_quote(f'{scene.model} · {scene.params:,} params')}; labelloc=t; rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=11, style="rounded,filled"];',
             '  edge [color="#6e7781"];']
    children: dict[str | None, list] = {}
    for box in scene.boxes:
        children.setdefault(box.parent, []).append(box)
    members: dict[str | None, list[Item]] = {}
    for item in scene.items:
        members.setdefault(item.box, []).append(item)

    def emit(path: str | None, indent: str) -> None:
        for item in members.get(path, []):
            fill, stroke = COLORS[item.kind]
            label = "\n".join(_lines(item))
            lines.append(f"{indent}{ids[item.key]} [label={_quote(label)}, shape={shapes[item.kind]}, "
                         f'fillcolor="{fill}", color="{stroke}", tooltip={_quote(item.key)}];')
        for box in children.get(path, []):
            lines.append(f"{indent}subgraph {_quote('cluster_' + box.path)} {{")
            lines.append(f'{indent}  label={_quote(box.label)}; style="rounded,dashed"; '
                         f'fillcolor="{BOX_FILLS[min(box.depth, len(BOX_FILLS) - 1)]}"; bgcolor="{BOX_FILLS[0]}";')
            emit(box.path, indent + "  ")
            lines.append(f"{indent}}}")

    emit(None, "  ")
    for edge in scene.edges:
        lines.append(f"  {ids[edge.source]} -> {ids[edge.target]};")
    lines.append("}")
    return "\n".join(lines) + "\n"



FORMATS = ("svg", "png", "dot")


def picture(graph, fmt: str = "svg", depth: int | None = None) -> str | bytes:
    """The graph drawn in `fmt` (one of FORMATS): text for svg and dot, bytes for png."""
    from mdl.compiler.viz_scene import scene

    if fmt not in FORMATS:
        raise ValueError(f"unknown picture format {fmt!r}; expected one of {list(FORMATS)}")
    laid_out = scene(graph, depth)
    return {"svg": svg, "png": png, "dot": dot}[fmt](laid_out)


__all__ = ["FORMATS", "dot", "picture", "png", "svg"]
