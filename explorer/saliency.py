"""Attention rollout that stays correct when tokens are merged or pruned.

Rollout (Abnar and Zuidema, 2020) follows attention back through the blocks: per block,
fuse the heads (mean, max or min), optionally zero the weakest fraction, add the
identity (the residual path), renormalize the rows, and multiply through the layers.
With no class token, the output is the mean over tokens, so the walk starts from the
pooling weights.

Under merging the sequence changes between blocks. A merged token is an average of its
members, weighted by size (ToMe) or plain (VTM), so relevance flows back to the members
in those same proportions; a pruned token passes none on. Every step is a row-stochastic
matrix, so at every layer the relevance of the tokens sums to one: `rollout` gives, for
each layer, how much of the pooled output each of its tokens carries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.models.engine import BlockRecord, HeadFusion
from explorer.models.reducers import ParameterError

FUSIONS = ("mean", "max", "min")


@dataclass(frozen=True)
class SaliencySpec:
    """How heads are fused and what fraction of the weakest attention is discarded."""

    fusion: str = "mean"
    discard: float = 0.0

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ParameterError(f"head fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        if not 0.0 <= self.discard < 1.0:
            raise ParameterError(f"discard ratio must be in [0, 1), got {self.discard}")

    def fuse(self) -> HeadFusion:
        def fuse(weights: torch.Tensor) -> torch.Tensor:
            fused = getattr(weights, "amax" if self.fusion == "max" else "amin" if self.fusion == "min" else "mean")(
                dim=1
            )
            if self.discard > 0:
                flat = fused.flatten(1)
                weakest = flat.topk(int(flat.shape[1] * self.discard), dim=1, largest=False).indices
                flat.scatter_(1, weakest, 0.0)
                fused = flat.view_as(fused)
            return fused

        return fuse


def attention_step(fused: np.ndarray) -> np.ndarray:
    """(N, N) fused attention -> the row-stochastic rollout step: identity added, rows renormalized."""
    step = fused.astype(np.float64) + np.eye(fused.shape[0])
    return step / step.sum(axis=1, keepdims=True)


def reduction_step(new_index: np.ndarray, weight: np.ndarray, tokens_after: int) -> np.ndarray:
    """(M, N) matrix of a merge/prune: new token j is the weighted average of the tokens going into it."""
    step = np.zeros((tokens_after, new_index.size))
    kept = np.flatnonzero(new_index >= 0)
    step[new_index[kept], kept] = weight[kept]
    return step / step.sum(axis=1, keepdims=True)


def rollout(blocks: list[BlockRecord], pooling: np.ndarray) -> list[np.ndarray]:
    """Relevance of every token at every layer (layers + 1 vectors, each summing to one).

    The last layer's relevance is each token's weight in the final mean pooling (its size, after
    merges that pool by size; one per token otherwise), normalized; each block
    passes it back through its reduction (if any) and then its attention step.
    """
    relevance = pooling.astype(np.float64) / pooling.sum()
    out = [relevance]
    for block in reversed(blocks):
        if block.new_index is not None:
            relevance = relevance @ reduction_step(block.new_index, block.merge_weight, relevance.size)
        relevance = relevance @ attention_step(block.fused)
        out.append(relevance)
    return out[::-1]
