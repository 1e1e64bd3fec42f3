"""The shape of the code itself, measured from its own source (issue 13).

- no import circle among `mdl`'s modules, function-local imports included;
- no import climbs a layer: `mdl.dsl` < `mdl.compiler` < `mdl.runtime`, `mdl.lsp` < `mdl.cli`
  (`runtime` and `lsp` do not import each other);
- the language server's feature modules import the server, `mdl.lsp.document` and the compiler, not
  each other;
- no module in `mdl/` over 700 lines, at most two functions over 80;
- one home per concept: the lowering table and `PRIMITIVES` name the same primitives, and the torch
  activations are exactly `ACTIVATIONS`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mdl

ROOT = Path(mdl.__file__).parent
LAYERS = {"dsl": 0, "compiler": 1, "runtime": 2, "lsp": 2, "cli": 3}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the `mdl` modules it imports anywhere in its body (`from pkg import sub` names `pkg.sub`)."""
    modules = _modules()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                found = owner(target) if target.split(".")[0] == "mdl" else None
                if found and found != module:
                    graph[module].add(found)
    return graph


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_import_graph_is_measured_from_the_code() -> None:
    graph = import_graph()
    assert "mdl.dsl.diagnostics" in graph["mdl.dsl.parser"]  # a module-level import
    assert "mdl.compiler.lower" in graph["mdl.compiler.api"]  # a function-local one
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_of_mdl_imports_itself_round_a_circle() -> None:
    assert _cycles(import_graph()) == []


def test_no_import_climbs_a_layer() -> None:
    climbs = []
    for module, targets in import_graph().items():
        here = _layer(module)
        for target in targets:
            there = _layer(target)
            if here and there and (LAYERS[there] > LAYERS[here] or (LAYERS[there] == LAYERS[here] and here != there)):
                climbs.append(f"{module} -> {target}")
    assert climbs == [], "imports that climb a layer (dsl < compiler < runtime, lsp < cli)"


def test_the_language_servers_features_import_the_server_and_the_compiler_not_each_other() -> None:
    from mdl.lsp.server import FEATURES

    features = {f"mdl.lsp.{name}" for name in FEATURES}
    graph = import_graph()
    assert {f: sorted(graph[f] & features) for f in features if graph[f] & features} == {}


def test_modules_and_functions_stay_readable() -> None:
    long_modules = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py")
                    if (n := len(p.read_text(encoding="utf-8").splitlines())) > 700}
    assert long_modules == {}
    long_functions = sorted(
        (node.end_lineno - node.lineno + 1, f"{p.relative_to(ROOT)}:{node.name}")
        for p in ROOT.rglob("*.py") for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 80)
    assert len(long_functions) <= 2, long_functions


def test_the_lowering_table_and_the_primitives_name_the_same_ops() -> None:
    from mdl.compiler.ops.lowering import LOWERING
    from mdl.compiler.primitives import PRIMITIVES

    assert sorted(LOWERING) == sorted(PRIMITIVES)


def test_every_lowering_row_names_real_torch_code() -> None:
    pytest.importorskip("torch")
    from mdl.compiler import lower
    from mdl.compiler.ops.lowering import LOWERING, Module

    for op, entry in LOWERING.items():
        target = lower._resolve(entry.cls if isinstance(entry, Module) else entry.fn)
        assert callable(target), op
        if isinstance(entry, Module):
            assert isinstance(target, type), op


def test_the_activations_are_listed_once() -> None:
    pytest.importorskip("torch")
    from mdl.compiler.ops import layers
    from mdl.compiler.primitives import ACTIVATIONS, PRIMITIVES

    assert tuple(layers.ACTIVATIONS) == ACTIVATIONS
    assert set(ACTIVATIONS) <= set(PRIMITIVES)
    assert PRIMITIVES["mlp"].arg("act").choices == ACTIVATIONS


def test_the_triton_kernels_have_a_code_for_every_activation() -> None:
    pytest.importorskip("triton")
    from mdl.compiler.kernels import grouped_gemm
    from mdl.compiler.primitives import ACTIVATIONS

    assert set(grouped_gemm.ACT_CODES) == set(ACTIVATIONS)  # the kernel's own encoding of the same names
