"""`mdlc viz`, first half: a picture's contents and positions, from the graph IR alone (DESIGN.md rule 1).

`scene(graph, depth=None)` turns a `Graph` into a `Scene`: one `Item` per drawn node (an IR node, or a
block or repeat collapsed into one item), the edges between items, and the boxes (block calls and
`repeat`s, nested as they are in the names) with their summed parameters. Boxes nested `depth` or more
levels deep (0: the top-level ones) are collapsed into one item that shows their parameters.

The positions come from grandalf's Sugiyama layout (pure Python, installed by pip with the package): a
layered drawing, top to bottom, with crossings reduced and long edges (the residual connections) routed
through dummy points around the nodes they skip. Graphviz's `dot` lays out better still but is a system
binary that `pip install` cannot bring (its Python packages only bind to it), so the `.dot` output is
text for users who have it, and nothing here runs it.

`mdl.compiler.viz_draw` writes a `Scene` as SVG, PNG or DOT. Neither module imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mdl.compiler.ir import Graph, Node

ARITHMETIC = frozenset({"add", "sub", "mul", "div"})  # drawn as small joins: residuals show as their inputs
SYMBOLS = {"add": "+", "sub": "−", "mul": "×", "div": "÷"}

CHAR_WIDTH = 7.2  # px per character of the 12 px label font (a generous average for sans-serif)
LINE_HEIGHT = 15.0
LABEL_HEIGHT = 18.0  # a box's title line
PAD = 10.0  # inside a box, around what it holds


@dataclass
class Item:
    """A drawn node. `kind`: "input", "output", "node", "join" (arithmetic) or "collapsed" (a box)."""

    key: str  # the IR node's name, or the collapsed box's path
    kind: str
    title: str
    lines: list[str]
    params: int
    ids: list[int]  # the IR nodes it stands for
    box: str | None = None  # path of the innermost open box it sits in
    x: float = 0.0  # centre
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0


@dataclass
class Box:
    """A block call or a `repeat` drawn open: a labelled rectangle around its items and inner boxes."""

    path: str
    label: str
    params: int
    depth: int
    parent: str | None
    x0: float = 0.0
    y0: float = 0.0
    x1: float = 0.0
    y1: float = 0.0


@dataclass
class Edge:
    source: str
    target: str
    points: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Scene:
    model: str
    params: int
    items: list[Item]
    edges: list[Edge]
    boxes: list[Box]  # outer boxes before inner ones
    width: float = 0.0
    height: float = 0.0


def scene(graph: Graph, depth: int | None = None) -> Scene:
    """The laid-out picture of `graph`; boxes at nesting `depth` or deeper are collapsed (None: none)."""
    boxes = _boxes(graph)
    collapsed = {p for p, b in boxes.items() if depth is not None and b.depth >= depth}
    items, item_of = _items(graph, boxes, collapsed)
    edges = _edges(graph, item_of)
    shown = [b for p, b in boxes.items() if not _inside(p, collapsed) and p not in collapsed]
    result = Scene(graph.model, graph.params, items, edges, shown)
    _layout(result)
    return result


def _inside(path: str, paths: set[str]) -> bool:
    """Whether `path` lies strictly inside one of `paths`."""
    return any(path.startswith(p + ".") for p in paths)


def _boxes(graph: Graph) -> dict[str, Box]:
    """Every block call and `repeat` of the graph, by path, outer ones first.

    A repeat is the name part before an iteration number (`layers` of `layers.0.encoder_layer.moe`); a
    block call is a `BlockCall` path. Iterations are not boxes of their own: a block inside one says its
    number in its label.
    """
    calls = {c.path: c for c in graph.calls}
    counts: dict[str, set[str]] = {}
    for node in graph.nodes:
        parts = node.name.split(".")
        for i in range(1, len(parts) - 1):
            if parts[i].isdigit():
                counts.setdefault(".".join(parts[:i]), set()).add(parts[i])
    paths = sorted(set(counts) | set(calls), key=lambda p: (p.count("."), p))
    found: dict[str, Box] = {}
    for path in paths:
        parent = next((q for q in sorted(found, key=len, reverse=True) if path.startswith(q + ".")), None)
        level = 0 if parent is None else found[parent].depth + 1
        params = sum(n.params for n in graph.nodes_in(path))
        if path in calls:
            label = calls[path].block
            numbers = [part for part in path.split(".") if part.isdigit()]
            if numbers:
                label += f" [{', '.join(numbers)}]"
        else:
            label = f"repeat {path.rsplit('.', 1)[-1]} × {len(counts[path])}"
        found[path] = Box(path, f"{label} · {params:,} params", params, level, parent)
    return found  # parents before children: fewer dots first


def _owner(name: str, boxes: dict[str, Box]) -> str | None:
    """The innermost box whose path is a prefix of the node name."""
    best = None
    for path in boxes:
        if name.startswith(path + ".") and (best is None or len(path) > len(best)):
            best = path
    return best


def _label_width(title: str, lines: list[str]) -> float:
    return max(len(s) for s in [title, *lines]) * CHAR_WIDTH + 2 * PAD


def _shape(node: Node) -> str:
    return "[" + ", ".join(str(d) for d in node.type.shape) + "]"


def _facts(node: Node) -> list[str]:
    """A node's lines under its op: the output shape, and its parameters when it has any."""
    return [_shape(node)] + ([f"{node.params:,} params"] if node.params else [])


