from dataclasses import replace
from itertools import product

import numpy as np
import pytest
import torch

from explorer.models.tubevit import (
    DEFAULT_TUBES,
    Tube,
    TubeTokenizer,
    coverage,
    format_tube,
    format_tubes,
    parse_tubes,
    sincos_3d,
    tube_boxes,
    tube_grid,
    uncovered_fraction,
)
from explorer.models.video_vit import SIZES, VideoViT
from explorer.tube_charts import boxes_3d, tube_colours, tube_counts

SMALL = (28, 64, 64)  # every default tube fits, tube 2 twice in time: 8 + 8 + 8 + 16 tokens


def brute_force_grid(tube: Tube, size) -> tuple[int, ...]:
    """Start positions offset + i * stride whose kernel still fits, counted one by one."""
    return tuple(
        sum(1 for start in range(o, n, s) if start + k <= n)
        for n, k, s, o in zip(size, tube.kernel, tube.stride, tube.offset)
    )


def test_default_tubes_give_539_tokens_at_32x224():
    grids = [tube_grid(tube, (32, 224, 224)) for tube in DEFAULT_TUBES]
    assert grids == [(2, 7, 7), (3, 7, 7), (2, 7, 7), (1, 14, 14)]
    boxes, index = tube_boxes(DEFAULT_TUBES, (32, 224, 224))
    assert boxes.shape == (539, 6) and boxes.dtype == np.int64
    assert np.bincount(index).tolist() == [98, 147, 98, 196]


def test_16_frames_lose_the_long_tube():
    assert [np.prod(tube_grid(tube, (16, 224, 224))) for tube in DEFAULT_TUBES] == [49, 0, 49, 196]


@pytest.mark.parametrize("size", [(16, 224, 224), (32, 224, 224), (8, 112, 160), (40, 96, 64), (3, 20, 20)])
def test_tube_grid_counts_every_start_where_the_kernel_fits(size):
    tubes = DEFAULT_TUBES + (Tube((3, 5, 7), (2, 9, 4), (1, 2, 3)), Tube((1, 1, 1), (1, 1, 1)))
    for tube in tubes:
        assert tube_grid(tube, size) == brute_force_grid(tube, size)


def test_boxes_of_a_few_tokens_by_hand():
    boxes, index = tube_boxes(DEFAULT_TUBES, (32, 224, 224))
    # tube 1 (8x8x8, stride 16,32,32): token 1 is one step along w
    assert boxes[1].tolist() == [0, 8, 0, 8, 32, 40]
    # tube 2 (16x4x4, stride 6,32,32, offset 4,8,8): tokens 98 .. 244
    assert boxes[98].tolist() == [4, 20, 8, 12, 8, 12]
    assert boxes[244].tolist() == [4 + 2 * 6, 32, 8 + 6 * 32, 12 + 6 * 32, 8 + 6 * 32, 12 + 6 * 32]
    assert index[97] == 0 and index[98] == index[244] == 1 and index[245] == 2
    # tube 3 (4x12x12, offset 0,16,16): first token
    assert boxes[245].tolist() == [0, 4, 16, 28, 16, 28]
    # tube 4 (1x16x16, stride 32,16,16): its 15th token (k = 15) is row 1, column 1 of 14
    assert boxes[98 + 147 + 98 + 15].tolist() == [0, 1, 16, 32, 16, 32]
    assert boxes[-1].tolist() == [0, 1, 208, 224, 208, 224]


def test_boxes_fit_in_the_video_and_no_further_step_would():
    size = np.array([32, 224, 224])
    boxes, index = tube_boxes(DEFAULT_TUBES, size)
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 1::2] <= size).all()
    for i, tube in enumerate(DEFAULT_TUBES):
        last_end = boxes[index == i][:, 1::2].max(axis=0)
        assert (last_end + np.array(tube.stride) > size).all()


