"""mdl.dsl.parser: every construct of LANGUAGE.md parses into the expected `mdl.dsl.ast` tree, the newline
rule, spans, and error recovery (one diagnostic per broken statement, the rest of the file still read).

Trees are compared with `==`: spans and number spellings do not take part in equality, so the expected
trees below are written without them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mdl.dsl import ast
from mdl.dsl.ast import Span
from mdl.dsl.diagnostics import Severity
from mdl.dsl.parser import parse, parse_number

DATA = Path(__file__).resolve().parent / "data" / "parser"

N = ast.Number
S = ast.String
Nm = ast.Name


def K(name: str, value: ast.Expr) -> ast.Keyword:
    return ast.Keyword(name, value)


def C(func: str, *args: ast.Expr, **kwargs: ast.Expr) -> ast.Call:
    return ast.Call(func, tuple(args), tuple(K(k, v) for k, v in kwargs.items()))


def B(op: str, left: ast.Expr, right: ast.Expr) -> ast.BinOp:
    return ast.BinOp(op, left, right)


def parse_ok(src: str) -> ast.Module:
    module, diagnostics = parse(src)
    assert diagnostics == [], [f"{d.span}: {d.code} {d.message}" for d in diagnostics]
    return module


def items(src: str) -> tuple:
    return parse_ok(src).items


def expr(src: str) -> ast.Expr:
    """The value of `const X = <src>`."""
    (const,) = items(f"const X = {src}")
    return const.value


def body(src: str) -> tuple:
    """The statements of `model M { <src> }`."""
    (model,) = items("model M {\n" + src + "\n}")
    return model.body


def errors(src: str) -> list[tuple[str, int, int, str]]:
    """(code, line, column, message) of each syntax diagnostic."""
    _, diagnostics = parse(src)
    assert all(d.severity is Severity.ERROR for d in diagnostics)
    return [(d.code, d.span.line, d.span.column, d.message) for d in diagnostics]


# ------------------------------------------------------------------------------------------ items


def test_const() -> None:
    assert items("const D = 128") == (ast.Const("D", N(128)),)


def test_import_stdlib_unqualified_and_aliased() -> None:
    assert items("import stdlib.blocks\nimport stdlib.templates.research as r") == (
        ast.Import("stdlib.blocks", None, None),
        ast.Import("stdlib.templates.research", None, "r"),
    )


def test_import_file_is_always_aliased() -> None:
    assert items('import "lib/layers.mdl" as layers') == (ast.Import(None, "lib/layers.mdl", "layers"),)
    assert errors('import "lib/layers.mdl"\nconst A = 1') == [("E0001", 1, 24, "expected `as`, found end of line")]


def test_block_with_untyped_typed_and_default_params() -> None:
    (block,) = items("block b(x, y: float[B, T, 64], p: int = 4, q: float) {\n    return x + y\n}")
    assert block == ast.Block(
        "b",
        (
            ast.Param("x"),
            ast.Param("y", ast.TypeAnn("float", (Nm("B"), Nm("T"), N(64)))),
            ast.Param("p", ast.TypeAnn("int"), N(4)),
            ast.Param("q", ast.TypeAnn("float")),
        ),
        (ast.Return(B("+", Nm("x"), Nm("y"))),),
    )


def test_block_params_may_end_with_a_comma_and_span_lines() -> None:
    (block,) = items("block b(\n    x,\n    p: int = 4,\n) {\n    return x\n}")
    assert [p.name for p in block.params] == ["x", "p"]


def test_model_with_and_without_parens() -> None:
    with_params, empty_parens, bare = items(
        "model A(d: int = 4, layers: int = 2) { }\nmodel B() { }\nmodel C { }")
    assert with_params == ast.Model("A", (ast.Param("d", ast.TypeAnn("int"), N(4)),
                                          ast.Param("layers", ast.TypeAnn("int"), N(2))), ())
    assert (empty_parens.params, empty_parens.has_parens) == ((), True)
    assert (bare.params, bare.has_parens) == ((), False)


def test_model_statements() -> None:
    src = """
    input board: int[B, 4, 4]
    x = board -> flatten(start=1)
    repeat layers {
        x = layer(x)
    }
    repeat 3 as i {
        x = x -> linear(out=8)
    }
    output policy = x -> linear(out=4)
    """
    assert body(src) == (
        ast.Input("board", "int", (Nm("B"), N(4), N(4))),
        ast.Assign("x", ast.Pipe(Nm("board"), C("flatten", start=N(1)))),
        ast.Repeat(Nm("layers"), None, (ast.Assign("x", C("layer", Nm("x"))),)),
        ast.Repeat(N(3), "i", (ast.Assign("x", ast.Pipe(Nm("x"), C("linear", out=N(8)))),)),
        ast.Output("policy", ast.Pipe(Nm("x"), C("linear", out=N(4)))),
    )


def test_input_with_no_dims() -> None:
    assert body("input s: float[]") == (ast.Input("s", "float", ()),)


def test_experiment_with_every_key_and_a_qualified_sweep() -> None:
    src = """experiment moe_2048 {
    model = Moe2048(d=128, experts=4)
    env = game2048(envs=64)
    algo = ppo(lr=3e-4, gamma=0.99)
    budget = 2M steps
    seeds = [1, 2, 3]
    sweep { lr = [1e-4, 3e-4]; model.experts = [4, 8]; algo.gamma = [0.9] }
    checkpoint = every(100k steps, keep=3)
    export = [onnx, pt]
    device = cpu
}"""
    (exp,) = items(src)
    assert exp == ast.Experiment("moe_2048", (
        ast.Entry("model", C("Moe2048", d=N(128), experts=N(4))),
        ast.Entry("env", C("game2048", envs=N(64))),
        ast.Entry("algo", C("ppo", lr=N(3e-4), gamma=N(0.99))),
        ast.Entry("budget", ast.Quantity(2_000_000, "steps")),
        ast.Entry("seeds", ast.List((N(1), N(2), N(3)))),
        ast.Section((
            ast.Entry("lr", ast.List((N(1e-4), N(3e-4)))),
            ast.Entry("model.experts", ast.List((N(4), N(8)))),
            ast.Entry("algo.gamma", ast.List((N(0.9),))),
        )),
        ast.Entry("checkpoint", C("every", ast.Quantity(100_000, "steps"), keep=N(3))),
        ast.Entry("export", ast.List((Nm("onnx"), Nm("pt")))),
        ast.Entry("device", Nm("cpu")),
    ))


def test_the_language_md_example_parses_cleanly() -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "moe_2048.mdl"
    module = parse_ok(example.read_text())
    kinds = [type(i).__name__ for i in module.items]
    assert kinds == ["Import", "Const", "Block", "Model", "Experiment"]
    assert module.comments[0].text.startswith("# examples/moe_2048.mdl")


# ------------------------------------------------------------------------------------ expressions


def test_pipes_are_left_associative() -> None:
    assert expr("a -> f -> g(k=1)") == ast.Pipe(ast.Pipe(Nm("a"), C("f")), C("g", k=N(1)))


def test_pipe_binds_loosest() -> None:
    assert expr("x + y * 2 -> f") == ast.Pipe(B("+", Nm("x"), B("*", Nm("y"), N(2))), C("f"))
    assert expr("x + (x -> f)") == B("+", Nm("x"), ast.Pipe(Nm("x"), C("f")))


def test_the_right_of_a_pipe_is_a_call_not_an_expression() -> None:
    assert errors("const A = x -> f + 1") == [
        ("E0001", 1, 18, "expected `->`, end of file or end of line, found `+`")]


@pytest.mark.parametrize(("src", "tree"), [
    ("1 + 2 * 3", B("+", N(1), B("*", N(2), N(3)))),
    ("1 * 2 + 3", B("+", B("*", N(1), N(2)), N(3))),
    ("1 - 2 - 3", B("-", B("-", N(1), N(2)), N(3))),
    ("8 / 4 / 2", B("/", B("/", N(8), N(4)), N(2))),
    ("8 / 4 * 2", B("*", B("/", N(8), N(4)), N(2))),
    ("(1 + 2) * 3", B("*", B("+", N(1), N(2)), N(3))),
    ("1 - (2 - 3)", B("-", N(1), B("-", N(2), N(3)))),
    ("-2 * 3", B("*", ast.Neg(N(2)), N(3))),
    ("2 * -3", B("*", N(2), ast.Neg(N(3)))),
    ("-(1 + 2)", ast.Neg(B("+", N(1), N(2)))),
    ("- -1", ast.Neg(ast.Neg(N(1)))),
    ("((x))", Nm("x")),
])
def test_arithmetic_precedence(src: str, tree: ast.Expr) -> None:
    assert expr(src) == tree


def test_calls_positional_then_keyword() -> None:
    assert expr("concat(a, b, dim=-1)") == C("concat", Nm("a"), Nm("b"), dim=ast.Neg(N(1)))
    assert expr("f()") == C("f")


def test_qualified_names_and_calls() -> None:
    assert expr("lib.CONST * 2") == B("*", Nm("lib.CONST"), N(2))
    assert expr("x -> lib.layer(k=1)") == ast.Pipe(Nm("x"), C("lib.layer", k=N(1)))


def test_lists() -> None:
    assert expr("[]") == ast.List(())
    assert expr("[1, [2, 3], x,]") == ast.List((N(1), ast.List((N(2), N(3))), Nm("x")))


def test_literals() -> None:
    assert expr("[true, false, none]") == ast.List((ast.Bool(True), ast.Bool(False), ast.NoneLit()))


@pytest.mark.parametrize(("src", "value"), [
    (r'"plain"', "plain"),
    (r'""', ""),
    (r'"say \"hi\""', 'say "hi"'),
    (r'"back\\slash"', "back\\slash"),
    (r'"two\nlines\tand a tab"', "two\nlines\tand a tab"),
    (r'"unknown \q escape"', "unknown \\q escape"),
    ('"# not a comment"', "# not a comment"),
])
def test_strings_with_escapes(src: str, value: str) -> None:
    assert expr(src) == S(value)


@pytest.mark.parametrize(("text", "value", "kind"), [
    ("128", 128, int),
    ("1_000_000", 1_000_000, int),
    ("0.5", 0.5, float),
    ("3e-4", 3e-4, float),
    ("7E2", 700.0, float),
    ("100k", 100_000, int),
    ("1.5k", 1_500, int),
    ("2M", 2_000_000, int),
    ("1G", 1_000_000_000, int),
])
def test_numbers(text: str, value: int | float, kind: type) -> None:
    number = expr(text)
    assert number == N(value) and type(number.value) is kind
    assert number.text == text  # kept for the formatter
    assert parse_number(text) == value


def test_a_number_too_large_is_reported() -> None:
    assert errors("const A = 1e999") == [("E0005", 1, 11, "number is too large")]


@pytest.mark.parametrize(("src", "value", "unit"), [
    ("2M steps", 2_000_000, "steps"),
    ("500k steps", 500_000, "steps"),
    ("10 min", 10, "min"),
    ("30 s", 30, "s"),
    ("2 h", 2, "h"),
])
def test_quantities(src: str, value: int, unit: str) -> None:
    assert expr(src) == ast.Quantity(value, unit)


# --------------------------------------------------------------------------------- the newline rule


def test_newlines_inside_parens_and_brackets_are_ignored() -> None:
    assert expr("f(\n    a,\n    k=1\n)") == C("f", Nm("a"), k=N(1))
    assert expr("[\n1\n,\n2\n]") == ast.List((N(1), N(2)))
    assert expr("(1\n+\n2)") == B("+", N(1), N(2))


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_a_line_ending_with_an_operator_continues(op: str) -> None:
    assert expr(f"a {op}\n    b") == B(op, Nm("a"), Nm("b"))


def test_a_line_ending_with_equals_comma_brace_or_arrow_continues() -> None:
    assert items("const A =\n    1") == (ast.Const("A", N(1)),)
    assert body("x =\n  a ->\n  f") == (ast.Assign("x", ast.Pipe(Nm("a"), C("f"))),)
    assert items("block b(x,\n y) { return x }") == items("block b(x, y) { return x }")
    assert items("model M {\n\n}") == (ast.Model("M", (), ()),)


def test_a_trailing_comment_does_not_stop_a_continuation() -> None:
    module = parse_ok("const A = 1 + # one\n    2  # two")
    assert module.items == (ast.Const("A", B("+", N(1), N(2))),)
    assert [c.text for c in module.comments] == ["# one", "# two"]


def test_a_line_followed_by_one_starting_with_arrow_continues() -> None:
    stmts = body("x = a\n    -> f\n\n    -> g(k=1)\ny = x")
    assert stmts == (
        ast.Assign("x", ast.Pipe(ast.Pipe(Nm("a"), C("f")), C("g", k=N(1)))),
        ast.Assign("y", Nm("x")),
    )


def test_otherwise_a_newline_ends_the_statement() -> None:
    assert body("x = a\ny = -b") == (ast.Assign("x", Nm("a")), ast.Assign("y", ast.Neg(Nm("b"))))


def test_semicolons_separate_statements() -> None:
    assert items("const A = 1; const B = 2;") == (ast.Const("A", N(1)), ast.Const("B", N(2)))
    assert body("x = a; y = x;;") == (ast.Assign("x", Nm("a")), ast.Assign("y", Nm("x")))


def test_blank_lines_and_comments_are_free() -> None:
    assert items("\n\n# top\n\nconst A = 1\n\n\n# end\n") == (ast.Const("A", N(1)),)


def test_a_quantity_does_not_span_lines() -> None:
    module, diagnostics = parse("experiment e {\n    budget = 2M\n    steps\n    seeds = [1]\n}")
    (exp,) = module.items
    assert exp.entries[0] == ast.Entry("budget", N(2_000_000))  # a count, not `2M steps`
    assert exp.entries[1:] == (ast.Entry("seeds", ast.List((N(1),))),)
    assert [(d.code, d.span.line, d.message) for d in diagnostics] == [
        ("E0001", 3, "expected `=`, found end of line")]


# ------------------------------------------------------------------------------------------ spans


def test_spans_are_one_based_with_exclusive_ends() -> None:
    module = parse_ok("const D = 128\n")
    (const,) = module.items
    assert const.span == Span(None, 1, 1, 1, 14, 0, 13)
    assert const.name_span == Span(None, 1, 7, 1, 8, 6, 7)
    assert const.value.span == Span(None, 1, 11, 1, 14, 10, 13)


def test_spans_of_nested_nodes() -> None:
    src = 'model M {\n    y = x -> attention(heads=8, kind="a")\n}'
    module, _ = parse(src, "f.mdl")
    (model,) = module.items
    assert (model.span.line, model.span.column, model.span.end_line, model.span.end_column) == (1, 1, 3, 2)
    assert model.name_span == Span("f.mdl", 1, 7, 1, 8, 6, 7)
    (assign,) = model.body
    pipe = assign.value
    call = pipe.call
    assert (assign.span.column, assign.span.end_column) == (5, 42)
    assert (pipe.span.column, pipe.span.end_column) == (9, 42)
    assert (call.span.column, call.span.end_column) == (14, 42)
    assert (call.func_span.column, call.func_span.end_column) == (14, 23)
    heads, kind = call.kwargs
    assert (heads.name_span.column, heads.name_span.end_column) == (24, 29)
    assert (heads.value.span.column, heads.value.span.end_column) == (30, 31)
    assert (kind.value.span.column, kind.value.span.end_column) == (38, 41)  # quotes included
    assert src[kind.value.span.start:kind.value.span.end] == '"a"'


def test_spans_across_lines_and_the_file_span() -> None:
    src = "const A = [\n    1,\n    22]\n"
    module = parse_ok(src)
    (const,) = module.items
    assert (const.span.line, const.span.column, const.span.end_line, const.span.end_column) == (1, 1, 3, 8)
    last = const.value.items[1]
    assert (last.span.line, last.span.column, last.span.end_column) == (3, 5, 7)
    assert (module.span.end_line, module.span.end_column) == (4, 1)


def test_comment_spans() -> None:
    module = parse_ok("const A = 1  # note\n")
    (comment,) = module.comments
    assert comment.text == "# note"
    assert (comment.span.line, comment.span.column, comment.span.end_column) == (1, 14, 20)


def test_spans_do_not_take_part_in_equality() -> None:
    assert items("const A = 1") == items("\n\n   const   A =   1   ")


# ------------------------------------------------------------------------------------- recovery


def test_three_broken_statements_give_three_errors_on_their_lines() -> None:
    src = (DATA / "three_errors.mdl").read_text()
    module, diagnostics = parse(src, "three_errors.mdl")
    assert [(d.code, d.span.line, d.span.column) for d in diagnostics] == [
        ("E0001", 2, 13), ("E0001", 6, 14), ("E0001", 10, 11)]
    assert all(d.span.file == "three_errors.mdl" for d in diagnostics)
    assert diagnostics[0].message == "expected `->`, a name, end of file, end of line or an operator, found number `2`"
    assert diagnostics[0].help == "put each statement on its own line or separate statements with `;`"
    assert diagnostics[1].message == "expected a name, found `-`"
    assert diagnostics[2].message == "expected an expression, found `*`"
    # The good statements around them are all kept.
    assert [i.name for i in module.items] == ["B", "b", "D"]


def test_an_unclosed_brace_at_the_end_of_the_file() -> None:
    src = (DATA / "unclosed_model.mdl").read_text()
    assert src.endswith(")\n")
    _, diagnostics = parse(src)
    (d,) = diagnostics
    assert d.code == "E0002"
    assert d.message == "expected `}` to close model `M` opened on line 1"
    assert d.help == "add `}` at the end"
    assert (d.span.line, d.span.column, d.span.end_line, d.span.end_column) == (4, 1, 4, 1)  # the end of the file
    (label,) = d.labels
    assert (label.span.line, label.span.column, label.span.end_column, label.message) == (1, 9, 10, "opened here")


def test_an_unclosed_brace_names_what_it_belongs_to() -> None:
    assert errors("block enc(x) {\n    return x") == [
        ("E0002", 2, 13, "expected `}` to close block `enc` opened on line 1")]
    assert errors("experiment e {\n    seeds = [1]") == [
        ("E0002", 2, 16, "expected `}` to close experiment `e` opened on line 1")]
    assert errors("model M {\n    repeat 2 {\n        x = y\n}\n") == [
        ("E0002", 5, 1, "expected `}` to close model `M` opened on line 1")]


def test_an_unclosed_paren_spanning_lines() -> None:
    src = (DATA / "unclosed_paren.mdl").read_text()
    module, diagnostics = parse(src)
    (d,) = diagnostics
    assert (d.code, d.span.line, d.span.column) == ("E0002", 4, 5)
    assert d.message == "expected `)` to close `(` opened on line 3, found `output`"
    assert d.help == "add `)` before this"
    assert (d.labels[0].span.line, d.labels[0].span.column) == (3, 13)
    # Recovery resumes at the line that broke the call, so the output is still read.
    (model,) = module.items
    assert [type(s).__name__ for s in model.body] == ["Input", "Output"]


def test_an_unclosed_bracket_at_the_end_of_the_file() -> None:
    assert errors("const A = [1, 2") == [("E0002", 1, 16, "expected `]` to close `[` opened on line 1")]


def test_stray_characters() -> None:
    _, diagnostics = parse("const A = 1 $ 2\nconst B = 'x'\nconst C = 1 == 2\nconst D = 4")
    assert [(d.code, d.span.line, d.span.column, d.span.end_column, d.message) for d in diagnostics] == [
        ("E0003", 1, 13, 14, "unexpected character `$`"),
        ("E0003", 2, 11, 12, "unexpected character `'`"),
        ("E0001", 3, 13, 14, "expected `->`, a name, end of file, end of line or an operator, found `=`"),
    ]
    assert diagnostics[1].help == 'strings use double quotes: "..."'


def test_an_invisible_stray_character_is_named_by_its_code_point() -> None:
    assert errors("const A = 1\u00a0+ 2") == [("E0003", 1, 12, "unexpected character U+00A0")]


def test_an_unterminated_string() -> None:
    module, diagnostics = parse('const A = "abc\nconst B = 1')
    (d,) = diagnostics
    assert (d.code, d.message) == ("E0004", "unterminated string")
    assert (d.span.line, d.span.column, d.span.end_line, d.span.end_column) == (1, 11, 1, 15)
    assert module.items == (ast.Const("B", N(1)),)


@pytest.mark.parametrize(("src", "keyword", "column"), [
    ("const model = 3", "model", 7),
    ("block input(x) { return x }", "input", 7),
    ("const A = f(repeat=2)", "repeat", 13),
])
def test_a_keyword_used_as_a_name(src: str, keyword: str, column: int) -> None:
    _, diagnostics = parse(src)
    (d,) = diagnostics
    assert (d.code, d.span.line, d.span.column) == ("E0001", 1, column)
    assert d.message.endswith(f"found `{keyword}`")
    assert d.help == f"`{keyword}` is a keyword and cannot be used as a name"


def test_a_keyword_as_a_statement_name_inside_a_body() -> None:
    module, diagnostics = parse("model M {\n    sweep = 3\n    x = 1\n}")
    assert [(d.code, d.span.line, d.span.column) for d in diagnostics] == [("E0001", 2, 5)]
    assert module.items[0].body == (ast.Assign("x", N(1)),)


def test_keyword_argument_errors_are_reported_by_the_parser() -> None:
    _, diagnostics = parse("const A = f(1, k=2, 3, k=4)")
    assert [(d.code, d.span.column, d.message) for d in diagnostics] == [
        ("E0007", 21, "a positional argument follows a keyword argument"),
        ("E0105", 24, "argument `k` is given twice"),
    ]


def test_a_word_from_another_language_gets_a_hint() -> None:
    _, diagnostics = parse("def f(x):\n    return x")
    assert diagnostics[0].help == ("designs are made of `block`, `model`, `const`, `import` and `experiment` "
                                   "declarations")


@pytest.mark.parametrize("src", [
    "", "\n\n", ";;;", "}", ")))", "{{{", "model", "model M", "model M {", "block b(",
    "const", "const A =", "import", 'import "', "experiment e { sweep { lr = [", "->", "-> f",
    "x = 1", "const A = ((((((((((1", "\x00\x01", "model M { input x: float[B, 4] output policy = x }",
])
def test_malformed_input_gives_diagnostics_inside_the_text(src: str) -> None:
    module, diagnostics = parse(src)
    assert isinstance(module, ast.Module)
    if src.strip(" \n;") == "":
        assert diagnostics == [] and module.items == ()
        return
    assert diagnostics, "a malformed file must produce at least one error"
    lines = src.split("\n")
    for d in diagnostics:
        assert d.is_error
        assert 1 <= d.span.line <= d.span.end_line <= len(lines)
        assert 1 <= d.span.column <= len(lines[d.span.line - 1]) + 1
        assert 0 <= d.span.start <= d.span.end <= len(src)
        assert d.message and d.message[0].islower() and not d.message.endswith(".")
