"""Decompile's middle step: the IR's flat node list as the nested calls and repeats that made it.

`scope_tree` reads each node's scope path back into nested `Call`s (`encoder_layer`) and `Repeat`s
(`layers.0.`), in node order. A frame to write (the model body, or one block) has many instances
(every call of a block, every iteration of a repeat); `merge` folds them into one template of
`TNode` / `TCall` / `TRepeat` items, each listing its executions at their (instance, iteration..)
coordinates, and refuses instances that differ in structure. The helpers at the end walk these trees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mdl.compiler.decompile_read import DecompileError, IRNode, ParsedIR


# ------------------------------------------------------------------------------- the concrete tree
@dataclass
class Call:
    path: str
    block: str
    items: list = field(default_factory=list)


@dataclass
class Repeat:
    base: str  # full path of the repeat's base, e.g. "layers" or "enc.n_1"
    iters: list = field(default_factory=list)  # list of item lists


def scope_tree(ir: ParsedIR) -> list:
    """The model body as nested IRNode / Call / Repeat items, from the nodes' scope paths."""
    block_of = dict(ir.calls)
    root: list = []
    # the open containers: (key, item list); key is a call path or (repeat base, iteration)
    stack: list[tuple[Any, list, Any]] = [("", root, None)]
    for node in ir.nodes:
        frames = _frames(node.path, block_of)
        # keep the common prefix of the open stack
        depth = 0
        while depth < len(frames) and depth + 1 < len(stack) and stack[depth + 1][0] == frames[depth]:
            depth += 1
        del stack[depth + 1:]
        for key in frames[depth:]:
            parent = stack[-1][1]
            if isinstance(key, tuple):  # (repeat base, iteration)
                base, it = key
                rep = parent[-1] if parent and isinstance(parent[-1], Repeat) and parent[-1].base == base else None
                if rep is None:
                    if it != 0 or any(isinstance(x, Repeat) and x.base == base for x in parent):
                        raise DecompileError(f"node `{node.name}`: `repeat` {base} is not contiguous")
                    rep = Repeat(base)
                    parent.append(rep)
                if it != len(rep.iters):
                    raise DecompileError(f"node `{node.name}`: iteration {it} of `{base}` out of order")
                rep.iters.append([])
                stack.append((key, rep.iters[-1], rep))
            else:
                if any(isinstance(x, Call) and x.path == key for x in parent):
                    raise DecompileError(f"node `{node.name}`: block call `{key}` is not contiguous")
                call = Call(key, block_of.get(key) or strip_suffix(key.rpartition(".")[2]))
                parent.append(call)
                stack.append((key, call.items, call))
        stack[-1][1].append(node)
    return root


def _frames(path: str, block_of: dict[str, str]) -> list:
    if not path:
        return []
    parts = path.split(".")
    frames: list = []
    i = 0
    while i < len(parts):
        prefix = ".".join(parts[:i + 1])
        if i + 1 < len(parts) and parts[i + 1].isdigit() and prefix not in block_of:
            frames.append((prefix, int(parts[i + 1])))
            i += 2
        else:
            frames.append(prefix)
            i += 1
    return frames


def strip_suffix(leaf: str) -> str:
    m = re.fullmatch(r"(.+?)_\d+", leaf)
    return m.group(1) if m else leaf


# --------------------------------------------------------------------------------------- templates
@dataclass
class TNode:
    op: str
    node: IRNode  # the first execution (for input declarations)
    execs: list = field(default_factory=list)  # (coords, IRNode)


@dataclass
class TCall:
    block: str
    execs: list = field(default_factory=list)  # (coords, Call)


@dataclass
class TRepeat:
    label: str
    body: list
    execs: list = field(default_factory=list)  # (coords, Repeat)
    var: str | None = None


def merge(template: list | None, items: list, coords: tuple, where: str) -> list:
    """Add one execution of a body (`items`, at iteration coordinates `coords`) to its template."""
    if template is None:
        template = []
        for it in items:
            if isinstance(it, IRNode):
                template.append(TNode(it.op, it))
            elif isinstance(it, Call):
                template.append(TCall(it.block))
            else:
                template.append(TRepeat(_label_leaf(it.base), None))
    if len(template) != len(items):
        raise DecompileError(f"{where}: its uses differ in structure ({len(template)} and {len(items)} steps)")
    for t, it in zip(template, items, strict=True):
        if (isinstance(t, TNode) and isinstance(it, IRNode) and t.op == it.op and (
                it.op != "input" or (it.name, it.dtype, it.shape) == (t.node.name, t.node.dtype, t.node.shape))) or (isinstance(t, TCall) and isinstance(it, Call) and t.block == it.block):
            t.execs.append((coords, it))
        elif isinstance(t, TRepeat) and isinstance(it, Repeat) and t.label == _label_leaf(it.base):
            t.execs.append((coords, it))
            for k, body in enumerate(it.iters):
                t.body = merge(t.body, body, (*coords, k), where)
        else:
            raise DecompileError(f"{where}: its uses differ in structure")
    return template


def _label_leaf(base: str) -> str:
    return base.rpartition(".")[2]


# ------------------------------------------------------------------------------------------ walks
def calls_by_block(root: list) -> dict[str, list[Call]]:
    """Block name -> its calls, a call after the calls inside it."""
    by_block: dict[str, list[Call]] = {}

    def collect(items: list) -> None:
        for it in items:
            if isinstance(it, Call):
                collect(it.items)
                by_block.setdefault(it.block, []).append(it)
            elif isinstance(it, Repeat):
                for b in it.iters:
                    collect(b)

    collect(root)
    return by_block


def node_ids(items: list) -> list[int]:
    out: list[int] = []
    for it in items:
        if isinstance(it, IRNode):
            out.append(it.id)
        elif isinstance(it, Call):
            out += node_ids(it.items)
        else:
            for b in it.iters:
                out += node_ids(b)
    return out


def block_order(by_block: dict[str, list[Call]]) -> list[str]:
    inner: dict[str, set[str]] = {b: set() for b in by_block}

    def visit(items: list, into: set[str]) -> None:
        for it in items:
            if isinstance(it, Call):
                into.add(it.block)
            elif isinstance(it, Repeat):
                for b in it.iters:
                    visit(b, into)

    for b, calls in by_block.items():
        for c in calls:
            visit(c.items, inner[b])
    ordered: list[str] = []
    while len(ordered) < len(inner):
        ready = [b for b in inner if b not in ordered and inner[b] <= set(ordered)]
        if not ready:
            raise DecompileError("blocks call each other in a cycle")
        ordered.extend(ready)
    return ordered


def last_pos(template: list) -> tuple | None:
    for j in range(len(template) - 1, -1, -1):
        t = template[j]
        if isinstance(t, TRepeat):
            inner = last_pos(t.body or [])
            if inner is not None:
                return (j, *inner)
        else:
            return (j,)
    return None
