"""ONNX translations of the `mdl::moe` custom op (DESIGN.md rule 5), for the dynamo exporter.

Two ways to write one `moe` as ONE ONNX node:

- fused: onnxruntime's contrib op `com.microsoft.MoE`. The router stays a plain `MatMul` (the op takes
  raw router logits and applies the softmax itself); the expert weights are transposed to the op's
  layout (fc1 [E, h, d], fc2 [E, d, h]; ours are [E, d, h] and [E, h, d]); `k = top_k`;
  `normalize_routing_weights` is 1 for k > 1 (the chosen probabilities renormalised) and 0 for k = 1
  (the raw probability, Switch style). The experts are given to it in reverse order, because among
  equal probabilities it picks the higher expert index (onnxruntime 1.31's CPU kernel, checked by the
  tests) and `mdl::moe` the lower one. Only "relu" and "silu" map exactly onto its `activation_type`:
  its "gelu" is the tanh approximation (up to ~4e-4 off the exact erf GELU that LANGUAGE.md and the
  torch op use) and it has no tanh or sigmoid. Those activations get the portable node instead (see
  `fused_activation`), unless the caller accepts the tanh-approximate GELU. So does top_k=1: with
  `normalize_routing_weights=0` the CPU kernel of onnxruntime 1.31 disagrees with torch inside full
  exported designs (see `unfusable`).
- portable: an opaque node in the `mdl` domain whose op type names the configuration
  (`MoE_k2_gelu`), plus a model-local `FunctionProto` of that name built only from standard ONNX ops
  (`function_proto`), attached to the model after export (the exporter's inliner would expand an
  onnxscript function written in the translation). Any ONNX runtime can run it, inlining the body.
  The body computes every expert densely, which is exact for inference (dropless) and cheap for the
  small expert counts policies use: probabilities by Softmax, the top k by `TopK` (ONNX promises the
  lower index first among equal values, the tie-break of `mdl::moe`), the routing weights scattered
  into a dense [N, E] gate, then sum_e gate[:, e] * expert_e(x).

The op's three statistics outputs (mean_prob, token_fraction, dropped_fraction) have no consumer in an
eval-mode export; the translations return cheap placeholders for them that the exporter's dead-code
elimination removes (`export_onnx` checks that each `moe` became exactly one node).
"""

from __future__ import annotations

import math

import onnx
from onnx import TensorProto, helper
from onnx.defs import OpSchema

MDL_DOMAIN = "mdl"
MS_DOMAIN = "com.microsoft"
FUSED_ACTIVATIONS = ("relu", "silu")  # exact in com.microsoft.MoE; its "gelu" is the tanh approximation
_FLOATS = ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"]


def fused_activation(act: str, approximate_gelu: bool = False) -> str | None:
    """com.microsoft.MoE's `activation_type` for a moe activation, or None if it has no exact one."""
    if act in FUSED_ACTIVATIONS or (act == "gelu" and approximate_gelu):
        return act
    return None


def unfusable(top_k: int, act: str, approximate_gelu: bool = False) -> str | None:
    """Why a moe cannot be one exact com.microsoft.MoE node (it then gets the portable node), or None."""
    if fused_activation(act, approximate_gelu) is None:
        if act == "gelu":
            return "com.microsoft.MoE's gelu is the tanh approximation (approximate_gelu=True accepts it)"
        return f"com.microsoft.MoE has no {act} activation"
    if top_k == 1:  # seen in full designs (2 layers, d=128), not in small standalone graphs
        return "onnxruntime 1.31's com.microsoft.MoE with k=1 (normalize_routing_weights=0) disagrees with torch"
    return None


def portable_op_type(top_k: int, act: str) -> str:
    """The `mdl`-domain op type (and function name) of a portable moe node."""
    return f"MoE_k{top_k}_{act}"


def _schema(name: str, domain: str, inputs: list[str], attributes: dict[str, OpSchema.AttrType]) -> OpSchema:
    """A minimal schema so onnxscript's tracer can record a call to an op onnx does not know."""
    return OpSchema(
        name, domain, 1,
        inputs=[OpSchema.FormalParameter(n, "T") for n in inputs],
        outputs=[OpSchema.FormalParameter("y", "T")],
        type_constraints=[("T", _FLOATS, "float tensors")],
        attributes=[OpSchema.Attribute(n, t, n) for n, t in attributes.items()],
    )


