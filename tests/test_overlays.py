import numpy as np

from explorer import charts
from explorer.models.reducers.base import selection_from_mask
from explorer.overlays import (
    FIELD_CENTRE,
    FOCUS_COLOUR,
    centred_boxes,
    cluster_info,
    draw_clip,
    draw_frame,
    heat_legend,
    heat_ramp,
    identity_colours,
    palette,
    value_legend,
)
from explorer.trace import Trace


def toy_trace(kept: np.ndarray, fill_runs: bool, layers: int = 2) -> Trace:
    """A trace over a (T', 2, 2) grid of 16 px cells, as an input reducer would leave it."""
    lengths = np.where(kept, 1, 0)
    sel = selection_from_mask(kept, {"run_length": lengths}, fill_runs=fill_runs)
    n = sel.keep.size
    return Trace(
        grid=kept.shape,
        cell=(2, 16, 16),
        owner=np.repeat(sel.owner[None], layers + 1, axis=0),
        tokens_per_layer=[n] * (layers + 1),
        values={"cell": [sel.keep] * (layers + 1), "run_length": [sel.values["run_length"]] * (layers + 1)},
        flops=np.ones(layers + 1),
        dense_flops=np.ones(layers + 1),
        seconds={"forward": 0.1, "reduce": 0.0},
    )


def test_kept_cells_are_outlined_covered_cells_dimmed_and_empty_cells_grey():
    kept = np.array([[[True, True], [True, True]], [[True, False], [False, False]]])
    frame = np.full((32, 32, 3), 200, dtype=np.uint8)
    runs = draw_frame(frame, toy_trace(kept, fill_runs=True), layer=1, tubelet_index=1)
    assert (runs[0, 0] == 255).all() and (runs[8, 8] == 200).all()  # own cell: white outline, untouched inside
    assert runs[8, 24].max() < 100  # covered by the token of tubelet 0 at the same place: dimmed
    dropped = draw_frame(frame, toy_trace(kept, fill_runs=False), layer=1, tubelet_index=1)
    assert abs(int(dropped[8, 24, 0]) - int(0.3 * 200 + 0.7 * 40)) <= 1  # no token at all: grey
    assert (draw_frame(frame, toy_trace(kept, True), 1, 1, style="plain") == frame).all()


def test_value_colours_follow_the_legend():
    kept = np.ones((4, 2, 2), dtype=bool)
    trace = toy_trace(kept, fill_runs=True)
    legend = value_legend(trace, "run_length")
    assert [v for v, _ in legend.entries] == [1, 2, 3, 4]
    assert len({c for _, c in legend.entries}) == 4
    frame = np.zeros((32, 32, 3), dtype=np.uint8)
    tinted = draw_frame(frame, trace, 0, 0, style="value", value="run_length")
    expected = (0.55 * palette(4)[0]).astype(np.uint8)
    assert np.abs(tinted[8, 8].astype(int) - expected).max() <= 1


def test_draw_clip_tiles_one_frame_per_tubelet_or_all():
    kept = np.ones((4, 2, 2), dtype=bool)
    frames = np.zeros((8, 32, 32, 3), dtype=np.uint8)
    trace = toy_trace(kept, True)
    assert draw_clip(frames, trace, 0, columns=4, gap=4).shape == (32, 4 * 36 - 4, 3)
    assert draw_clip(frames, trace, 0, every_frame=True, columns=4, gap=4).shape == (2 * 36 - 4, 4 * 36 - 4, 3)


def test_charts_have_one_series_per_trace_and_count_values():
    kept = np.zeros((4, 2, 2), dtype=bool)
    kept[0] = True
    kept[2, 0, 0] = True
    trace = toy_trace(kept, True)
    fig = charts.tokens_per_layer({"dense": trace, "rlt": trace}, layer=1)
    assert [s.name for s in fig.data] == ["dense", "rlt"] and list(fig.data[0].y) == [5, 5, 5]
    trace.values["run_length"] = [np.array([4, 2, 4, 4, 2])] * 3
    hist = charts.value_histogram(trace, "run_length", 0)
    assert list(hist.data[0].y) == [0, 2, 0, 3]
    assert len(charts.flops_per_layer({"a": trace}).data[0].y) == 2


