"""Analytic FLOPs of the video ViT, counting a multiply-add as 2 FLOPs.

Only matrix products are counted (projections, attention scores, attention times values,
MLP); norms, softmax and GELU are a few percent and left out, as is usual.
"""
from __future__ import annotations

import numpy as np


def block_flops(tokens: int, dim: int, mlp_ratio: float = 4.0) -> float:
    hidden = int(dim * mlp_ratio)
    linear = 2 * tokens * (4 * dim * dim + 2 * dim * hidden)  # qkv + proj, fc1 + fc2
    attention = 2 * 2 * tokens * tokens * dim  # q k^T and weights v
    return float(linear + attention)


def embed_flops(tokens: int, dim: int, patch_values: int) -> float:
    return float(2 * tokens * patch_values * dim)


def vit_flops(tokens_per_layer: list[int], dim: int, mlp_ratio: float, patch_values: int,
              num_classes: int) -> np.ndarray:
    """(layers+1,) FLOPs: [0] the embedding (and head), [l] block l run on tokens_per_layer[l-1]."""
    per_layer = [embed_flops(tokens_per_layer[0], dim, patch_values) + 2.0 * dim * num_classes]
    per_layer += [block_flops(n, dim, mlp_ratio) for n in tokens_per_layer[:-1]]
    return np.asarray(per_layer, dtype=np.float64)
