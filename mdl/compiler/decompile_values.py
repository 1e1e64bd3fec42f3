"""Decompile's expressions: the text of a value, and of a value that differs between uses.

`lit` writes a literal the way the language reads it. `resolve` writes one expression for an attribute
that takes different values at different (instance, iteration..) coordinates: a literal where all
agree, a block parameter (`Params`) where instances differ, `a + b * i` or a sum of indicator terms
where iterations of a `repeat` differ. `fresh` picks names nothing else in the design uses. Imports
no torch.
"""

from __future__ import annotations

import json
import keyword
import math
import re
from typing import Any

from mdl.compiler.decompile_read import IDENT, KEYWORDS, DecompileError, ParsedIR
from mdl.compiler.decompile_tree import strip_suffix
from mdl.compiler.primitives import PRIMITIVES


def lit(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise DecompileError(f"the value {v!r} cannot be written in a design")
        return repr(v)
    if isinstance(v, str):
        if '"' in v or "\\" in v or "\n" in v:
            raise DecompileError(f"the string {v!r} cannot be written in a design")
        return f'"{v}"'
    if isinstance(v, tuple):
        return "[" + ", ".join(dim_text(x) for x in v) + "]"
    raise DecompileError(f"the value {v!r} cannot be written in a design")


def dim_text(v: Any) -> str:
    if isinstance(v, str):
        if not IDENT.match(v):
            raise DecompileError(f"the dimension {v!r} cannot be written in a design")
        return v
    return lit(v)


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


class Params:
    """The static parameters of a block being written: name -> value per instance."""

    def __init__(self, taken: set[str]):
        self.taken = taken
        self.values: dict[str, dict[int, Any]] = {}

    def new(self, prefer: str, values: dict[int, Any]) -> str:
        for name, have in self.values.items():
            if name.rstrip("0123456789") == prefer and have.keys() == values.keys() and all(
                    same(have[k], values[k]) for k in values):
                return name
        name = fresh(prefer, self.taken)
        self.values[name] = values
        return name


def fresh(prefer: str, taken: set[str]) -> str:
    name = prefer if IDENT.match(prefer) else "p"
    k = 1
    base = name
    while name in taken or name in KEYWORDS or keyword.iskeyword(name) or name in PRIMITIVES:
        k += 1
        name = f"{base}{k}"
    taken.add(name)
    return name


def resolve(vals: list[tuple[tuple, Any]], loopvars: list[str | None], prefer: str, params: Params | None,
             used: set[int], where: str) -> str:
    """An expression for a value that takes `vals` at (instance, i1, .., id) coordinates."""
    first = vals[0][1]
    if all(same(v, first) for _, v in vals):
        return lit(first)
    depth = len(vals[0][0]) - 1
    if all(isinstance(v, tuple) and len(v) == len(first) for _, v in vals):  # a list, item by item
        items = []
        for k in range(len(first)):
            col = [(c, v[k]) for c, v in vals]
            if isinstance(first[k], str):
                if not all(same(v, first[k]) for _, v in col):
                    raise DecompileError(f"{where}: `{prefer}` changes a symbolic size between uses")
                items.append(dim_text(first[k]))
            else:
                items.append(resolve(col, loopvars, prefer, params, used, where))
        return "[" + ", ".join(items) + "]"
    if depth == 0:
        if params is None:
            raise DecompileError(f"{where}: `{prefer}` takes several values")
        return params.new(prefer, {c[0]: v for c, v in vals})
    groups: dict[tuple, dict[int, Any]] = {}
    for c, v in vals:
        groups.setdefault(c[:-1], {})[c[-1]] = v
    by_iter_const = all(all(same(v, next(iter(g.values()))) for v in g.values()) for g in groups.values())
    if by_iter_const:
        return resolve([(c, g[0]) for c, g in groups.items()], loopvars[:-1], prefer, params, used, where)
    a_vals, b_vals = [], []
    affine = True
    for c, g in groups.items():
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in g.values()) or \
                sorted(g) != list(range(len(g))):
            raise DecompileError(f"{where}: `{prefer}` changes by iteration in a way a design cannot write")
        a = g[0]
        b = g[1] - g[0] if 1 in g else 0
        affine = affine and all(v == a + b * k for k, v in g.items())
        a_vals.append((c, a))
        b_vals.append((c, b))
    var = loopvars[-1]
    used.add(len(loopvars) - 1)
    if not affine:  # any values over i = 0..n-1: the sum of value_k * [i == k]
        n = max(len(g) for g in groups.values())
        terms = []
        for k in range(n):
            coef = resolve([(c, g.get(k, 0)) for c, g in groups.items()], loopvars[:-1], prefer, params, used,
                            where)
            if coef == "0":
                continue
            others = [j for j in range(n) if j != k]
            denom = math.prod(k - j for j in others)
            factors = " * ".join(f"({var} - {j})" if j else var for j in others)
            terms.append(f"{_paren(coef)} * ({factors} / {denom})" if others else coef)
        return " + ".join(terms) or "0"
    a_text = resolve(a_vals, loopvars[:-1], prefer, params, used, where)
    b_text = resolve(b_vals, loopvars[:-1], prefer + "_step", params, used, where)
    term = var if b_text == "1" else f"{_paren(b_text)} * {var}"
    return term if a_text == "0" else f"{_paren(a_text)} + {term}"


def _paren(text: str) -> str:
    return text if IDENT.match(text) or re.fullmatch(r"-?[0-9.e+-]+", text) else f"({text})"


def kind_of(values: dict[int, Any]) -> str:
    kinds = set()
    for v in values.values():
        if isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, int):
            kinds.add("int")
        elif isinstance(v, float):
            kinds.add("float")
        elif isinstance(v, str):
            kinds.add("str")
        elif isinstance(v, tuple):
            kinds.add("list")
        else:
            raise DecompileError(f"a block parameter would take {v!r}, which has no type")
    if len(kinds) != 1:
        raise DecompileError(f"a block parameter would take values of several types ({', '.join(sorted(kinds))})")
    return kinds.pop()


def lit_or_none(v: Any) -> str | None:
    try:
        return lit(v)
    except DecompileError:
        return None


def num_or(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def label_name(leaf: str, ir: ParsedIR, reserved: set[str]) -> str | None:
    """The name a `repeat` counts with so that its path part comes out as `leaf` (None: a literal)."""
    label = strip_suffix(leaf) if re.fullmatch(r".+_\d+", leaf) else leaf
    if label == "repeat":
        return None
    if label.startswith("_") and label.endswith("_"):
        label = label[:-1]
    if not IDENT.match(label) or label in KEYWORDS or keyword.iskeyword(label):
        raise DecompileError(f"a `repeat` labelled `{leaf}` cannot be written")
    return label