def merge_trace() -> Trace:
    """A (2, 2, 2) grid of 16 px cells (tubelets of 2 frames): cells are flat t*4 + h*2 + w.

    Layer 1: cells (0,0,0) and (1,0,0) merge across time into token 0; (0,0,1) is pruned.
    Layer 2: token 0 also takes (1,0,1); (0,1,0) and (0,1,1) merge into token 1.
    """
    owner = np.array(
        [
            np.arange(8).reshape(2, 2, 2),
            [[[0, -1], [1, 2]], [[0, 3], [4, 5]]],
            [[[0, -1], [1, 1]], [[0, 0], [2, 3]]],
        ],
        dtype=np.int32,
    )
    cells = [np.arange(8), np.array([0, 2, 3, 5, 6, 7]), np.array([0, 2, 6, 7])]
    attention = [np.linspace(1, 2, 8), np.array([1.0, 5.0, np.nan, 2.0, 3.0, 0.5]), np.full(4, np.nan)]
    return Trace(
        grid=(2, 2, 2),
        cell=(2, 16, 16),
        owner=owner,
        tokens_per_layer=[8, 6, 4],
        values={"cell": cells, "attention": attention},
        flops=np.ones(3),
        dense_flops=np.ones(3),
        seconds={"forward": 0.1, "reduce": 0.0},
    )


def clip_frames(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)


def faded(pixel: np.ndarray) -> np.ndarray:
    return (0.3 * pixel.astype(float) + 0.7 * 40).astype(int)


def test_clusters_fill_each_token_with_its_mean_colour_over_all_its_frames():
    trace, frames = merge_trace(), clip_frames()
    drawn = [draw_frame(frames[2 * t + 1], trace, 1, t, "clusters", frames=frames) for t in range(2)]
    merged = frames[:, :16, :16].reshape(-1, 3).mean(axis=0)  # token 0: cell (0,0,0) in frames 0-1, (1,0,0) in 2-3
    for image in drawn:
        assert np.abs(image[8, 8].astype(int) - merged).max() <= 1
    single = frames[2:, 16:, 16:].reshape(-1, 3).mean(axis=0)  # token 5: cell (1,1,1) alone
    assert np.abs(drawn[1][24, 24].astype(int) - single).max() <= 1
    assert np.abs(drawn[0][8, 24].astype(int) - faded(frames[1, 8, 24])).max() <= 1  # (0,0,1) pruned


def test_cluster_outlines_have_one_colour_per_token_in_every_frame_and_follow_the_boundaries():
    trace, frames = merge_trace(), clip_frames()
    drawn = [draw_frame(frames[2 * t + 1], trace, 1, t, "clusters", frames=frames) for t in range(2)]
    own = identity_colours(np.array([0, 2, 3]))  # by home cell: tokens 0, 1 and 2 at layer 1
    assert len({tuple(c) for c in own}) == 3
    for image in drawn:  # token 0 spans both time slots: the same outline colour in both frames
        assert (image[0, 5] == own[0]).all() and (image[5, 15] == own[0]).all()
    assert (drawn[0][24, 15] == own[1]).all() and (drawn[0][24, 16] == own[2]).all()  # two tokens meet
    assert (drawn[0][24, 14] != own[1]).any()  # a pixel inside the cell is filled, not outlined
    later = draw_frame(frames[1], trace, 2, 0, "clusters", frames=frames)  # (0,1,0) and (0,1,1) merged
    inside = frames[:2, 16:, :].reshape(-1, 3).mean(axis=0)
    for x in (15, 16):
        assert np.abs(later[24, x].astype(int) - inside).max() <= 1


def test_heat_puts_the_hottest_colour_on_the_highest_value_and_grey_where_there_is_none():
    trace = merge_trace()
    frame = np.full((32, 32, 3), 100, dtype=np.uint8)
    ramp = heat_ramp()
    image = draw_frame(frame, trace, 1, 0, "heat", "attention")
    assert np.abs(image[24, 8].astype(int) - (0.4 * 100 + 0.6 * ramp[-1])).max() <= 1  # token 1: 5.0, the highest
    assert np.abs(image[24, 24].astype(int) - faded(frame[0, 0])).max() <= 1  # token 2: NaN
    assert np.abs(image[8, 24].astype(int) - faded(frame[0, 0])).max() <= 1  # pruned
    lowest = draw_frame(frame, trace, 1, 1, "heat", "attention")[24, 24]  # token 5: 0.5, the lowest
    assert np.abs(lowest.astype(int) - (0.4 * 100 + 0.6 * ramp[0])).max() <= 1
    fixed = draw_frame(frame, trace, 1, 0, "heat", "attention", vmin=0.0, vmax=10.0)
    assert np.abs(fixed[24, 8].astype(int) - (0.4 * 100 + 0.6 * ramp[128])).max() <= 1
    legend = heat_legend(trace, "attention", 1, vmin=0.0, vmax=10.0)
    assert (legend.vmin, legend.vmax, legend.ramp.shape) == (0.0, 10.0, (256, 3))


