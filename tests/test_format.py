"""The formatter's laws (idempotent, meaning kept, comments kept in order, output parses cleanly), checked
on the example, on handwritten corner cases and on random trees; plus exact output for a few inputs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdl.dsl import ast
from mdl.dsl.format import MAX_WIDTH, FormatError, format_expr, format_module, format_source
from mdl.dsl.parser import parse, parse_number

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "moe_2048.mdl"


def check_laws(src: str) -> str:
    """Format `src`, assert the four laws, and return the formatted text."""
    before, diagnostics = parse(src)
    assert diagnostics == [], "the test input itself must parse"
    out = format_source(src)
    after, diagnostics = parse(out)
    assert diagnostics == [], out
    assert after.items == before.items, out
    assert [c.text for c in after.comments] == [c.text for c in before.comments], out
    assert format_source(out) == out, out
    return out


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# ----------------------------------------------------------------------------------------------- laws


def test_laws_on_the_example() -> None:
    out = check_laws(EXAMPLE.read_text())
    assert "    input board: int[B, 4, 4]  # log2 tile exponents 0..15 (0 = empty)\n" in out
    assert "    sweep { lr = [1e-4, 3e-4]; experts = [4, 8] }\n" in out


SNIPPETS = {
    "nested parens": "const A = ((((1))))\nconst B = f((g((x))), k=((2)))\n",
    "precedence": "const A = (a - b) - c + (a - (b - c)) * -(1 + 2) / (4 * (5 / 6))\nconst B = -(-x) - -1\n",
    "pipes as operands": dedent("""
        block b(x) {
            x = x + (x -> layer_norm -> attention(heads=4))
            y = (x -> f) * 2 - -(x -> g)
            z = [x -> f, (x -> g) -> h(k=y -> i)]
            return (x + y) -> relu
        }
        """),
    "negative numbers": "model M { x = y -> softmax(dim=-1) -> flatten(start=-2, end=-1) }\n",
    "quantities": dedent("""
        experiment e {
            budget = 2M   steps
            t = 10min
            checkpoint = every(500k steps, keep=3)
            both = [30 s, 2 h, 1.5G steps, 1_000 steps]
        }
        """),
    "sweep": dedent("""
        experiment e {
            sweep {
                lr = [1e-4, 3e-4]
                model.experts = [4, 8]
            }
            sweep { algo.clip = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]; algo.gamma = [0.9, 0.95, 0.99, 0.995] }
            sweep {}
        }
        """),
    "imports": 'import stdlib.blocks\nimport stdlib.blocks as b\nimport "lib/x \\"q\\".mdl" as lib\n',
    "typed params": dedent("""
        block b(x: float[B, T, 8], y, heads: int, top_k: int = 2, s = "a", e: float[]) {
            return x
        }
        """),
    "repeat": dedent("""
        model M(n: int = 3) {
            input x: float[B, 4]
            repeat 2 as i { x = x -> linear(out=4 * (i + 1)) }
            repeat n { repeat 2 { x = x -> relu } }
            output y = x
        }
        """),
    "model without parens": "model M {\n  input x: int[B]\n  output y = x\n}\nmodel N() { }\n",
    "multi-line pipeline": dedent("""
        model M {
            input board: int[B, 4, 4]
            x = board
                -> flatten(start=1)
                # a comment between steps
                -> embedding(vocab=16,
                             dim=8)
            output y = x
        }
        """),
    "comments everywhere": dedent("""
        # file header

        # about the import
        import stdlib.blocks  # trailing on an import
        const D = 128 # aligned
        const E = [1,  # inside a list
                   2]
        block b(x, # param comment
                h: int) {  # header comment
            # first statement
            y = x   # trailing


            # after a gap
            repeat 2 { # repeat header
                y = y -> relu
                # last in repeat
            }  # after a closing brace
            return y
            # end of body
        }  # after the block
        model M { }  # after an empty body
        experiment e {  # on the header
            sweep { lr = [1]  # inside a sweep
            }
            seeds = [1]
        }
        # end of file
        """),
    "semicolons": "const A = 1; const B = 2\nmodel M { input x: float[B]; y = x; output z = y }; const C = 3\n",
    "empty bodies": "block b() { }\nmodel M {\n}\nmodel N() {}\nexperiment e {\n\n}\n",
    "empty file": "",
    "only comments": "# one\n\n\n# two\n",
    "long lines": dedent("""
        model M(d: int = 128) {
            input board: int[B, 4, 4]
            x = board -> flatten(start=1) -> embedding(vocab=16, dim=d) -> pos_encoding(kind="learned") -> dropout(p=0.1)  # long
            y = x + (x -> layer_norm -> attention(heads=4) -> dropout(p=0.1) -> linear(out=d) -> gelu -> linear(out=d))
            output policy = h -> linear(out=4, bias=true, very_long_keyword_argument=some_long_value_name_to_break_it)
        }
        """),
    "literals": 'const S = "tab\\t nl\\n quote\\" backslash\\\\ other\\q"\nconst T = [true, false, none, [], [[1]]]\n',
    "call forms": "const A = f()\nconst B = x -> f()\nconst C = lib.enc(x, y, k=lib.CONST)\n",
}


@pytest.mark.parametrize("src", SNIPPETS.values(), ids=SNIPPETS.keys())
def test_laws_on_snippets(src: str) -> None:
    check_laws(src)


# ------------------------------------------------------------------------------------------ golden


def test_golden_spacing_and_parentheses() -> None:
    src = dedent("""
        import   stdlib.blocks
        const D=128
        const N=  ((2*D)+1)
        block b( x ,heads:int,top_k:int=2 ){
          y=x->layer_norm()->attention( heads = heads )
          return x+(y)
        }
        model M{input board:int[B,4,4];output y=board->flatten(start=1)->linear(out=- 1*(D-(N-1)))}
        """)
    assert format_source(src) == dedent("""
        import stdlib.blocks

        const D = 128
        const N = 2 * D + 1

        block b(x, heads: int, top_k: int = 2) {
            y = x -> layer_norm -> attention(heads=heads)
            return x + y
        }

        model M {
            input board: int[B, 4, 4]
            output y = board -> flatten(start=1) -> linear(out=-1 * (D - (N - 1)))
        }
        """)


def test_golden_comments() -> None:
    src = dedent("""
        # header
        const A = 1    # one
        const B = 2
        block b(x) {   # about b
                # before y


            y = f(x,   # moved
                  k=1)
            return y  # result
            # last
        }     # closed
        # the end
        """)
    assert format_source(src) == dedent("""
        # header
        const A = 1  # one
        const B = 2

        block b(x) {  # about b
            # before y

            # moved
            y = f(x, k=1)
            return y  # result
            # last
        }  # closed

        # the end
        """)


def test_golden_long_pipeline_and_sweeps() -> None:
    src = dedent("""
        model Policy {
            input board: int[B, 4, 4]
            features = board -> flatten(start=1) -> embedding(vocab=16, dim=64) -> pos_encoding(kind="learned")
            output policy = features -> mean(dim=1) -> linear(out=4)
        }
        experiment e {
            model = Policy()
            sweep { lr = [1e-4, 3e-4]; experts = [4, 8] }
            sweep { algo.learning_rate = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3]; model.experts = [2, 4, 8, 16, 32, 64] }
            export = [onnx, pt]
        }
        """)
    assert format_source(src) == dedent("""
        model Policy {
            input board: int[B, 4, 4]
            features = board
                -> flatten(start=1)
                -> embedding(vocab=16, dim=64)
                -> pos_encoding(kind="learned")
            output policy = features -> mean(dim=1) -> linear(out=4)
        }

        experiment e {
            model = Policy()
            sweep { lr = [1e-4, 3e-4]; experts = [4, 8] }
            sweep {
                algo.learning_rate = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3]
                model.experts = [2, 4, 8, 16, 32, 64]
            }
            export = [onnx, pt]
        }
        """)


def test_golden_blank_lines_and_empty_bodies() -> None:
    src = dedent("""


        import stdlib.blocks
        import "lib.mdl" as lib


        const A = 1



        const B = 2
        model M {
        }
        """)
    assert format_source(src) == dedent("""
        import stdlib.blocks
        import "lib.mdl" as lib

        const A = 1

        const B = 2

        model M { }
        """)


# -------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("src", ["model M {\n  x = \n  y = x\n}\n", "const A = (1", "block b(x) { return x ) }",
                                 "const A = 'x'", "const A = f(k=1, 2)"])
def test_broken_input_raises_with_diagnostics(src: str) -> None:
    with pytest.raises(FormatError) as info:
        format_source(src, "bad.mdl")
    assert info.value.diagnostics
    assert all(d.span.file == "bad.mdl" for d in info.value.diagnostics)
    assert "bad.mdl" in str(info.value)


@pytest.mark.parametrize("make", [
    lambda n: "[" * n + "]" * n,
    lambda n: "(" * n + "1" + ")" * n,
    lambda n: "-" * n + "1",
    lambda n: "x" + " -> f" * n,
    lambda n: "1" + " - 1" * n,
    lambda n: "1" + " - (1" * n + ")" * n,
    lambda n: "f(" * n + ")" * n,
], ids=["lists", "parens", "negations", "pipes", "left-nested", "right-nested", "calls"])
def test_deep_expressions_format_without_recursion(make) -> None:
    src = f"const A = {make(3000)}\n"
    out = format_source(src)
    assert parse(out)[1] == [] and format_source(out) == out


def test_bodies_nested_too_deeply_raise_format_error() -> None:
    depth = 2000
    src = "model M {\n" + "repeat 1 {\n" * depth + "x = 1\n" + "}\n" * depth + "}\n"
    assert parse(src)[1] == []
    with pytest.raises(FormatError) as info:
        format_source(src, "deep.mdl")
    assert [d.code for d in info.value.diagnostics] == ["E0006"]


def test_format_expr_parenthesizes_only_where_needed() -> None:
    def expr(text: str) -> ast.Expr:
        module, diagnostics = parse(f"const A = {text}")
        assert diagnostics == []
        return module.items[0].value

    assert format_expr(expr("(a - b) - (c - d)")) == "a - b - (c - d)"
    assert format_expr(expr("(a * b) / (c / d)")) == "a * b / (c / d)"
    assert format_expr(expr("(a + b) * -(c)")) == "(a + b) * -c"
    assert format_expr(expr("(a -> f) -> g(k = 1)")) == "a -> f -> g(k=1)"
    assert format_expr(expr("-(a -> f)")) == "-(a -> f)"


@pytest.mark.parametrize("width", [MAX_WIDTH, MAX_WIDTH + 1])
def test_a_pipeline_breaks_only_past_the_width(width: int) -> None:
    head = "model M {\n    y = x -> f -> "
    name = "g" * (width - len("    y = x -> f -> "))
    out = format_source(f"{head}{name}  # the comment does not count\n}}\n")
    if width <= MAX_WIDTH:
        assert out.split("\n")[1] == f"    y = x -> f -> {name}  # the comment does not count"
    else:
        assert out.split("\n")[1:5] == ["    y = x", "        -> f", f"        -> {name}  # the comment does not count", "}"]


def test_a_long_statement_that_is_not_a_pipeline_stays_long() -> None:
    src = "const A = " + " + ".join(f"name_{i}" for i in range(20)) + "\n"
    assert format_source(src) == src
    assert len(src) > MAX_WIDTH


def test_hand_built_tree_without_spans() -> None:
    tree = ast.Module((
        ast.Const("A", ast.Neg(ast.Number(0.5))),
        ast.Model("M", (), (ast.Output("y", ast.Pipe(ast.Name("x"), ast.Call("relu"))),), has_parens=False),
    ))
    assert format_module(tree) == "const A = -0.5\n\nmodel M {\n    output y = x -> relu\n}\n"


# ---------------------------------------------------------------------------------------- random trees

# A fixed pool (drawing from a regex is slow): short and long names, digits, underscores, names that
# start like keywords or units.
names = st.sampled_from(["x", "h", "B", "d", "_", "x1", "heads", "layer_norm", "T_2", "asx", "models",
                         "inputs", "steps", "e5", "k", "nonesuch", "truth", "encoder_layer_with_a_long_name"])
dotted = st.lists(names, min_size=1, max_size=2).map(".".join)
number_texts = st.one_of(
    st.sampled_from(["0", "1", "128", "1_000_000", "3e-4", "0.5", "2M", "100k", "1.5G", "1E+3", "0.99"]),
    st.integers(0, 10**6).map(str),
)
numbers = number_texts.map(lambda t: ast.Number(parse_number(t), t))
quantities = st.builds(lambda t, unit: ast.Quantity(parse_number(t), unit, f"{t} {unit}"),
                       number_texts, st.sampled_from(["steps", "s", "min", "h", "k"]))
# No commas in strings: the decorating step below breaks lines after commas, which must be outside strings.
strings = st.text(alphabet='ab #"\\\n\té', max_size=6).map(ast.String)
atoms = st.one_of(numbers, quantities, strings, st.booleans().map(ast.Bool), st.just(ast.NoneLit()),
                  dotted.map(ast.Name))


def _calls(children: st.SearchStrategy) -> st.SearchStrategy:
    @st.composite
    def calls(draw: st.DrawFn) -> ast.Call:
        keywords = draw(st.lists(names, max_size=3, unique=True))  # a repeated keyword is a syntax error
        args = draw(st.lists(children, max_size=2))
        return ast.Call(draw(dotted), tuple(args), tuple(ast.Keyword(k, draw(children)) for k in keywords))

    return calls()


def _compound(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.lists(children, max_size=3).map(lambda xs: ast.List(tuple(xs))),
        _calls(children),
        st.builds(ast.Pipe, children, _calls(children)),
        st.builds(ast.BinOp, st.sampled_from("+-*/"), children, children),
        st.builds(ast.Neg, children),
    )


exprs = st.recursive(atoms, _compound, max_leaves=12)
dims = st.lists(exprs, max_size=3).map(tuple)


def _statements(depth: int) -> st.SearchStrategy:
    simple = st.one_of(
        st.builds(ast.Assign, names, exprs),
        st.builds(ast.Output, names, exprs),
        st.builds(ast.Input, names, st.sampled_from(["float", "int"]), dims),
        st.builds(ast.Return, exprs),
    )
    if depth == 0:
        return simple
    repeat = st.builds(ast.Repeat, exprs, st.none() | names, _bodies(depth - 1))
    return st.one_of(simple, repeat)


def _bodies(depth: int) -> st.SearchStrategy:
    return st.lists(_statements(depth), max_size=4).map(tuple)


type_anns = st.builds(ast.TypeAnn, st.sampled_from(["int", "float"]), st.none() | dims)
params = st.lists(st.builds(ast.Param, names, st.none() | type_anns, st.none() | exprs), max_size=3).map(tuple)
keys = st.one_of(names, st.sampled_from(["model", "model.experts", "algo.lr"]))
entries = st.builds(ast.Entry, keys, exprs)
sweeps = st.builds(lambda es, kind: ast.Section(tuple(es), kind=kind), st.lists(entries, max_size=3),
                   st.sampled_from(["sweep", "limits"]))
items = st.one_of(
    st.builds(ast.Import, dotted, st.none(), st.none() | names),
    st.builds(lambda path, alias: ast.Import(None, path, alias), strings.map(lambda s: s.value), names),
    st.builds(ast.Const, names, exprs),
    st.builds(ast.Block, names, params, _bodies(2)),
    st.builds(lambda n, ps, body, parens: ast.Model(n, ps, body, parens or bool(ps)),
              names, params, _bodies(2), st.booleans()),
    st.builds(ast.Experiment, names, st.lists(st.one_of(entries, sweeps), max_size=4).map(tuple)),
)
modules = st.lists(items, max_size=4).map(lambda xs: ast.Module(tuple(xs)))


def _decorate(text: str, data: st.DataObject) -> str:
    """`text` with comments, blank lines and odd indentation added where the grammar allows them."""
    out: list[str] = []
    count = 0
    for line in text.split("\n"):
        if not line:
            out.append(line)
            continue
        kind = data.draw(st.sampled_from(["keep", "indent", "own", "trailing", "blank", "comma"]))
        count += 1
        if kind == "indent":
            line = " " * data.draw(st.integers(0, 9)) + line.lstrip()
        elif kind == "own":
            out.append(f"{' ' * data.draw(st.integers(0, 6))}# own {count}")
        elif kind == "trailing":
            line += f"{' ' * data.draw(st.integers(0, 3))}# trailing {count}"
        elif kind == "blank":
            out += [""] * data.draw(st.integers(1, 3))
        elif kind == "comma" and ", " in line:
            line = line.replace(", ", f",  # comma {count}\n", 1)
        out.append(line)
    return "\n".join(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules, st.data())
def test_laws_on_random_trees(module: ast.Module, data: st.DataObject) -> None:
    text = format_module(module)
    parsed, diagnostics = parse(text)
    assert diagnostics == [], text
    assert parsed.items == module.items, text
    assert format_source(text) == text
    for line in text.split("\n"):
        assert line == line.rstrip()
    decorated = _decorate(text, data)
    assert parse(decorated)[0].items == module.items, decorated
    check_laws(decorated)