def test_tokenizer_output_is_the_conv_over_each_box_plus_its_position():
    torch.manual_seed(0)
    tokenizer = TubeTokenizer(DEFAULT_TUBES, embed_dim=12).eval()
    video = torch.randn(2, 3, *SMALL, dtype=torch.float64)
    with torch.no_grad():
        tokens = tokenizer.double()(video)
    boxes, index = tokenizer.boxes(SMALL)
    assert tokens.shape == (2, 40, 12) and np.bincount(index).tolist() == [8, 8, 8, 16]
    for n, ((t0, t1, y0, y1, x0, x1), i) in enumerate(zip(boxes, index)):
        conv = tokenizer.convs[i]
        pixels = video[:, :, t0:t1, y0:y1, x0:x1]
        by_hand = (conv.weight[None] * pixels[:, None]).sum(dim=(2, 3, 4, 5)) + conv.bias
        centre = [(t0 + t1) / 2, (y0 + y1) / 2, (x0 + x1) / 2]
        by_hand = by_hand + sincos_3d(np.array([centre]), 12).double()
        torch.testing.assert_close(tokens[:, n], by_hand)


def test_positions_are_at_the_box_centres():
    tokenizer = TubeTokenizer(DEFAULT_TUBES, embed_dim=6)
    for conv in tokenizer.convs:
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    with torch.no_grad():
        tokens = tokenizer(torch.randn(1, 3, *SMALL))[0]
    # tube 2's first token: offset 4,8,8 + kernel / 2 = 8,2,2 -> centre (12, 10, 10); at dim 6 a channel
    # pair (sin, cos) per axis with frequency 1
    t, y, x = 12.0, 10.0, 10.0
    expected = torch.tensor([np.sin(t), np.cos(t), np.sin(y), np.cos(y), np.sin(x), np.cos(x)], dtype=torch.float32)
    torch.testing.assert_close(tokens[8], expected)


def test_sincos_3d_splits_channels_across_t_y_x():
    centre = np.array([[3.5, 10.0, 20.0]])
    table = sincos_3d(centre, 12)[0].numpy()
    omega = np.array([1.0, 1e-2])  # 1 / 10000 ** (j / 2)
    expected = np.concatenate([f(p * omega) for p in centre[0] for f in (np.sin, np.cos)])
    np.testing.assert_allclose(table, expected, atol=1e-6)
    wide = sincos_3d(centre, 1024)[0]  # ViT-L: 3 x 340 channels of position, 4 left at zero
    assert wide.shape == (1024,) and (wide[1020:] == 0).all() and (wide[:1020] != 0).any()
    with pytest.raises(ValueError, match="at least 6 channels"):
        sincos_3d(centre, 4)


def test_a_tube_without_tokens_is_left_out_and_no_token_at_all_is_an_error():
    tokenizer = TubeTokenizer(DEFAULT_TUBES, embed_dim=12)
    with torch.no_grad():
        assert tokenizer(torch.zeros(1, 3, 16, 64, 64)).shape == (1, 4 + 0 + 4 + 16, 12)
    with pytest.raises(ValueError, match="no tube gives a token for a 4x8x8 video"):
        tokenizer(torch.zeros(1, 3, 4, 8, 8))
    with pytest.raises(ValueError, match="at least 6 channels"):
        TubeTokenizer(DEFAULT_TUBES, embed_dim=4)


def test_tube_tokens_run_through_the_video_vit():
    torch.manual_seed(0)
    model = VideoViT(replace(SIZES["tiny"], depth=1, num_classes=5, num_frames=4, img_size=32)).eval()
    tokenizer = TubeTokenizer(DEFAULT_TUBES, embed_dim=model.cfg.embed_dim)
    with torch.no_grad():
        logits = model.forward_head(model.forward_blocks(tokenizer(torch.randn(2, 3, *SMALL))))
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()


def brute_force_coverage(boxes, size) -> np.ndarray:
    count = np.zeros(size, dtype=int)
    for t0, t1, y0, y1, x0, x1 in np.maximum(boxes, 0):  # a slice that ends below 0 would count from the end
        count[t0:t1, y0:y1, x0:x1] += 1
    return count


def test_coverage_and_uncovered_fraction_equal_a_brute_force_count():
    size = (9, 20, 24)
    rng = np.random.default_rng(0)
    starts = rng.integers(-3, [9, 20, 24], size=(30, 3))
    ends = starts + rng.integers(1, 8, size=(30, 3))  # some boxes stick out of the video
    boxes = np.stack([starts, ends], axis=-1).reshape(-1, 6)
    count = brute_force_coverage(boxes, size)
    np.testing.assert_array_equal(coverage(boxes, size), count)
    assert uncovered_fraction(boxes, size) == pytest.approx((count == 0).mean())
    tube_box, _ = tube_boxes(DEFAULT_TUBES, SMALL)
    assert uncovered_fraction(tube_box, SMALL) == pytest.approx((brute_force_coverage(tube_box, SMALL) == 0).mean())
    assert uncovered_fraction(np.zeros((0, 6), int), size) == 1.0


