"""`mdlc export` / `mdl.export` / `mdl.load` (mdl.runtime.export) and `mdlc decompile`: every example in
every format, verified; runs and checkpoints as sources with their training metadata; and clear errors,
never a traceback, for corrupt, truncated, code-carrying, foreign and edited files."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from designs import TINY_2048

from mdl.cli import main
from mdl.compiler.api import compile_file
from mdl.compiler.check import analyze
from mdl.dsl import ast
from mdl.runtime import export as ex
from mdl.runtime.train import train

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.mdl"))  # examples/errors and examples/lib are not designs


def _models(path: Path) -> list[str]:
    analysis = analyze(path.read_text(encoding="utf-8"), str(path))
    assert analysis.ok, analysis.diagnostics
    return [n for n, d in analysis.scope.definitions.items() if isinstance(d, ast.Model)]


CASES = [(p, m) for p in EXAMPLES for m in _models(p)]
IDS = [f"{p.stem}:{m}" for p, m in CASES]

def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def outputs(module: torch.nn.Module, compiled) -> dict[str, torch.Tensor]:
    module.eval()
    with torch.no_grad():
        return module(*ex.verify_inputs(compiled.ir, batch=5, seed=3))


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tinypt")
    design = folder / "tiny.mdl"
    design.write_text(TINY_2048, encoding="utf-8")
    report = ex.export(design, "pt", seed=1)
    assert Path(report["path"]) == folder / "Tiny.pt"  # the default: <model>.<ext> next to the design
    return folder / "Tiny.pt"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exportrun")
    design = folder / "tiny.mdl"
    design.write_text(TINY_2048, encoding="utf-8")
    analysis = analyze(TINY_2048, str(design))
    summary = train(analysis.experiments["tiny"], TINY_2048, design, out_dir=folder / "runs", deterministic=True)
    assert summary["status"] == "completed"
    return folder / "runs" / "tiny" / "4"


# ------------------------------------------------------------------------------ every example, every format
@pytest.mark.parametrize("fmt", ["pt", "json", "py"])
@pytest.mark.parametrize(("path", "model"), CASES, ids=IDS)
def test_every_example_exports_and_verifies(tmp_path: Path, path: Path, model: str, fmt: str) -> None:
    report = ex.export(path, fmt, out=tmp_path / f"{model}.{fmt}", model=model)
    assert report["verification"]["ok"], report["verification"]
    assert report["bytes"] == (tmp_path / f"{model}.{fmt}").stat().st_size > 0
    assert report["architecture_hash"] == compile_file(path, model).architecture_hash
    assert {c["check"] for c in report["verification"]["checks"]}
    assert [p.name for p in tmp_path.iterdir()] == [f"{model}.{fmt}"]  # no temporary files left
    json.dumps(report)


def test_onnx_export_through_the_api_is_verified_and_atomic(tmp_path: Path) -> None:
    """Every example in both moe modes: tests/test_export_onnx.py. Here the `export` path: a temporary
    file renamed into place, and the checks of the report (LANGUAGE.md's example, fused)."""
    report = ex.export(ROOT / "examples" / "moe_2048.mdl", "onnx", out=tmp_path / "m.onnx")
    verification = report["verification"]
    assert verification["ok"], verification
    checks = {c["check"]: c for c in verification["checks"]}
    assert sum(verification["export"]["moe_nodes"].values()) == 2  # one node per moe
    assert checks["onnxruntime matches torch"]["ok"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_load_gives_the_exported_weights_and_outputs(tmp_path: Path) -> None:
    path = ROOT / "examples" / "transformer_2048.mdl"
    compiled = compile_file(path)
    torch.manual_seed(7)
    original = compiled.module
    report = ex.export(path, "pt", out=tmp_path / "t.pt", seed=7)
    loaded = ex.load(tmp_path / "t.pt")
    assert loaded.architecture_hash == compiled.architecture_hash == report["architecture_hash"]
    assert loaded.name == compiled.name and loaded.source == compiled.source
    assert not loaded.module.training
    for key, value in original.state_dict().items():
        assert torch.equal(value, loaded.module.state_dict()[key]), key
    want, got = outputs(original, compiled), outputs(loaded.module, loaded)
    for name in want:
        assert torch.equal(want[name], got[name])
    # The same seed draws the same weights; the API is the lazy `mdl.export` / `mdl.load`.
    import mdl

    assert mdl.load is ex.load and mdl.export is ex.export


def test_pt_carries_source_ir_hash_and_versions_and_loads_weights_only(tiny_pt: Path) -> None:
    payload = torch.load(tiny_pt, weights_only=True)
    assert payload["mdl_export"] == ex.PT_VERSION
    assert set(payload) == set(ex.PT_KEYS)
    assert payload["source"] == TINY_2048 and payload["source_name"] == "tiny.mdl"
    assert payload["model"] == "Tiny" and payload["training"] is None
    assert payload["ir"]["nodes"][0]["span"]["line"] == 2
    assert ex.ir_json_hash(payload["ir"]) == payload["architecture_hash"]
    assert {"mdl", "torch", "python"} <= set(payload["versions"])
    assert all(isinstance(v, torch.Tensor) for v in payload["weights"].values())


def test_a_design_with_file_imports_loads_from_its_pt_alone(tmp_path: Path) -> None:
    report = ex.export(ROOT / "examples" / "uses_file_import.mdl", "pt", out=tmp_path / "u.pt")
    payload = torch.load(tmp_path / "u.pt", weights_only=True)
    assert list(payload["imports"]) == ["lib/layers.mdl"]
    assert ex.load(tmp_path / "u.pt").architecture_hash == report["architecture_hash"]


def test_json_export_matches_the_schema_in_docs(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "docs" / "ir.schema.json").read_text(encoding="utf-8"))
    assert schema == ex.IR_SCHEMA  # the file in docs/ is the schema the export validates against
    jsonschema.Draft202012Validator.check_schema(schema)
    ex.export(ROOT / "examples" / "moe_2048.mdl", "json", out=tmp_path / "m.json")
    document = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    jsonschema.validate(document, schema)
    moe = next(n for n in document["nodes"] if n["op"] == "moe")
    assert moe["params"] > 0 and moe["shape"][0] == "B" and moe["span"]["file"].endswith("moe_2048.mdl")
    broken = {**document, "nodes": [{**document["nodes"][0], "shape": "B"}]}
    assert ex.validate_ir_document(broken)[0]


# ------------------------------------------------------------------------------------ runs and checkpoints
def test_a_run_exports_with_its_training_metadata(run_dir: Path, capsys) -> None:
    code, out, _ = cli(capsys, "export", str(run_dir), "--format", "pt")
    assert code == 0, out
    path = run_dir / "export" / "Tiny.pt"
    assert "verified" in out and path.is_file()
    payload = torch.load(path, weights_only=True)
    training = payload["training"]
    assert (training["experiment"], training["seed"], training["step"]) == ("tiny", 4, 256)
    assert training["summary"]["status"] == "completed" and training["config"]["experiment"] == "tiny"
    assert payload["experiment"] == "tiny"
    trained = ex.load(run_dir)
    loaded = ex.load(path)
    want, got = outputs(trained.module, trained), outputs(loaded.module, loaded)
    assert all(torch.equal(want[k], got[k]) for k in want)
    # An export of the export keeps the training metadata.
    report = ex.export(path, "pt", out=run_dir / "export" / "again.pt")
    assert report["training"]["step"] == 256 and report["source_kind"] == "export"


def test_one_checkpoint_exports_to_every_format(run_dir: Path, capsys) -> None:
    checkpoint = run_dir / "checkpoints" / "step_000000000128.pt"
    for fmt in ("json", "py", "onnx"):
        code, out, _ = cli(capsys, "export", str(checkpoint), "--format", fmt, "--json", "--moe", "portable")
        assert code == 0
        report = json.loads(out)
        assert report["path"] == str(run_dir / "export" / f"Tiny.step_128.{fmt}")
        assert report["training"] == {"experiment": "tiny", "seed": 4, "step": 128,
                                      "checkpoint": "step_000000000128.pt"}
    code, _, err = cli(capsys, "export", str(checkpoint), "--format", "pt", "--model", "Other")
    assert code == 2 and "Tiny" in err


# ------------------------------------------------------------------------------------------------ refusals
def _refused(capsys, path: Path, error: type[Exception], words: str, code: int = 3) -> None:
    with pytest.raises(error, match=words):
        ex.load(path)
    status, _, err = cli(capsys, "export", str(path), "--format", "json", "-o", str(path.with_suffix(".json")))
    assert status == code and "error" in err and not path.with_suffix(".json").exists()


def test_corrupt_and_truncated_files_are_refused_clearly(tiny_pt: Path, tmp_path: Path, capsys) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(os.urandom(4096))
    _refused(capsys, corrupt, ex.LoadError, "not a zip archive")
    zipped = tmp_path / "zipped.pt"  # a zip header, then garbage
    zipped.write_bytes(b"PK\x03\x04" + os.urandom(4096))
    _refused(capsys, zipped, ex.LoadError, "truncated or corrupt")
    data = tiny_pt.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    _refused(capsys, truncated, ex.LoadError, "truncated or corrupt")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    _refused(capsys, empty, ex.LoadError, "empty")


class _Payload:
    """Unpickling this runs a shell command: what a malicious checkpoint does."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_a_pickle_carrying_code_is_refused_and_never_run(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.pt"  # a torch.save zip whose pickle calls os.system
    torch.save({"mdl_export": 1, "weights": _Payload(f"touch {marker}")}, evil)
    _refused(capsys, evil, ex.CarriesCode, "carries pickled code and is refused")
    raw = tmp_path / "raw.pt"  # a hand-made plain pickle
    raw.write_bytes(pickle.dumps(_Payload(f"touch {marker}"), protocol=4))
    _refused(capsys, raw, ex.CarriesCode, "carries code .*system.* refused")
    old = tmp_path / "old.pt"
    old.write_bytes(pickle.dumps(_Payload(f"touch {marker}"), protocol=2))
    _refused(capsys, old, ex.CarriesCode, "carries code")
    code, _, err = cli(capsys, "decompile", str(evil))
    assert code == 3 and "refused" in err
    assert not marker.exists()


def test_a_file_without_the_marker_is_not_an_export(tmp_path: Path, run_dir: Path, capsys) -> None:
    other = tmp_path / "other.pt"
    torch.save({"weights": {"w": torch.ones(2)}}, other)
    _refused(capsys, other, ex.NotAnExport, "not an mdl export")
    moved = tmp_path / "step.pt"  # a training checkpoint outside its run
    moved.write_bytes((run_dir / "checkpoints" / "step_000000000256.pt").read_bytes())
    _refused(capsys, moved, ex.NotAnExport, "training checkpoint")


def test_an_edited_architecture_is_caught_by_the_hash(tiny_pt: Path, tmp_path: Path, capsys) -> None:
    payload = torch.load(tiny_pt, weights_only=True)
    payload["source"] = payload["source"].replace("linear(out=16)", "linear(out=32)")
    edited = tmp_path / "edited.pt"
    torch.save(payload, edited)
    _refused(capsys, edited, ex.ArchitectureMismatch, "architecture hash", code=1)
    payload["source"] = "model {"
    torch.save(payload, edited)
    _refused(capsys, edited, ex.ArchitectureMismatch, "no longer compiles", code=1)


@pytest.mark.parametrize("fmt", ["pt", "py"])
def test_an_export_that_does_not_verify_leaves_the_earlier_file(tmp_path: Path, monkeypatch, fmt: str) -> None:
    design = ROOT / "examples" / "cartpole_mlp.mdl"
    target = tmp_path / f"m.{fmt}"
    ex.export(design, fmt, out=target)
    before = target.read_bytes()

    def failing(reference, other, graph, label):
        return ex._check(label, False, "max |diff| 1 (forced)")

    monkeypatch.setattr(ex, "_compare_outputs", failing)
    with pytest.raises(ex.VerificationFailed, match="nothing was written"):
        ex.export(design, fmt, out=target, seed=1)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [target.name]


@pytest.mark.parametrize("field", ["imports", "training", "source_name", "ir"])
def test_a_damaged_field_is_refused_without_a_traceback(tmp_path: Path, capsys, field: str) -> None:
    good = tmp_path / "good.pt"
    ex.export(ROOT / "examples" / "cartpole_mlp.mdl", "pt", out=good)
    payload = torch.load(good, weights_only=True)
    payload[field] = {"imports": {"": "x"}, "training": "x", "source_name": 5, "ir": ["x"]}[field]
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(ex.LoadError, match=f"bad {field}"):
        ex.load(bad)
    assert main(["export", str(bad), "--format", "json", "-o", str(tmp_path / "x.json")]) == 3
    assert "Traceback" not in "".join(capsys.readouterr())


def test_usage_errors(tmp_path: Path, capsys) -> None:
    code, _, err = cli(capsys, "export", str(tmp_path / "nope.mdl"), "--format", "pt")
    assert code == 2 and "no such" in err
    code, _, err = cli(capsys, "export", str(ROOT / "examples" / "errors" / "unknown_name.mdl"), "--format", "py",
                       "-o", str(tmp_path / "x.py"))
    assert code == 1 and "E0101" in err and not (tmp_path / "x.py").exists()
    code, _, err = cli(capsys, "export", str(ROOT / "examples" / "fast_2048.mdl"), "--format", "py",
                       "--model", "Nope", "-o", str(tmp_path / "x.py"))
    assert code == 1 and "no model named" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(ROOT / "examples" / "fast_2048.mdl"), "--format", "tflite"])
    assert exit_info.value.code == 2
    same = tmp_path / "same.pt"
    same.write_bytes(b"x")
    with pytest.raises(ex.SourceNotFound, match="overwrite"):
        ex.export(same, "pt", out=same)


def test_import_mdl_still_leaves_torch_out() -> None:
    code = ("import sys, mdl; mdl.check_source('model M {}'); mdl.export; mdl.load; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ------------------------------------------------------------------------------------------------ decompile
def test_decompile_round_trips_the_architecture_hash(tiny_pt: Path, run_dir: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("mdl.compiler.decompile")
    target = tmp_path / "design.mdl"
    code, out, err = cli(capsys, "decompile", str(tiny_pt), "-o", str(target))
    assert code == 0, err
    assert "round-trips" in out
    compiled = compile_file(target)
    assert compiled.architecture_hash == torch.load(tiny_pt, weights_only=True)["architecture_hash"]
    code, out, err = cli(capsys, "decompile", str(run_dir), "--name", "Renamed")
    assert code == 0 and "model Renamed" in out and "round-trips" in err
    for path in EXAMPLES:
        exported = ex.export(path, "json", out=tmp_path / f"{path.stem}.json")
        code, out, err = cli(capsys, "decompile", str(tmp_path / f"{path.stem}.json"))
        assert code == 0, err
        assert exported["architecture_hash"][:16] in err
