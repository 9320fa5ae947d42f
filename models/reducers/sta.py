"""STA: semantic-aware temporal accumulation (Ding et al., ICCV 2023), training-free pruning.

After blocks 0, depth/3 and 2*depth/3 the tokens are split into temporal groups of 1, 2
and 4 time slots (8, 4, 2 groups for 16 frames). The groups are visited one after the
other. The first visited group drops, ToMe-style, the tokens of its even positions that
are most similar to one of its odd positions. In every later group each kept token of the
group before hands its accumulated redundancy on to the current tokens, split by a
softmax over their key similarities to it: a token that repeats what was already seen
collects a large share, a new one collects little. The STA score is that redundancy times
(1 - activation), the activation being the token's L1 norm min-max scaled in its group;
the tokens with the highest score are dropped. Every group drops the same number, r.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from explorer.trace import ValueInfo

from .base import BUDGET, BlockContext, InModelReducer, Param, Reduction

REFERENCE_CELLS = 14 * 14  # r is given for the paper's 14 x 14 grid (224 px, 16 px patches)


def stage_blocks(depth: int) -> dict[int, int]:
    """Block -> stage (0, 1, 2): after blocks 0, depth // 3, 2 * depth // 3; on a clash the earlier stage wins."""
    blocks: dict[int, int] = {}
    for stage, block in enumerate((0, depth // 3, 2 * depth // 3)):
        blocks.setdefault(block, stage)
    return blocks


def group_drop(tokens: int, r: int) -> int:
    """Tokens one group drops: r, but never more than half the group (the bipartite split's limit)."""
    return min(r, tokens // 2)


def spatial_redundancy(metric: torch.Tensor, drop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first group: each even-position token's best cosine similarity to an odd-position one.

    metric: (B, n, C) L2-normalized. Returns the score (B, n) and the `drop` positions to drop,
    the even tokens with the most similar odd partner. Odd tokens cannot be dropped here and
    get the lowest score of the group.
    """
    if metric.shape[1] < 2:
        return metric.new_zeros(metric.shape[:2]), metric.new_zeros(metric.shape[0], 0, dtype=torch.long)
    best = (metric[:, ::2] @ metric[:, 1::2].transpose(-1, -2)).amax(dim=-1)
    score = best.amin(dim=1, keepdim=True).repeat(1, metric.shape[1])
    score[:, ::2] = best
    order = torch.sort(best, dim=1, descending=True, stable=True).indices
    return score, 2 * order[:, :drop]


def accumulate(metric: torch.Tensor, prev_metric: torch.Tensor, prev_redundancy: torch.Tensor) -> torch.Tensor:
    """Carry the previous group's redundancy (B, m) to the current tokens (B, n).

    Each previous token spreads its share over the current tokens by a softmax (over the
    current tokens) of their cosine similarity to it. The result is scaled to mean 1: only
    the order within a group matters, and the heatmap stays comparable across groups.
    """
    transport = (metric @ prev_metric.transpose(-1, -2)).softmax(dim=1)  # (B, n, m)
    redundancy = (transport @ prev_redundancy[..., None])[..., 0]
    return redundancy / redundancy.mean(dim=1, keepdim=True)


def min_max(values: torch.Tensor) -> torch.Tensor:
    """Scale each row to [0, 1]; a constant row becomes 0."""
    low, high = values.amin(dim=1, keepdim=True), values.amax(dim=1, keepdim=True)
    return (values - low) / (high - low).clamp_min(1e-12)


class STA(InModelReducer):
    name = "sta"
    title = "STA: semantic-aware temporal accumulation"
    paper = "Ding et al., ICCV 2023"
    acts = "after blocks 0, depth/3, 2·depth/3"
    shows = "pruned cells faded; the STA score as a heatmap"
    stage = "end"
    budget_knob: ClassVar[str] = "r"
    explanation = (
        "STA **prunes** tokens (they are dropped, not merged) at three points: after the first "
        "block, after block depth/3 and after block 2·depth/3 (blocks 0, 4, 8 of a 12-block ViT). "
        "No training is needed. At each point the clip is cut in time into groups: single time "
        "slots first, then pairs of slots, then fours (8, 4, then 2 groups for 16 frames), and "
        "every group drops the same number of tokens, **r** (64 on a 14 × 14 grid: 1568 → 1056 → "
        "800 → 672 tokens).\n\n"
        "**Why accumulate along time?** A region that was already visible in the frames before "
        "adds little new; one that just appeared does. STA walks through the groups in order. "
        "Each kept token hands its *redundancy* on to the tokens of the next group, more of it "
        "to those whose keys resemble it (a softmax over their cosine similarities). So a token "
        "collects a large share when it repeats something seen before, and it keeps growing "
        "while a static background goes on; a token with nothing similar before it collects "
        "little. **Semantics:** the redundancy is multiplied by 1 − activation, the token's "
        "L1 norm scaled to [0, 1] within its group, so a strongly activated token survives "
        "even when it is redundant. The tokens with the highest **STA score** are dropped.\n\n"
        "The first group visited has nothing before it: it drops the tokens that most resemble "
        "another token of the same group (ToMe's bipartite matching, used to prune). The middle "
        "stage walks backwards in time, from the last group to the first. Heatmap: the STA "
        "score of each token where it was pruned (higher = dropped first); in the first group, "
        "the best similarity to a partner instead."
    )
    departures = (
        "r is given for a 14 × 14 grid and scaled by H'W'/196 on other grids (16 on 7 × 7); no group "
        "drops more than half its tokens. Groups span 1, 2 and 4 time slots on any clip length, so "
        "8 frames (4 slots) give 4, 2 and 1 groups; a single group has nothing to accumulate from and "
        "only drops by similarity within itself. When two stages fall on the same block (depth < 3) "
        "the earlier one is kept, as in the official code. The redundancy handed on from the first "
        "group comes from its kept tokens only (the official code also uses its dropped ones there). "
        "Tokens keep their original order (the official code reorders them within a frame)."
    )
    params = (
        Param(
            "r",
            64,
            "Tokens each temporal group drops at each of the three stages, for a 14 x 14 grid "
            "(scaled by H'W'/196 on other grids). 64 gives the paper's 1568 -> 1056 -> 800 -> 672.",
            low=0,
            high=REFERENCE_CELLS // 2,
            step=1,
        ),
        BUDGET,
    )
    token_values = {
        "sta_score": ValueInfo(
            "STA score",
            "STA's score of each token where it prunes: accumulated temporal redundancy times (1 - "
            "activation). The tokens with the highest score are pruned; in the first group STA visits, the score is "
            "the best similarity to a partner instead.",
            "heat",
        ),
    }

    def drop_per_group(self, cells: int) -> int:
        return round(self.values["r"] * cells / REFERENCE_CELLS)

    def group_sizes(self, grid: tuple[int, int, int], depth: int) -> dict[int, list[int]]:
        """Block -> tokens of each temporal group entering that stage, in time order, when STA starts from every
        tubelet: known on the host, so that the step never reads them from the device."""
        T, H, W = grid
        r, stages = self.drop_per_group(H * W), stage_blocks(depth)
        groups, span = [H * W] * T, 1  # token counts of the groups of the last stage, each `span` slots long
        sizes = {}
        for block in sorted(stages):
            ratio = 2 ** stages[block] // span
            span *= ratio
            sizes[block] = [sum(groups[i : i + ratio]) for i in range(0, len(groups), ratio)]
            groups = [n - group_drop(n, r) for n in sizes[block]]
        return sizes

    def token_counts(self, tokens: int, grid: tuple[int, int, int], depth: int) -> list[int]:
        T, H, W = grid
        if tokens != T * H * W:
            raise ValueError(f"STA starts from every tubelet: {T * H * W} tokens for grid {grid}, got {tokens}")
        r, sizes = self.drop_per_group(H * W), self.group_sizes(grid, depth)
        counts = [tokens]
        for block in range(depth):
            counts.append(sum(n - group_drop(n, r) for n in sizes[block]) if block in sizes else counts[-1])
        return counts

    def acts_at(self, block: int, depth: int) -> bool:
        return block in stage_blocks(depth)

    def step(self, ctx: BlockContext) -> tuple[Reduction | None, dict[str, torch.Tensor]]:
        stage = stage_blocks(ctx.depth).get(ctx.block)
        if stage is None:
            return None, {}
        T, H, W = ctx.grid
        span, r = 2**stage, self.drop_per_group(H * W)
        B, N, _ = ctx.x.shape
        group = ctx.cells // (H * W) // span
        sizes = self.group_sizes(ctx.grid, ctx.depth)[ctx.block]
        if sum(sizes) != N:  # not the sequence STA's own earlier stages left: read the groups from the device
            sizes = torch.bincount(group[0], minlength=-(-T // span)).tolist()
        with torch.autocast(ctx.x.device.type, enabled=False):  # scores in float32, also under autocast
            score, keep = self._prune(ctx, group, sizes, stage, r)
        kept = N - sum(group_drop(n, r) for n in sizes)
        new_index = torch.where(keep, keep.long().cumsum(dim=1) - 1, -1)
        return Reduction(new_index=new_index, keeper=_true_positions(keep, kept)), {"sta_score": score}

    @staticmethod
    def _prune(
        ctx: BlockContext, group: torch.Tensor, sizes: list[int], stage: int, r: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N) STA score and (B, N) bool kept, visiting the groups in the stage's order."""
        B, N, _ = ctx.x.shape
        metric = F.normalize(ctx.metric().float(), dim=-1)
        activation = ctx.x.float().abs().sum(dim=-1)
        score = torch.zeros(B, N, device=ctx.x.device)
        keep = torch.ones(B, N, dtype=torch.bool, device=ctx.x.device)
        by_group = torch.argsort(group, dim=1, stable=True)  # positions, group after group (same sizes per clip)
        starts = [sum(sizes[:g]) for g in range(len(sizes))]
        order = range(len(sizes))
        prev = None  # (metric, redundancy) of the kept tokens of the group visited before
        for g in reversed(order) if stage == 1 else order:
            idx = by_group[:, starts[g] : starts[g] + sizes[g]]
            m = metric.gather(1, idx[..., None].expand(-1, -1, metric.shape[-1]))
            drop = group_drop(sizes[g], r)
            if prev is None:
                s, dropped = spatial_redundancy(m, drop)
                redundancy = torch.ones_like(s)
            else:
                redundancy = accumulate(m, *prev)
                s = redundancy * (1 - min_max(activation.gather(1, idx)))
                dropped = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :drop]
            kept = torch.ones_like(s, dtype=torch.bool).scatter_(1, dropped, False)
            score.scatter_(1, idx, s)
            keep.scatter_(1, idx, kept)
            stay = _true_positions(kept, sizes[g] - drop)
            prev = (m.gather(1, stay[..., None].expand(-1, -1, m.shape[-1])), redundancy.gather(1, stay))
        return score, keep


def _true_positions(mask: torch.Tensor, count: int) -> torch.Tensor:
    """(B, count) the positions where each row of a (B, N) bool mask is true, ascending; every row has `count`.

    A stable sort instead of nonzero, so that nothing waits for the device.
    """
    return torch.sort(mask.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :count]