_MS_SCHEMA = _schema("MoE", MS_DOMAIN, ["input", "router_probs", "fc1_experts_weights", "fc1_experts_bias",
                                       "fc2_experts_weights", "fc2_experts_bias"],
                     {"k": OpSchema.AttrType.INT, "activation_type": OpSchema.AttrType.STRING,
                      "normalize_routing_weights": OpSchema.AttrType.INT})


def _dead_statistics(op, logits):
    """Placeholders for mean_prob [E], token_fraction [E], dropped_fraction [] (removed as dead code)."""
    per_expert = op.ReduceMean(logits, op.Constant(value_ints=[0]), keepdims=0)
    return per_expert, per_expert, op.ReduceSum(per_expert, keepdims=0)


def make_translations(approximate_gelu: bool = False) -> tuple:
    """(fused, portable): onnxscript translations of `mdl::moe` for `custom_translation_table`.

    `fused` emits com.microsoft.MoE where the activation maps exactly (see `fused_activation`) and the
    portable node otherwise. Imports onnxscript lazily (it is only needed to export).
    """
    import onnxscript
    from onnxscript import opset18 as op

    ms = onnxscript.values.Opset(domain=MS_DOMAIN, version=1)
    mdl = onnxscript.values.Opset(domain=MDL_DOMAIN, version=1)
    ms_moe = onnxscript.values.Op(ms, "MoE", _MS_SCHEMA)
    portable_ops: dict[tuple[int, str], object] = {}

    def portable(x, router_weight, w1, b1, w2, b2, top_k: int, act: str, capacity=None):
        key = (top_k, act)
        if key not in portable_ops:
            name = portable_op_type(top_k, act)
            portable_ops[key] = onnxscript.values.Op(
                mdl, name, _schema(name, MDL_DOMAIN, ["x", "router_weight", "w1", "b1", "w2", "b2"], {}))
        y = portable_ops[key](x, router_weight, w1, b1, w2, b2)
        logits = op.MatMul(x, op.Transpose(router_weight, perm=[1, 0]))
        return (y, *_dead_statistics(op, logits))

    def fused(x, router_weight, w1, b1, w2, b2, top_k: int, act: str, capacity=None):
        activation = fused_activation(act, approximate_gelu)
        if unfusable(top_k, act, approximate_gelu) is not None:
            return portable(x, router_weight, w1, b1, w2, b2, top_k, act, capacity)
        # Experts in reverse order: among equal probabilities the contrib op picks the higher index, and
        # mdl::moe the lower one. The reversals of weights are constants, folded by the exporter.
        reverse = op.Constant(value_ints=list(range(router_weight.shape[0] - 1, -1, -1)))
        flip = lambda t: op.Gather(t, reverse, axis=0)  # noqa: E731
        logits = op.MatMul(x, op.Transpose(flip(router_weight), perm=[1, 0]))
        y = ms_moe(x, logits, op.Transpose(flip(w1), perm=[0, 2, 1]), flip(b1), op.Transpose(flip(w2), perm=[0, 2, 1]),
                   flip(b2), k=top_k, activation_type=activation, normalize_routing_weights=0 if top_k == 1 else 1)
        return (y, *_dead_statistics(op, logits))

    return fused, portable


