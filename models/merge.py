"""Token merging as index maps: ToMe's bipartite soft matching and VTM's matching to chosen targets.

Both are the same operation: every non-target ("source") token finds its most similar
target by cosine similarity of the metric (the block's keys averaged over heads); the r
sources with the highest similarity go into their target, the rest stay. The result is
a `Reduction` (new_index, keeper), so merging, pruning and source tracking share one path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Reduction:
    """One step that shortens the sequence, as an index map (merging and pruning alike).

    new_index: (B, N) long: the new token each current token goes into; -1 drops it.
    keeper: (B, M) long: for each new token, the current token whose place (cell) it keeps.
    mode: how tokens going into one new token combine: "weighted" by their sizes (ToMe),
          "mean", a plain average (VTM), or "sum", the sum weighted by `weight` (EViT's fused
          token: the inattentive tokens weighted by the attention they receive). A token going in
          alone keeps its value (up to rounding) under "weighted" and "mean".
    weight: (B, N) float, the weights of "sum".
    """

    new_index: torch.Tensor
    keeper: torch.Tensor
    mode: str = "weighted"
    weight: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("weighted", "mean", "sum") or (self.mode == "sum") != (self.weight is not None):
            raise ValueError(f"a reduction combines by 'weighted', 'mean' or 'sum' (with weights), got {self.mode!r}")

    def weights(self, size: torch.Tensor) -> torch.Tensor:
        """(B, N) the weight each current token goes into its new token with, given the current sizes."""
        if self.mode == "weighted":
            return size
        return self.weight if self.mode == "sum" else torch.ones_like(size)


def match_to_targets(
    metric: torch.Tensor,
    is_target: torch.Tensor,
    r: int,
    mode: str = "weighted",
    n_targets: int | None = None,
    groups: torch.Tensor | None = None,
) -> Reduction:
    """Merge the r sources most similar to their best target into it.

    metric: (B, N, C); is_target: (B, N) bool with the same count, n_targets, in every row.
    Callers that know n_targets pass it, so that nothing waits for the device; without it
    the count is read from is_target (and checked). Similarities are computed in float32,
    also under autocast. The new sequence is the unmerged sources (most similar first, as
    ToMe orders them) followed by the targets in their order; each target keeps its own place.

    groups: (B, N), e.g. each token's attention window: a source matches only targets of its own
    group, and one with none there stays. r is then capped at the sources that have a target,
    read from the device (one wait), so a batch row may merge fewer than asked.
    """
    B, N, _ = metric.shape
    if n_targets is None:
        n_targets = int(is_target[0].sum())
        if bool((is_target.sum(dim=1) != n_targets).any()):
            raise ValueError("every clip of a batch needs the same number of targets")
    n_sources = N - n_targets
    r = max(0, min(int(r), n_sources if n_targets else 0))
    with torch.autocast(metric.device.type, enabled=False):
        metric = metric.float()
        metric = metric / metric.norm(dim=-1, keepdim=True)
        order = torch.argsort(is_target.to(torch.uint8), dim=1, stable=True)  # sources then targets, ascending
        src_pos, tgt_pos = order[:, :n_sources], order[:, n_sources:]
        scores = _gather(metric, src_pos) @ _gather(metric, tgt_pos).transpose(-1, -2)
        if groups is not None:
            apart = groups.gather(1, src_pos)[:, :, None] != groups.gather(1, tgt_pos)[:, None, :]
            scores = scores.masked_fill(apart, -torch.inf)
    best, best_target = scores.max(dim=-1) if n_targets else (scores.new_zeros(B, n_sources), src_pos * 0)
    if groups is not None and n_targets:
        r = min(r, int(torch.isfinite(best).sum(dim=1).min()))
    edges = best.argsort(dim=-1, descending=True)
    stay, go = edges[:, r:], edges[:, :r]
    kept = n_sources - r
    new_index = torch.empty(B, N, dtype=torch.long, device=metric.device)
    arange = torch.arange(N, device=metric.device).expand(B, -1)
    new_index.scatter_(1, src_pos.gather(1, stay), arange[:, :kept])
    new_index.scatter_(1, tgt_pos, arange[:, :n_targets] + kept)
    new_index.scatter_(1, src_pos.gather(1, go), best_target.gather(1, go) + kept)
    keeper = torch.cat([src_pos.gather(1, stay), tgt_pos], dim=1)
    return Reduction(new_index=new_index, keeper=keeper, mode=mode)


def bipartite_soft_matching(metric: torch.Tensor, r: int, groups: torch.Tensor | None = None) -> Reduction:
    """ToMe: tokens alternate into sets A (even positions) and B (odd); r is capped at half the tokens.
    With groups (attention windows), a token merges only within its own (see match_to_targets)."""
    B, N, _ = metric.shape
    is_target = (torch.arange(N, device=metric.device) % 2 == 1).expand(B, -1)
    return match_to_targets(metric, is_target, min(int(r), N // 2), n_targets=N // 2, groups=groups)


def merge_tokens(reduction: Reduction, x: torch.Tensor, size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a reduction to tokens (B, N, D) and their sizes (B, N): an average (weighted or plain) or a
    weighted sum; sizes add."""
    new_index, M = reduction.new_index, reduction.keeper.shape[1]
    slot = torch.where(new_index < 0, M, new_index)  # dropped tokens go to a spare slot, cut off below
    weight = reduction.weights(size).to(size.dtype)
    B, _, D = x.shape
    total = x.new_zeros(B, M + 1, D).scatter_add_(
        1, slot[..., None].expand(-1, -1, D), x * weight[..., None].to(x.dtype)
    )
    new_size = size.new_zeros(B, M + 1).scatter_add_(1, slot, size)
    if reduction.mode == "sum":
        return total[:, :M], new_size[:, :M]
    norm = weight.new_zeros(B, M + 1).scatter_add_(1, slot, weight)
    return total[:, :M] / norm[:, :M, None].to(x.dtype), new_size[:, :M]


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))
