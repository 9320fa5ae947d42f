"""VideoMAE masking (Tong et al., NeurIPS 2022), before the model.

Tube masking hides one random set of places on the H' x W' grid at every time slot, so a
hidden place stays hidden for the whole clip. The count is rounded down as in the official
TubeMaskingGenerator: int(mask_ratio * H' * W') per slot (0.9 at 14 x 14: 176 hidden, 20
visible; 160 of 1568 visible over 8 slots). The random pattern hides the same total number
of cells anywhere in the T' x H' x W' grid. The encoder embeds and runs only the visible
tokens, the same set in every layer.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import BUDGET, InputSelection, Param, Reducer, selection_from_mask


def masked_per_slot(mask_ratio: float, cells_per_slot: int) -> int:
    """Hidden places per time slot, rounded down as VideoMAE does; at least one place stays visible."""
    return min(int(mask_ratio * cells_per_slot), cells_per_slot - 1)


def tube_mask(grid: tuple[int, int, int], mask_ratio: float, rng: np.random.Generator) -> np.ndarray:
    """(T', H', W') bool, True where hidden: one spatial mask repeated at every slot."""
    _, h, w = grid
    spatial = np.zeros(h * w, dtype=bool)
    spatial[rng.choice(h * w, size=masked_per_slot(mask_ratio, h * w), replace=False)] = True
    return np.broadcast_to(spatial.reshape(1, h, w), grid).copy()


def random_mask(grid: tuple[int, int, int], mask_ratio: float, rng: np.random.Generator) -> np.ndarray:
    """(T', H', W') bool, True where hidden: cells drawn over the whole grid, as many as tube masking hides."""
    t, h, w = grid
    hidden = np.zeros(t * h * w, dtype=bool)
    hidden[rng.choice(t * h * w, size=t * masked_per_slot(mask_ratio, h * w), replace=False)] = True
    return hidden.reshape(grid)


class Masking(Reducer):
    name = "mask"
    title = "VideoMAE masking"
    paper = "Tong et al., NeurIPS 2022; random masking as the baseline"
    acts = "before the first block"
    shows = "hidden cells grey, visible ones outlined; the reconstruction with a pre-training checkpoint"
    explanation = (
        "VideoMAE pre-trains a video ViT by hiding most of the clip and asking a small decoder to "
        "paint the hidden patches back. With **tube** masking one random set of places on the "
        "14 x 14 grid is hidden, and the same places stay hidden in every time slot: each hidden "
        "place is a *tube* through time. At **mask_ratio** 0.9, 176 of 196 places are hidden, so "
        "160 of 1568 tokens reach the encoder, the same ones in every layer.\n\n"
        "Why tubes rather than random cells? Neighbouring frames are nearly the same. If a patch "
        "were hidden in one slot but visible in the next, the model could copy it across time "
        "instead of understanding the scene: information *leaks through time*. A tube hides a "
        "place in every slot, so nothing can be copied and the task stays hard, which is what lets "
        "such a high ratio work. The **random** pattern hides as many cells, anywhere in the "
        "T' x H' x W' grid: the baseline that leaks.\n\n"
        "Pre-training draws a new mask for every clip; here **seed** fixes the mask, so that runs "
        "can be compared (the same seed gives the same mask). Hidden cells have no token at all."
    )
    departures = (
        "The mask is fixed by a seed rather than drawn anew per clip, and at least one place per "
        "slot stays visible (a ratio near 1 would otherwise leave no token). The random pattern hides as "
        "many cells as the tube mask (1408 of 1568 at 0.9), so the two compare at the same count; "
        "VideoMAE V2's random masking rounds the whole clip instead (1411)."
    )
    params = (
        Param(
            "mask_ratio",
            0.9,
            "Fraction of places hidden in each time slot (rounded down, as VideoMAE does).",
            low=0.0,
            high=0.98,
            step=0.01,
        ),
        Param(
            "pattern",
            "tube",
            "tube: one spatial mask repeated at every time slot (VideoMAE); random: as many "
            "cells hidden anywhere in the clip (the baseline).",
            choices=("tube", "random"),
        ),
        Param("seed", 0, "Random seed: the same seed hides the same cells.", low=0, high=2**31 - 1, step=1),
        BUDGET,
    )
    budget_knob = "mask_ratio"

    def select(self, video: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int) -> InputSelection:
        rng = np.random.default_rng(self.values["seed"])
        draw = tube_mask if self.values["pattern"] == "tube" else random_mask
        return selection_from_mask(~draw(grid, self.values["mask_ratio"], rng))
