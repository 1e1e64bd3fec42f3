"""The `.json` export: the IR (`Graph.to_json()`: every node's op, inputs, attributes, shape, dtype,
parameters and source span) with a format `version`, the architecture hash and the totals.

It is verified against the JSON Schema `IR_SCHEMA` (also `docs/ir.schema.json`, kept equal by a test)
with the `jsonschema` package when it is installed (a structural check otherwise), and the
architecture hash is recomputed from the written file (`ir_json_hash`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mdl.compiler.ir import ir_architecture_hash
from mdl.runtime.export.common import Source, Written, check

JSON_VERSION = 1

# -------------------------------------------------------------------------------------- JSON schema
_SPAN = {
    "type": "object",
    "required": ["file", "line", "column", "end_line", "end_column"],
    "properties": {
        "file": {"type": ["string", "null"]},
        "line": {"type": "integer", "minimum": 0},
        "column": {"type": "integer", "minimum": 0},
        "end_line": {"type": "integer", "minimum": 0},
        "end_column": {"type": "integer", "minimum": 0},
    },
}
_DIM = {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "minLength": 1}]}
IR_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://mdl.invalid/schemas/ir.schema.json",
    "title": "mdl graph IR export",
    "description": "The graph IR of one compiled model, as written by `mdlc export --format json`: one node "
                   "per primitive, in topological order, with its shape, dtype, parameter count and source span.",
    "type": "object",
    "required": ["format", "version", "model", "architecture_hash", "params", "args", "inputs", "outputs",
                 "nodes", "calls"],
    "properties": {
        "format": {"const": "mdl-ir"},
        "version": {"const": JSON_VERSION},
        "model": {"type": "string", "minLength": 1},
        "architecture_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "params": {"type": "integer", "minimum": 0},
        "flops": {"type": ["integer", "null"], "minimum": 0},
        "source_name": {"type": ["string", "null"]},
        "args": {"type": "object"},
        "inputs": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "outputs": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "nodes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "name", "op", "inputs", "attrs", "dtype", "shape", "params", "flops",
                             "scope", "span"],
                "properties": {
                    "id": {"type": "integer", "minimum": 0},
                    "name": {"type": "string", "minLength": 1},
                    "op": {"type": "string", "minLength": 1},
                    "inputs": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "attrs": {"type": "object"},
                    "dtype": {"enum": ["float", "int"]},
                    "shape": {"type": "array", "items": _DIM},
                    "params": {"type": "integer", "minimum": 0},
                    "flops": {"type": ["integer", "null"], "minimum": 0},
                    "scope": {"type": "array", "items": {"type": "string"}},
                    "span": _SPAN,
                },
            },
        },
        "calls": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "block", "line"],
                "properties": {"path": {"type": "string"}, "block": {"type": "string"},
                               "line": {"type": "integer", "minimum": 0}},
            },
        },
    },
}


def ir_document(compiled, source_name: str | None = None) -> dict[str, Any]:
    """The `.json` export of a compiled model: `Graph.to_json()` with a format, version, hash and totals."""
    graph = compiled.ir
    return {"format": "mdl-ir", "version": JSON_VERSION, "model": graph.model,
            "architecture_hash": compiled.architecture_hash, "params": graph.params, "flops": compiled.flops,
            "source_name": source_name, **graph.to_json()}


def ir_json_hash(ir: dict[str, Any]) -> str:
    """The architecture hash computed from an IR in its JSON form (equal to `graph.architecture_hash()`)."""
    return ir_architecture_hash(ir)


def write(src: Source, path: Path, moe: str, compare) -> Written:
    """Write `src`'s IR document and check it parses, matches the schema and gives back the hash."""
    from mdl.files import write_text_atomic

    document = ir_document(src.compiled, src.source_name)
    write_text_atomic(path, json.dumps(document, indent=1) + "\n")
    try:
        written = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        return [check("parses as JSON", False, str(exc))], {}
    checks = [check("parses as JSON", True, "UTF-8 JSON")]
    problems, validator = validate_ir_document(written)
    checks.append(check(f"matches docs/ir.schema.json ({validator})", not problems,
                        "valid" if not problems else "; ".join(problems[:3])))
    if not problems:
        recomputed = ir_json_hash(written)
        checks.append(check("architecture hash from the file", recomputed == src.compiled.architecture_hash,
                            recomputed[:16]))
    return checks, {}


def validate_ir_document(document: Any) -> tuple[list[str], str]:
    """(problems, validator): against IR_SCHEMA with jsonschema if installed, else a structural check."""
    try:
        import jsonschema
    except ImportError:
        return _structural_check(document), "structural check"
    validator = jsonschema.Draft202012Validator(IR_SCHEMA)
    problems = [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                for e in validator.iter_errors(document)]
    return problems, "jsonschema"


def _structural_check(document: Any) -> list[str]:
    """The required keys, format and version, and each node's keys (without jsonschema)."""
    if not isinstance(document, dict):
        return ["(root): not an object"]
    problems = [f"(root): missing `{k}`" for k in IR_SCHEMA["required"] if k not in document]
    if document.get("format") != "mdl-ir" or document.get("version") != JSON_VERSION:
        problems.append("(root): not an mdl-ir document of this version")
    node_keys = IR_SCHEMA["properties"]["nodes"]["items"]["required"]
    for i, node in enumerate(document.get("nodes") or []):
        if not isinstance(node, dict):
            problems.append(f"nodes/{i}: not an object")
            continue
        problems += [f"nodes/{i}: missing `{k}`" for k in node_keys if k not in node]
    return problems

