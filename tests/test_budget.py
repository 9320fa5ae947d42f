"""A token budget: every reducer can be fitted to the same average number of tokens per layer."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from explorer.analyze import analyze
from explorer.models.reducers import REDUCERS, ParameterError, make_reducer
from explorer.models.reducers.budget import fit_budget
from explorer.models.video_vit import SIZES, VideoViT
from tests.clips import make_clip, moving_square_frames

GRID, DEPTH = (8, 14, 14), 12
FITTED = [name for name, cls in REDUCERS.items() if cls.budget_knob]


@pytest.fixture(scope="module")
def video():
    """Each place flickers by its own amount, so RLT's token count moves smoothly with tau."""
    amount = np.random.default_rng(0).random(GRID[1:]).repeat(16, 0).repeat(16, 1)
    on = (np.arange(16) // 2 % 2)[:, None, None]
    return torch.from_numpy(np.broadcast_to(amount * on, (3, 16, 224, 224)).astype(np.float32).copy())


def test_every_reducer_but_dense_and_mvit_takes_a_budget():
    assert set(FITTED) == set(REDUCERS) - {"none", "mvit"}  # MViT's pooling schedule is its architecture


@pytest.mark.parametrize("name", FITTED)
@pytest.mark.parametrize("budget", [0.5, 0.8])
def test_a_budget_fixes_the_average_tokens_per_layer(video, name, budget):
    fitted = fit_budget(make_reducer(name, budget=budget), video, GRID, 2, 16, DEPTH)
    average = np.mean(fitted.layer_tokens(video, GRID, 2, 16, DEPTH))
    # STA's r moves 8 groups x 3 stages at a time; tube strides are whole numbers, so counts jump
    tolerance = {"sta": 0.02, "tubes": 0.07}.get(name, 0.01)
    assert abs(average / 1568 - budget) < tolerance, (name, fitted.values)
    assert fitted.values["budget"] == 0.0


def test_the_fitted_knob_is_reported_in_the_trace():
    torch.manual_seed(0)
    model = VideoViT(replace(SIZES["tiny"], depth=4, num_classes=5, num_frames=8, img_size=112)).eval()
    clip = make_clip(moving_square_frames(frames=8, size=112, row=3))
    trace = analyze(clip, model, make_reducer("tome", budget=0.6), device="cpu", saliency=None)
    fit = trace.meta["budget"]
    assert fit["knob"] == "r" and fit["value"] == trace.meta["params"]["r"]
    assert fit["average_tokens"] == pytest.approx(np.mean(trace.tokens_per_layer))
    assert abs(np.mean(trace.tokens_per_layer) / 196 - 0.6) < 0.02


def test_a_budget_out_of_range_is_refused():
    with pytest.raises(ParameterError, match="budget"):
        make_reducer("tome", budget=1.5)
