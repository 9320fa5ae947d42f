"""EViT: attentive token pruning (Liang et al., ICLR 2022, "Not All Patches are What You Need").

In a few blocks, after attention and before the MLP, a token's score is the attention it
receives; the ceil(keep_rate x N) highest-scoring ("attentive") tokens stay, and the others are
fused into ONE extra token, their sum weighted by their scores. EViT scores by the class
token's attention; a VideoMAE-style ViT has no class token, so the score here is the mean
attention each token receives, over all queries and heads.
"""

from __future__ import annotations

import math

import torch

from explorer.trace import ValueInfo

from .base import BUDGET, BlockContext, InModelReducer, Param, Reduction


def prune_blocks(depth: int) -> list[int]:
    """The blocks (0-based) that prune: at a quarter, half and three quarters of the depth (3, 6, 9 of 12, as the
    official code's 4th, 7th and 10th blocks)."""
    return sorted({depth * k // 4 for k in (1, 2, 3)})


class EViT(InModelReducer):
    name = "evit"
    title = "EViT: attentive token pruning"
    paper = "Liang et al., ICLR 2022"
    acts = "blocks depth/4, depth/2, 3·depth/4, between attention and MLP"
    shows = "the attention each token receives as a heatmap; the fused token as one large cluster"
    explanation = (
        "EViT keeps the tokens the model **attends to** and fuses the rest. In three blocks (a quarter, half and "
        "three quarters of the way through), after attention, each token is scored by the attention it "
        "receives; the **keep_rate** share with the highest scores (rounded up) goes on unchanged. The other, "
        "*inattentive* tokens are not simply dropped: they are **fused** into one extra token, their sum "
        "weighted by their scores, so what they carried is not lost altogether. At keep_rate 0.7 a 16 x 224 "
        "clip keeps 1568 → 1099 → 771 → 541 tokens. No parameter is learned, so it runs on a trained model as "
        "is (the paper also fine-tunes with it). Heatmap: the attention each token received at a pruning block, "
        "relative to uniform (1 = average); the fused token shows as one cluster spread over the cells it took in."
    )
    departures = (
        "EViT scores tokens by the class token's attention; this ViT has no class token, so the score is the "
        "mean attention a token receives over all queries and heads. Kept tokens keep their order in the "
        "sequence (EViT sorts them by score, which changes nothing without a class token). The final mean "
        "pooling counts every token once, the fused one too, as EViT's class token sees it (weighing the fused "
        "token by the cells it stands for, as after ToMe's merges, cost the demo model half its accuracy at "
        "budget 0.7 on 60 held-out clips: 50% against 93%). The official training warms keep_rate up from 1; "
        "here it is fixed."
    )
    params = (
        Param(
            "keep_rate",
            0.7,
            "Share of the tokens kept at each pruning block (rounded up); the rest are fused "
            "into one token or dropped.",
            low=0.05,
            high=1.0,
            step=0.05,
        ),
        Param("fuse", True, "Fuse the inattentive tokens into one extra token (EViT); off: drop them."),
        BUDGET,
    )
    token_values = {
        "evit_attention": ValueInfo(
            "EViT attention",
            "The attention the token received in a pruning block, averaged over queries and "
            "heads, relative to uniform (1 = average). EViT keeps the tokens with the highest and fuses the rest. "
            "Shown on the tokens entering each pruning block.",
            "heat",
        ),
    }
    budget_knob = "keep_rate"
    needs = frozenset({"attention"})
    pool_by_size = False

    def acts_at(self, block: int, depth: int) -> bool:
        return block in prune_blocks(depth)

    def kept(self, tokens: int) -> int:
        """Tokens that stay at a pruning block that sees `tokens`, the fused one included."""
        keep = min(tokens, math.ceil(self.values["keep_rate"] * tokens))
        return keep + (1 if self.values["fuse"] and keep < tokens else 0)

    def token_counts(self, tokens: int, grid: tuple[int, int, int], depth: int) -> list[int]:
        counts = [tokens]
        for block in range(depth):
            counts.append(self.kept(counts[-1]) if self.acts_at(block, depth) else counts[-1])
        return counts

    def step(self, ctx: BlockContext) -> tuple[Reduction | None, dict[str, torch.Tensor]]:
        score = ctx.attention_received().float()  # (B, N), each row sums to one
        B, N = score.shape
        values = {"evit_attention": score * N}
        keep = min(N, math.ceil(self.values["keep_rate"] * N))
        if keep == N:
            return None, values
        order = torch.sort(score, dim=1, descending=True, stable=True).indices
        kept, rest = order[:, :keep].sort(dim=1).values, order[:, keep:]
        slots = torch.arange(keep, device=score.device).expand(B, -1)
        new_index = torch.full((B, N), -1, dtype=torch.long, device=score.device).scatter_(1, kept, slots)
        if not self.values["fuse"]:
            return Reduction(new_index=new_index, keeper=kept, mode="mean"), values
        new_index.scatter_(1, rest, keep)  # every inattentive token goes into the fused one, slot `keep`
        weight = torch.ones_like(score).scatter_(1, rest, score.gather(1, rest))  # kept tokens go in alone
        keeper = torch.cat([kept, rest[:, :1]], dim=1)  # the fused token sits at its most attended member's cell
        return Reduction(new_index=new_index, keeper=keeper, mode="sum", weight=weight), values
