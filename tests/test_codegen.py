"""mdl.compiler.codegen and `mdlc compile -o`: the standalone `.py` module of a design.

The lowered GraphModule is the oracle. For every example, every stdlib template, designs that use every
primitive (moe with top_k 1 and 2, with a capacity and without) and random valid designs: the generated
file, imported on its own, builds a model whose state-dict keys are the GraphModule's (same order),
loads its state dict with strict=True, and gives bit-identical outputs (torch.equal) at two batch sizes,
in eval mode and in train mode (the global RNG seeded alike before each run, so dropout draws the same
masks), and the same MoE auxiliary losses. The file imports only torch and math, is `ruff check` clean,
is the same text every time, and runs as a script without mdl.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
import torch
from hypothesis import HealthCheck, given, settings

from mdl.cli import main
from mdl.compiler.api import CompiledModel, compile_file, compile_source
from mdl.compiler.codegen import class_name, standalone_source
from mdl.compiler.lower import example_inputs, example_sizes
from mdl.compiler.primitives import PRIMITIVES
from mdl.dsl.diagnostics import CompileError
from mdl.testing.strategies import designs

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TEMPLATES = ROOT / "mdl" / "stdlib" / "templates"
DESIGN_FILES = sorted(p for p in EXAMPLES.rglob("*.mdl") if EXAMPLES / "errors" not in p.parents
                      and "model " in p.read_text(encoding="utf-8")) + sorted(TEMPLATES.glob("*.mdl"))
BATCHES = (1, 6)

# Designs that together use every primitive, every arithmetic form and the awkward module trees.
DESIGNS = {
    "dense": """
model Dense {
    input seq: float[B, 8, 16]
    input board: int[B, 4, 4]
    t = board -> flatten(start=1) -> embedding(vocab=12, dim=16) -> pos_encoding(kind="sinusoidal")
    s = seq -> pos_encoding -> layer_norm(eps=1e-3) -> attention(heads=2)
    s = s -> rms_norm -> relu -> linear(out=16, bias=false) -> gelu -> silu -> dropout(p=0.0)
    s = concat(s, t, dim=1)
    s = s -> mlp(hidden=32, act="relu") -> mlp(hidden=8, out=32, act="silu") -> glu -> tanh -> sigmoid
    s = -s * 2 + 1.5 - (s / 3) + (2 - s) * (s -> softmax(dim=1))
    f = s -> flatten(start=1, end=2) -> reshape(shape=[B, 24, 16]) -> max(dim=1)
    g = s -> sum(dim=-2) -> softmax
    h = concat(s -> mean(dim=1), f, g, dim=-1) -> reshape(shape=[B, -1])
    output policy = h -> linear(out=4)
    output value = h -> linear(out=1)
}
""",
    "moe": """
model Experts {
    input seq: float[B, 8, 16]
    input extra: float[B, T, 16]
    s = seq -> moe(experts=4, top_k=1, hidden=8, capacity=0.5)
    s = s -> moe(experts=3, top_k=2, hidden=8, capacity=none, act="relu")
    s = s -> moe(experts=2, top_k=2, hidden=8, act="tanh", capacity=1.0) -> mean(dim=1)
    e = extra -> pos_encoding(kind="sinusoidal") -> moe(experts=2, top_k=1, hidden=8, capacity=none) -> sum(dim=1)
    h = concat(s, e) -> moe(experts=4, top_k=2, hidden=16, act="sigmoid", capacity=1.25)
    output policy = h -> linear(out=4)
    output value = h -> linear(out=1)
}
""",
    "dropout": """
model Dropping {
    input seq: float[B, 8, 16]
    s = seq -> dropout(p=0.3) -> attention(heads=4, dropout=0.2) -> dropout(p=0.5)
    s = s -> moe(experts=4, top_k=2, hidden=8, capacity=0.5) -> mean(dim=1)
    output policy = s -> linear(out=4)
    output value = s -> linear(out=1)
}
""",
    "names": """
