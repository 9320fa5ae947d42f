import numpy as np

from explorer import charts
from explorer.overlays import draw_clip, draw_frame, palette, value_legend
from explorer.trace import Trace
from models.reducers.base import selection_from_mask


def toy_trace(kept: np.ndarray, fill_runs: bool, layers: int = 2) -> Trace:
    """A trace over a (T', 2, 2) grid of 16 px cells, as an input reducer would leave it."""
    lengths = np.where(kept, 1, 0)
    sel = selection_from_mask(kept, {"run_length": lengths}, fill_runs=fill_runs)
    n = sel.keep.size
    return Trace(grid=kept.shape, cell=(2, 16, 16), owner=np.repeat(sel.owner[None], layers + 1, axis=0),
                 tokens_per_layer=[n] * (layers + 1),
                 values={"cell": [sel.keep] * (layers + 1), "run_length": [sel.values["run_length"]] * (layers + 1)},
                 flops=np.ones(layers + 1), dense_flops=np.ones(layers + 1), seconds={"forward": 0.1, "reduce": 0.0})


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
