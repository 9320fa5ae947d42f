"""Sparse tubes through the video ViT: tokens are boxes, and the trace keeps them."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from explorer.analyze import analyze
from explorer.models.flops import embed_flops
from explorer.models.reducers import ParameterError, make_reducer
from explorer.models.tubevit import DEFAULT_TUBES, format_tubes, tube_boxes
from explorer.models.video_vit import SIZES, VideoViT
from explorer.trace import Trace
from tests.clips import make_clip, moving_square_frames

TINY = replace(SIZES["tiny"], depth=2, num_classes=5, num_frames=32)


@pytest.fixture(scope="module")
def trace():
    torch.manual_seed(0)
    return analyze(
        make_clip(moving_square_frames(frames=32)), VideoViT(TINY).eval(), make_reducer("tubes"), device="cpu"
    )


def test_the_default_tubes_give_539_box_tokens_at_every_layer(trace):
    assert trace.tokens_per_layer == [539, 539, 539]
    assert np.array_equal(np.bincount(trace.values["tube"][0]), [98, 147, 98, 196])
    assert (trace.owner == -1).all()  # boxes overlap and leave gaps: no cell is a token's own
    assert trace.boxes[0][0].tolist() == [0, 8, 0, 8, 0, 8] and trace.boxes[0][98].tolist() == [4, 20, 8, 12, 8, 12]


def test_the_embedding_flops_count_each_tube_kernel(trace):
    volume = 98 * 8 * 8 * 8 + 147 * 16 * 4 * 4 + 98 * 4 * 12 * 12 + 196 * 1 * 16 * 16
    assert trace.flops[0] == embed_flops(1, TINY.embed_dim, 3 * volume) + 2.0 * TINY.embed_dim * TINY.num_classes


def test_boxes_survive_save_and_load(trace, tmp_path):
    loaded = Trace.load(trace.save(tmp_path))
    assert all(np.array_equal(a, b) for a, b in zip(loaded.boxes, trace.boxes))


def test_editing_a_tube_changes_the_tokens():
    tubes = format_tubes(DEFAULT_TUBES[:1]) + "\n1x32x32 stride 8,32,32"
    reducer = make_reducer("tubes", tubes=tubes)
    boxes, values = reducer.boxes((32, 224, 224))
    assert len(boxes) == 98 + 4 * 49 and np.bincount(values["tube"]).tolist() == [98, 196]


def test_bad_tubes_are_a_clear_message():
    with pytest.raises(ParameterError, match="tubes: tube 1"):
        make_reducer("tubes", tubes="8x8x8 stride 0,32,32")
    with pytest.raises(ParameterError, match="no tube gives a token"):
        make_reducer("tubes", tubes="64x8x8 stride 16,32,32").boxes((32, 224, 224))


@pytest.mark.parametrize(
    "tubes, size",
    [
        (None, (32, 224, 224)),
        ("1x1x1 stride 1,1,1", (4, 32, 48)),
        ("3x5x7 stride 2,3,4 offset 1,2,3; 16x16x16 stride 5,5,5", (17, 40, 56)),
        ("8x8x8 stride 1,1,1 offset 20,0,0", (16, 64, 64)),  # the offset leaves no room: no token
    ],
)
def test_the_estimate_counts_the_tokens_the_boxes_make(tubes, size):
    reducer = make_reducer("tubes", **({"tubes": tubes} if tubes else {}))
    tokens, pairs = reducer.shape_cost(size, (size[0] // 2, size[1] // 16, size[2] // 16))
    assert tokens == len(tube_boxes(reducer.tubes, size)[0]) and pairs == tokens**2


def test_a_budget_is_refused_only_when_its_largest_strides_pass_the_limit():
    written = "1x1x1 stride 1,1,1"
    assert make_reducer("tubes", tubes=written).shape_cost((16, 224, 224), (8, 14, 14))[0] == 16 * 224 * 224
    assert make_reducer("tubes", tubes=written, budget=0.5).shape_cost((16, 224, 224), (8, 14, 14))[0] == 4 * 56 * 56


def test_too_many_tubes_or_digits_are_refused_before_any_number_is_made():
    with pytest.raises(ParameterError, match="at most 64 tubes"):
        make_reducer("tubes", tubes="2x16x16 stride 2,16,16\n" * 65)
    with pytest.raises(ParameterError, match="at most 10000"):
        make_reducer("tubes", tubes="2x16x16 stride 2,16,16 offset 0," + "9" * 5000 + ",0")