def test_heat_range_is_robust_to_one_outlier():
    values = np.ones(100)
    values[:50] = 0.0
    values[7] = 1000.0
    trace = Trace(
        grid=(1, 10, 10),
        cell=(2, 16, 16),
        owner=np.arange(100, dtype=np.int32).reshape(1, 1, 10, 10),
        tokens_per_layer=[100],
        values={"cell": [np.arange(100)], "motion": [values]},
        flops=np.ones(1),
        dense_flops=np.ones(1),
        seconds={},
    )
    legend = heat_legend(trace, "motion", 0)
    assert legend.vmin == 0.0 and legend.vmax == 1.0


def test_focus_keeps_exactly_the_focused_tokens_cells_bright_and_outlines_them_in_every_frame():
    trace = merge_trace()
    frame = np.full((32, 32, 3), 200, dtype=np.uint8)
    for style in ("kept", "clusters", "heat", "plain"):
        value = "attention" if style == "heat" else None
        for t in range(2):
            plain = draw_frame(frame, trace, 2, t, style, value, frames=clip_frames())
            focused = draw_frame(frame, trace, 2, t, style, value, frames=clip_frames(), focus=(1, 0, 0))
            for h in range(2):
                for w in range(2):
                    y, x = 16 * h + 5, 16 * w + 10  # inside the cell, off its outline and the marker
                    mine = trace.owner[2, t, h, w] == 0
                    expected = plain[y, x] if mine else (0.4 * plain[y, x]).astype(np.uint8)
                    assert np.abs(focused[y, x].astype(int) - expected).max() <= 1, (style, t, h, w)
                    top = focused[16 * h, 16 * w + 8]  # the token lies in row 0: its top edges are outlined
                    assert (top == FOCUS_COLOUR).all() == mine, (style, t, h, w)
    frames = [draw_frame(frame, trace, 2, t, focus=(1, 0, 0)) for t in range(2)]
    assert (frames[1][15, 8] == FOCUS_COLOUR).all()  # the outline runs where the token ends, below (1,0,0),
    assert (frames[1][8, 15] != FOCUS_COLOUR).any() and (frames[1][8, 16] != FOCUS_COLOUR).any()  # not inside it
    assert (frames[1][8, 8] == FOCUS_COLOUR).all() and (frames[0][8, 8] != FOCUS_COLOUR).any()  # marker: picked cell


def test_cluster_info_reports_the_token_its_size_and_when_the_cell_was_merged_or_pruned():
    trace = merge_trace()
    info = cluster_info(trace, 1, (1, 0, 0))
    assert (info["token"], info["size"], info["per_slot"], info["home"]) == (0, 2, [1, 1], (0, 0, 0))
    assert (info["merged_at"], info["pruned_at"], info["values"]) == (1, None, {"attention": 1.0})
    assert cluster_info(trace, 2, (1, 0, 0))["per_slot"] == [1, 2]
    gone = cluster_info(trace, 1, (0, 0, 1))
    assert (gone["token"], gone["size"], gone["merged_at"], gone["pruned_at"]) == (None, 0, None, 1)
    late = cluster_info(trace, 1, (0, 1, 1))
    assert (late["size"], late["merged_at"], late["home"]) == (1, 2, (0, 1, 1))
    assert np.isnan(late["values"]["attention"])
    assert cluster_info(toy_trace(np.ones((2, 2, 2), dtype=bool), True), 2, (1, 1, 1))["merged_at"] is None


def test_draw_clip_draws_the_new_styles_at_the_clip_size():
    trace, frames = merge_trace(), clip_frames()
    for style, value in (("clusters", None), ("heat", "attention")):
        image = draw_clip(frames, trace, 1, style, value, columns=2, focus=(0, 1, 1))
        assert image.shape == (32, 2 * 36 - 4, 3)


def test_cluster_sizes_bins_big_clusters_by_powers_of_two():
    sizes = np.array([1, 1, 2, 3, 20, 300])
    owner = np.repeat(np.arange(6, dtype=np.int32), sizes).reshape(1, 1, 1, -1)
    trace = Trace(
        grid=owner.shape[1:],
        cell=(2, 16, 16),
        owner=owner,
        tokens_per_layer=[6],
        values={"cell": [np.cumsum(sizes) - sizes]},
        flops=np.ones(1),
        dense_flops=np.ones(1),
        seconds={},
    )
    bars = charts.cluster_sizes(trace, 0).data[0]
    counts = dict(zip(bars.x, bars.y))
    assert counts["1"] == 2 and counts["2"] == 1 and counts["3"] == 1 and counts["17-32"] == 1
    assert counts["257-512"] == 1 and counts["9-16"] == 0 and sum(bars.y) == 6
    assert list(bars.x)[-1] == "257-512" and len(bars.x) == 8 + 6
    assert dict(zip(bars.x, bars.customdata))["257-512"] == 300


