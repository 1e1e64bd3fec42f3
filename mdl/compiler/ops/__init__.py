"""Torch implementations of the primitives: small modules (layers.py), the mdl::moe op (moe.py), its
routing math (moe_math.py) and ONNX translations (moe_onnx.py); and the lowering table both back ends
read (lowering.py, torch-free).

`MOE_MODES` names the two ways an ONNX export writes `moe` (cheap to import: the CLI offers them):
"fused" as com.microsoft.MoE nodes where onnxruntime's kernel computes the same function, "portable"
as standard ONNX ops only.
"""

MOE_MODES = ("fused", "portable")
