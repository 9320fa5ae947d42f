"""ToMe: token merging (Bolya et al., ICLR 2023) inside the video ViT, across space and time."""

from __future__ import annotations

from typing import Any

import torch

from ..merge import bipartite_soft_matching
from .base import BUDGET, BlockContext, InModelReducer, Param, ParameterError, Reduction

SCHEDULES = {"constant": 0.0, "decreasing": -1.0, "increasing": 1.0}  # ToMe's inflection


def parse_r(r: int, schedule: str, r_list: str, depth: int) -> list[int]:
    """Tokens to merge in each block: an explicit list, or r with a linear schedule (ToMe's parse_r).

    A decreasing schedule starts at 2r and falls to 0, so about the same total leaves as with
    a constant r; a list shorter than the depth merges nothing in the blocks it does not reach.
    """
    if r_list.strip():
        values = _ints(r_list)
        return (values + [0] * depth)[:depth]
    inflect = SCHEDULES[schedule]
    low = int(r * (1.0 - inflect))
    high = 2 * r - low
    step = (high - low) / max(depth - 1, 1)
    return [int(low + step * i) for i in range(depth)]


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ParameterError(f"r_list must be whole numbers separated by commas, got {text!r}") from None
    if any(v < 0 for v in values):
        raise ParameterError(f"r_list cannot be negative, got {text!r}")
    return values


class ToMe(InModelReducer):
    name = "tome"
    title = "ToMe: token merging"
    paper = "Bolya et al., ICLR 2023"
    acts = "every block, between attention and MLP"
    shows = "merge clusters growing with depth, across space and time"
    explanation = (
        "In every block, between attention and the MLP, ToMe merges the **r** most redundant tokens. "
        "It splits the sequence into two alternating sets A and B; each A token finds its most similar B "
        "token (cosine similarity of the block's attention keys, averaged over heads); the r A tokens with "
        "the most similar partners are averaged into them, weighted by how many input tokens each already "
        "stands for (its *size*). No parameter is learned, so it works on a trained model as is. In video "
        "nothing stops a merge across time, so one token can stand for the same still background in every "
        "frame: the clusters you see span frames. **Proportional attention** adds log(size) to the "
        "attention logits, so that a token of size k is attended as its k copies would be. Pooling at the "
        "end weighs each token by its size, so every input patch counts once."
    )
    departures = (
        "Proportional attention is off by default, as ToMe advises for MAE-style models without a "
        "class token. Matching, merging and pooling follow ToMe's code; source tracking keeps, for "
        "every cell, the index of its token instead of ToMe's 0/1 source matrix (the same information "
        "for a partition)."
    )
    params = (
        Param("r", 64, "Tokens merged away in each block (capped at half the tokens).", low=0, high=4096, step=1),
        Param(
            "schedule",
            "constant",
            "How r changes with depth: constant, decreasing (2r down to 0) or increasing "
            "(0 up to 2r); the total merged stays about the same.",
            choices=tuple(SCHEDULES),
        ),
        Param(
            "r_list",
            "",
            "Optional: r for each block, comma-separated (e.g. 200,150,100); overrides r and "
            "schedule. Blocks past the end of the list merge nothing.",
        ),
        Param("prop_attn", False, "Proportional attention: add log(size) to the attention logits."),
        BUDGET,
    )
    budget_knob = "r"

    def __init__(self, **values: Any):
        super().__init__(**values)
        _ints(self.values["r_list"])  # a bad list is refused when the reducer is made, not mid-run

    @property
    def proportional_attention(self) -> bool:
        return bool(self.values["prop_attn"])

    def schedule(self, depth: int) -> list[int]:
        return parse_r(self.values["r"], self.values["schedule"], self.values["r_list"], depth)

    def step(self, ctx: BlockContext) -> tuple[Reduction | None, dict[str, torch.Tensor]]:
        r = self.schedule(ctx.depth)[ctx.block]
        if r <= 0 or ctx.x.shape[1] < 2:
            return None, {}
        return bipartite_soft_matching(ctx.metric(), r, groups=ctx.windows), {}

    def token_counts(self, tokens: int, grid: tuple[int, int, int], depth: int) -> list[int]:
        counts = [tokens]
        for r in self.schedule(depth):
            counts.append(counts[-1] - min(max(r, 0), counts[-1] // 2))
        return counts
