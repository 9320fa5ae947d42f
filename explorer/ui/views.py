"""Main-page views. Each reads a Clip and Traces only, never a reducer's internals."""

from __future__ import annotations

import html
import io
import math
import zipfile
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import pyarrow as pa
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from explorer.models.reducers import REDUCERS
from explorer.models.tubevit import uncovered_fraction
from explorer.models.weights import LoadReport

from .. import charts, export, values
from ..overlays import HeatLegend, cluster_info, draw_clip, heat_legend, value_legend
from ..trace import Trace
from ..tube_charts import boxes_3d, tube_counts
from ..video import Clip
from .widgets import widget

STYLE_NAMES = {
    "value": "Run length colour",
    "boxes": "Boxes",
    "clusters": "Clusters",
    "heat": "Heat",
    "kept": "Kept / pruned",
    "plain": "Frames only",
}
MAX_3D_BOXES = 2000  # more wireframes make the 3-D view slow to send and to turn


def _heat_value_names() -> tuple[str, ...]:
    """Every heat value a trace may carry: the generic ones, then those each registered reducer declares."""
    tables = [values.VALUES, *(cls.token_values for cls in REDUCERS.values())]
    return tuple(dict.fromkeys(name for table in tables for name, info in table.items() if info.kind == "heat"))


HEAT_VALUES = _heat_value_names()
# the token view's widgets; the data decides their range (layers, overlays, heat values, grid) when drawn
LAYER = widget(
    "layer", "Layer", 0, low=0, kind="slider", help="0 is the model's input; l is the sequence after block l."
)
STYLE = widget(
    "style",
    "Overlay",
    next(iter(STYLE_NAMES)),
    choices=STYLE_NAMES,
    kind="radio",
    format_func=STYLE_NAMES.get,
    extra={"horizontal": True},
)  # the first overlay the trace offers
EVERY_FRAME = widget("every_frame", "All frames", False, kind="toggle", help="Show both frames of each tubelet.")
HEAT_VALUE = widget("heat_value", "Heat value", "rollout", choices=HEAT_VALUES, only_if=("style", "heat"))
PAGE_SLOTS = 16  # time slots drawn at once: a long clip's frames are shown a page at a time
SLOTS_FROM = widget(
    "slots_from",
    "Time slots from",
    0,
    low=0,
    step=PAGE_SLOTS // 2,
    kind="slider",
    help=f"A long clip is drawn {PAGE_SLOTS} time slots at a time; this is the first one shown.",
)
FOCUS_ON = widget(
    "focus_on",
    "Follow a cell",
    False,
    kind="toggle",
    help="Highlight the token standing for one cell, in every frame it covers.",
)
FOCUS = tuple(
    widget(key, label, 0, low=0, only_if=("focus_on", True))
    for key, label in (("focus_t", "t' (time slot)"), ("focus_h", "h (row)"), ("focus_w", "w (column)"))
)

STYLE_HELP = {
    "value": "Each kept token is tinted by its run length: how many tubelets in a row it stands for.",
    "clusters": "A cluster is the set of cells one token stands for: tokens merged together (or an RLT run) "
    "become one token covering all their cells, possibly across time slots t'. Each cluster is "
    "filled with the mean colour of its pixels over every frame it covers and outlined in a colour "
    "of its own, the same in every frame, so a cluster spanning frames shows the same outline in "
    "each. Faded grey cells have no token.",
    "heat": "Each cell shows the value of the token standing for it: dark is low, bright yellow is high "
    "(scale below, 2nd to 98th percentile of this layer). Grey cells have no value here: no token, "
    "or the value does not exist at this layer.",
    "kept": "Outlined cells are tokens, drawn where they were embedded. Dimmed cells have no token of their "
    "own: a token from elsewhere stands for them. Grey cells have no token at all.",
    "plain": "The frames as the model sees them.",
    "boxes": "Every token here is a box of the video: each frame shows the outline of every box that covers it "
    "(coloured by its tube, when tokens come from tubes). Boxes may overlap, and parts of the video may "
    "lie in no box. A box shows only on the frames it covers: a one-frame tube appears on one frame, "
    "so turn on All frames to see every frame.",
}


