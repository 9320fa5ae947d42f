"""Random token dropping at RLT's count: the content-blind baseline for pre-model reducers."""

from __future__ import annotations

import numpy as np
import torch

from .base import BUDGET, InputSelection, Param, Reducer, selection_from_mask
from .rlt import rlt_mask, tubelet_distances


class RandomDrop(Reducer):
    name = "random"
    title = "Random drop (baseline)"
    acts = "before the first block"
    shows = "the same number of tokens as RLT, chosen blind to content; dropped cells grey"
    explanation = (
        "Drops tokens uniformly at random, blind to content: the baseline that shows what RLT's "
        "choice is worth. By default it keeps exactly as many tokens as RLT would at the same tau, "
        "so the two differ only in *which* tokens they keep. Dropped cells have no token at all."
    )
    params = (
        Param("match_rlt", True, "Keep as many tokens as RLT keeps at tau (otherwise keep_ratio)."),
        Param("tau", 0.1, "The RLT threshold whose token count is matched.", low=0.0, high=2.0, step=0.01),
        Param("keep_ratio", 0.7, "Fraction of tokens kept when not matching RLT.", low=0.01, high=1.0, step=0.01),
        Param("seed", 0, "Random seed: the same seed drops the same tokens.", low=0, high=2**31 - 1, step=1),
        BUDGET,
    )
    budget_knob = "keep_ratio"
    budget_fixed = {"match_rlt": False}

    def select(self, video: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int) -> InputSelection:
        total = int(np.prod(grid))
        if self.values["match_rlt"]:
            count = int(rlt_mask(tubelet_distances(video, tubelet, patch), self.values["tau"]).sum())
        else:
            count = max(1, round(self.values["keep_ratio"] * total))
        rng = np.random.default_rng(self.values["seed"])
        kept = np.zeros(total, dtype=bool)
        kept[rng.choice(total, size=count, replace=False)] = True
        return selection_from_mask(kept.reshape(grid))