# Python's names, a model named like a generated class, nested repeats, and an unused value.
block stage(x, n: int) {
    repeat 2 { x = x -> linear(out=n) -> relu }
    return x
}
block torch(x) { return x -> layer_norm }
model MLP {
    input F: float[B, 8]
    input nn: float[B, 8]
    math = F + nn
    Tensor = math -> stage(n=8) -> torch
    repeat 2 as i { Tensor = Tensor -> torch -> stage(n=8) }
    repeat 2 { sum = Tensor -> linear(out=8) }
    output policy = Tensor -> linear(out=2)
    output value = sum -> linear(out=1)
    output getattr = nn
}
""",
}


# ------------------------------------------------------------------------------------------ helpers
def load_generated(path: Path) -> ModuleType:
    """Import the generated file by path: only its own code runs (no `__main__` block, no mdl)."""
    spec = importlib.util.spec_from_file_location(f"mdl_standalone_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def standalone_model(compiled: CompiledModel, folder: Path, source: str | None = None) -> torch.nn.Module:
    path = folder / f"{compiled.name.lower()}_standalone.py"
    path.write_text(standalone_source(compiled.ir, "design.mdl") if source is None else source, encoding="utf-8")
    return getattr(load_generated(path), class_name(compiled.ir))()


def assert_same_outputs(reference: torch.nn.Module, model: torch.nn.Module, compiled: CompiledModel) -> None:
    moe_names = [n.name for n in compiled.ir.nodes if n.op == "moe"]
    for training in (False, True):
        reference.train(training)
        model.train(training)
        for batch in BATCHES:
            inputs = example_inputs(compiled.ir, example_sizes(compiled.ir, batch),
                                    torch.Generator().manual_seed(batch))
            torch.manual_seed(batch)
            want = reference(*inputs)
            torch.manual_seed(batch)
            got = model(*inputs)
            mode = "train" if training else "eval"
            assert list(got) == list(want)
            for name in want:
                assert torch.equal(got[name], want[name]), f"output {name} differs ({mode} mode, batch {batch})"
            for name in moe_names:
                assert torch.equal(model.get_submodule(name).aux_loss, reference.get_submodule(name).aux_loss), (
                    f"aux_loss of {name} differs ({mode} mode, batch {batch})")


def assert_matches_lowered(compiled: CompiledModel, folder: Path) -> str:
    """The generated model equals the lowered one: keys, loading, outputs. Returns the source."""
    source = standalone_source(compiled.ir, "design.mdl")
    model = standalone_model(compiled, folder, source)
    reference = compiled.module
    assert list(model.state_dict()) == list(reference.state_dict())
    model.load_state_dict(reference.state_dict(), strict=True)
    assert_same_outputs(reference, model, compiled)
    return source


def imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module is not None
            roots.add(node.module.split(".")[0])
    return roots


def names_used(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}


@pytest.fixture(scope="module")
def compiled_designs() -> dict[str, CompiledModel]:
    return {name: compile_source(text, path=f"{name}.mdl") for name, text in DESIGNS.items()}


# ------------------------------------------------------------------------------- bit-identical models
@pytest.mark.parametrize("path", DESIGN_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_example_matches_the_lowered_module(path: Path, tmp_path: Path) -> None:
    assert_matches_lowered(compile_file(path), tmp_path)


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_design_matches_the_lowered_module(name: str, compiled_designs: dict[str, CompiledModel],
                                           tmp_path: Path) -> None:
    assert_matches_lowered(compiled_designs[name], tmp_path)


def test_the_designs_cover_every_primitive(compiled_designs: dict[str, CompiledModel]) -> None:
    ops = {n.op for c in compiled_designs.values() for n in c.ir.nodes}
    assert set(PRIMITIVES) | {"add", "sub", "mul", "div", "neg"} <= ops
    moes = [n.attrs for c in compiled_designs.values() for n in c.ir.nodes if n.op == "moe"]
    assert {m["top_k"] for m in moes} >= {1, 2}
    assert None in {m["capacity"] for m in moes} and any(m["capacity"] is not None for m in moes)
    scalars = [n.attrs for c in compiled_designs.values() for n in c.ir.nodes if "scalar" in n.attrs]
    assert {a["scalar_first"] for a in scalars} == {True, False}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs().map(lambda d: d.source))
def test_random_designs_match_the_lowered_module(source: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        assert_matches_lowered(compile_source(source), Path(folder))


def test_keyword_and_numeric_module_names(compiled_designs: dict[str, CompiledModel], tmp_path: Path) -> None:
    """Module paths that are Python keywords or numbers at the top level (the elaborator makes neither
    today) are reached with getattr; the state dict, renamed alike, loads and computes the same."""
    compiled = compiled_designs["names"]
    renames = {"stage": "pass", "repeat": "0", "torch": "class"}

    def rename(name: str) -> str:
        first, _, rest = name.partition(".")
        return f"{renames.get(first, first)}.{rest}" if rest else renames.get(first, first)

    graph = copy.deepcopy(compiled.ir)
    for node in graph.nodes:
        node.name = rename(node.name)
    renamed = CompiledModel(compiled.name, graph, compiled.source, compiled.path)
    source = standalone_source(graph)
    assert 'getattr(self, "pass")' in source and 'getattr(self, "0")' in source
    model = standalone_model(renamed, tmp_path, source)
    reference = compiled.module
    state = {rename(k): v for k, v in reference.state_dict().items()}
    assert list(model.state_dict()) == list(state)
    model.load_state_dict(state, strict=True)
    assert_same_outputs(reference, model, compiled)


# -------------------------------------------------------------------------------- the file's text
def test_cartpole_reads_like_the_design(tmp_path: Path) -> None:
    compiled = compile_file(EXAMPLES / "cartpole_mlp.mdl")
    source = standalone_source(compiled.ir, "examples/cartpole_mlp.mdl")
    assert source.startswith('"""CartPoleMlp: a standalone PyTorch module generated by mdl')
    assert "from examples/cartpole_mlp.mdl" in source.splitlines()[0]
    assert f"Architecture hash: {compiled.architecture_hash}" in source
    assert 'model.load_state_dict(torch.load("weights.pt", weights_only=True))' in source
    assert "class CartPoleMlp(nn.Module):" in source
    assert "    def forward(self, obs: Tensor) -> dict[str, Tensor]:" in source
    forward = source[source.index("    def forward"):source.index("\n\n\nif __name__")]
    body = [line.strip() for line in forward.splitlines()[1:]]
    assert body == [
        "linear = self.linear(obs)  # float[B, 64]",
        "tanh = torch.tanh(linear)  # float[B, 64]",
        "linear_1 = self.linear_1(tanh)  # float[B, 64]",
        "tanh_1 = torch.tanh(linear_1)  # float[B, 64]",
        "policy = self.policy(tanh_1)  # float[B, 2]",
        "value = self.value(tanh_1)  # float[B, 1]",
        'return {"policy": policy, "value": value}',
    ]
    assert "Scope" not in source and "math" not in names_used(source)  # only what the design needs