WIDE_SPREAD = 0.25  # timed runs whose slowest and fastest differ by more than this share of the median


def numbers_view(trace: Trace, dense: Trace) -> None:
    """Tokens, FLOPs, time and the prediction, each against dense where dense is the same network."""
    kept, total = trace.tokens_per_layer[0], trace.input_tokens
    flops, dense_flops = trace.flops.sum(), dense.flops.sum()
    seconds, dense_seconds = trace.seconds["forward"], dense.seconds["forward"]
    same = not trace.meta.get("own_network")
    own = "" if same else f" ({REDUCERS[trace.meta['reducer']].title}'s own network; dense is the ViT)"
    cols = st.columns(4)
    average, last = float(np.mean(trace.tokens_per_layer)), trace.tokens_per_layer[-1]
    cols[0].metric(
        "Tokens per layer (average)",
        f"{average:.0f} / {total}",
        f"{average / total - 1:+.0%}" if same else None,
        delta_color="inverse",
        help=f"{kept} tokens enter the first block and {last} leave the last; the average over the layers "
        "is what a token budget fixes." + _budget_note(trace) + own,
    )
    cols[1].metric(
        "FLOPs",
        f"{flops / 1e9:.1f} G",
        f"{flops / dense_flops - 1:+.0%} vs dense" if same else None,
        delta_color="inverse",
        help=f"Matrix products of the whole forward, a multiply-add counted as 2 FLOPs (papers often quote "
        f"multiply-adds: half this). Dense: {dense_flops / 1e9:.1f} G{own}.",
    )
    cols[2].metric(
        f"Forward time ({trace.meta['device']}, {trace.meta.get('precision', trace.meta.get('dtype'))})",
        f"{seconds * 1e3:.0f} ms",
        f"{seconds / dense_seconds - 1:+.0%} vs dense ({dense_seconds * 1e3:.0f} ms)" if same else None,
        delta_color="inverse",
        help=f"Measured: {_timing(trace)}, {trace.meta['dtype']}; choosing the tokens took "
        f"{trace.seconds['reduce'] * 1e3:.1f} ms more. Dense: {_timing(dense)}{own}.",
    )
    top, dense_top = trace.top_k(1), dense.top_k(1)
    if top:
        agrees = top[0]["index"] == dense_top[0]["index"]
        cols[3].metric(
            "Top-1 prediction",
            top[0]["label"],
            "same as dense" if agrees else f"dense: {dense_top[0]['label']}",
            delta_color="off" if agrees else "inverse",
        )
    wide = [t for t in (trace, dense) if _spread(t) > WIDE_SPREAD]
    if wide:
        st.caption(
            "The timed runs spread widely ("
            + "; ".join(f"{t.meta['reducer']}: {_timing(t)}" for t in wide)
            + "): the machine was busy. Compare medians with care; more timed runs (sidebar) steady them."
        )


def _timing(trace: Trace) -> str:
    """The median of the timed runs and their range, in words."""
    runs, median = trace.meta.get("timing_runs", 1), trace.seconds["forward"] * 1e3
    low, high = (trace.seconds.get(k, trace.seconds["forward"]) * 1e3 for k in ("forward_min", "forward_max"))
    return f"median of {runs} run{'s' if runs != 1 else ''} {median:.0f} ms" + (
        f" (fastest {low:.0f}, slowest {high:.0f})" if runs > 1 else ""
    )


def _spread(trace: Trace) -> float:
    """How far apart the slowest and fastest timed runs are, as a share of their median."""
    seconds = trace.seconds
    low, high = seconds.get("forward_min", seconds["forward"]), seconds.get("forward_max", seconds["forward"])
    return (high - low) / seconds["forward"] if seconds["forward"] > 0 else 0.0


