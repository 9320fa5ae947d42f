"""Token Reduction Explorer: see what token reduction does inside a video transformer.

The app's entry point, inside the package so that an installed copy can serve it: `streamlit run app.py` in the
repository runs it, and so does `token-explorer app` (`python -m explorer app`) where the package is installed.
Three pages: the explorer (this file's main(), the default page at "/", so links to a view keep working), Learn
(learn_page.py, at "/learn": a guided tour) and Scan (scan_page.py, at "/scan": the views of a scan of long videos
or datasets).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# A fresh server loads its libraries (torch, timm, plotly, …) in its first session, and sessions arriving meanwhile
# wait for them (warmup.py): say so before waiting, so that no page stays blank.
STARTING = (
    "This server has just started: it loads its libraries and the demo model once, for every session. "
    "Your page follows in a few seconds."
)
starting = None if getattr(sys.modules.get("explorer.ui.warmup"), "LOADED", False) else st.empty()
if starting is not None:
    starting.info(STARTING)

from explorer.deployment import shared  # noqa: E402
from explorer.errors import USER_ERRORS  # noqa: E402
from explorer.models.weights import CheckpointError, LoadReport  # noqa: E402
from explorer.trace import Trace  # noqa: E402
from explorer.ui import cached, compare, reconstruction, runs, sidebar, views, warmup, widgets  # noqa: E402
from explorer.video import Clip  # noqa: E402


def main() -> None:
    st.set_page_config(page_title="Token Reduction Explorer", page_icon="🎞️", layout="wide")
    widgets.restore_from_link()
    st.title("Token Reduction Explorer")
    st.caption(
        "Load a video, pick a video transformer and a token reducer, and see layer by layer "
        "which tokens the model gets, what it costs, and how the prediction changes."
    )
    with st.sidebar:
        choice = sidebar.video_ui()
        model_choice = sidebar.model_ui()
        sampling = sidebar.sampling_ui().with_size(model_choice.native_size)
        reducer, params = sidebar.reducer_ui()
        saliency = sidebar.saliency_ui()
        comparing = compare.compare_ui()
    if choice is None:
        where = "or an upload" if shared() else "an upload, or a path on this machine"
        st.info(f"Choose a video in the sidebar: a bundled sample, {where}.")
        return
    try:
        with st.spinner(f"Decoding {choice.name}…"):
            clip = cached.clip(
                choice.key, choice.source, choice.name, sampling.frames, sampling.stride, sampling.start, sampling.size
            )
        with st.spinner("Building the model…"):
            model, report = cached.model(
                model_choice.size, model_choice.weights, clip.num_frames, sampling.size, model_choice.device
            )
        model_key = (
            report.source if report else f"ViT-{model_choice.size}",
            model_choice.weights,
            clip.num_frames,
            sampling.size,
        )
        labels = report.labels if report else None
        run = dict(
            clip_key=choice.key + repr(sampling),
            _clip=clip,
            model_key=model_key,
            _model=model,
            labels=labels,
            device=model_choice.device,
            timing_runs=model_choice.timing_runs,
            precision=model_choice.precision,
            saliency=saliency,
            window=model_choice.window,
        )
        dense = runs.trace(reducer="none", params=(), **run)
        if comparing is None:
            trace = runs.trace(reducer=reducer, params=tuple(sorted(params.items())), **run)
    except USER_ERRORS as error:
        st.error(str(error))
        return

    with st.expander(views.clip_caption(clip)):
        st.video(cached.clip_video(run["clip_key"], clip))
        st.caption("The frames the model sees, at the rate they were sampled.")
    if report:
        views.checkpoint_view(report)
        trained = report.config.num_frames
        if clip.num_frames > trained:
            st.caption(
                f"This network was trained on clips of {trained} frames. On {clip.num_frames} its sin-cos "
                "position table extends to positions it never saw in training, so its answers on long clips are "
                "less sure than on short ones; tokens, FLOPs and times are as real as ever."
            )
    else:
        st.warning(
            f"Untrained model: ViT-{model_choice.size} has random weights (seed 0). Token counts, FLOPs "
            "and times are real; predictions mean nothing until you load a checkpoint."
        )
    if comparing is not None:
        compare_views(clip, dense, compare.compare_traces(comparing, run))
        return
    views.numbers_view(trace, dense)
    caveat = prediction_caveat(report, choice)
    if caveat:
        st.caption(caveat)
    st.subheader("Prediction: dense vs reduced")
    views.prediction_view(trace, dense, untrained=report is None)
    measured = cached.generalization(report.source) if report else None
    if measured:
        st.caption(measured)
    layer_views(clip, trace, dense, reducer)
    pretraining = bool(report and report.format.endswith("pretrain"))
    hidden = (trace.owner[0] < 0).any() and (trace.owner[0] >= 0).any()  # some tubelets in, some hidden
    if pretraining or hidden:  # what would the pre-training decoder paint in the hidden cells?
        st.subheader("Reconstruction (VideoMAE pre-training decoder)")
        decoder = None
        if pretraining:
            try:
                decoder = reconstruction.decoder(model_choice.weights)
            except CheckpointError as error:
                st.warning(f"No decoder: {error}")
        reconstruction.reconstruction_view(clip, trace, model, decoder, clip_key=run["clip_key"], model_key=model_key)
    with st.expander("Accuracy against token budget: every reducer on the demo model's held-out clips"):
        views.accuracy_view(cached.accuracy_table(), cached.accuracy_figure())


def prediction_caveat(report: LoadReport | None, choice: sidebar.VideoChoice) -> str | None:
    """What the prediction is worth here: nothing from an untrained network, little from one trained on
    generated clips (`python -m explorer train`) shown anything but a generated clip."""
    if report is None:
        return "Untrained network: its top-1 is a label picked by random weights, not an answer."
    generated = choice.key.startswith("sample:") and "generated" in choice.name
    if report.training and not generated:
        return (
            "This network learned from generated clips only (one shape moving over a texture, "
            f"{report.config.num_frames} frames of {report.config.img_size} px). {choice.name} is not such a clip, "
            "so its answer is a guess among its labels: watch what the reducer changes, not the label itself."
        )
    return None


@st.fragment
def compare_views(clip: Clip, dense: Trace, traces: dict[str, compare.Result]) -> None:
    """The side-by-side: its shared layer, frame and overlay rerun this fragment alone."""
    compare.compare_view(clip, dense, traces)
    widgets.publish_to_link()


@st.fragment
def layer_views(clip: Clip, trace: Trace, dense: Trace, reducer: str) -> None:
    """Everything the layer, the overlay and the followed cell change. A change to one of them reruns this
    fragment alone (the traces are cached, so nothing runs a model), and the link follows."""
    main_col, side_col = st.columns([3, 1])
    with main_col:
        image, layer, style, value, focus = views.token_view(clip, trace)
    with side_col:
        views.explanation_view(reducer, trace)
    if trace.boxes is not None:
        st.subheader("Token boxes")
        views.geometry_view(trace, clip, layer)
    if "layer_info" in trace.meta:
        st.subheader("Grids per layer")
        views.layer_table_view(trace)
    views.charts_view(trace, dense, layer)
    views.timeline_view(trace, layer)
    st.subheader("Export")
    views.export_view(clip, trace, image, layer, style, value, focus)
    st.subheader("Link to this view")
    widgets.share_link_view()
    widgets.publish_to_link()


def explorer_page() -> None:
    main()
    # after main(), so that its early returns (no video, an error, a comparison) are in the link too
    widgets.publish_to_link()


EXPLORER = st.Page(explorer_page, title="Explorer", icon="🎞️", default=True)
LEARN = st.Page(Path(__file__).with_name("learn_page.py"), title="Learn", icon="🎓", url_path="learn")
SCAN = st.Page(Path(__file__).with_name("scan_page.py"), title="Scan", icon="📊", url_path="scan")
runs.mark_page_run()
warmup.warm_server()  # once per server: the tour's runs, asked before any page draws
if starting is not None:
    starting.empty()
st.navigation([EXPLORER, LEARN, SCAN]).run()