def _items(graph: Graph, boxes: dict[str, Box], collapsed: set[str]) -> tuple[list[Item], dict[int, Item]]:
    outputs = {i: name for name, i in graph.outputs.items()}
    items: list[Item] = []
    item_of: dict[int, Item] = {}
    folded: dict[str, Item] = {}
    for node in graph.nodes:
        top = next((p for p in collapsed if node.name.startswith(p + ".") and not _inside(p, collapsed)), None)
        if top is not None:  # inside a collapsed box: the box's item stands for it
            item = folded.get(top)
            if item is None:
                box = boxes[top]
                item = folded[top] = Item(top, "collapsed", box.label.split(" · ")[0], [], box.params, [],
                                          box.parent)
                items.append(item)
            item.ids.append(node.id)
            item.lines = [_shape(node), f"{item.params:,} params"]  # the last node's shape: the box's output
            item_of[node.id] = item
            continue
        box = _owner(node.name, boxes)
        if node.op == "input":
            item = Item(node.name, "input", f"input {node.name}", [str(node.type)], 0, [node.id], box)
        elif node.id in outputs:
            item = Item(node.name, "output", f"output {outputs[node.id]} · {node.op}", _facts(node),
                        node.params, [node.id], box)
        elif node.op in ARITHMETIC:
            item = Item(node.name, "join", SYMBOLS[node.op], [_shape(node)], 0, [node.id], box)
        else:
            item = Item(node.name, "node", node.op, _facts(node), node.params, [node.id], box)
        items.append(item)
        item_of[node.id] = item
    for item in items:
        if item.kind == "join":
            item.w, item.h = max(36.0, _label_width("", item.lines)), 2 * LINE_HEIGHT + 6
        else:
            item.w, item.h = _label_width(item.title, item.lines), (1 + len(item.lines)) * LINE_HEIGHT + 8
    return items, item_of


def _edges(graph: Graph, item_of: dict[int, Item]) -> list[Edge]:
    seen: set[tuple[str, str]] = set()
    edges: list[Edge] = []
    for node in graph.nodes:
        for source in node.inputs:
            pair = (item_of[source].key, item_of[node.id].key)
            if pair[0] != pair[1] and pair not in seen:
                seen.add(pair)
                edges.append(Edge(*pair))
    return edges


class _View:
    """grandalf's vertex view: it reads w and h and writes xy."""

    def __init__(self, w: float, h: float):
        self.w, self.h, self.xy = w, h, (0.0, 0.0)


class _EdgeView:
    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    def setpath(self, points) -> None:
        self.points = [(float(x), float(y)) for x, y in points]


