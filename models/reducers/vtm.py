"""VTM: video token merging (Lee et al., NeurIPS 2024), the explorer's own version (no public code).

A merging block splits its tokens into targets and sources; each source finds its most
similar target (cosine similarity of the block's keys) and the most similar share of the
sources is averaged into their targets (a plain mean). What varies is how the targets are
chosen, always from the tokens' cells (their place in the clip), never from their position
in the sequence, which merging reorders:

  naive      every gamma-th token in cell order;
  region     centre tokens three times as densely as the rest (gamma/2 and 3*gamma/2 apart),
             which on the full grid puts half of the targets in the central H'/2 x W'/2 cells;
  boundary   the reverse, for contrast: the border three times as densely as the centre;
  motion     drawn with probability softmax(motion / temperature) of the token's cell;
  learnable  drawn with probability softmax(S), S = tanh(K u), from a learned vector u per block.

Every strategy takes ceil(N / gamma) targets, so token counts depend on N alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

import torch
from torch import nn

from explorer.trace import ValueInfo

from ..merge import match_to_targets
from ..motion import SOURCES, cell_motion
from .base import BUDGET, BlockContext, InModelReducer, Param, Reduction

TARGETS = ("naive", "region", "boundary", "motion", "learnable")
DENSER = 3.0  # region: targets gamma/2 apart in the centre and 3*gamma/2 elsewhere, three times as dense


class VTMSaliency(nn.Module):
    """VTM's learnable saliency: one vector u per block, S = tanh(K u) for the block's keys K.

    Targets are drawn from softmax(S), which passes no gradient to u. So while training, an
    auxiliary attention path adds S to the attention logits (every query attends more to
    salient keys) and the loss reaches u through it; at inference that path is dropped and S
    only chooses targets.
    """

    def __init__(self, depth: int, head_dim: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.u = nn.Parameter(torch.randn(depth, head_dim, generator=generator) / head_dim**0.5)

    def forward(self, keys: torch.Tensor, block: int) -> torch.Tensor:
        """(B, N, head_dim) keys -> (B, N) saliency in [-1, 1]."""
        return torch.tanh(keys.float() @ self.u[block].to(keys.device))

    def attention_bias(self, keys: torch.Tensor, block: int) -> torch.Tensor | None:
        """(B, 1, 1, N) saliency to add to the attention logits on the auxiliary path; None at inference."""
        return self(keys, block)[:, None, None, :] if self.training else None


def in_centre(cells: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Whether each flat (t, h, w) cell lies in the central H'/2 x W'/2 cells of its frame."""
    _, H, W = grid
    h, w = (cells // W) % H, cells % W
    top, left = (H - H // 2) // 2, (W - W // 2) // 2
    return (h >= top) & (h < top + H // 2) & (w >= left) & (w < left + W // 2)


def spread(members: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """(B, N) bool: `count` (B,) of each row's members, evenly spaced through them (every len/count-th).

    The member of rank i (in position order) is taken when i = floor(j * len / count) for some j, the
    same as indexing the members at arange(count) * len // count, computed without reading the counts
    on the host.
    """
    rank = members.long().cumsum(dim=1) - 1
    size, count = members.sum(dim=1, keepdim=True), count[:, None]
    first_j = (rank * count + size - 1).div(size.clamp_min(1), rounding_mode="floor")  # ceil(rank * count / size)
    return members & (first_j * size < (rank + 1) * count)


def gumbel_top_k(logits: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """(B, count): draw `count` of N per row without replacement, with probabilities softmax(logits) (Gumbel top-k).

    Exact for successive draws, and unlike torch.multinomial it still works when the softmax
    underflows to zero for most tokens. The noise is drawn on the logits' device from `generator`
    (a generator of that device), so nothing is copied mid-forward; a seed gives the same draw on
    the same kind of device. Every row gets the same noise, so a clip draws the same in a batch as alone.
    """
    uniform = torch.rand(logits.shape[-1], generator=generator, device=logits.device).clamp_min(1e-12)
    return (logits.float() - torch.log(-torch.log(uniform))).topk(count, dim=-1).indices


class VTM(InModelReducer):
    name = "vtm"
    title = "VTM: video token merging"
    paper = "Lee et al., NeurIPS 2024; naive, region, boundary, motion, learnable targets"
    acts = "a few blocks, between attention and MLP"
    shows = "clusters around the chosen targets; targets, motion and saliency as heatmaps"
    explanation = (
        "In a few blocks, between attention and the MLP, VTM merges most tokens into a small set of **target** "
        "tokens: each other token (a *source*) finds its most similar target (cosine similarity of the block's "
        "attention keys, averaged over heads) and the **merge_fraction** of the sources with the most similar "
        "targets are averaged into them (a plain mean, not weighted by size). One token in **gamma** is a target. "
        "The paper's point is that *which* tokens become targets matters, since only targets keep their own "
        "detail. **naive**: every gamma-th token in (t, h, w) order. **region**: the central H/2 x W/2 of each "
        "frame gets targets three times as densely as the rest (half of all targets on the full grid). "
        "**boundary**: the reverse, for contrast. **motion**: targets drawn at random with probability "
        "softmax(motion / temperature); the paper reads the codec's motion vectors, here motion is a stand-in "
        "measured from the decoded frames: Farneback **optical flow** (pixels per frame) or **frame difference** "
        "(grey levels, 0-255). **learnable**: targets drawn with probability softmax(S), saliency S = tanh(K u) "
        "from the block's keys K and a learned vector u; in training an extra attention path adds S to the "
        "attention logits so that u learns, and that path is dropped at inference. The demo model carries a u "
        "trained that way (`python -m explorer train`); with any other model u is **untrained** (random, from the "
        "seed), so the saliency shown is a random projection of the keys, not a learned one; the notes say which. "
        "The paper has no public code: this is the explorer's own implementation."
    )
    departures = (
        "No public code exists; this implementation follows the paper's description. Attention is global unless "
        "an attention window is chosen (Model: Attention window; the paper's blocks attend within windows of 6, 30 "
        "and 60 consecutive frames; here multiples of the 2-frame tubelet, and merging then stays within a window). "
        "Merging "
        "happens in merge_blocks blocks spread evenly over the depth (default 2: blocks 5 and 9 of 12, counting "
        "from 1), so that a 16 x 224 x 224 clip keeps 1568 -> 523 -> 175 tokens instead of collapsing to a "
        "handful. Every strategy takes ceil(N / gamma) targets; region and boundary keep the paper's 3:1 density "
        "between centre and border at every merge (exactly half the targets in the centre on the full grid). "
        "Motion comes from optical flow or frame difference, not codec motion vectors, and a softmax temperature "
        "(default 0.5) sets how strongly it draws targets. The learnable saliency uses the keys averaged over heads "
        "and a u trained with the ViT frozen, after it (the demo model), or else an untrained, seeded u; the auxiliary "
        "attention path (VTMSaliency.attention_bias) exists only for training. After merging, the final mean pooling "
        "weighs each token by the input tokens it stands for (as ToMe does for MAE models)."
    )
    params = (
        Param(
            "targets",
            "motion",
            "How target tokens are chosen: naive (every gamma-th), region (denser in the "
            "centre), boundary (denser at the border), motion (drawn by motion), learnable "
            "(drawn by saliency tanh(K u); u trained with the demo model, else seeded).",
            choices=TARGETS,
        ),
        Param("gamma", 6, "One token in gamma is a target (ceil(N / gamma) targets).", low=2, high=256, step=1),
        Param(
            "merge_fraction",
            0.8,
            "Share of the non-target tokens merged into a target at a merging block.",
            low=0.0,
            high=1.0,
            step=0.05,
        ),
        Param("merge_blocks", 2, "How many blocks merge, spread evenly over the depth.", low=0, high=11, step=1),
        Param(
            "motion_source",
            "flow",
            "Motion targets: Farneback optical flow or frame difference, stand-ins for "
            "the codec motion vectors the paper reads.",
            choices=SOURCES,
        ),
        Param(
            "temperature",
            0.5,
            "Motion targets: probability softmax(motion / temperature), motion in pixels per "
            "frame (flow) or grey levels (difference).",
            low=0.01,
            high=100.0,
            step=0.01,
        ),
        Param(
            "seed",
            0,
            "Seed of the drawn targets and of the untrained u: the same seed merges the same way.",
            low=0,
            high=2**31 - 1,
            step=1,
        ),
        BUDGET,
    )
    token_values = {
        "vtm_saliency": ValueInfo(
            "VTM saliency",
            "VTM's saliency of the token, tanh(K·u) from its key K and a vector u, between -1 and 1; "
            "targets are drawn with probability softmax(saliency). u is the one trained with the model when it has "
            "one (the demo model does; the notes say which), else random from the seed, and then the map shows what "
            "the mechanism does, not what it learns. Shown on the tokens entering each merging block.",
            "heat",
        ),
        "vtm_target": ValueInfo(
            "VTM targets",
            "1 where the token was chosen as a target at a merging block (it keeps its own detail and "
            "others merge into it), 0 where it was a source. Shown on the tokens entering each merging block.",
            "heat",
        ),
        "motion": ValueInfo(
            "motion",
            "How much the content at the token's cell moves, measured from the pixels (optical flow in "
            "pixels per frame, or frame difference in grey levels); 0 is still. VTM draws its targets by it.",
            "heat",
        ),
    }
    budget_knob: ClassVar[str] = "merge_fraction"
    variants = ("targets=learnable",)

    def __init__(self, **values: Any):
        super().__init__(**values)
        self.saliency: VTMSaliency | None = None  # a trained u for learnable targets; None: seeded, untrained
        self._motion: torch.Tensor | None = None  # (B, T'*H'*W') motion of each cell of the prepared clip(s)

    def attach(self, model: nn.Module) -> list[str]:
        """Use the saliency trained with the model, if it carries one (explorer/train.py saves it with the weights)."""
        if self.values["targets"] != "learnable":
            return []
        if self.saliency is None:
            self.saliency = getattr(model, "vtm_saliency", None)
        if self.saliency is None:
            return ["VTM's learnable saliency u is untrained here (seeded): this model carries no trained u"]
        return ["VTM's learnable saliency u was trained with this model through the auxiliary attention path"]

    def prepare(self, video: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int) -> None:
        if self.values["targets"] == "motion":
            motion = cell_motion(video, grid, tubelet, patch, self.values["motion_source"])
            self._motion = torch.from_numpy(motion).reshape(1, -1).to(video.device)

    def batched(self, prepared: Sequence[InModelReducer]) -> VTM:
        """One reducer for a batch of clips prepared one by one: their motions stacked, one row per clip."""
        batch = type(self)(**self.values)
        batch.saliency = self.saliency
        if self.values["targets"] == "motion":
            motions = [cast(VTM, p)._motion for p in prepared]
            if any(m is None for m in motions):
                raise ValueError("motion targets need each clip's motion: prepare every clip first")
            batch._motion = torch.cat(cast(list[torch.Tensor], motions))
        return batch

    def merge_blocks(self, depth: int) -> list[int]:
        """The blocks (0-based) that merge: merge_blocks of them, evenly spaced (12 blocks, 2: blocks 4 and 8)."""
        count = self.values["merge_blocks"]
        return sorted({depth * k // (count + 1) for k in range(1, count + 1)})

    def plan(self, tokens: int) -> tuple[int, int]:
        """Targets, and sources merged away, at a merging block that sees `tokens` tokens."""
        targets = -(-tokens // self.values["gamma"])
        return targets, round(self.values["merge_fraction"] * (tokens - targets))

    def acts_at(self, block: int, depth: int) -> bool:
        return block in self.merge_blocks(depth)

    def step(self, ctx: BlockContext) -> tuple[Reduction | None, dict[str, torch.Tensor]]:
        if not self.acts_at(ctx.block, ctx.depth):
            return None, {}
        count, r = self.plan(ctx.cells.shape[1])
        order = ctx.cells.argsort(dim=1)  # tokens in cell order: targets follow places, not positions
        chosen, values = self._choose(ctx, ctx.cells.gather(1, order), order, count)
        is_target = torch.zeros_like(chosen).scatter_(1, order, chosen)
        values["vtm_target"] = is_target.float()
        reduction = (
            match_to_targets(ctx.metric(), is_target, r, mode="mean", n_targets=count, groups=ctx.windows)
            if r > 0
            else None
        )
        return reduction, values

    def _choose(
        self, ctx: BlockContext, cells: torch.Tensor, order: torch.Tensor, count: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(B, N) bool targets in cell order (cells: (B, N) ascending), and values in sequence order."""
        kind = self.values["targets"]
        B, N = cells.shape
        chosen = torch.zeros(B, N, dtype=torch.bool, device=cells.device)
        values: dict[str, torch.Tensor] = {}
        if kind == "naive":
            chosen[:, :: self.values["gamma"]] = True
            return chosen, values
        if kind in ("region", "boundary"):
            return self._by_region(cells, ctx.grid, count, centre_denser=kind == "region"), values
        if kind == "motion":
            if self._motion is None:
                raise ValueError("motion targets need the clip's motion: call prepare() first")
            scores = self._motion.expand(ctx.cells.shape[0], -1).gather(1, ctx.cells)
            values["motion"] = scores.float()
            logits = scores / self.values["temperature"]
        else:
            module = self._saliency_module(ctx.depth, ctx.metric().shape[-1])
            with torch.no_grad():
                scores = module(ctx.metric(), ctx.block)
            values["vtm_saliency"] = scores
            logits = scores
        generator = torch.Generator(device=cells.device).manual_seed(self.values["seed"] * 1000 + ctx.block)
        return chosen.scatter_(1, gumbel_top_k(logits.gather(1, order), count, generator), True), values

    @staticmethod
    def _by_region(cells: torch.Tensor, grid: tuple[int, int, int], count: int, centre_denser: bool) -> torch.Tensor:
        """(B, N) bool targets in cell order (cells: (B, N) ascending): `count` per row, one region DENSER times as
        dense as the other, each region's targets evenly spread through it."""
        centre = in_centre(cells, grid)
        inner = centre.sum(dim=1).double()
        outer = cells.shape[1] - inner
        weight_in, weight_out = (DENSER, 1.0) if centre_denser else (1.0, DENSER)
        share = weight_in * inner / (weight_in * inner + weight_out * outer)
        from_inner = torch.minimum(torch.maximum(torch.round(count * share), count - outer), inner).long()
        return spread(centre, from_inner) | spread(~centre, count - from_inner)

    def _saliency_module(self, depth: int, head_dim: int) -> VTMSaliency:
        """The given (trained) saliency, or an untrained one drawn from the seed."""
        if self.saliency is None:
            return VTMSaliency(depth, head_dim, self.values["seed"]).eval()
        if tuple(self.saliency.u.shape) != (depth, head_dim):
            raise ValueError(
                f"VTM saliency has u of shape {tuple(self.saliency.u.shape)}, the model needs ({depth}, {head_dim})"
            )
        return self.saliency

    def token_counts(self, tokens: int, grid: tuple[int, int, int], depth: int) -> list[int]:
        counts = [tokens]
        merging = self.merge_blocks(depth)
        for block in range(depth):
            counts.append(counts[-1] - (self.plan(counts[-1])[1] if block in merging else 0))
        return counts