def _budget_note(trace: Trace) -> str:
    fit = trace.meta.get("budget")
    return f" Budget {fit['fraction']:g} of the dense count: {fit['knob']} was set to {fit['value']:g}." if fit else ""


def overlay_styles(trace: Trace) -> list[str]:
    """The overlays that say something for this trace, in STYLE_NAMES order."""
    on_cells = bool((trace.owner >= 0).any())  # tokens that are cells; sparse tubes' boxes are not
    return [
        s
        for s in STYLE_NAMES
        if (s != "value" or "run_length" in trace.values)
        and (s != "heat" or values.heat_values(trace))
        and (s != "clusters" or values.shares_tokens(trace))
        and (s != "boxes" or trace.boxes is not None)
        and (on_cells or s in ("boxes", "plain"))
    ]


def token_view(clip: Clip, trace: Trace) -> tuple[np.ndarray, int, str, str | None, tuple[int, int, int] | None]:
    """The frames with the tokens of the chosen layer drawn over them.

    Returns the image, the layer, the overlay style, its value and the followed cell (or None), for the exports.
    """
    heat = values.heat_values(trace)
    run_length = "run_length" if "run_length" in trace.values else None
    c1, c2, c3 = st.columns([3, 2.5, 1.3])
    layer = LAYER.draw(c1, high=trace.layers)  # another network may have fewer blocks
    style = STYLE.draw(c2, choices=overlay_styles(trace))
    every = EVERY_FRAME.draw(c3)
    row = st.columns([2.2, 1.8, 1, 1, 1])
    value = "tube" if style == "boxes" and "tube" in trace.values else run_length
    if style == "heat":
        value = HEAT_VALUE.draw(row[0], choices=heat, format_func=lambda name: values.describe(name, trace=trace).label)
    focus = focus_ui(trace, row[1:])
    slots = slot_page(trace)
    image = draw_clip(
        clip.frames,
        trace,
        layer,
        style,
        value,
        every_frame=every,
        columns=8 if every else 4,
        focus=focus,
        slots=slots,
    )
    picture, info = st.columns([4, 1]) if focus else (st.container(), None)
    shown = f" Time slots {slots.start}-{slots.stop - 1} of {trace.grid[0]}." if slots else ""
    picture.image(
        export.png_bytes(image, compress_level=1),  # 3 ms, against 9 ms at PIL's default level (a third larger)
        width="stretch",
        output_format="PNG",
        caption=f"{trace.tokens_per_layer[layer]} tokens at layer {layer}. "
        + ("One frame per tubelet (its last)." if not every else "Every frame; a tubelet is 2 frames.")
        + shown,
    )
    with picture:
        if style == "value":
            legend_view(trace, value)
        if style == "heat":
            heat_bar_view(heat_legend(trace, value, layer), values.describe(value, trace=trace))
        st.caption(STYLE_HELP[style])
    if focus:
        with info:
            cluster_info_view(cluster_info(trace, layer, focus), layer, trace)
    return image, layer, style, value, focus


def slot_page(trace: Trace) -> range | None:
    """The time slots to draw: all of a short clip; a page of PAGE_SLOTS, chosen with a slider, of a long one."""
    slots = trace.grid[0]
    if slots <= PAGE_SLOTS:
        return None
    start = int(SLOTS_FROM.draw(high=slots - PAGE_SLOTS))
    return range(start, start + PAGE_SLOTS)


def focus_ui(trace: Trace, cols: list[DeltaGenerator]) -> tuple[int, int, int] | None:
    """A cell to follow, (t', h, w) within the grid, or None when the toggle is off; drawn in four columns."""
    if not FOCUS_ON.draw(cols[0]):
        return None
    t, h, w = (int(axis.draw(col, high=size - 1)) for axis, col, size in zip(FOCUS, cols[1:], trace.grid))
    return t, h, w