def test_tubes_round_trip_through_text():
    text = format_tubes(DEFAULT_TUBES)
    assert text.splitlines()[1] == "16x4x4 stride 6,32,32 offset 4,8,8"
    assert parse_tubes(text) == DEFAULT_TUBES
    odd = (Tube((3, 5, 7), (2, 9, 4), (1, 2, 3)), Tube((1, 1, 1), (1, 1, 1)))
    assert parse_tubes(format_tubes(odd)) == odd
    loose = "  8x8x8 STRIDE 16x32x32 ;\n\n1, 16, 16 stride 32,16,16 offset 0,0,0;"
    assert parse_tubes(loose) == (DEFAULT_TUBES[0], DEFAULT_TUBES[3])
    assert format_tube(DEFAULT_TUBES[0]) == "8x8x8 stride 16,32,32 offset 0,0,0"


@pytest.mark.parametrize(
    "text, message",
    [
        ("8x8x8 stride 16,32,32; 4x4 stride 1,1,1", r"tube 2 \('4x4 stride 1,1,1'\) is not of the form"),
        ("8x8x8 strid 16,32,32", r"tube 1 .* is not of the form"),
        ("8x8x8 stride 0,32,32", r"tube 1 .*: stride must be positive, got 0,32,32"),
        ("8x8x8 stride 1,1,1\n0x8x8 stride 1,1,1", r"tube 2 .*: kernel must be positive, got 0x8x8"),
        ("8x8x8 stride 1,1,1 offset 0,-1,0", r"tube 1 .*: offset must not be negative, got 0,-1,0"),
        (" ; \n", "no tube given"),
    ],
)
def test_bad_tube_text_names_the_tube_and_the_fault(text, message):
    with pytest.raises(ValueError, match=message):
        parse_tubes(text)


def test_boxes_3d_draws_each_box_edges_once_per_tube_trace():
    size = (32, 224, 224)
    boxes, index = tube_boxes(DEFAULT_TUBES, size)
    fig = boxes_3d(boxes, index, size, highlight=98)
    tubes = [trace for trace in fig.data if trace.name.startswith("tube")]
    assert [trace.name for trace in tubes] == ["tube 1 (98)", "tube 2 (147)", "tube 3 (98)", "tube 4 (196)"]
    colours = tube_colours(4)
    assert [trace.line.color for trace in tubes] == [f"rgb({r}, {g}, {b})" for r, g, b in colours]
    # the first stroke of tube 2 (token 98: t 4-20, y 8-12, x 8-12) covers exactly its box's 12 edges
    trace = tubes[1]
    points = np.column_stack([trace.x, trace.y, trace.z])
    stroke = points[: np.flatnonzero(np.isnan(points[:, 0]))[0]]
    edges = {tuple(sorted((tuple(a), tuple(b)))) for a, b in zip(stroke[:-1], stroke[1:])}
    corners = list(product([8, 12], [4, 20], [8, 12]))  # (x, t, y)
    expected = {tuple(sorted((a, b))) for a in corners for b in corners if sum(u != v for u, v in zip(a, b)) == 1}
    assert edges == expected and len(expected) == 12
    assert trace.customdata[0].tolist() == [98, 4, 20, 8, 12, 8, 12]
    mesh = fig.data[-1]
    assert mesh.type == "mesh3d" and sorted(set(mesh.y)) == [4, 20] and sorted(set(mesh.x)) == [8, 12]


def test_tube_counts_and_colours():
    fig = tube_counts([98, 147, 98, 196], [format_tube(tube) for tube in DEFAULT_TUBES])
    assert list(fig.data[0].y) == [98, 147, 98, 196] and "539 in all" in fig.layout.title.text
    colours = tube_colours(12)
    assert colours.shape == (12, 3) and colours.dtype == np.uint8
    assert len({tuple(c) for c in colours[:10]}) == 10
