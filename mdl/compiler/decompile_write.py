"""Decompile's writer: the `.mdl` text of a whole design, from the IR read back.

`Writer.design` writes one `block` definition for every block the IR calls (a block after the blocks
it calls), each from a `Frame` over all its calls, then the model body with its outputs in the IR's
order, and the `repeat`s with their labels, counts and loop variables. The text is unformatted; the
public `decompile` (mdl.compiler.decompile) formats it and checks its hash. Imports no torch.
"""

from __future__ import annotations

from typing import Any

from mdl.compiler.decompile_frame import Frame
from mdl.compiler.decompile_read import KEYWORDS, DecompileError, IRNode, ParsedIR
from mdl.compiler.decompile_tree import (
    Call,
    TNode,
    TRepeat,
    block_order,
    calls_by_block,
    last_pos,
    node_ids,
    scope_tree,
    strip_suffix,
)
from mdl.compiler.decompile_values import kind_of, lit, num_or, same


class Writer:
    """Writes one design; what it learns of each block (parameters, results) its callers read."""

    def __init__(self, ir: ParsedIR):
        self.ir = ir
        self.reserved: set[str] = set(KEYWORDS)
        for n in ir.nodes:
            self.reserved.update(d for d in n.shape if isinstance(d, str))
            self.reserved.update(d for v in n.attrs.values() if isinstance(v, tuple) for d in v if isinstance(d, str))
            for part in n.name.split("."):
                self.reserved.add(strip_suffix(part))
        self.reserved.update(b for _, b in ir.calls)
        self.block_params: dict[str, list[str]] = {}  # static parameter names
        self.block_values: dict[str, dict[int, dict[str, Any]]] = {}  # per call id: name -> value
        self.block_result: dict[str, dict[int, int]] = {}  # per call id -> returned node id
        self.call_id: dict[int, int] = {}  # id(Call) -> instance index within its block
        self.model_params: dict[str, Any] = {}

    def input_name(self, node: IRNode) -> str:
        for name, i in self.ir.inputs.items():
            if i == node.id:
                return name
        raise DecompileError(f"input node `{node.name}` is not among the IR's inputs")

    # -- the whole design -------------------------------------------------------------------------
    def design(self, name: str) -> str:
        root = scope_tree(self.ir)
        by_block = calls_by_block(root)  # the calls of each block, innermost blocks first
        self._check_results(by_block)
        self.block_args: dict[int, list[int]] = {}  # id(Call) -> the node ids of its tensor arguments
        self.block_tensor_params: dict[str, list[str]] = {}
        # a block is written after the blocks it calls
        defs = [self._block_def(block, by_block[block]) for block in block_order(by_block)]
        body = self._model_body(root)
        header = ["# Decompiled from the graph IR of model "
                  f"`{self.ir.model}` by `mdlc decompile`: same architecture hash."]
        header.append("# Its compile-time arguments are written in as literals; a `repeat` over one keeps its name.")
        parts = ["\n".join(header), *defs]
        mparams = ", ".join(f"{k}: {kind_of({0: v})} = {lit(v)}" for k, v in self.model_params.items())
        parts.append(f"model {name}{'(' + mparams + ')' if mparams else ''} {{\n{body}\n}}")
        return "\n\n".join(parts) + "\n"

    def _check_results(self, by_block: dict[str, list[Call]]) -> None:
        """A block returns one value: at most one node of each call is read after the call ends."""
        last_use: dict[int, int] = {}
        for n in self.ir.nodes:
            for i in n.inputs:
                last_use[i] = n.id
        for i in self.ir.outputs.values():
            last_use[i] = len(self.ir.nodes)
        for calls in by_block.values():
            for call in calls:
                ids = node_ids(call.items)
                inside = set(ids)
                end = max(ids) if ids else -1
                escaped = {i for i in inside if last_use.get(i, -1) > end or
                           any(i in n.inputs for n in self.ir.nodes if n.id > end)}
                if len(escaped) > 1:
                    raise DecompileError(f"block call `{call.path}`: {len(escaped)} of its values are used after it;"
                                         " a block returns one")

    def _block_def(self, block: str, calls: list[Call]) -> str:
        """The `block` definition that all of `calls` are uses of; records its signature for the callers."""
        self.block_result[block] = {}
        for k, call in enumerate(calls):
            self.call_id[id(call)] = k
            ids = node_ids(call.items)
            end = max(ids) if ids else -1
            esc = [i for i in ids if any(i in n.inputs for n in self.ir.nodes if n.id > end)
                   or (i in self.ir.outputs.values())]
            if esc:
                self.block_result[block][k] = esc[0]
        where = f"block `{block}`"
        f = Frame(self, [c.items for c in calls], where, True, block)
        tparams, params, outside = f.tensor_params, f.params, f.outside
        for k, call in enumerate(calls):
            self.block_args[id(call)] = outside[k]
        if len({len(o) for o in outside}) > 1:
            raise DecompileError(f"{where}: its uses read different numbers of tensors")
        if not tparams:
            raise DecompileError(f"{where}: it reads no tensor")
        self.block_tensor_params[block] = tparams
        self.block_params[block] = list(params.values)
        self.block_values[block] = {k: {p: params.values[p][k] for p in params.values} for k in range(len(calls))}
        result_pos = f.result_pos if f.result_pos is not None else last_pos(f.template)
        ret = f.varname.get(result_pos) if result_pos is not None else tparams[0]
        if ret is None:
            raise DecompileError(f"{where}: its result has no name")
        kinds = {p: kind_of(params.values[p]) for p in params.values}
        sig = ", ".join(tparams + [f"{p}: {kinds[p]}" for p in params.values])
        body = self._emit_body(f, f.template, (), "    ", None)
        return f"block {block}({sig}) {{\n{body}\n    return {ret}\n}}"

    def _model_body(self, root: list) -> str:
        """The statements of the model, its outputs among them in the IR's order."""
        f = Frame(self, [root], "the model", False)
        renamed = self.renamed_outputs()
        outs = []
        for oname, oid in self.ir.outputs.items():
            if oid not in f.owner:
                raise DecompileError(f"output `{oname}` is a value inside a block that the block does not return")
            p = f.owner[oid][1]
            if oid in renamed and renamed[oid] == oname and p not in f.varname:
                outs.append([oname, p[0], p, None])
            else:
                outs.append([oname, p[0], None, f.varname[p]])
        # an output is written after the top-level step that makes its value, and after the one before it
        for k in range(1, len(outs)):
            if outs[k][2] is None and outs[k][1] < outs[k - 1][1]:
                outs[k][1] = outs[k - 1][1]
        return self._emit_body(f, f.template, (), "    ", outs)

    def renamed_outputs(self) -> dict[int, str]:
        """Outputs whose node was created by the output statement and renamed after it."""
        from mdl.compiler.ir import safe_name

        out: dict[int, str] = {}
        for name, i in self.ir.outputs.items():
            n = self.ir.nodes[i]
            if n.op != "input" and not n.path and n.name == safe_name(name) and i not in out:
                out[i] = name
        return out

    def _emit_body(self, f: Frame, template: list, pos: tuple, indent: str, outs: list | None) -> str:
        """The statements of a body; `outs` (model level only): the outputs still to write, in order,
        each [name, top-level index after which it can be written, position if renamed, variable]."""
        lines: list[str] = []
        for j, t in enumerate(template):
            p = (*pos, j)
            for line in f.pre.get(p, []):
                lines.append(indent + line)
            if isinstance(t, TRepeat):
                label = t.label_name  # type: ignore[attr-defined]
                count = t.count_text  # type: ignore[attr-defined]
                if label is None:
                    head = f"repeat {count}"
                elif count == label:
                    head = f"repeat {label}"
                elif not pos and label in self.ir.args and same(self.ir.args[label], num_or(count)):
                    self.model_params[label] = self.ir.args[label]
                    head = f"repeat {label}"
                else:
                    lines.append(f"{indent}{label} = {count}")
                    head = f"repeat {label}"
                if t.var:
                    head += f" as {t.var}"
                inner = self._emit_body(f, t.body or [], p, indent + "    ", None)
                lines.append(f"{indent}{head} {{\n{inner}\n{indent}}}")
            elif isinstance(t, TNode) and t.op == "input":
                lines.append(indent + f.stmt[p])
            elif p in f.varname:
                lines.append(f"{indent}{f.varname[p]} = {f.stmt[p]}")
            else:  # a renamed output
                if not outs or outs[0][2] != p:
                    raise DecompileError("the outputs cannot be written in the IR's order")
                lines.append(f"{indent}output {outs.pop(0)[0]} = {f.stmt[p]}")
            while outs and outs[0][1] == j and outs[0][2] is None:
                oname, _, _, var = outs.pop(0)
                lines.append(f"{indent}output {oname} = {var}")
        for line in f.post.get(pos, []):
            lines.append(indent + line)
        if outs and not pos:
            raise DecompileError(f"output `{outs[0][0]}` cannot be written in the IR's order")
        return "\n".join(lines)
