"""The generator behind `mdl.testing.strategies.designs`: whole `.mdl` files that check with no
diagnostics at all, each with what it must compile to (parameter count, input and output shapes, and
the graph's nodes), worked out while generating by a small interpreter from LANGUAGE.md's formulas,
never by `mdl.compiler`, so property tests hold the compiler to an independent account.

How a file is drawn: the generator keeps the concrete state of the code it is writing (the shape of
every tensor name, the value of every compile-time name). Each statement is drawn as a small syntax
tree (`syntax`), run by the `interpreter` against a copy of that state, and kept only if it is valid
there (`builder`). A block is drafted at its first call site against that call's shapes, its arguments
written as new parameters or as `dim(x)` arithmetic, and reused later with other arguments that the
interpreter accepts. So every design is valid by construction whatever hypothesis draws (nothing is
filtered), and the rules that keep it free of warnings are the interpreter's: widths that are
multiples of 8 (or below 16), and every binding, parameter and input used. `design` writes the file
around the statements: the input stem, the policy and value heads, consts and imports.

Every choice is a hypothesis draw that shrinks towards the simplest design (the first option, the
lower bound, no optional part), so a failing design shrinks to a few nodes. Sizes stay small (widths
up to 64, at most 3 repetitions) so that elaboration is fast.
"""

from mdl.testing.generator.builder import Knobs
from mdl.testing.generator.design import Design, FileBuilder

__all__ = ["Design", "FileBuilder", "Knobs"]
