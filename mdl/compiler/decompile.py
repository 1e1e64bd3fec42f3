"""Decompile: turn a model's graph IR back into a formatted `.mdl` design (`mdlc decompile`).

The result compiles to the same architecture hash as the IR it came from. Node names enter that hash,
and elaboration forms them from block-call paths, `repeat` labels and indices, ops and a `_k` suffix
for repeats (mdl.compiler.elaborate), so the design reproduces the structure the names record:

* each node's `scope` path is read back into nested block calls (`encoder_layer`) and `repeat`s
  (`layers.0.`); the IR's `calls` give each call's block name;
* every call of one block becomes one `block` definition: attributes that differ between its calls
  become block parameters, the tensors it reads from outside become its tensor parameters;
* the iterations of a `repeat` become one body: an attribute that changes by iteration is written
  `a + b * i` with the loop variable;
* each node is one statement (`h3 = h2 -> linear(out=4)`), in node order, so the `_k` suffixes come
  out as they went in; an output statement creates the node it names where the IR shows the node was
  renamed after the output (`policy`).

The text is compiled before it is returned and its hash compared: an IR that cannot be reproduced
raises DecompileError saying where it differs, never a wrong design. Imports no torch.

This module is the public face and the top-level flow; the steps are modules of their own, each
importing only the ones before it: `decompile_read` (the IR checked into records, and the shared
error), `decompile_tree` (scope paths into nested calls and repeats, instances merged into templates),
`decompile_values` (literals and expressions for values that differ between uses), `decompile_frame`
(one block's or the model's names and statements) and `decompile_write` (the design's text).
"""

from __future__ import annotations

from typing import Any

from mdl.compiler.decompile_read import IDENT, KEYWORDS, DecompileError, ParsedIR, graph_of, read_ir
from mdl.compiler.decompile_write import Writer


def decompile(ir: Any, name: str | None = None) -> str:
    """A formatted `.mdl` design of one model whose compilation has `ir`'s architecture hash.

    `ir` is a `Graph` or the dict of `Graph.to_json()` (what checkpoints and exports carry); `name`
    names the model (default: the IR's model name). Raises DecompileError for a malformed IR, or one
    that no design written this way reproduces (the message says where).
    """
    from mdl.compiler.api import architecture_hash, compile_source
    from mdl.dsl.diagnostics import CompileError
    from mdl.dsl.format import FormatError, format_source

    parsed = read_ir(ir)
    model = name or parsed.model
    if not IDENT.match(model) or model in KEYWORDS:
        raise DecompileError(f"`{model}` is not a model name")
    try:
        text = Writer(parsed).design(model)
    except RecursionError:
        raise DecompileError("the IR is nested too deeply to write") from None
    try:
        text = format_source(text)
    except FormatError as exc:
        raise DecompileError(f"internal error: the decompiled design does not parse: {exc}") from None
    want = architecture_hash(graph_of(parsed))
    try:
        got = compile_source(text, model)
    except CompileError as exc:
        first = exc.diagnostics[0] if getattr(exc, "diagnostics", None) else exc
        raise DecompileError(f"the decompiled design does not compile ({first}); "
                             "this IR cannot be reproduced") from None
    if architecture_hash(got.ir) != want:
        raise DecompileError(_difference(parsed, got.ir))
    return text


def _difference(ir: ParsedIR, graph) -> str:
    """Where a recompiled graph differs from the IR (for the error message)."""
    for a, b in zip(ir.nodes, graph.nodes, strict=False):
        if a.name != b.name or a.op != b.op or list(a.inputs) != list(b.inputs):
            return (f"this IR cannot be reproduced: node {a.id} is `{a.name}` ({a.op}) but the design "
                    f"compiles it as `{b.name}` ({b.op})")
        if a.dtype != b.type.dtype or [str(d) for d in a.shape] != [str(d) for d in b.type.shape]:
            return f"this IR cannot be reproduced: node `{a.name}` has type {a.dtype}{list(a.shape)}, " \
                   f"the design gives {b.type}"
    if len(ir.nodes) != len(graph.nodes):
        return f"this IR cannot be reproduced: {len(ir.nodes)} nodes, the design compiles to {len(graph.nodes)}"
    return "this IR cannot be reproduced: its attributes, inputs or outputs differ from the design's"


__all__ = ["DecompileError", "decompile"]