def _layout(result: Scene) -> None:
    """Positions for every item, edge and box (grandalf per connected component, side by side)."""
    from grandalf.graphs import Edge as GEdge
    from grandalf.graphs import Graph as GGraph
    from grandalf.graphs import Vertex
    from grandalf.layouts import SugiyamaLayout

    deepest = max((b.depth + 1 for b in result.boxes), default=0)
    vertices = {item.key: Vertex(item) for item in result.items}
    for v in vertices.values():
        v.view = _View(v.data.w, v.data.h)
    gedges = []
    for edge in result.edges:
        e = GEdge(vertices[edge.source], vertices[edge.target], data=edge)
        e.view = _EdgeView()
        gedges.append(e)
    graph = GGraph(list(vertices.values()), gedges)
    offset = 0.0
    for component in graph.C:
        sugiyama = SugiyamaLayout(component)
        sugiyama.xspace = 24 + 2 * PAD * deepest
        sugiyama.yspace = 24 + (LABEL_HEIGHT + PAD) * min(deepest, 2)  # a block in a repeat: two labels
        sugiyama.init_all()
        sugiyama.draw()
        left = min(v.view.xy[0] - v.view.w / 2 for v in component.sV)
        for v in component.sV:
            v.data.x, v.data.y = v.view.xy[0] - left + offset, v.view.xy[1]
        for e in component.sE:
            e.data.points = [(x - left + offset, y) for x, y in e.view.points]
        offset = max(v.data.x + v.data.w / 2 for v in component.sV) + sugiyama.xspace
    for edge in result.edges:  # from the source's bottom edge to the target's top edge
        source, target = vertices[edge.source].data, vertices[edge.target].data
        inner = edge.points[1:-1]
        edge.points = [(source.x, source.y + source.h / 2), *inner, (target.x, target.y - target.h / 2)]
    _fit_boxes(result)
    _shift(result)


def _fit_boxes(result: Scene) -> None:
    """Each box around its items and inner boxes (inner ones first), with room for its label on top."""
    for box in sorted(result.boxes, key=lambda b: -b.depth):
        members = [i for i in result.items if i.box == box.path]
        inner = [b for b in result.boxes if b.parent == box.path]
        xs0 = [i.x - i.w / 2 for i in members] + [b.x0 for b in inner]
        xs1 = [i.x + i.w / 2 for i in members] + [b.x1 for b in inner]
        ys0 = [i.y - i.h / 2 for i in members] + [b.y0 for b in inner]
        ys1 = [i.y + i.h / 2 for i in members] + [b.y1 for b in inner]
        if not xs0:  # a box whose nodes all sit in collapsed boxes is not shown (cannot happen open)
            continue
        label = len(box.label) * CHAR_WIDTH + 2 * PAD
        box.x0, box.x1 = min(xs0) - PAD, max(max(xs1) + PAD, min(xs0) - PAD + label)
        box.y0, box.y1 = min(ys0) - PAD - LABEL_HEIGHT, max(ys1) + PAD


def _shift(result: Scene) -> None:
    """Moves everything so the picture starts at a margin from (0, 0), and records its size."""
    margin = 12.0
    xs = [i.x - i.w / 2 for i in result.items] + [b.x0 for b in result.boxes]
    ys = [i.y - i.h / 2 for i in result.items] + [b.y0 for b in result.boxes]
    dx, dy = margin - min(xs, default=0.0), margin - min(ys, default=0.0)
    for item in result.items:
        item.x, item.y = item.x + dx, item.y + dy
    for edge in result.edges:
        edge.points = [(x + dx, y + dy) for x, y in edge.points]
    for box in result.boxes:
        box.x0, box.x1, box.y0, box.y1 = box.x0 + dx, box.x1 + dx, box.y0 + dy, box.y1 + dy
    xe = [i.x + i.w / 2 for i in result.items] + [b.x1 for b in result.boxes]
    ye = [i.y + i.h / 2 for i in result.items] + [b.y1 for b in result.boxes]
    result.width, result.height = max(xe, default=0.0) + margin, max(ye, default=0.0) + margin


__all__ = ["Box", "Edge", "Item", "Scene", "scene"]
