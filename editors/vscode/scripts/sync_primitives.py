"""Rewrite the grammar's primitive and builtin name lists from mdl.compiler.primitives.

The TextMate grammar highlights the primitive blocks as support.function.primitive.mdl; its list
must equal PRIMITIVES (tests/test_vscode_grammar.py fails when they drift). Run from the repository
root with the mdl package importable:

    python editors/vscode/scripts/sync_primitives.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mdl.compiler.primitives import BUILTINS, PRIMITIVES

GRAMMAR = Path(__file__).resolve().parent.parent / "syntaxes" / "mdl.tmLanguage.json"


def alternation(names) -> str:
    return "|".join(names)


def main() -> int:
    grammar = json.loads(GRAMMAR.read_text(encoding="utf-8"))
    repo = grammar["repository"]
    repo["primitive"]["match"] = r"(?<!\.)\b(?:" + alternation(PRIMITIVES) + r")\b"
    repo["builtin"]["match"] = r"\b(?:" + alternation(BUILTINS) + r")\b"
    GRAMMAR.write_text(json.dumps(grammar, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{GRAMMAR}: {len(PRIMITIVES)} primitives, {len(BUILTINS)} builtins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
