"""MViT as a network of its own: its pooled grids tile the clip, and the trace follows them."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from explorer.analyze import analyze
from explorer.models import engine
from explorer.models.mvit import MVIT_CONFIGS, mvit_flops
from explorer.models.reducers import ParameterError, make_reducer
from explorer.models.video_vit import SIZES, VideoViT
from explorer.trace import Trace
from tests.clips import make_clip, moving_square_frames

TINY = replace(SIZES["tiny"], depth=2, num_classes=5, num_frames=8, img_size=112)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = VideoViT(TINY).eval()
    clip = make_clip(moving_square_frames(frames=8, size=112, row=3))
    return clip, model, analyze(clip, model, make_reducer("mvit"), device="cpu")


def test_the_query_grids_shrink_and_tile_the_clip(setup):
    _, _, trace = setup
    grids = [info["q_grid"] for info in trace.meta["layer_info"]]
    assert trace.grid == (4, 28, 28) and trace.cell == (2, 4, 4)
    assert trace.tokens_per_layer == [int(np.prod(g)) for g in grids]
    assert grids[0] == [4, 28, 28] and grids[-1] == [4, 7, 7]
    for layer, boxes in enumerate(trace.boxes):  # footprints cover the clip exactly once
        volume = np.prod(boxes[:, 1::2] - boxes[:, 0::2], axis=1).sum()
        assert volume == 8 * 112 * 112
        owner = trace.owner[layer].ravel()
        assert np.array_equal(np.unique(owner), np.arange(trace.tokens_per_layer[layer]))
        assert np.array_equal(np.bincount(owner), trace.values["size"][layer])
    assert (trace.boxes[-1][:, 3] - trace.boxes[-1][:, 2] == 16).all()  # 4 -> 8 -> 16 px


def test_flops_and_key_value_grids_come_from_the_network(setup):
    _, _, trace = setup
    # counted independently: torch's FlopCounterMode over the network's real forward on a clip of this size
    network = engine.network_for(make_reducer("mvit"), 8, 112, 5).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network(torch.zeros(1, 3, 8, 112, 112))
    assert trace.flops.sum() == pytest.approx(counter.get_total_flops(), rel=1e-9)
    cfg = replace(MVIT_CONFIGS["small"].with_input(8, 112), num_classes=5)
    np.testing.assert_allclose(trace.flops, mvit_flops(cfg))  # and per block, as mvit_flops splits them
    assert trace.meta["layer_info"][0]["kv_grid"] is None and all(
        info["kv_grid"] for info in trace.meta["layer_info"][1:]
    )
    assert trace.logits.shape == (5,) and "replaces the chosen ViT" in trace.meta["notes"][0]


def test_the_trace_round_trips(setup, tmp_path):
    _, _, trace = setup
    loaded = Trace.load(trace.save(tmp_path))
    assert loaded.meta["layer_info"] == trace.meta["layer_info"]
    assert all(np.array_equal(a, b) for a, b in zip(loaded.boxes, trace.boxes))


def test_a_clip_the_network_cannot_take_is_a_clear_message(setup):
    clip, model, _ = setup
    with pytest.raises(ParameterError, match="multiple of 32 px"):
        analyze(clip, model, make_reducer("mvit", variant="B"), device="cpu")