def test_centred_boxes_move_a_tile_onto_its_fields_centre():
    tile = np.array([[2, 4, 32, 64, 64, 96]])  # frames 2-3, rows 32-63, columns 64-95
    # a field centred on the tile's first pixel (32, 64): a 32 px box from 16 px before it to 16 px after it
    assert centred_boxes(tile, (0, 0, 0)).tolist() == [[2, 4, 16, 49, 48, 81]]
    # a centre between pixels (33.5 rows, 65.5 columns) rounds half up: outline through 18 and 50, 50 and 82
    assert centred_boxes(tile, (0, 1.5, 1.5)).tolist() == [[2, 4, 18, 51, 50, 83]]


def test_mvit_boxes_are_drawn_centred_on_each_tokens_receptive_field():
    import torch

    from explorer.analyze import analyze
    from explorer.models.mvit import FIELD_CENTRE as MVIT_FIELD_CENTRE
    from explorer.models.reducers import make_reducer
    from explorer.models.video_vit import VideoViT, VideoViTConfig
    from tests.clips import make_clip

    assert FIELD_CENTRE == MVIT_FIELD_CENTRE
    torch.manual_seed(0)
    model = VideoViT(VideoViTConfig(embed_dim=64, depth=2, num_heads=2, num_classes=5, num_frames=8, img_size=112))
    frames = np.full((8, 112, 112, 3), 128, dtype=np.uint8)
    trace = analyze(make_clip(frames), model, make_reducer("mvit"), device="cpu")
    last = trace.layers
    # the small MViT at 8 x 112: 4 x 7 x 7 at the last layer, tiles of 2 frames x 16 x 16 px. By hand: the patch
    # conv (7, stride 4, padding 3) reads pixels 4n-3 .. 4n+3, two query pools (3, stride 2, padding 1) widen it
    # to 16n-15 .. 16n+15 (31 px, centred on 16n, the tile's first pixel); in time 2n-5 .. 2n+5 (11 frames)
    assert trace.meta["layer_info"][last]["receptive field"] == "11x31x31"
    assert trace.meta["layer_info"][last][FIELD_CENTRE] == [0, 0, 0]
    assert (trace.boxes[last][:, 3] - trace.boxes[last][:, 2] == 16).all()  # the trace's boxes stay the tiling
    drawn = draw_frame(frames[0], trace, last, 0, "boxes")
    outline = (drawn != (frames[0] * 0.7).round()).any(axis=2)
    # centred on pixels 16n (n = 0 .. 6), a box's outline runs 8 px either side: lines along rows and columns
    # 8, 24, .., 104 (the first, -8, is off the frame) from the frame's edge to the last centre's, 96 + 8, and
    # nothing beyond it; the stride tiling drew 16n and 16n + 15, up to 111
    assert np.flatnonzero(outline[:, :105].all(axis=1)).tolist() == list(range(8, 105, 16))
    assert np.flatnonzero(outline[:105].all(axis=0)).tolist() == list(range(8, 105, 16))
    assert not outline[105:].any() and not outline[:, 105:].any()


def test_frame_labels_look_as_opencv_draws_them_and_are_drawn_once_per_process():
    """_label pastes text rendered once (OpenCV sets its font up again in every new thread, and Streamlit runs
    each script run in one): the same pixels as drawing it on the tile, to one grey level, at every tile size."""
    import threading

    import cv2

    from explorer.overlays import _label, _text_coverage

    rng = np.random.default_rng(0)
    text = "frame 13  t'=6"
    for size in (16, 56, 112, 224, 320):
        tile = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        ours, theirs = tile.copy(), tile.copy()
        _label(ours, text)
        scale = 0.45 * min(1.0, size / 224)
        origin = (4, 4 + int(24 * scale))
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(theirs, text, origin, font, scale, (0, 0, 0), 3 if scale > 0.3 else 2, cv2.LINE_AA)
        cv2.putText(theirs, text, origin, font, scale, (255, 255, 255), 1, cv2.LINE_AA)
        assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1, size
        assert size < 56 or (ours != tile).any(-1).sum() > 40  # the text is there
    before = _text_coverage.cache_info()
    drawn = threading.Thread(target=_label, args=(np.zeros((112, 112, 3), np.uint8), text))
    drawn.start()
    drawn.join()
    after = _text_coverage.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses  # another thread, no new drawing
