"""Main-page views. Each reads a Clip and Traces only, never a reducer's internals."""
from __future__ import annotations

import io
import zipfile
from tempfile import TemporaryDirectory

import cv2
import numpy as np
import streamlit as st

from models.reducers import REDUCERS
from models.weights import LoadReport

from .. import charts
from ..overlays import draw_clip, value_legend
from ..trace import Trace
from ..video import Clip

STYLE_NAMES = {"value": "Run length colour", "kept": "Kept / pruned", "plain": "Frames only"}


def numbers_view(trace: Trace, dense: Trace) -> None:
    kept, total = trace.tokens_per_layer[0], trace.input_tokens
    flops, dense_flops = trace.flops.sum(), dense.flops.sum()
    seconds, dense_seconds = trace.seconds["forward"], dense.seconds["forward"]
    cols = st.columns(4)
    cols[0].metric("Tokens into the model", f"{kept} / {total}", f"{kept / total - 1:+.0%}", delta_color="inverse")
    cols[1].metric("FLOPs", f"{flops / 1e9:.1f} G", f"{flops / dense_flops - 1:+.0%} vs dense", delta_color="inverse",
                   help=f"Matrix products of the whole forward, a multiply-add counted as 2 FLOPs (papers often quote "
                        f"multiply-adds: half this). Dense: {dense_flops / 1e9:.1f} G.")
    cols[2].metric(f"Forward time ({trace.meta['device']})", f"{seconds * 1e3:.0f} ms",
                   f"{seconds / dense_seconds - 1:+.0%} vs dense ({dense_seconds * 1e3:.0f} ms)", delta_color="inverse",
                   help=f"Measured: median of {trace.meta['timing_runs']} run(s), {trace.meta['dtype']}; "
                        f"choosing the tokens took {trace.seconds['reduce'] * 1e3:.1f} ms more.")
    top, dense_top = trace.top_k(1), dense.top_k(1)
    if top:
        same = top[0]["index"] == dense_top[0]["index"]
        cols[3].metric("Top-1 prediction", top[0]["label"], "same as dense" if same else f"dense: {dense_top[0]['label']}",
                       delta_color="off" if same else "inverse")


def token_view(clip: Clip, trace: Trace) -> tuple[np.ndarray, int]:
    """The frames with the tokens of the chosen layer drawn over them; returns the image and the layer."""
    value = "run_length" if "run_length" in trace.values else None
    styles = [s for s in STYLE_NAMES if s != "value" or value]
    c1, c2, c3 = st.columns([3, 2.5, 1.3])
    layer = c1.slider("Layer", 0, trace.layers, 0, key="layer",
                      help="0 is the model's input; l is the sequence after block l.")
    style = c2.radio("Overlay", styles, format_func=STYLE_NAMES.get, horizontal=True, key="style")
    every = c3.toggle("All frames", key="every_frame", help="Show both frames of each tubelet.")
    image = draw_clip(clip.frames, trace, layer, style, value, every_frame=every, columns=8 if every else 4)
    st.image(image, width="stretch", caption=f"{trace.tokens_per_layer[layer]} tokens at layer {layer}. "
             + ("One frame per tubelet (its last)." if not every else "Every frame; a tubelet is 2 frames."))
    if style == "value":
        legend_view(trace, value)
    return image, layer


def legend_view(trace: Trace, name: str) -> None:
    legend = value_legend(trace, name)
    swatches = " ".join(f'<span style="display:inline-block;width:1.4em;height:1em;vertical-align:middle;'
                        f'background:rgb{colour}"></span>&nbsp;{value}' for value, colour in legend.entries)
    st.html(f'<div style="font-size:0.85em">{legend.title} (tubelets): {swatches}</div>')


def explanation_view(reducer: str, trace: Trace) -> None:
    cls = REDUCERS[reducer]
    st.markdown(f"**{cls.title}**\n\n{cls.explanation}")
    st.markdown(
        "**What you see.** Outlined cells are tokens, drawn where they were embedded. Dimmed cells have "
        "no token of their own: an earlier token at the same place stands for them (an RLT run). "
        "Grey cells have no token at all. With *Run length colour*, each token is tinted by how many "
        "tubelets it stands for.")
    if cls.departures:
        st.caption(f"Departure from the paper: {cls.departures}")
    for note in trace.meta.get("notes", []):
        st.caption(f"Note: {note}")