def cluster_info_view(info: dict[str, Any], layer: int, trace: Trace) -> None:
    """What the followed cell's token is at this layer, and when the cell was merged or pruned."""
    if info["token"] is None:
        st.metric("Token", "none", help="No token stands for this cell at this layer.")
    else:
        st.metric(
            "Cluster size",
            f"{info['size']} cell{'s' if info['size'] != 1 else ''}",
            help="How many cells the followed cell's token stands for at this layer.",
        )
        slots = ", ".join(f"t'={t}: {n}" for t, n in enumerate(info["per_slot"]) if n)
        st.markdown(f"**Cells per time slot**: {slots}  \n**Home cell** (t', h, w): {info['home']}")
    merged, pruned = ("never" if layer_ is None else layer_ for layer_ in (info["merged_at"], info["pruned_at"]))
    st.markdown(
        f"**Merged at layer**: {merged}  \n**Pruned at layer**: {pruned}",
        help="Over the whole model, not only this layer: where the cell's token first grew by a merge, "
        "and where the cell was left with no token.",
    )
    rows = [
        f"**{values.describe(name, trace=trace).label}**: {_number(number)}"
        for name, number in info["values"].items()
        if name != "size"
    ]  # the metric above says it
    if rows:
        st.markdown(f"At layer {layer}:  \n" + "  \n".join(rows))


def _number(number: float | int) -> str:
    if isinstance(number, float):
        return "—" if not np.isfinite(number) else f"{number:.3g}"
    return str(number)


def legend_view(trace: Trace, name: str) -> None:
    legend = value_legend(trace, name)
    swatches = " ".join(
        f'<span style="display:inline-block;width:1.4em;height:1em;vertical-align:middle;'
        f'background:rgb{colour}"></span>&nbsp;{value}'
        for value, colour in legend.entries
    )
    st.html(f'<div style="font-size:0.85em">{legend.title} (tubelets): {swatches}</div>')


def heat_bar_view(legend: HeatLegend, info: values.ValueInfo) -> None:
    """A colour bar from vmin to vmax, and what the value means."""
    stops = ", ".join(f"rgb({r},{g},{b})" for r, g, b in legend.ramp[::32].tolist() + [legend.ramp[-1].tolist()])
    st.html(
        f'<div style="font-size:0.85em;display:flex;align-items:center;gap:0.6em">'
        f"<b>{html.escape(info.label)}</b><span>{legend.vmin:.3g}</span>"
        f'<span style="flex:1;height:0.9em;background:linear-gradient(to right, {stops})"></span>'
        f"<span>{legend.vmax:.3g}</span></div>"
    )
    st.caption(info.explanation)


def explanation_view(reducer: str, trace: Trace) -> None:
    cls = REDUCERS[reducer]
    st.markdown(f"**{cls.title}**\n\n{cls.explanation}")
    st.markdown(
        "**What you see.** The tokens of one layer drawn over the frames: layer 0 is what enters the "
        "first block, layer l what leaves block l. The text under the picture says what the chosen "
        "overlay shows; *Follow a cell* picks one place and shows which token stands for it."
    )
    if trace.meta.get("budget"):
        st.markdown(
            f"**Token budget.**{_budget_note(trace)} The budget is the average number of tokens over the "
            "layers (the average height of the tokens-per-layer chart), so reducers that act early or late "
            "can be compared at the same count."
        )
    if cls.departures:
        st.caption(f"Departure from the paper: {cls.departures}")
    for note in trace.meta.get("notes", []):
        st.caption(f"Note: {note}")