def function_proto(op_type: str, opset: int) -> onnx.FunctionProto:
    """The model-local function for a portable node `mdl.<op_type>` (`MoE_k<top_k>_<act>`), standard ops only.

    Inputs x [N, d], router_weight [E, d], w1 [E, d, h], b1 [E, h], w2 [E, h, d], b2 [E, d]; output
    y [N, d]. `opset` is the default-domain opset the body is written against (the model's, >= 13).
    """
    prefix, k_part, act = op_type.split("_", 2)
    if prefix != "MoE" or not k_part.startswith("k") or not k_part[1:].isdigit():
        raise ValueError(f"not a portable moe op type: {op_type!r}")
    top_k = int(k_part[1:])
    n = helper.make_node
    ints = lambda name, values: n("Constant", [], [name], value=helper.make_tensor(  # noqa: E731
        name, TensorProto.INT64, [len(values)], values))
    nodes = [
        ints("k", [top_k]), ints("axis0", [0]), ints("axis1", [1]), ints("axis2", [2]), ints("last", [-1]),
        n("Transpose", ["router_weight"], ["router_t"], perm=[1, 0]),
        n("MatMul", ["x", "router_t"], ["logits"]),
        n("Softmax", ["logits"], ["probs"], axis=-1),
        n("TopK", ["probs", "k"], ["top_probs", "top_experts"], axis=-1, largest=1, sorted=1),
    ]
    if top_k == 1:
        nodes.append(n("Identity", ["top_probs"], ["weights"]))
    else:
        nodes += [n("ReduceSum", ["top_probs", "last"], ["top_sum"], keepdims=1),
                  n("Div", ["top_probs", "top_sum"], ["weights"])]
    nodes += [
        n("Shape", ["probs"], ["probs_shape"]),
        n("ConstantOfShape", ["probs_shape"], ["zeros"], value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])),
        n("CastLike", ["zeros", "probs"], ["zeros_like"]),
        n("ScatterElements", ["zeros_like", "top_experts", "weights"], ["gate"], axis=1),  # [N, E]
        n("Unsqueeze", ["x", "axis0"], ["x1"]),  # [1, N, d]
        n("MatMul", ["x1", "w1"], ["pre0"]),  # [E, N, h]
        n("Unsqueeze", ["b1", "axis1"], ["b1e"]),
        n("Add", ["pre0", "b1e"], ["pre"]),
    ]
    nodes += _activation_nodes(act, "pre", "hidden")
    nodes += [
        n("MatMul", ["hidden", "w2"], ["out0"]),  # [E, N, d]
        n("Unsqueeze", ["b2", "axis1"], ["b2e"]),
        n("Add", ["out0", "b2e"], ["out"]),
        n("Transpose", ["gate"], ["gate_t"], perm=[1, 0]),  # [E, N]
        n("Unsqueeze", ["gate_t", "axis2"], ["gate_e"]),  # [E, N, 1]
        n("Mul", ["out", "gate_e"], ["weighted"]),
        n("ReduceSum", ["weighted", "axis0"], ["y"], keepdims=0),  # [N, d]
    ]
    return helper.make_function(
        MDL_DOMAIN, op_type, ["x", "router_weight", "w1", "b1", "w2", "b2"], ["y"], nodes,
        [helper.make_opsetid("", opset)],
        doc_string=f"mdl::moe in eval (dropless), top_k={top_k}, act={act}, every expert computed densely")


def _activation_nodes(act: str, x: str, y: str) -> list[onnx.NodeProto]:
    n = helper.make_node
    if act == "relu":
        return [n("Relu", [x], [y])]
    if act == "tanh":
        return [n("Tanh", [x], [y])]
    if act == "sigmoid":
        return [n("Sigmoid", [x], [y])]
    if act == "silu":
        return [n("Sigmoid", [x], [f"{y}_s"]), n("Mul", [x, f"{y}_s"], [y])]
    if act == "gelu":  # exact: x * (1 + erf(x / sqrt 2)) / 2
        return [
            n("Constant", [], [f"{y}_c"], value_float=1 / math.sqrt(2)),
            n("Constant", [], [f"{y}_one"], value_float=1.0),
            n("Constant", [], [f"{y}_half"], value_float=0.5),
            n("CastLike", [f"{y}_c", x], [f"{y}_cl"]),
            n("CastLike", [f"{y}_one", x], [f"{y}_onel"]),
            n("CastLike", [f"{y}_half", x], [f"{y}_halfl"]),
            n("Mul", [x, f"{y}_cl"], [f"{y}_scaled"]),
            n("Erf", [f"{y}_scaled"], [f"{y}_erf"]),
            n("Add", [f"{y}_erf", f"{y}_onel"], [f"{y}_cdf2"]),
            n("Mul", [x, f"{y}_halfl"], [f"{y}_xh"]),
            n("Mul", [f"{y}_xh", f"{y}_cdf2"], [y]),
        ]
    raise ValueError(f"unknown moe activation {act!r}")
