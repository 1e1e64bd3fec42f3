"""mdl.compiler.check (and the stages it runs: resolve, names, elaborate, shapes, experiment, cost): one
test per validation rule, checked on small designs through `check_source`/`analyze`, the public front end.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mdl.compiler import cost
from mdl.compiler.check import Analysis, analyze, check_source
from mdl.dsl.diagnostics import Diagnostic, Fix, Severity

DATA = Path(__file__).resolve().parent / "data" / "check"


def dedent(src: str) -> str:
    return textwrap.dedent(src).lstrip("\n")


def diags(src: str, path: str | None = None) -> list[Diagnostic]:
    return check_source(dedent(src), path)


def codes(src: str) -> list[str]:
    return [d.code for d in diags(src)]


def only(src: str, code: str) -> Diagnostic:
    """The one diagnostic with `code` (and fail if there is not exactly one)."""
    found = [d for d in diags(src) if d.code == code]
    assert len(found) == 1, [(d.code, d.message) for d in diags(src)]
    return found[0]


def clean(src: str, path: str | None = None) -> Analysis:
    """Analyze `src` and require it to have no diagnostics at all."""
    result = analyze(dedent(src), path)
    assert result.diagnostics == [], [(d.code, d.span.line, d.message) for d in result.diagnostics]
    return result


def apply_fix(text: str, fix: Fix) -> str:
    for edit in sorted(fix.edits, key=lambda e: e.span.start, reverse=True):
        text = text[:edit.span.start] + edit.new_text + text[edit.span.end:]
    return text


def model(body: str, inp: str = "float[B, 16, 64]", params: str = "") -> str:
    """A model around `body` (statements indented by 4) with input `x` and a policy output from `h`."""
    head = f"model M{params} {{\n    input x: {inp}\n"
    return head + textwrap.indent(dedent(body), "    ") + "}\n"


TAIL = "h = y -> mean(dim=1)\noutput policy = h -> linear(out=4)\n"


# ------------------------------------------------------------------------------------ attention heads


def test_heads_must_divide_the_width() -> None:
    text = (DATA / "heads.mdl").read_text()
    errors = [d for d in check_source(text, "heads.mdl") if d.is_error]
    (d,) = errors
    assert d.code == "E0203"
    assert d.message == "attention width 100 is not divisible by heads=8"
    assert d.help == "use heads=4 or heads=5, or a width of 104"
    assert (d.span.file, d.span.line, d.span.column, d.span.end_column) == ("heads.mdl", 5, 15, 33)
    assert text.splitlines()[4][d.span.column - 1:d.span.end_column - 1] == "attention(heads=8)"


def test_the_heads_fix_applied_to_the_text_removes_the_error() -> None:
    text = (DATA / "heads.mdl").read_text()
    (d,) = [d for d in check_source(text) if d.code == "E0203"]
    assert d.fix is not None
    fixed = apply_fix(text, d.fix)
    assert "attention(heads=5)" in fixed
    after = check_source(fixed)
    assert [x.code for x in after if x.is_error] == []
    assert [x.code for x in after] == ["W0002"]  # 100 is still not a multiple of 8: a warning only


@pytest.mark.parametrize(("width", "heads", "help"), [
    (96, 7, "use heads=4 or heads=6, or a width of 98"),
    (64, 3, "use heads=1 or heads=2, or a width of 66"),
    (60, 8, "use heads=5 or heads=6, or a width of 64"),
])
def test_heads_help_offers_divisors_and_a_width(width: int, heads: int, help: str) -> None:
    d = only(model(f"y = x -> linear(out={width}) -> attention(heads={heads})\n" + TAIL), "E0203")
    assert d.help == help
    fixed = apply_fix(model(f"y = x -> linear(out={width}) -> attention(heads={heads})\n" + TAIL), d.fix)
    assert "E0203" not in [x.code for x in check_source(fixed)]


# ---------------------------------------------------------------------------------- widths of 8


def test_a_width_that_is_not_a_multiple_of_8_warns() -> None:
    src = model("y = x -> linear(out=100) -> attention(heads=4)\n" + TAIL)
    d = only(src, "W0002")
    assert d.severity is Severity.WARNING
    assert d.message == "attention width 100 is not a multiple of 8"
    assert d.help == "widths that are multiples of 8 run faster; try 104"
    assert analyze(dedent(src)).ok  # warnings do not stop compilation


def test_a_hidden_width_warning_has_a_fix() -> None:
    src = model("y = x -> mlp(hidden=100)\n" + TAIL)
    d = only(src, "W0002")
    assert d.message == "`hidden` 100 is not a multiple of 8"
    assert check_source(apply_fix(dedent(src), d.fix)) == []


def test_small_widths_do_not_warn() -> None:
    clean(model("y = x -> mlp(hidden=12) -> moe(experts=2, hidden=4)\n" + TAIL))


# ------------------------------------------------------------------------------------------- moe


def test_top_k_above_experts_is_an_error_with_a_fix() -> None:
    src = model("y = x -> moe(experts=4, top_k=5, hidden=64)\n" + TAIL)
    d = only(src, "E0204")
    assert d.message == "`top_k=5` is more than `experts=4`"
    assert d.help == "use top_k between 1 and 4"
    assert check_source(apply_fix(dedent(src), d.fix)) == []


@pytest.mark.parametrize(("args", "message"), [
    ("experts=4, top_k=0, hidden=64", "`top_k=0` is out of range; it must be in [1, 2147483647]"),
    ("experts=0, top_k=1, hidden=64", "`experts=0` is out of range; it must be in [1, 2147483647]"),
])
def test_top_k_and_experts_are_at_least_one(args: str, message: str) -> None:
    d = only(model(f"y = x -> moe({args})\n" + TAIL), "E0202")
    assert d.message == message


def test_top_k_equal_to_experts_is_fine() -> None:
    clean(model("y = x -> moe(experts=2, top_k=2, hidden=64)\n" + TAIL))


# ------------------------------------------------------------------------------------- dtypes, shapes


def test_embedding_needs_an_int_input() -> None:
    d = only(model("y = x -> embedding(vocab=16, dim=64)\n" + TAIL, inp="float[B, 16]"), "E0205")
    assert d.message == "`embedding` needs an int input of token ids, got float[B, 16]"
    assert d.help.startswith("declare the input as `int[...]`")
    clean(model("y = x -> embedding(vocab=16, dim=64)\n" + TAIL, inp="int[B, 16]"))


def test_float_ops_reject_int_inputs() -> None:
    d = only(model("y = x -> layer_norm\n" + TAIL, inp="int[B, 16, 64]"), "E0205")
    assert d.message == "`layer_norm` needs a float input, got int[B, 16, 64]"


def test_residual_shapes_must_match() -> None:
    src = model("y = x + (x -> linear(out=32))\n" + TAIL)
    d = only(src, "E0206")
    assert d.message == "shapes float[B, 16, 64] and float[B, 16, 32] do not match for `+`"
    assert (d.span.line, d.span.column) == (3, 9)  # the whole `x + (...)`


def test_residuals_broadcast() -> None:
    graph = clean(model("y = x + (x -> linear(out=1))\n" + TAIL)).graphs["M"]
    assert graph.nodes[2].op == "add" and graph.nodes[2].type.shape == ("B", 16, 64)


def test_a_typed_block_parameter_checks_the_tensor_it_gets() -> None:
    src = dedent("""
        block proj(x: float[B, T, 32]) {
            return x -> relu
        }
        """) + model("y = proj(x)\n" + TAIL)
    d = only(src, "E0206")
    assert d.message == "`x` expects float[B, T, 32], got float[B, 16, 64]"


# ------------------------------------------------------------------------------- inputs and outputs


def test_a_model_needs_an_input() -> None:
    d = only("model M {\n    output policy = 1\n}\n", "E0301")
    assert d.message == "model `M` has no input"
    assert (d.span.line, d.span.column, d.span.end_column) == (1, 7, 8)


def test_a_model_needs_a_policy_output() -> None:
    d = only(model("output value = x -> mean(dim=1) -> linear(out=1)\n"), "E0302")
    assert d.message == "model `M` has no `policy` output"


def test_a_policy_that_failed_is_not_also_reported_missing() -> None:
    assert codes(model("output policy = x -> linear(out=nope)\n")) == ["E0101"]


def test_an_output_must_be_a_tensor() -> None:
    d = only(model("h = x -> mean(dim=1)\noutput policy = 4\noutput value = h -> linear(out=1)\n"), "E0303")
    assert d.message == "output `policy` must be a tensor, not int"


# ----------------------------------------------------------------------------------------- unused


def test_an_unused_value_warns() -> None:
    d = only(model("z = x -> relu\ny = x\n" + TAIL), "W0001")
    assert d.severity is Severity.WARNING
    assert (d.message, d.span.line, d.span.column) == ("`z` is assigned but never used", 3, 5)


def test_a_value_overwritten_before_use_warns() -> None:
    d = only(model("y = x -> relu\ny = x -> gelu\n" + TAIL), "W0001")
    assert (d.span.line, d.help) == (3, "remove it, or use it before `y` is assigned again")


def test_underscore_names_are_exempt() -> None:
    clean(model("_z = x -> relu\ny = x\n" + TAIL))


def test_unused_params_and_inputs_warn() -> None:
    src = dedent("""
        block b(x, y, k: int = 2) {
            return x
        }
        model M(width: int = 8) {
            input x: float[B, 16]
            input spare: float[B, 3]
            output policy = b(x, x) -> linear(out=4)
        }
        """)
    found = [(d.code, d.span.line, d.message) for d in check_source(src)]
    assert found == [
        ("W0001", 1, "parameter `y` is never used"),
        ("W0001", 1, "parameter `k` is never used"),
        ("W0001", 4, "parameter `width` is never used"),
        ("W0001", 6, "input `spare` is never used"),
    ]


def test_statements_after_return_are_unreachable() -> None:
    src = "block b(x) {\n    return x\n    y = x\n}\n" + model("y = b(x)\n" + TAIL)
    d = only(src, "W0004")
    assert (d.span.line, d.message) == (3, "this statement is never reached")


# ------------------------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(("call", "message"), [
    ("dropout(p=1.0)", "`p=1.0` is out of range; it must be in [0, 1)"),
    ("dropout(p=-0.5)", "`p=-0.5` is out of range; it must be in [0, 1)"),
    ("layer_norm(eps=0)", "`eps=0` is out of range; it must be in (0, 1]"),
    ("attention(heads=4, dropout=1)", "`dropout=1` is out of range; it must be in [0, 1)"),
    ("linear(out=0)", "`out=0` is out of range; it must be in [1, 2147483647]"),
    ("mlp(hidden=64, out=0)", "`out=0` is out of range; it must be in [1, 2147483647]"),
    ("softmax(dim=99)", "`dim=99` is out of range; it must be in [-64, 63]"),
    ("moe(experts=2, hidden=8, capacity=0)", "`capacity=0` is out of range; it must be in (0, 1000000]"),
    ("linear(out=2.5)", "`out` must be an integer, not 2.5"),
    ('linear(out="4")', "`out` must be an integer, not string"),
    ("linear(out=4, bias=1)", "`bias` must be true or false, not int"),
    ('pos_encoding(kind="learnt")', '`kind="learnt"` is not one of "learned", "sinusoidal"'),
])
def test_primitive_arguments_are_range_checked(call: str, message: str) -> None:
    d = only(model(f"y = x -> {call}\n" + TAIL), "E0202")
    assert d.message == message
    assert d.is_error


@pytest.mark.parametrize("call", [
    "dropout(p=0)", "dropout(p=0.99)", "attention(heads=4, dropout=0.5)", "layer_norm(eps=1)",
    "moe(experts=2, hidden=8, capacity=none)", 'pos_encoding(kind="sinusoidal")', "linear(out=4.0)",
])
def test_arguments_at_the_edges_of_their_ranges_are_accepted(call: str) -> None:
    assert [d for d in diags(model(f"y = x -> {call}\n" + TAIL)) if d.is_error] == []


def test_a_missing_required_argument() -> None:
    d = only(model("y = x -> dropout\n" + TAIL), "E0104")
    assert (d.message, d.help) == ("`dropout` needs `p`", "add `p=...` (the drop probability)")


# ----------------------------------------------------------------------------------- did you mean


def test_did_you_mean_a_name_with_a_fix() -> None:
    src = "const WIDTH = 8\n" + model("y = x -> linear(out=WIDHT)\n" + TAIL)
    d = only(src, "E0101")
    assert (d.message, d.help) == ("unknown name `WIDHT`", 'did you mean "WIDTH"?')
    assert check_source(apply_fix(src, d.fix)) == []


def test_did_you_mean_a_primitive() -> None:
    src = model("y = x -> layer_nrom\n" + TAIL)
    d = only(src, "E0102")
    assert (d.message, d.help) == ("unknown block `layer_nrom`", 'did you mean "layer_norm"?')
    assert (d.span.column, d.span.end_column) == (14, 24)
    assert check_source(apply_fix(src, d.fix)) == []


def test_did_you_mean_a_block() -> None:
    src = "block encoder(x) {\n    return x\n}\n" + model("y = x -> encodr\n" + TAIL)
    assert only(src, "E0102").help == 'did you mean "encoder"?'


def test_did_you_mean_a_keyword_argument() -> None:
    src = model("y = x -> linear(otu=64)\n" + TAIL)
    d = only(src, "E0103")
    assert (d.message, d.help) == ("`linear` has no argument `otu`", "did you mean `out`?")
    assert check_source(apply_fix(dedent(src), d.fix)) == []


def test_did_you_mean_a_block_parameter() -> None:
    src = "block b(x, heads: int) {\n    return x -> attention(heads=heads)\n}\n" + model("y = b(x, hedas=4)\n" + TAIL)
    assert only(src, "E0103").help == "did you mean `heads`?"


def test_did_you_mean_a_dtype() -> None:
    d = only(model("y = x\n" + TAIL, inp="flaot[B, 16, 64]"), "E0213")
    assert (d.message, d.help) == ("unknown dtype `flaot`", "did you mean `float`?")


def test_names_are_checked_in_blocks_nothing_calls() -> None:
    d = only("block unused(x) {\n    return x -> rleu\n}\n" + model("y = x\n" + TAIL), "E0102")
    assert (d.span.line, d.help) == (2, 'did you mean "relu"?')


# -------------------------------------------------------------------------------------------- imports


def test_import_stdlib_blocks_unqualified_and_qualified() -> None:
    body = "y = x\nh = y -> mean(dim=1)\noutput policy = h -> {}policy_head(actions=4)\n"
    clean("import stdlib.blocks\n" + model(body.format("")))
    clean("import stdlib.blocks as b\n" + model(body.format("b.")))


def test_stdlib_templates_are_importable() -> None:
    result = clean("import stdlib.templates.beginner_2048 as t\n" + model("y = x\n" + TAIL))
    assert result.scope.namespaces["t"].definitions


def test_an_unknown_stdlib_module() -> None:
    d = only("import stdlib.blokcs\n", "E0112")
    assert (d.message, d.help) == ("unknown module `stdlib.blokcs`", "did you mean `import stdlib.blocks`?")
    d = only("import stdlib.nope\n", "E0112")
    assert d.message == "unknown module `stdlib.nope`"
    assert d.help.startswith("the standard library has stdlib.blocks")


def test_a_non_stdlib_module_path_suggests_a_file_import() -> None:
    assert only("import foo.bar\n", "E0112").help == 'files are imported by path: `import "bar.mdl" as bar`'


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text))
    return path


def check_file(path: Path) -> list[Diagnostic]:
    return check_source(path.read_text(), str(path))


LIB = """
    const WIDTH = 32
    block head(h, n: int) {
        return h -> linear(out=n)
    }
    """


def test_a_relative_file_import_with_qualified_names(tmp_path: Path) -> None:
    write(tmp_path / "lib.mdl", LIB)
    main = write(tmp_path / "main.mdl", """
        import "lib.mdl" as lib
        model M {
            input x: float[B, 8]
            h = x -> linear(out=lib.WIDTH)
            output policy = lib.head(h, n=4)
        }
        """)
    result = analyze(main.read_text(), str(main))
    assert result.diagnostics == []
    graph = result.graphs["M"]
    assert [(n.name, n.type.shape) for n in graph.nodes] == [
        ("x", ("B", 8)), ("linear", ("B", 32)), ("head.linear", ("B", 4))]


def test_a_relative_path_is_resolved_from_the_importing_file(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "lib.mdl", LIB)
    write(tmp_path / "sub" / "mid.mdl", 'import "lib.mdl" as lib\nconst W = lib.WIDTH * 2\n')
    main = write(tmp_path / "main.mdl", 'import "sub/mid.mdl" as mid\n' + model(
        "y = x -> linear(out=mid.W)\n" + TAIL))
    result = analyze(main.read_text(), str(main))
    assert result.diagnostics == []
    assert result.graphs["M"].output_types()["policy"].shape == ("B", 4)
    assert result.graphs["M"].nodes[1].type.shape == ("B", 16, 64)


def test_a_missing_file(tmp_path: Path) -> None:
    write(tmp_path / "lib.mdl", LIB)
    main = write(tmp_path / "main.mdl", 'const A = 1\nimport "lbi.mdl" as lib\n')
    (d,) = check_file(main)
    assert (d.code, d.span.line, d.message, d.help) == ("E0110", 2, 'cannot find "lbi.mdl"', 'did you mean "lib.mdl"?')


def test_an_import_cycle_is_reported_at_the_import(tmp_path: Path) -> None:
    a = write(tmp_path / "a.mdl", 'const A = 1\nimport "b.mdl" as b\n')
    (tmp_path / "b.mdl").write_text('const B = 2\n\nimport "a.mdl" as a\n')
    found = check_file(a)
    cycle = [d for d in found if d.code == "E0111"]
    assert len(cycle) == 1
    assert cycle[0].message == "import cycle: a.mdl -> b.mdl -> a.mdl"
    assert (Path(cycle[0].span.file).name, cycle[0].span.line) == ("b.mdl", 3)
    # The root file's own import is marked too, so the error is visible from it.
    (mark,) = [d for d in found if d.span.file == str(a)]
    assert (mark.code, mark.span.line) == ("E0113", 2)


def test_a_syntax_error_in_an_imported_file(tmp_path: Path) -> None:
    write(tmp_path / "lib.mdl", "const A = 1 2\n")
    main = write(tmp_path / "main.mdl", 'import "lib.mdl" as lib\n')
    found = [(Path(d.span.file).name, d.code, d.span.line) for d in check_file(main)]
    assert found == [("main.mdl", "E0113", 1), ("lib.mdl", "E0001", 1)]


def test_an_error_inside_an_imported_block_points_into_its_file(tmp_path: Path) -> None:
    write(tmp_path / "lib.mdl", "block head(h) {\n    return h -> attention(heads=3)\n}\n")
    main = write(tmp_path / "main.mdl", 'import "lib.mdl" as lib\n' + model("y = x -> lib.head\n" + TAIL))
    (d,) = check_file(main)
    assert (Path(d.span.file).name, d.code, d.span.line) == ("lib.mdl", "E0203", 2)
    (label,) = d.labels  # and the call that led there
    assert (label.span.file, label.span.line, label.message) == (str(main), 4, "in this block call")


def test_an_unknown_qualified_name(tmp_path: Path) -> None:
    write(tmp_path / "lib.mdl", LIB)
    main = write(tmp_path / "main.mdl", 'import "lib.mdl" as lib\n' + model("y = x -> linear(out=lib.WIDHT)\n" + TAIL))
    (d,) = check_file(main)
    assert (d.code, d.help) == ("E0101", 'did you mean "lib.WIDTH"?')


def test_local_definitions_shadow_imported_ones() -> None:
    src = dedent("""
        import stdlib.blocks
        block policy_head(h, actions: int) {
            return h -> linear(out=actions) -> relu
        }
        """) + model("y = x\n" + TAIL.replace("linear(out=4)", "policy_head(actions=4)"))
    result = clean(src)
    assert [n.op for n in result.graphs["M"].nodes][-2:] == ["linear", "relu"]


def test_primitives_cannot_be_redefined() -> None:
    d = only("block relu(x) {\n    return x\n}\n", "E0107")
    assert d.message == "`relu` is a primitive and cannot be redefined"


# ----------------------------------------------------------------------------------- repeat and dim


ENCODER = """
    block encoder_layer(x, heads: int) {
        x = x + (x -> layer_norm -> attention(heads=heads))
        return x
    }
    """


def test_repeat_gives_each_repetition_its_own_nodes_and_params() -> None:
    src = dedent(ENCODER) + model("repeat layers {\n    x = encoder_layer(x, heads=4)\n}\ny = x\n" + TAIL,
                                  params="(layers: int = 3)")
    graph = clean(src).graphs["M"]
    attention = [n for n in graph.nodes if n.op == "attention"]
    assert [n.name for n in attention] == [f"layers.{i}.encoder_layer.attention" for i in range(3)]
    assert len({n.id for n in attention}) == 3
    assert all(n.params == 4 * 64 * 64 + 4 * 64 for n in attention)
    assert [c.path for c in graph.calls] == [f"layers.{i}.encoder_layer" for i in range(3)]
    one_layer = sum(n.params for n in graph.nodes_in("layers.0.encoder_layer"))
    assert one_layer == 4 * 64 * 64 + 4 * 64 + 2 * 64
    assert graph.params == 3 * one_layer + 64 * 4 + 4


def test_repeat_as_counts_from_zero() -> None:
    graph = clean(model("repeat 3 as i {\n    x = x -> linear(out=8 * (i + 1))\n}\ny = x\n" + TAIL)).graphs["M"]
    linears = [n for n in graph.nodes if n.op == "linear"][:3]
    assert [n.type.shape[-1] for n in linears] == [8, 16, 24]
    assert [n.name for n in linears] == ["repeat.0.linear", "repeat.1.linear", "repeat.2.linear"]


def test_repeat_zero_times_adds_nothing() -> None:
    graph = clean(model("repeat 0 {\n    x = x -> relu\n}\ny = x\n" + TAIL)).graphs["M"]
    assert "relu" not in [n.op for n in graph.nodes]


@pytest.mark.parametrize(("count", "shown"), [("-1", "-1"), ("2.5", "2.5"), ("20000", "20000")])
def test_repeat_needs_a_whole_number(count: str, shown: str) -> None:
    d = only(model(f"repeat {count} {{\n    x = x -> relu\n}}\ny = x\n" + TAIL), "E0202")
    assert d.message == f"`repeat` needs a whole number from 0 to 10000, got {shown}"


def test_dim_of_the_last_and_of_a_given_dimension() -> None:
    graph = clean(model("y = x -> mlp(hidden=4 * dim(x)) -> linear(out=dim(x, 1))\n" + TAIL)).graphs["M"]
    mlp, linear = graph.nodes[1], graph.nodes[2]
    assert mlp.attrs["hidden"] == 256
    assert linear.type.shape == ("B", 16, 16)


def test_dim_of_a_symbolic_dimension_is_not_known() -> None:
    d = only(model("y = x -> linear(out=dim(x, 0))\n" + TAIL), "E0208")
    assert d.message == "dimension 0 of float[B, 16, 64] is `B`, not known at compile time"


def test_dim_out_of_range() -> None:
    d = only(model("y = x -> linear(out=dim(x, 3))\n" + TAIL), "E0210")
    assert (d.message, d.help) == ("dimension 3 is out of range for float[B, 16, 64]", "use a value from -3 to 2")


@pytest.mark.parametrize(("call", "index"), [
    ("dim(x)", -1),
    ("dim(x, 0)", 0),
])
def test_dim_of_a_tensor_without_dimensions(call: str, index: int) -> None:
    d = only(model(f"y = x -> linear(out={call})\n" + TAIL, inp="float[]"), "E0210")
    assert (d.message, d.help) == (f"dimension {index} is out of range for float[]", "this tensor has no dimensions")


def test_symbolic_dims_stay_symbolic() -> None:
    graph = clean(model("y = x -> attention(heads=4)\n" + TAIL, inp="float[B, T, 64]")).graphs["M"]
    assert [n.type.shape for n in graph.nodes] == [
        ("B", "T", 64), ("B", "T", 64), ("B", 64), ("B", 4)]
    flat = clean(model("y = x -> flatten(start=2) -> linear(out=8)\n" + TAIL, inp="float[B, T, 4, 8]")).graphs["M"]
    assert [n.type.shape for n in flat.nodes[1:3]] == [("B", "T", 32), ("B", "T", 8)]
    assert clean(model("y = x -> flatten(start=1, end=2)\n" + TAIL, inp="float[B, T, 4, 8]")).graphs[
        "M"].nodes[1].type.shape == ("B", "T*4", 8)


def test_reshape_keeps_symbolic_dims() -> None:
    graph = clean(model("h = x -> reshape(shape=[B, -1])\noutput policy = h -> linear(out=4)\n")).graphs["M"]
    assert graph.nodes[1].type.shape == ("B", 16 * 64)


# -------------------------------------------------------------------------------------- experiments


NET = """
    model Net(experts: int = 4, d: int = 16) {
        input board: int[B, 4, 4]
        h = board -> flatten -> embedding(vocab=16, dim=d) -> moe(experts=experts, hidden=32) -> mean(dim=1)
        output policy = h -> linear(out=4)
        output value = h -> linear(out=1)
    }
    """


def experiment(*entries: str, net: str = NET) -> str:
    lines = "".join(f"    {e}\n" for e in entries)
    return dedent(net) + "experiment e {\n" + lines + "}\n"


def spec_of(src: str):
    result = clean(src)
    return result.experiments["e"]


def test_game2048_gives_int_boards_and_four_actions() -> None:
    spec = spec_of(experiment("model = Net(experts=2)", "env = game2048(envs=8)"))
    assert (spec.env.kind, spec.env.envs, str(spec.env.observation), spec.env.actions) == (
        "game2048", 8, "int[4, 4]", 4)
    assert (spec.model, spec.model_args) == ("Net", {"experts": 2})
    assert spec.graph.nodes[3].attrs["experts"] == 2


CARTPOLE = """
    model Pole {
        input obs: float[B, 4]
        h = obs -> linear(out=32) -> tanh
        output policy = h -> linear(out=2)
        output value = h -> linear(out=1)
    }
    """


def test_gym_cartpole_gives_four_floats_and_two_actions() -> None:
    pytest.importorskip("gymnasium")
    spec = spec_of(experiment("model = Pole", 'env = gym("CartPole-v1", envs=4)', net=CARTPOLE))
    assert (spec.env.kind, spec.env.id, spec.env.envs) == ("gym", "CartPole-v1", 4)
    assert (str(spec.env.observation), spec.env.actions) == ("float[4]", 2)


def test_an_unknown_gym_id_suggests_a_close_one() -> None:
    pytest.importorskip("gymnasium")
    src = experiment("model = Pole", 'env = gym("CartPole-v2")', net=CARTPOLE)
    d = only(src, "E0404")
    assert (d.message, d.help) == ('unknown gymnasium environment "CartPole-v2"', 'did you mean "CartPole-v1"?')
    assert codes(src) == ["E0404"]


@pytest.mark.parametrize(("env", "code", "message"), [
    ("atari()", "E0403", "unknown environment `atari`"),
    ("game2049()", "E0403", "unknown environment `game2049`"),
    ("game2048(envs=0)", "E0202", "`envs=0` is out of range; it must be in [1, 1000000]"),
    ("game2048(boards=4)", "E0103", "`game2048` has no setting `boards`"),
    ("gym(3)", "E0106", "`gym` needs an environment id string"),
])
def test_a_bad_env_is_one_error(env: str, code: str, message: str) -> None:
    found = diags(experiment("model = Net()", f"env = {env}"))
    assert [(d.code, d.message) for d in found] == [(code, message)]


def test_a_policy_with_the_wrong_number_of_logits() -> None:
    src = experiment("model = Net()", "env = game2048()", net=NET.replace("linear(out=4)", "linear(out=5)"))
    d = only(src, "E0406")
    assert d.message == "`policy` is float[B, 5]; `mdl/Game2048-v0` needs one logit per action: [B, 4]"
    assert d.help == "end the policy head with `linear(out=4)`"
    assert d.span.line == 4  # the policy head, not the experiment


def test_a_value_of_the_wrong_shape() -> None:
    src = experiment("model = Net()", "env = game2048()", net=NET.replace("linear(out=1)", "linear(out=2)"))
    d = only(src, "E0407")
    assert (d.message, d.span.line) == ("`value` must be [B, 1] or [B], got float[B, 2]", 5)


def test_a_value_of_shape_b_is_accepted() -> None:
    spec_of(experiment("model = Net()", "env = game2048()",
                       net=NET.replace("linear(out=1)", "linear(out=1) -> mean(dim=1)")))


def test_a_missing_value_output() -> None:
    net = NET.replace("        output value = h -> linear(out=1)\n", "")
    assert only(experiment("model = Net()", "env = game2048()", net=net), "E0407").message == (
        "model `Net` has no `value` output; PPO needs one")


def test_a_value_head_that_failed_is_not_also_reported_missing() -> None:
    net = NET.replace("output value = h -> linear(out=1)", "output value = h -> linear(out=nope)")
    assert codes(experiment("model = Net()", "env = game2048()", net=net)) == ["E0101"]


def test_an_input_that_does_not_accept_the_observations() -> None:
    d = only(experiment("model = Pole", "env = game2048()", net=CARTPOLE), "E0405")
    assert d.message == "input `obs: float[B, 4]` does not accept the observations of `mdl/Game2048-v0` (int[4, 4])"
    assert d.help == "declare `input obs: int[B, 4, 4]`"
    assert d.span.line == 8  # `model = Pole` in the experiment


def test_an_input_that_failed_is_not_also_reported_as_a_mismatch() -> None:
    net = NET.replace("int[B, 4, 4]", "itn[B, 4, 4]")
    assert codes(experiment("model = Net()", "env = game2048()", net=net)) == ["E0213"]


@pytest.mark.parametrize(("value", "code"), [
    ("Nte()", "E0402"),
    ("Net(4)", "E0106"),
    ("3", "E0402"),
    ("Net(layers=2)", "E0103"),
])
def test_a_bad_model_entry_is_one_error(value: str, code: str) -> None:
    assert codes(experiment(f"model = {value}", "env = game2048()")) == [code]


def test_an_unknown_model_suggests_one() -> None:
    assert only(experiment("model = Nte()", "env = game2048()"), "E0402").help == "did you mean `Net`?"


@pytest.mark.parametrize(("budget", "steps", "seconds"), [
    ("2M steps", 2_000_000, None),
    ("500k steps", 500_000, None),
    ("30 s", None, 30.0),
    ("10 min", None, 600.0),
    ("2 h", None, 7200.0),
])
def test_budget_units(budget: str, steps: int | None, seconds: float | None) -> None:
    spec = spec_of(experiment("model = Net()", "env = game2048()", f"budget = {budget}"))
    assert (spec.budget_steps, spec.budget_seconds) == (steps, seconds)


@pytest.mark.parametrize(("budget", "message", "help"), [
    ("5 parsecs", "unknown unit `parsecs`", "did you mean `sec`?"),
    ("2M", "`budget` needs a unit", "write a step count like `2M steps` or a time like `10 min`"),
])
def test_bad_budgets(budget: str, message: str, help: str) -> None:
    d = only(experiment("model = Net()", "env = game2048()", f"budget = {budget}"), "E0409")
    assert (d.message, d.help) == (message, help)


@pytest.mark.parametrize(("algo", "message"), [
    ("ppo(lr=0)", "`lr=0` is out of range; it must be in (0, 1]"),
    ("ppo(lr=1.5)", "`lr=1.5` is out of range; it must be in (0, 1]"),
    ("ppo(gamma=1.01)", "`gamma=1.01` is out of range; it must be in [0, 1]"),
    ("ppo(gae_lambda=-0.1)", "`gae_lambda=-0.1` is out of range; it must be in [0, 1]"),
    ("ppo(clip=0)", "`clip=0` is out of range; it must be in (0, 1]"),
    ("ppo(epochs=0)", "`epochs=0` is out of range; it must be in [1, 1000]"),
    ("ppo(max_grad_norm=0)", "`max_grad_norm=0` is out of range; it must be in (0, 1000000]"),
    ("ppo(rollout=2.5)", "`rollout` must be an integer, not 2.5"),
    ("ppo(adam_eps=0)", "`adam_eps=0` is out of range; it must be in (0, 1]"),
    ("ppo(target_kl=0)", "`target_kl=0` is out of range; it must be in (0, 100]"),
    ("ppo(anneal_lr=1)", "`anneal_lr` must be true or false, not int"),
    ("ppo(norm_adv=none)", "`norm_adv` cannot be none"),
])
def test_ppo_settings_are_range_checked(algo: str, message: str) -> None:
    d = only(experiment("model = Net()", "env = game2048()", f"algo = {algo}"), "E0202")
    assert d.message == message


def test_ppo_settings_at_their_edges_are_accepted() -> None:
    spec = spec_of(experiment("model = Net()", "env = game2048()", "algo = ppo(lr=1, gamma=1, gae_lambda=0, clip=1)"))
    assert (spec.algo["lr"], spec.algo["gamma"], spec.algo["gae_lambda"], spec.algo["clip"]) == (1.0, 1.0, 0.0, 1.0)
    assert spec.algo["epochs"] == 4  # defaults fill the rest


def test_every_ppo_switch_is_a_setting() -> None:
    spec = spec_of(experiment("model = Net()", "env = game2048()",
                              "algo = ppo(orthogonal_init=true, anneal_lr=false, norm_adv=false, norm_reward=false, "
                              "clip_vloss=true, target_kl=0.02, adam_eps=1e-8)"))
    assert {k: spec.algo[k] for k in ("orthogonal_init", "anneal_lr", "norm_adv", "norm_reward", "clip_vloss",
                                      "target_kl", "adam_eps")} == {
        "orthogonal_init": True, "anneal_lr": False, "norm_adv": False, "norm_reward": False, "clip_vloss": True,
        "target_kl": 0.02, "adam_eps": 1e-8}
    defaults = spec_of(experiment("model = Net()", "env = game2048()", "algo = ppo(target_kl=none)"))
    assert defaults.algo["target_kl"] is None and defaults.algo["norm_reward"] is True
    assert defaults.algo["orthogonal_init"] is None  # decided by the environment
    swept = spec_of(experiment("model = Net()", "env = game2048()", "sweep { anneal_lr = [true, false] }"))
    assert [p["algo.anneal_lr"] for p in swept.points()] == [True, False]


def test_did_you_mean_a_ppo_setting_and_an_experiment_key() -> None:
    src = experiment("model = Net()", "env = game2048()", "algo = ppo(lrr=0.1)", "budgt = 2M steps")
    assert [(d.code, d.help) for d in diags(src)] == [
        ("E0103", "did you mean `lr`?"), ("E0401", "did you mean `budget`?")]
    (key,) = [d for d in diags(src) if d.code == "E0401"]
    assert "budget = 2M steps" in apply_fix(dedent(src), key.fix)


def test_an_unknown_algorithm_is_one_error() -> None:
    assert codes(experiment("model = Net()", "env = game2048()", "algo = sac()")) == ["E0403"]


def test_a_missing_env_and_a_missing_model() -> None:
    assert only(experiment("model = Net()"), "E0402").message == "experiment `e` has no env"
    assert only(experiment("env = game2048()"), "E0402").message == "experiment `e` has no model"


def test_checkpoint_export_device_and_seeds() -> None:
    spec = spec_of(experiment("model = Net()", "env = game2048()", "checkpoint = every(100k steps, keep=2)",
                              "export = [onnx, pt, py, json]", "device = cuda", "seeds = [3, 1]"))
    assert (spec.checkpoint_every, spec.checkpoint_keep) == (100_000, 2)
    assert spec.export == ("onnx", "pt", "py", "json")
    assert (spec.device, spec.seeds) == ("cuda", (3, 1))
    default = spec_of(experiment("model = Net()", "env = game2048()"))
    assert (default.device, default.seeds, default.export, default.checkpoint_every) == ("auto", (1,), (), None)


@pytest.mark.parametrize(("entry", "code", "message"), [
    ("checkpoint = every(10)", "E0410", "`checkpoint` must be `every(N steps, keep=K)`"),
    ("checkpoint = every(10 steps, keep=0)", "E0202", "`keep=0` is out of range; it must be in [1, 10000]"),
    ("export = [onnx, tflite]", "E0202", "unknown export format `tflite`"),
    ("device = tpu", "E0202", "unknown device `tpu`"),
    ("seeds = []", "E0202", "`seeds` must be a non-empty list of whole numbers from 0 to 2^32-1"),
    ("seeds = [1.5]", "E0202", "`seeds` must be a non-empty list of whole numbers from 0 to 2^32-1"),
])
def test_bad_settings(entry: str, code: str, message: str) -> None:
    found = diags(experiment("model = Net()", "env = game2048()", entry))
    assert [(d.code, d.message) for d in found] == [(code, message)]


def test_a_bad_export_does_not_hide_a_bad_device() -> None:
    src = experiment("model = Net()", "env = game2048()", "export = [tflite]", "device = tpu")
    assert [d.message for d in diags(src)] == ["unknown export format `tflite`", "unknown device `tpu`"]


def test_repeated_seeds_warn() -> None:
    d = only(experiment("model = Net()", "env = game2048()", "seeds = [1, 1]"), "W0005")
    assert d.severity is Severity.WARNING


# ------------------------------------------------------------------------------------------ sweeps


def test_sweep_keys_resolve_to_model_or_algo() -> None:
    spec = spec_of(experiment("model = Net()", "env = game2048()",
                              "sweep { experts = [2, 4]; lr = [1e-4, 3e-4]; model.d = [16, 32]; algo.gamma = [0.9] }"))
    assert spec.sweep == {"model.experts": (2, 4), "algo.lr": (1e-4, 3e-4), "model.d": (16, 32),
                          "algo.gamma": (0.9,)}


AMBIGUOUS = NET.replace("model Net(experts: int = 4, d: int = 16)", "model Net(experts: int = 4, d: int = 16, lr: int = 1)")


def test_an_ambiguous_sweep_key_must_be_qualified() -> None:
    src = experiment("model = Net()", "env = game2048()", "sweep { lr = [1e-4] }", net=AMBIGUOUS)
    d = only(src, "E0411")
    assert d.message == "sweep key `lr` is both a model parameter and a PPO setting"
    assert d.help == "write `model.lr` or `algo.lr`"
    spec = clean(experiment("model = Net()", "env = game2048()", "sweep { algo.lr = [1e-4]; model.lr = [1, 2] }",
                            net=AMBIGUOUS.replace("input board", "_ = lr\n        input board"))).experiments["e"]
    assert spec.sweep == {"algo.lr": (1e-4,), "model.lr": (1, 2)}


@pytest.mark.parametrize(("sweep", "message", "help"), [
    ("expert = [4]", "sweep key `expert` is neither a parameter of `Net` nor a PPO setting", "did you mean `experts`?"),
    ("algo.gama = [0.9]", "`gama` is not a PPO setting", "did you mean `gamma`?"),
    ("model.lr = [1]", "`lr` is not a model parameter", ...),
    ("experts = 4", "a sweep key takes a non-empty list of values", "for example `experts = [1, 2]`"),
])
def test_bad_sweep_keys(sweep: str, message: str, help: object) -> None:
    d = only(experiment("model = Net()", "env = game2048()", f"sweep {{ {sweep} }}"), "E0411")
    assert d.message == message
    if help is not ...:  # `...`: no close name to suggest; whatever help there is, is not checked here
        assert d.help == help


def test_a_sweep_key_given_twice() -> None:
    d = only(experiment("model = Net()", "env = game2048()", "sweep { experts = [2, 4]; model.experts = [8] }"), "E0411")
    assert (d.span.line, d.span.column, d.span.end_column) == (10, 31, 44)  # the second key
    assert d.message == "sweep key `model.experts` is given twice (as `experts` before)"


def test_sweep_values_are_range_checked() -> None:
    d = only(experiment("model = Net()", "env = game2048()", "sweep { lr = [0.1, 2] }"), "E0202")
    assert d.message == "`lr=2` is out of range; it must be in (0, 1]"


def test_every_model_a_sweep_builds_is_checked() -> None:
    # top_k defaults to 2, so experts=1 cannot compile; only that one error is reported.
    found = diags(experiment("model = Net()", "env = game2048()", "sweep { experts = [1, 4] }"))
    assert [(d.code, d.message) for d in found] == [("E0204", "`top_k=2` is more than `experts=1`")]


def test_the_sweep_point_that_is_the_experiments_own_model_is_not_elaborated_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from mdl.compiler.elaborate import Elaborator

    calls: list[dict] = []
    original = Elaborator.model

    def counting(self, model, scope, args, *rest):
        calls.append(dict(args))
        return original(self, model, scope, args, *rest)

    monkeypatch.setattr(Elaborator, "model", counting)
    spec = spec_of(experiment("model = Net(experts=4)", "env = game2048()", "sweep { experts = [4, 8] }"))
    assert spec.sweep == {"model.experts": (4, 8)}
    # the defaults, the experiment's own model, then only the sweep point that differs from it
    assert calls == [{}, {"experts": 4}, {"experts": 8}]


# --------------------------------------------------------------------------------------------- cost


def single_linear(d: int, out: int, bias: str = "true") -> Analysis:
    return clean(f"model M {{\n    input x: float[B, {d}]\n    output policy = x -> linear(out={out}, bias={bias})\n}}\n")


@pytest.mark.parametrize(("d", "out"), [(16, 4), (64, 8), (3, 1)])
def test_flops_of_a_linear(d: int, out: int) -> None:
    graph = single_linear(d, out).graphs["M"]
    assert graph.params == d * out + out
    assert cost.total_flops(graph) == 2 * d * out + out
    graph = single_linear(d, out, bias="false").graphs["M"]
    assert (graph.params, cost.total_flops(graph)) == (d * out, 2 * d * out)


def test_flops_scale_with_tokens_not_batch() -> None:
    graph = clean(model("y = x -> linear(out=8)\nh = y -> mean(dim=1)\noutput policy = h -> linear(out=4)\n")).graphs["M"]
    linear = graph.nodes[1]
    assert linear.flops == 16 * (2 * 64 * 8 + 8)


@pytest.mark.parametrize("batch", [1, 2, 32])
def test_training_memory_is_16_bytes_per_param_plus_4_per_saved_value(batch: int) -> None:
    graph = single_linear(16, 4).graphs["M"]
    mem = cost.memory(graph, batch)
    saved = batch * (16 + 4)  # the input and the linear's output, fp32
    assert mem.activations == 4 * saved
    assert mem.training == 16 * graph.params + 4 * saved
    assert (mem.params, mem.gradients, mem.optimizer) == (4 * 68, 4 * 68, 8 * 68)
    assert mem.inference == 4 * graph.params + 4 * batch * (16 + 4)


def test_memory_with_a_symbolic_dim_other_than_b_is_unknown() -> None:
    graph = clean(model("y = x -> linear(out=8)\n" + TAIL, inp="float[B, T, 64]")).graphs["M"]
    assert cost.memory(graph).training is None
    assert cost.total_flops(graph) is None
    assert graph.params == 64 * 8 + 8 + 8 * 4 + 4  # parameters never depend on T


def test_per_block_totals() -> None:
    src = dedent("""
        block inner(x) {
            return x -> linear(out=8)
        }
        block outer(x) {
            y = x -> inner -> relu
            return y -> linear(out=8)
        }
        model M {
            input x: float[B, 8]
            h = x -> outer -> outer
            output policy = h -> linear(out=4)
        }
        """)
    graph = clean(src).graphs["M"]
    blocks = cost.block_costs(graph)
    linear8 = 8 * 8 + 8
    assert [(b.path, b.block, b.depth, b.params, b.flops, b.line) for b in blocks] == [
        ("outer", "outer", 0, 2 * linear8, 2 * (2 * 64 + 8) + 8, 10),
        ("outer.inner", "inner", 1, linear8, 2 * 64 + 8, 5),
        ("outer_1", "outer", 0, 2 * linear8, 2 * (2 * 64 + 8) + 8, 10),
        ("outer_1.inner", "inner", 1, linear8, 2 * 64 + 8, 5),
    ]
    assert graph.params == 4 * linear8 + 8 * 4 + 4


def test_the_clean_fixture_is_clean() -> None:
    result = analyze((DATA / "clean.mdl").read_text(), "clean.mdl")
    assert result.diagnostics == []
    assert set(result.graphs) == {"Small"} and set(result.experiments) == {"small"}