def geometry_view(trace: Trace, clip: Clip, layer: int) -> None:
    """For tokens that are boxes: how many per tube, how much of the video no token sees, and a 3-D view."""
    boxes = trace.boxes[layer]
    size = (clip.num_frames, *clip.frames.shape[1:3])
    groups = trace.values["tube"][layer] if "tube" in trace.values else np.zeros(len(boxes), dtype=int)
    labels = [f"tube {i + 1}" for i in range(int(groups.max(initial=0)) + 1)] if "tube" in trace.values else ["tokens"]
    unseen = uncovered_fraction(boxes, size)
    cols = st.columns(3)
    cols[0].metric("Tokens (boxes)", f"{len(boxes)}")
    cols[1].metric(
        "Video no token sees", f"{unseen:.1%}", help="Share of the clip's frames x pixels that lie in no token's box."
    )
    counts = np.bincount(groups, minlength=len(labels))
    cols[2].metric(
        "Per tube" if "tube" in trace.values else "Box size (frames x px x px)",
        " / ".join(str(c) for c in counts) if "tube" in trace.values else _box_size(boxes),
    )
    left, right = st.columns([3, 2])
    if len(boxes) <= MAX_3D_BOXES:
        left.plotly_chart(boxes_3d(boxes, groups, size, labels=labels), key="chart_boxes_3d")
        left.caption(
            "Every token's box in the clip's volume: x and y in pixels, t in frames. Drag to turn it; "
            "click a tube in the legend to hide it. The grey frame is the whole clip."
        )
    else:
        left.caption(
            f"{len(boxes)} boxes are too many to draw in 3-D here (up to {MAX_3D_BOXES}); pick a later "
            "layer, where there are fewer."
        )
    if "tube" in trace.values:
        right.plotly_chart(tube_counts(counts, labels), key="chart_tube_counts")
        right.caption(
            "Tokens each tube gives: positions along each axis = floor((size - offset - kernel) / stride) "
            "+ 1, multiplied. A tube whose kernel does not fit the clip gives none."
        )


def _box_size(boxes: np.ndarray) -> str:
    extent = boxes[:, 1::2] - boxes[:, 0::2]
    sizes = {tuple(int(v) for v in row) for row in extent}
    return " or ".join("x".join(map(str, size)) for size in sorted(sizes)[:3])


def layer_table_view(trace: Trace) -> None:
    """Per layer: the token grid, the grid keys and values were pooled to, widths, and the block's FLOPs."""
    rows = []
    for layer, info in enumerate(trace.meta["layer_info"]):
        row = {
            "layer": layer,
            "tokens": trace.tokens_per_layer[layer],
            "query grid": "x".join(map(str, info["q_grid"])),
            "key/value grid": "x".join(map(str, info["kv_grid"])) if info.get("kv_grid") else "",
            "footprint": _box_size(trace.boxes[layer]) if trace.boxes is not None else "",
            "GFLOPs": round(float(trace.flops[layer]) / 1e9, 2),
        }
        row |= {k: v for k, v in info.items() if k not in ("q_grid", "kv_grid")}
        rows.append(row)
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption(
        "Layer 0 is the patch embedding (its GFLOPs include the head); layer l is block l. The query grid "
        "is the grid of tokens a block outputs: pooling the queries with a stride shrinks it, and each "
        "token's footprint (frames x px x px) grows. Keys and values are pooled further, so attention "
        "compares each query with a small grid only."
    )


def timeline_view(trace: Trace, layer: int) -> None:
    """For a long clip, or windowed attention: where along time the tokens are, layer by layer."""
    if trace.grid[0] <= PAGE_SLOTS and not trace.meta.get("window"):
        return
    st.plotly_chart(charts.token_timeline(trace, layer), key="chart_timeline")
    st.caption(
        "Each row is a layer (0 = what enters the first block), each column a time slot t' of the clip. The "
        "colour counts the tokens homed in that slot; hover for how many slots each of them covers on average "
        "(more than 1: tokens merged, or runs of RLT, reaching along time). Dashed lines are the attention "
        "windows' edges: no token attends, or merges, across them. The red dotted row is the layer shown above."
    )