def test_one_line_per_node_in_ir_order(compiled_designs: dict[str, CompiledModel]) -> None:
    for compiled in compiled_designs.values():
        source = standalone_source(compiled.ir)
        model = next(c for c in ast.parse(source).body
                     if isinstance(c, ast.ClassDef) and c.name == class_name(compiled.ir))
        forward = next(f for f in model.body if isinstance(f, ast.FunctionDef) and f.name == "forward")
        assert len(forward.body) == len(compiled.ir.nodes) - len(compiled.ir.inputs) + 1
        assert [a.arg for a in forward.args.args[:1]] == ["self"]
        assert len(forward.args.args) == 1 + len(compiled.ir.inputs)
    # A value the design never uses (a warning in mdl) is computed and dropped, so ruff has no F841.
    assert "        _ = self.repeat_1[0].linear(" in standalone_source(compiled_designs["names"].ir)


@pytest.mark.parametrize("path", DESIGN_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_imports_only_torch_and_math(path: Path) -> None:
    source = standalone_source(compile_file(path).ir, str(path))
    assert imported_roots(source) <= {"torch", "math"}
    assert not names_used(source) & {"mdl", "exec", "eval", "__import__", "importlib", "open"}


def test_designs_import_only_torch_and_math(compiled_designs: dict[str, CompiledModel]) -> None:
    for compiled in compiled_designs.values():
        source = standalone_source(compiled.ir)
        assert imported_roots(source) <= {"torch", "math"}
        assert "mdl" not in names_used(source)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_generated_files_are_ruff_clean(compiled_designs: dict[str, CompiledModel], tmp_path: Path) -> None:
    compiled = [compile_file(p) for p in DESIGN_FILES] + list(compiled_designs.values())
    for k, c in enumerate(compiled):
        (tmp_path / f"model_{k}.py").write_text(standalone_source(c.ir, "design.mdl"), encoding="utf-8")
    for rules in ([], ["--select", "E,F,W,I,UP,B"]):  # ruff's defaults; the pycodestyle, pyflakes, isort rules
        result = subprocess.run(["ruff", "check", "--isolated", "--no-cache", *rules, "--line-length", "200",
                                 str(tmp_path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_same_design_same_text() -> None:
    path = EXAMPLES / "moe_2048.mdl"
    first = standalone_source(compile_file(path).ir, "examples/moe_2048.mdl")
    assert standalone_source(compile_file(path).ir, "examples/moe_2048.mdl") == first
    script = ("import sys; from mdl.compiler.api import compile_file; from mdl.compiler.codegen import "
              "standalone_source; sys.stdout.write(standalone_source(compile_file(sys.argv[1]).ir, sys.argv[2]))")
    for seed in ("1", "2"):  # another process, another hash seed: still the same text
        result = subprocess.run([sys.executable, "-c", script, str(path), "examples/moe_2048.mdl"],
                                capture_output=True, text=True, check=True,
                                env={**os.environ, "PYTHONHASHSEED": seed})
        assert result.stdout == first


def test_header_survives_odd_file_names(compiled_designs: dict[str, CompiledModel]) -> None:
    source = standalone_source(compiled_designs["dense"].ir, 'C:\\designs\\"quoted"\n""".mdl')
    ast.parse(source)
    assert ast.get_docstring(ast.parse(source)).startswith("Dense: a standalone PyTorch module")


def test_an_op_without_code_is_an_internal_error(compiled_designs: dict[str, CompiledModel]) -> None:
    graph = copy.deepcopy(compiled_designs["dense"].ir)
    node = next(n for n in graph.nodes if n.op == "tanh")
    node.op = "frobnicate"
    with pytest.raises(CompileError) as info:
        standalone_source(graph)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "E0901" and diagnostic.span == node.span
    assert "frobnicate" in diagnostic.message and diagnostic.help


# ------------------------------------------------------------------------------------------- the CLI
def test_compile_output_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model.py"
    assert main(["compile", str(EXAMPLES / "cartpole_mlp.mdl"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed.replace("\n", "") and "params" in printed
    assert out.read_text(encoding="utf-8") == standalone_source(
        compile_file(EXAMPLES / "cartpole_mlp.mdl").ir, str(EXAMPLES / "cartpole_mlp.mdl"))
    assert [p.name for p in tmp_path.iterdir()] == ["model.py"]  # no temporary file left behind


def test_compile_output_with_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model.py"
    assert main(["compile", str(EXAMPLES / "fast_2048.mdl"), "--json", "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["model"] == "Fast2048"
    assert "wrote" in captured.err and out.is_file()


def test_compile_output_errors_are_diagnostics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.mdl"
    bad.write_text("model M {\n    input x: float[B, 4]\n    output policy = x -> linar(out=2)\n}\n", encoding="utf-8")
    out = tmp_path / "model.py"
    assert main(["compile", str(bad), "-o", str(out)]) == 1
    assert "linar" in capsys.readouterr().err and not out.exists()

    missing = tmp_path / "no" / "such" / "dir" / "model.py"
    assert main(["compile", str(EXAMPLES / "cartpole_mlp.mdl"), "-o", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err
    assert main(["compile", str(EXAMPLES / "cartpole_mlp.mdl"), "-o", str(tmp_path)]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_mdlc_output_runs_without_mdl(tmp_path: Path) -> None:
    """`mdlc compile examples/moe_2048.mdl -o out.py`, then `python out.py` with mdl made unimportable."""
    out = tmp_path / "out.py"
    subprocess.run([sys.executable, "-m", "mdl.cli", "compile", str(EXAMPLES / "moe_2048.mdl"), "-o", str(out)],
                   check=True, capture_output=True, text=True, cwd=tmp_path)
    run = ("import runpy, sys; sys.modules['mdl'] = None; "  # any `import mdl` would now fail
           f"runpy.run_path({str(out)!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["policy (2, 4)", "value (2, 1)"]
