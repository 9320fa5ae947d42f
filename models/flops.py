"""Analytic FLOPs of the video ViT, counting a multiply-add as 2 FLOPs.

Only matrix products are counted (projections, attention scores, attention times values,
MLP); norms, softmax and GELU are a few percent and left out, as is usual.
"""

from __future__ import annotations

import numpy as np


def block_flops(
    tokens: int, dim: int, mlp_ratio: float = 4.0, mlp_tokens: int | None = None, pairs: int | None = None
) -> float:
    """One block; mlp_tokens differs from tokens when a merge happens between attention and MLP (ToMe);
    pairs, the (query, key) pairs attention scores, from tokens^2 when it attends within windows."""
    hidden = int(dim * mlp_ratio)
    mlp_tokens = tokens if mlp_tokens is None else mlp_tokens
    pairs = tokens * tokens if pairs is None else pairs
    linear = 2 * tokens * 4 * dim * dim + 2 * mlp_tokens * 2 * dim * hidden  # qkv + proj, fc1 + fc2
    attention = 2 * 2 * pairs * dim  # q k^T and weights v
    return float(linear + attention)


def embed_flops(tokens: int, dim: int, patch_values: int) -> float:
    return float(2 * tokens * patch_values * dim)


def vit_flops(
    tokens_per_layer: list[int],
    dim: int,
    mlp_ratio: float,
    patch_values: int,
    num_classes: int,
    mlp_tokens: list[int] | None = None,
    attention_pairs: list[int] | None = None,
) -> np.ndarray:
    """(layers+1,) FLOPs: [0] the embedding (and head), [l] block l run on tokens_per_layer[l-1]
    (its MLP on mlp_tokens[l-1], its attention on attention_pairs[l-1] pairs, when given). A merge's own
    matching is not counted (about 1% of a block)."""
    mlp_tokens = mlp_tokens or list(tokens_per_layer[:-1])
    pairs = attention_pairs or [n * n for n in tokens_per_layer[:-1]]
    per_layer = [embed_flops(tokens_per_layer[0], dim, patch_values) + 2.0 * dim * num_classes]
    per_layer += [block_flops(n, dim, mlp_ratio, m, p) for n, m, p in zip(tokens_per_layer[:-1], mlp_tokens, pairs)]
    return np.asarray(per_layer, dtype=np.float64)
