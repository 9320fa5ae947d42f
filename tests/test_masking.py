from dataclasses import replace

import numpy as np
import pytest
import torch

from explorer.analyze import analyze
from explorer.models.reducers.base import ParameterError
from explorer.models.reducers.mask import Masking
from explorer.models.video_vit import SIZES, VideoViT
from tests.clips import make_clip

GRID = (8, 14, 14)


def hidden(**params) -> np.ndarray:
    """(T', H', W') True where the reducer hides the cell."""
    selection = Masking(**params).select(torch.zeros(3, 16, 224, 224), GRID, 2, 16)
    return selection.owner < 0


def test_tube_masking_hides_176_of_196_places_and_leaves_160_tokens():
    mask = hidden()
    assert mask.sum(axis=(1, 2)).tolist() == [176] * 8
    assert (~mask).sum() == 160


def test_the_masked_count_is_rounded_down_as_videomae_does():
    assert (~hidden(mask_ratio=0.75)).sum(axis=(1, 2)).tolist() == [49] * 8  # 147 hidden exactly
    assert hidden(mask_ratio=0.5).sum(axis=(1, 2))[0] == 98
    assert hidden(mask_ratio=0.98).sum(axis=(1, 2))[0] == 192  # int(192.08)


def test_a_tube_hides_the_same_places_at_every_slot():
    mask = hidden(seed=3)
    assert all(np.array_equal(mask[t], mask[0]) for t in range(8))


def test_random_masking_hides_as_many_cells_but_not_as_tubes():
    mask = hidden(pattern="random", seed=3)
    assert mask.sum() == 8 * 176
    assert len({mask[t].tobytes() for t in range(8)}) == 8  # a different spatial mask at each slot


def test_the_seed_fixes_the_mask():
    assert np.array_equal(hidden(seed=7), hidden(seed=7))
    assert not np.array_equal(hidden(seed=7), hidden(seed=8))
    assert not np.array_equal(hidden(pattern="random", seed=7), hidden(pattern="random", seed=8))


def test_bad_parameters_are_refused():
    with pytest.raises(ParameterError, match="pattern"):
        Masking(pattern="checkerboard")
    with pytest.raises(ParameterError, match="mask_ratio"):
        Masking(mask_ratio=1.0)


def test_the_encoder_sees_exactly_the_visible_tokens_in_every_layer():
    torch.manual_seed(0)
    model = VideoViT(replace(SIZES["tiny"], depth=2, num_classes=5)).eval()
    clip = make_clip(np.random.default_rng(0).integers(0, 256, (16, 224, 224, 3), dtype=np.uint8))
    trace = analyze(clip, model, Masking(seed=5), device="cpu", saliency=None)
    visible = ~hidden(seed=5)
    assert trace.tokens_per_layer == [160] * 3
    for layer in range(3):
        assert np.array_equal(trace.owner[layer] >= 0, visible)
        assert np.array_equal(np.sort(trace.values["cell"][layer]), np.flatnonzero(visible))


def test_a_token_budget_sets_the_mask_ratio():
    torch.manual_seed(0)
    model = VideoViT(replace(SIZES["tiny"], depth=1, num_classes=5)).eval()
    clip = make_clip(np.zeros((16, 224, 224, 3), dtype=np.uint8))
    trace = analyze(clip, model, Masking(budget=0.25), device="cpu", saliency=None)
    assert trace.tokens_per_layer[0] == 8 * 49  # 0.25 of 196 places visible per slot
    assert trace.meta["budget"]["knob"] == "mask_ratio"
