"""mdl.cli (`mdlc`): exit codes, the human and JSON renderings of diagnostics, `compile` output, `fmt` and
the export report's ONNX MoE fallbacks.

The commands run in-process through `mdl.cli.main([...])` (fast); one test runs the installed `mdlc`
entry point in a subprocess.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mdl.cli import main
from mdl.compiler.api import compile_file

DATA = Path(__file__).resolve().parent / "data" / "check"
CLEAN = DATA / "clean.mdl"  # no diagnostics at all
HEADS = DATA / "heads.mdl"  # one E0203 on line 5
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run a command line that argparse must reject; return its stderr."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 2
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    return err


# ---------------------------------------------------------------------------------------------- check


def test_check_a_clean_file_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", str(CLEAN))
    assert code == 0
    assert out.strip() == "ok: 1 file checked"
    assert err == ""


def test_check_a_file_with_errors_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", str(HEADS))
    assert code == 1
    assert "1 error (1 file checked)" in out


def test_check_with_warnings_only_exits_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "warn.mdl"
    path.write_text("model M {\n    input x: float[B, 8]\n    y = x -> relu\n    output policy = x -> linear(out=4)\n}\n")
    code, out, _ = run(capsys, "check", str(path))
    assert code == 0
    assert "warning[W0001]: `y` is assigned but never used" in out
    assert "1 warning (1 file checked)" in out


def test_check_a_missing_file_exits_2_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", "no/such/file.mdl")
    assert code == 2
    assert "error: no such file: no/such/file.mdl" in err
    assert "Traceback" not in out + err
    assert "ok" not in out  # nothing was checked, so nothing is reported as fine


def test_check_a_missing_file_among_others(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", str(CLEAN), "missing.mdl")
    assert code == 2
    assert "no such file: missing.mdl" in err
    assert "ok: 1 file checked" in out


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xfe\x00", "is not UTF-8 text"),
    (None, "is a directory"),
])
def test_check_an_unreadable_path_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          content: bytes | None, message: str) -> None:
    path = tmp_path / "odd.mdl"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    code, out, err = run(capsys, "check", str(path))
    assert code == 2
    assert message in err
    assert "Traceback" not in out + err


def test_check_several_files_exits_1_if_any_has_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", str(CLEAN), str(HEADS))
    assert code == 1
    assert "1 error (2 files checked)" in out


def test_check_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "both.mdl"
    path.write_text(HEADS.read_text().replace("    y = x2", "    unused = x\n    y = x2"))
    code, out, _ = run(capsys, "check", "--json", str(path))
    assert code == 1
    found = json.loads(out)
    assert isinstance(found, list) and len(found) == 2
    for d in found:
        assert {"code", "severity", "message", "help", "file", "line", "column", "end_line", "end_column"} <= set(d)
    warning, error = found  # sorted by place: the unused value comes first
    assert (warning["code"], warning["severity"], warning["line"], warning["column"]) == ("W0001", "warning", 5, 5)
    assert error == error | {
        "code": "E0203", "severity": "error", "file": str(path),
        "message": "attention width 100 is not divisible by heads=8",
        "help": "use heads=4 or heads=5, or a width of 104",
        "line": 6, "column": 15, "end_line": 6, "end_column": 33,
    }
    assert error["fix"]["edits"] == [{"line": 6, "column": 31, "end_line": 6, "end_column": 32, "new_text": "5"}]


def test_check_json_of_a_clean_file_is_an_empty_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--json", str(CLEAN))
    assert (code, json.loads(out)) == (0, [])


def test_human_rendering(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", str(HEADS))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "error[E0203]: attention width 100 is not divisible by heads=8"
    assert lines[1] == f" --> {HEADS}:5:15"
    assert lines[2] == "  |"
    assert lines[3] == "5 |     y = x2 -> attention(heads=8)"
    # The carets sit exactly under the span, `attention(heads=8)`.
    caret = lines[4]
    start = caret.index("^")
    assert lines[3][start:start + caret.count("^")] == "attention(heads=8)"
    assert caret.rstrip().endswith("^")
    assert lines[5] == "  = help: use heads=4 or heads=5, or a width of 104"


def test_human_rendering_of_a_label(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "open.mdl"
    path.write_text("model M {\n    input x: float[B, 4]\n")
    code, out, _ = run(capsys, "check", str(path))
    assert code == 1
    assert "error[E0002]: expected `}` to close model `M` opened on line 1" in out
    assert "1 | model M {\n  |         - opened here" in out


# --------------------------------------------------------------------------------------------- compile


def test_compile_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "compile", "--json", str(CLEAN))
    assert code == 0
    summary = json.loads(out)
    assert {"model", "params", "flops", "memory_bytes", "inputs", "outputs"} <= set(summary)
    compiled = compile_file(CLEAN)
    assert summary["model"] == "Small"
    assert summary["params"] == compiled.params > 0
    assert summary["flops"] == compiled.flops
    assert summary["memory_bytes"] == compiled.memory(1).training
    assert summary["inputs"] == {"board": ["B", 4, 4]}
    assert summary["outputs"] == {"policy": ["B", 4], "value": ["B", 1]}


def test_compile_json_batch_scales_memory(capsys: pytest.CaptureFixture[str]) -> None:
    _, one, _ = run(capsys, "compile", "--json", str(CLEAN))
    _, eight, _ = run(capsys, "compile", "--json", "--batch", "8", str(CLEAN))
    one, eight = json.loads(one), json.loads(eight)
    activations = one["memory"]["activations"]
    assert eight["memory_bytes"] - one["memory_bytes"] == 7 * activations


def test_compile_table_shows_the_total_params(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "compile", str(CLEAN))
    assert code == 0
    params = compile_file(CLEAN).params
    assert f"params        {params:,}" in out
    assert "model Small" in out
    assert "layers.0.transformer_layer" in out  # a per-block subtotal row
    assert "inputs        board: int[B, 4, 4]" in out


def test_compile_a_file_with_errors_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "compile", str(HEADS))
    assert code == 1
    assert "error[E0203]" in err and out == ""
    code, out, _ = run(capsys, "compile", "--json", str(HEADS))
    assert code == 1
    assert [d["code"] for d in json.loads(out)["errors"]] == ["E0203"]


def test_compile_an_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "compile", "--model", "Smal", str(CLEAN))
    assert code == 1
    assert "no model named `Smal`" in err and "did you mean `Small`?" in err


def test_compile_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "compile", "missing.mdl")
    assert code == 2
    assert "no such file: missing.mdl" in err


# ------------------------------------------------------------------------------------------------- fmt


UGLY = "model   M{\n  input x:float[B,4]\n  output policy=x->linear(out=4)\n}\n"


def test_fmt_check_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("mdl.dsl.format")
    path = tmp_path / "ugly.mdl"
    path.write_text(UGLY)
    code, out, _ = run(capsys, "fmt", "--check", str(path))
    assert code == 1
    assert f"would reformat {path}" in out
    assert path.read_text() == UGLY  # --check changes nothing
    code, out, _ = run(capsys, "fmt", str(path))
    assert code == 0
    assert path.read_text() != UGLY
    code, out, _ = run(capsys, "fmt", "--check", str(path))
    assert code == 0
    assert "0 files would reformat, 1 unchanged" in out


def test_fmt_check_of_a_canonical_file_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mdl.dsl.format")
    code, _, _ = run(capsys, "fmt", "--check", str(CLEAN))
    assert code == 0


def test_fmt_of_a_file_with_syntax_errors_exits_1_and_leaves_it(capsys: pytest.CaptureFixture[str],
                                                                 tmp_path: Path) -> None:
    pytest.importorskip("mdl.dsl.format")
    path = tmp_path / "broken.mdl"
    path.write_text("const A = 1 2\n")
    code, _, err = run(capsys, "fmt", str(path))
    assert code == 1
    assert "error[E0001]" in err
    assert path.read_text() == "const A = 1 2\n"


def test_fmt_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mdl.dsl.format")
    code, _, err = run(capsys, "fmt", "--check", "missing.mdl")
    assert code == 2
    assert "no such file: missing.mdl" in err


# ---------------------------------------------------------------------------------------------- export


def test_export_onnx_names_each_moe_fallback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """com.microsoft.MoE has no exact (erf) GELU: the human report says which moe became the portable node."""
    pytest.importorskip("onnxruntime")
    from mdl.compiler.api import compile_source

    source = (EXAMPLES / "moe_2048.mdl").read_text(encoding="utf-8")
    design = tmp_path / "small_moe.mdl"  # moe_2048's gelu experts, one layer at d=16 to stay quick
    design.write_text(source.replace("const D = 128", "const D = 16").replace("layers: int = 2", "layers: int = 1"),
                      encoding="utf-8")
    [node] = [n.name for n in compile_source(design.read_text(encoding="utf-8")).ir.nodes if n.op == "moe"]
    code, out, err = run(capsys, "export", str(design), "--format", "onnx", "-o", str(tmp_path / "m.onnx"))
    assert code == 0, out + err
    assert "verified" in out
    fallbacks = [line for line in out.splitlines() if line.startswith("fallback:")]
    assert fallbacks == [f"fallback: moe `{node}` written as the portable mdl node "
                         "(com.microsoft.MoE's gelu is the tanh approximation (approximate_gelu=True accepts it))"]


# ------------------------------------------------------------------------------------------------ usage


@pytest.mark.parametrize("argv", [
    [],
    ["bogus"],
    ["check"],
    ["check", "--nope", "x.mdl"],
    ["compile"],
    ["compile", "--batch", "0", "x.mdl"],
    ["compile", "--batch", "many", "x.mdl"],
    ["fmt"],
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    err = usage_error(capsys, *argv)
    assert "usage: mdlc" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == "mdlc 0.1.0"


# ----------------------------------------------------------------------------------- the installed script


def test_the_installed_mdlc_entry_point() -> None:
    exe = shutil.which("mdlc") or str(Path(sys.executable).with_name("mdlc"))
    if not Path(exe).exists():
        pytest.skip("the mdlc script is not installed")
    done = subprocess.run([exe, "check", "--json", str(HEADS), "missing.mdl"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2  # an unreadable file outranks the errors found in the others
    assert [d["code"] for d in json.loads(done.stdout)] == ["E0203"]
    assert "no such file: missing.mdl" in done.stderr
    assert "Traceback" not in done.stderr