def charts_view(trace: Trace, dense: Trace, layer: int) -> None:
    left, right = st.columns(2)
    left.plotly_chart(
        charts.tokens_per_layer({"dense": dense, trace.meta["reducer"]: trace}, layer), key="chart_tokens"
    )
    left.caption(
        "The length of the sequence after each block (0 = what enters the first block). A reducer that "
        "acts before the model gives a flat line below the dense one; attention cost grows with its square."
    )
    if "run_length" in trace.values:
        right.plotly_chart(charts.value_histogram(trace, "run_length", layer), key="chart_values")
        right.caption(
            f"How many tubelets each kept token stands for. A run of {trace.grid[0]} is a place that never "
            "changed enough over the whole clip; a run of 1 is followed at once by another kept token."
        )
    elif values.shares_tokens(trace):
        right.plotly_chart(charts.cluster_sizes(trace, layer), key="chart_sizes")
        right.caption(
            "How many cells each token stands for at this layer. Every token starts as one cell; merging "
            "makes fewer, bigger clusters, so the bars move right as the layer grows."
        )
    else:
        right.plotly_chart(charts.flops_per_layer({"dense": dense, trace.meta["reducer"]: trace}), key="chart_flops")
        right.caption("FLOPs of each block, computed from the number of tokens it runs on.")


def prediction_view(trace: Trace, dense: Trace, untrained: bool) -> None:
    if trace.logits is None:
        st.info("This model has no classifier head (a pre-training checkpoint): there is no prediction to compare.")
        return
    rows = [
        {
            "rank": i + 1,
            "dense": f"{d['label']} ({d['probability']:.1%})",
            trace.meta["reducer"]: f"{r['label']} ({r['probability']:.1%})",
        }
        for i, (d, r) in enumerate(zip(dense.top_k(5), trace.top_k(5)))
    ]
    st.dataframe(arrow_table(rows), hide_index=True, width="stretch")
    p, q = dense.probabilities(), trace.probabilities()
    st.caption(
        f"Total variation between the two predictions: {0.5 * np.abs(p - q).sum():.3f} (0 = identical, 1 = disjoint)."
        + (
            " The model is untrained, so the labels mean nothing; the change still shows what the reducer does "
            "to the output."
            if untrained
            else ""
        )
    )


