"""Reductions for the kernels without triton.language's own @jit helpers (tl.max, tl.sum, tl.zeros...).

Those helpers are built as compiled-mode JITFunctions when triton.language is imported before
TRITON_INTERPRET=1 is set (torch imports triton early), and the interpreter then refuses to call them.
`tl.reduce(x, axis, combine)` with these combine functions of our own works in both modes (the
interpreter calls the combine function's Python body), as do builtins (tl.full, tl.exp, tl.math.erf).
"""

import triton
import triton.language as tl


@triton.jit
def max_combine(a, b):
    return tl.maximum(a, b)


@triton.jit
def min_combine(a, b):
    return tl.minimum(a, b)


@triton.jit
def add_combine(a, b):
    return a + b

