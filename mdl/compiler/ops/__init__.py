"""Torch implementations of the primitives: small modules (layers.py) and the mdl::moe op (moe.py)."""