def arrow_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows for st.dataframe as an Arrow table, which it sends as is: a list of dicts goes through pandas first
    (1.8 ms against 0.03 ms for the five rows of the prediction, on every page of every session)."""
    return pa.Table.from_pylist(rows)


def accuracy_view(result: dict | None, figure: Any) -> None:
    """The demo model's accuracy and time against token budget (python -m explorer accuracy), from its JSON, and
    its chart (charts.accuracy_budget, made once per server)."""
    if result is None:
        st.info(
            "No accuracy table yet: `python -m explorer accuracy --out assets --name accuracy_budget --no-html` "
            "writes it for the demo model."
        )
        return
    st.plotly_chart(figure, key="chart_accuracy")
    dense = result["rows"][0]
    st.caption(
        f"The demo model on {result['clips']} held-out generated clips ({result['device']}), dense and every "
        "reducer at each budget. Each clip gets its own fitted knob, so the x position is the tokens actually "
        "kept on average (RLT cannot keep more than what changes: on a still background it stays below its "
        f"budget). Dense: {dense['accuracy']:.1%}, {dense['forward_ms']:.1f} ms per clip. Times are measured, one "
        "clip at a time."
    )
    with st.expander("The table"):
        st.dataframe(
            arrow_table(
                [
                    {
                        "reducer": r["reducer"],
                        "budget": r["budget"],
                        "tokens per layer": round(r["average_tokens"]),
                        "accuracy": f"{r['accuracy']:.1%}",
                        "agrees with dense": f"{r['agreement']:.1%}",
                        "GFLOPs": round(r["gflops"], 2),
                        "ms per clip": round(r["forward_ms"], 1),
                        "knob (mean)": r["knob"],
                    }
                    for r in result["rows"]
                ]
            ),
            hide_index=True,
            width="stretch",
        )


def export_view(
    clip: Clip,
    trace: Trace,
    image: np.ndarray,
    layer: int,
    style: str,
    value: str | None,
    focus: tuple[int, int, int] | None = None,
) -> None:
    """Downloads of the view: the overlay as shown (PNG), the overlay on every frame (GIF, MP4), the trace.

    The pictures are made when their button is clicked (a callable as the data), never on a rerun, so
    moving the layer stays as fast as before; clicking does not rerun the app either.
    """
    fps = export.playback_fps(clip.times)
    stem = f"overlay_{trace.meta.get('reducer', 'trace')}_layer{layer}_{style}"

    def animation(encode):
        return lambda: encode(export.overlay_frames(clip.frames, trace, layer, style, value, focus), fps)

    cols = st.columns(4)
    cols[0].download_button(
        f"Overlay at layer {layer} (PNG)",
        lambda: export.png_bytes(image),
        file_name=f"{stem}.png",
        mime="image/png",
        key="download_png",
        on_click="ignore",
    )
    cols[1].download_button(
        "Overlay over time (GIF)",
        animation(export.gif_bytes),
        file_name=f"{stem}.gif",
        mime="image/gif",
        key="download_gif",
        on_click="ignore",
    )
    cols[2].download_button(
        "Overlay over time (MP4)",
        animation(export.mp4_bytes),
        file_name=f"{stem}.mp4",
        mime="video/mp4",
        key="download_mp4",
        on_click="ignore",
    )
    cols[3].download_button(
        "Trace (summary.json + trace.npz)",
        lambda: trace_zip(trace),
        file_name="trace.zip",
        mime="application/zip",
        key="download_trace",
        on_click="ignore",
    )
    st.caption(
        f"**PNG**: the picture above. **GIF** and **MP4** (H.264, plays in browsers): this overlay on every "
        f"frame of the clip, {clip.num_frames} frames at {fps:.3g} per second, the pace they were sampled "
        "at. **Charts**: hover over a chart and click the camera icon in its toolbar for a PNG. **Trace**: "
        "load it back in Python with `explorer.Trace.load(folder)`; the same files come from "
        "`python -m explorer analyze`."
    )


def trace_zip(trace: Trace) -> bytes:
    buffer = io.BytesIO()
    with TemporaryDirectory() as tmp, zipfile.ZipFile(buffer, "w") as archive:
        folder = trace.save(tmp)
        for name in ("summary.json", "trace.npz"):
            archive.write(folder / name, name)
    return buffer.getvalue()


def checkpoint_view(report: LoadReport) -> None:
    """What was loaded, and every key that did not fit, so a wrong checkpoint is easy to see."""
    odd = [
        (what, keys)
        for what, keys in (
            ("Missing (left at random init)", report.missing),
            ("Unexpected (not used)", report.unexpected),
            ("Ignored on purpose", report.ignored),
        )
        if keys
    ]
    if report.missing or report.unexpected:
        st.warning(report.summary())
    else:
        st.caption(report.summary())
    if odd:
        with st.expander("Checkpoint keys that did not map one to one"):
            for what, keys in odd:
                st.markdown(
                    f"**{what}** ({len(keys)}): "
                    + ", ".join(f"`{k}`" for k in keys[:50])
                    + (" …" if len(keys) > 50 else "")
                )


def clip_caption(clip: Clip) -> str:
    w, h = clip.source_size
    span = f"{clip.times[0]:.2f}-{clip.times[-1]:.2f} s"
    length = f"{clip.duration:.1f} s long" if math.isfinite(clip.duration) else "length unknown"
    return (
        f"{clip.source}: {w}x{h}, {clip.fps:.3g} fps, {length}; "
        f"{clip.num_frames} frames sampled from {span}, shown at {clip.frames.shape[1]} px."
    )
