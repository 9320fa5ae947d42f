"""Run-length tokenization (Choudhury et al., NeurIPS 2024), before the model.

A tubelet is dropped when it repeats the one before it at the same place: the last
frame of tubelet j is compared with the first frame of tubelet j-1 (frame pairs (3, 0),
(5, 2), ...) by mean absolute difference over the patch and the three channels, in
ImageNet-normalized units. A kept token's run length counts the tubelets until the next
kept token at the same place, or the end of the clip.
"""

from __future__ import annotations

import numpy as np
import torch

from explorer.trace import ValueInfo

from .base import BUDGET, InputSelection, Param, Reducer, selection_from_mask


def tubelet_distances(video: torch.Tensor, tubelet: int, patch: int) -> np.ndarray:
    """(T'-1, H', W') distance of tubelet j (j >= 1) to tubelet j-1, as RLT measures it."""
    if tubelet != 2:
        raise ValueError("RLT's frame pairing is defined for tubelets of 2 frames")
    C, T, H, W = video.shape
    last_of_each = video[:, 1::2]
    first_of_each = video[:, 0::2]
    diff = (last_of_each[:, 1:] - first_of_each[:, :-1]).abs()  # frames (2j+1) - (2j-2)
    diff = diff.reshape(C, T // 2 - 1, H // patch, patch, W // patch, patch)
    return diff.mean(dim=(0, 3, 5)).float().cpu().numpy()


def run_lengths(kept: np.ndarray) -> np.ndarray:
    """Per cell: tubelets from a kept token to the next kept one at the same place (0 where dropped)."""
    steps = kept.shape[0]
    lengths = np.zeros(kept.shape, dtype=np.int64)
    next_kept = np.full(kept.shape[1:], steps)
    for t in reversed(range(steps)):
        lengths[t] = np.where(kept[t], next_kept - t, 0)
        next_kept = np.where(kept[t], t, next_kept)
    return lengths


def rlt_mask(distances: np.ndarray, tau: float) -> np.ndarray:
    """Kept cells: all of tubelet 0, and every later cell whose distance exceeds tau."""
    first = np.ones((1,) + distances.shape[1:], dtype=bool)
    return np.concatenate([first, distances > tau], axis=0)


class RLT(Reducer):
    name = "rlt"
    title = "RLT: run-length tokenization"
    paper = "Choudhury et al., NeurIPS 2024"
    acts = "before the first block"
    shows = "kept tubelets outlined, repeated ones dimmed, each kept token tinted by its run length"
    explanation = (
        "RLT drops a tubelet (2 frames x 16 x 16 px) when it repeats the previous one: the last "
        "frame of each tubelet is compared with the first frame of the tubelet before it, and the "
        "mean absolute difference (over the patch and the 3 colour channels, after ImageNet "
        "normalization) must exceed **tau** for the token to be kept. The first tubelet is always "
        "kept. Each kept token carries its **run length**: how many tubelets it stands for, up to "
        "the next kept token at the same place. Only kept tokens enter the transformer, each with "
        "the position embedding of its own place; a model trained with RLT adds a learned embedding "
        "of the run length. It acts before the first block, so every layer holds the same tokens. "
        "tau = 0.1 is about 6 grey levels of 255."
    )
    departures = (
        "The explorer's views analyze one clip at a time. Batches (`python -m explorer bench`, "
        "models/packed.py) are packed as in the paper: the kept tokens of all clips in one sequence with "
        "block-diagonal attention, through varlen attention on a GPU (exact per-clip attention on a CPU)."
    )
    params = (
        Param(
            "tau",
            0.1,
            "Keep a tubelet when its mean absolute difference to the previous one, "
            "in ImageNet-normalized units, exceeds tau.",
            low=0.0,
            high=2.0,
            step=0.01,
        ),
        BUDGET,
    )
    token_values = {
        "run_length": ValueInfo(
            "run length",
            "How many tubelets in a row, at the same place, one RLT token stands for: the first is "
            "kept and the repeats that barely changed are covered by it.",
            "count",
        ),
    }
    budget_knob = "tau"

    def select(self, video: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int) -> InputSelection:
        kept = rlt_mask(tubelet_distances(video, tubelet, patch), self.values["tau"])
        lengths = run_lengths(kept)
        selection = selection_from_mask(kept, {"run_length": lengths}, fill_runs=True)
        selection.lengths = selection.values["run_length"]
        return selection