def charts_view(trace: Trace, dense: Trace, layer: int) -> None:
    left, right = st.columns(2)
    left.plotly_chart(charts.tokens_per_layer({"dense": dense, trace.meta["reducer"]: trace}, layer), key="chart_tokens")
    left.caption("The length of the sequence after each block (0 = what enters the first block). A reducer that "
                 "acts before the model gives a flat line below the dense one; attention cost grows with its square.")
    if "run_length" in trace.values:
        right.plotly_chart(charts.value_histogram(trace, "run_length", layer), key="chart_values")
        right.caption(f"How many tubelets each kept token stands for. A run of {trace.grid[0]} is a place that never "
                      "changed enough over the whole clip; a run of 1 is followed at once by another kept token.")
    else:
        right.plotly_chart(charts.flops_per_layer({"dense": dense, trace.meta["reducer"]: trace}), key="chart_flops")
        right.caption("FLOPs of each block, computed from the number of tokens it runs on.")


def prediction_view(trace: Trace, dense: Trace, untrained: bool) -> None:
    if trace.logits is None:
        st.info("This model has no classifier head (a pre-training checkpoint): there is no prediction to compare.")
        return
    rows = [{"rank": i + 1, "dense": f"{d['label']} ({d['probability']:.1%})",
             trace.meta["reducer"]: f"{r['label']} ({r['probability']:.1%})"}
            for i, (d, r) in enumerate(zip(dense.top_k(5), trace.top_k(5)))]
    st.dataframe(rows, hide_index=True, width="stretch")
    p, q = dense.probabilities(), trace.probabilities()
    st.caption(f"Total variation between the two predictions: {0.5 * np.abs(p - q).sum():.3f} (0 = identical, 1 = disjoint)."
               + (" The model is untrained, so the labels mean nothing; the change still shows what the reducer does "
                  "to the output." if untrained else ""))


def export_view(trace: Trace, image: np.ndarray, layer: int) -> None:
    left, right = st.columns(2)
    left.download_button("Trace (summary.json + trace.npz)", trace_zip(trace), file_name="trace.zip",
                         mime="application/zip", key="download_trace")
    ok, png = cv2.imencode(".png", image[..., ::-1])
    right.download_button(f"Overlay at layer {layer} (PNG)", png.tobytes() if ok else b"", file_name=f"overlay_layer{layer}.png",
                          mime="image/png", key="download_png")
    st.caption("Load a trace back in Python with `explorer.Trace.load(folder)`; the same files come from "
               "`python -m explorer analyze`.")


def trace_zip(trace: Trace) -> bytes:
    buffer = io.BytesIO()
    with TemporaryDirectory() as tmp, zipfile.ZipFile(buffer, "w") as archive:
        folder = trace.save(tmp)
        for name in ("summary.json", "trace.npz"):
            archive.write(folder / name, name)
    return buffer.getvalue()


def checkpoint_view(report: LoadReport) -> None:
    """What was loaded, and every key that did not fit, so a wrong checkpoint is easy to see."""
    odd = [(what, keys) for what, keys in (("Missing (left at random init)", report.missing),
                                           ("Unexpected (not used)", report.unexpected),
                                           ("Ignored on purpose", report.ignored)) if keys]
    if report.missing or report.unexpected:
        st.warning(report.summary())
    else:
        st.caption(report.summary())
    if odd:
        with st.expander("Checkpoint keys that did not map one to one"):
            for what, keys in odd:
                st.markdown(f"**{what}** ({len(keys)}): " + ", ".join(f"`{k}`" for k in keys[:50])
                            + (" …" if len(keys) > 50 else ""))


def clip_caption(clip: Clip) -> str:
    w, h = clip.source_size
    span = f"{clip.times[0]:.2f}-{clip.times[-1]:.2f} s"
    return (f"{clip.source}: {w}x{h}, {clip.fps:.3g} fps, {clip.duration:.1f} s long; "
            f"{clip.num_frames} frames sampled from {span}, shown at {clip.frames.shape[1]} px.")

