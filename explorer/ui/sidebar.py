"""Sidebar widgets, each declared once below (widgets.widget); each *_ui() draws them and returns plain values."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import streamlit as st

from explorer.models.reducers import REDUCERS
from explorer.models.video_vit import SIZES
from explorer.models.weights import CheckpointError, download_videomae, native_img_size

from ..analyze import DEMO, DEMO_WEIGHTS
from ..deployment import shared
from ..runtime import DEVICES, PRECISIONS
from ..saliency import FUSIONS, SaliencySpec
from ..video import SAMPLES, sample_path
from .widgets import widget

UPLOAD_TYPES = ["mp4", "webm", "mov", "mkv", "avi"]
NATIVE_SIZE = "model's own"
SIZE_OPTIONS = [NATIVE_SIZE, 112, 160, 224, 288]  # input sizes in px
NETWORKS = [DEMO, *SIZES] if DEMO_WEIGHTS.exists() else list(SIZES)  # the demo model, unless it was deleted


@dataclass(frozen=True)
class VideoChoice:
    key: str  # stands for the source in cache keys
    source: str | bytes  # a path or an upload's bytes
    name: str


@dataclass(frozen=True)
class Sampling:
    frames: int
    stride: int
    start: float
    size: int | None  # None: the model's own input size

    def with_size(self, native: int) -> Sampling:
        """The sampling with the model's own size filled in."""
        return replace(self, size=self.size or native)


@dataclass(frozen=True)
class ModelChoice:
    size: str
    weights: str | None
    device: str
    timing_runs: int
    precision: str = "auto"
    window: int | None = None  # attention within windows of this many frames; None: over the whole clip

    @property
    def native_size(self) -> int:
        """The input size the network was made for: what an explorer file records (the demo model: 112), else 224."""
        path = self.weights or (DEMO_WEIGHTS if self.size == DEMO else None)
        return (native_img_size(path) if path else None) or 224


def _network_name(size: str) -> str:
    if size == DEMO:
        return "Demo model (trained: which way a shape moves)"
    return f"ViT-{size}, untrained ({SIZES[size].embed_dim}-d, {SIZES[size].depth} blocks)"


SOURCE = widget(
    "source",
    "Source",
    "Sample",
    choices=["Sample", "Upload", "Local path"],
    shared_choices=("Sample", "Upload"),
    kind="radio",
    extra={"horizontal": True},
)
SAMPLE = widget("sample", "Sample", next(iter(SAMPLES)), choices=SAMPLES, only_if=("source", "Sample"))
PATH = widget(
    "path",
    "Path on this machine",
    "",
    only_if=("source", "Local path"),
    server_path=True,
    extra={"placeholder": "/videos/clip.mp4"},
)
FRAMES = widget(
    "frames",
    "Frames",
    16,
    choices=[*range(2, 33, 2), 48, 64, 96, 128, 192, 256],
    kind="select_slider",
    help="Frames fed to the model; a tubelet is 2 frames. Past 32 the clip is long: the frames show a page "
    "at a time, a timeline shows the tokens along it, and attention windows (Model) keep its cost down.",
)
STRIDE = widget("stride", "Temporal stride", 4, low=1, high=64, help="Take every S-th frame of the source.")
START = widget("start", "Start (s)", 0.0, low=0.0, step=0.5, kind="number_input")
SIZE = widget(
    "size",
    "Input size (px)",
    NATIVE_SIZE,
    choices=SIZE_OPTIONS,
    kind="select_slider",
    help="Shorter side resized to this, then centre-cropped. The model's own: 112 px for the demo model "
    "(what it was trained on), 224 px otherwise.",
)
MODEL_SIZE = widget(
    "model_size",
    "Network",
    DEMO if DEMO in NETWORKS else "small",
    choices=NETWORKS,
    format_func=_network_name,
    help="Used when no weights are given: the demo model (trained here on generated clips of shapes "
    "moving left, right, up, down or not at all; assets/demo_model.safetensors) or a ViT of that "
    "size with random weights.",
)
WEIGHTS = widget(
    "weights",
    "Weights (optional)",
    "",
    extra={"placeholder": "checkpoint.pth or a Hugging Face folder"},
    server_path=True,
    help="VideoMAE checkpoints (official .pth, or a folder with config.json and model.safetensors) or "
    "explorer safetensors. Loaded without running code.",
)
DEVICE = widget("device", "Device", "auto", choices=list(DEVICES), kind="radio", extra={"horizontal": True})
PRECISION = widget(
    "precision",
    "Precision",
    "auto",
    choices=list(PRECISIONS),
    kind="radio",
    extra={"horizontal": True},
    help="The forward runs under autocast at this precision. auto: bf16 on a GPU that supports it "
    "(else fp16), fp32 on the CPU; bf16 on the CPU runs the GPU's code path.",
)
GLOBAL = "whole clip"
WINDOW = widget(
    "window",
    "Attention window (frames)",
    GLOBAL,
    choices=[GLOBAL, 4, 8, 16, 32, 64],
    kind="select_slider",
    help="Blocks attend within windows of this many consecutive frames, as VTM's do (6, 30 and 60 frames in "
    "its paper; here multiples of the 2-frame tubelet), and ToMe and VTM merge only within a window. A window "
    "of the whole clip is global attention, exactly.",
)
TIMING_RUNS = widget(
    "timing_runs",
    "Timed runs",
    5,
    low=1,
    high=20,
    help="Forward passes timed after a warm-up; the median is shown with the fastest and slowest, and a note "
    "when they are far apart.",
)
REDUCER = widget("reducer", "Reducer", "rlt", choices=REDUCERS, format_func=lambda n: REDUCERS[n].title)
PARAMS = {
    name: {
        p.name: widget(
            f"param.{name}.{p.name}",
            p.name,
            p.default,
            choices=p.choices,
            low=p.low,
            high=p.high,
            step=p.step,
            help=p.help,
            only_if=("reducer", name),
        )
        for p in reducer.params
    }
    for name, reducer in REDUCERS.items()
}  # reducer -> parameter -> widget, from the registry's declarations
SALIENCY_ON = widget(
    "saliency_on",
    "Attention rollout",
    True,
    kind="toggle",
    help="Records every block's attention once per run (not in the timed runs) to compute rollout "
    "and the attention each token receives.",
)
FUSION = widget(
    "fusion",
    "Head fusion",
    FUSIONS[0],
    choices=FUSIONS,
    kind="radio",
    only_if=("saliency_on", True),
    extra={"horizontal": True},
    help="How the heads' attention maps become one: their mean, max or min.",
)
DISCARD = widget(
    "discard",
    "Discard ratio",
    0.0,
    low=0.0,
    high=0.95,
    step=0.05,
    only_if=("saliency_on", True),
    help="Zero this fraction of the weakest attention weights before rolling out (sharpens the map).",
)


def video_ui() -> VideoChoice | None:
    st.subheader("Video")
    kind = SOURCE.draw()
    if kind == "Sample":
        name = SAMPLE.draw()
        st.caption(
            "Samples are credited in assets/samples/CREDITS.md. Big Buck Bunny: (c) 2008 Blender "
            "Foundation, www.bigbuckbunny.org, CC BY 3.0."
        )
        path = sample_path(name)
        return VideoChoice(key=f"sample:{path}", source=str(path), name=name)
    if kind == "Upload":
        limit = st.get_option("server.maxUploadSize")
        upload = st.file_uploader(
            "Video file",
            type=UPLOAD_TYPES,
            key="upload",
            help=f"Up to {limit} MB (server.maxUploadSize in .streamlit/config.toml).",
        )
        if upload is None:
            return None
        return VideoChoice(key=f"upload:{upload.file_id}", source=upload.getvalue(), name=upload.name)
    text = PATH.draw().strip()
    if not text:
        return None
    path = Path(text).expanduser()
    stamp = f"{path.stat().st_mtime_ns}:{path.stat().st_size}" if path.is_file() else "missing"
    return VideoChoice(key=f"path:{path}:{stamp}", source=str(path), name=path.name)


def sampling_ui() -> Sampling:
    with st.expander("Sampling", expanded=False):
        frames, stride, start, size = FRAMES.draw(), STRIDE.draw(), START.draw(), SIZE.draw()
    return Sampling(int(frames), int(stride), float(start), size if isinstance(size, int) else None)


def model_ui() -> ModelChoice:
    st.subheader("Model")
    size = MODEL_SIZE.draw()
    if shared():
        st.caption("This shared server loads no checkpoints from its disk: the demo model or an untrained ViT.")
        weights = ""
    else:
        weights = WEIGHTS.draw().strip()
        _download_ui()
    window = WINDOW.draw()
    device, precision, runs = DEVICE.draw(), PRECISION.draw(), TIMING_RUNS.draw()
    return ModelChoice(
        size,
        os.path.expanduser(weights) if weights else None,
        device,
        int(runs),
        precision,
        None if window == GLOBAL else int(window),
    )


def _download_ui() -> None:
    with st.expander("Get VideoMAE weights (needs internet)"):
        st.text_input("Hugging Face repo", value="MCG-NJU/videomae-base-finetuned-kinetics", key="hf_repo")
        st.text_input("Save to folder", value="weights/videomae-base-kinetics", key="hf_dest")
        st.button(
            "Download",
            key="hf_download",
            on_click=_download_weights,
            help="Fetches config.json and model.safetensors only, then fills in the weights field.",
        )
        if "hf_error" in st.session_state:
            st.error(st.session_state.pop("hf_error"))


def _download_weights() -> None:
    """Runs before the rerun, so it may set the weights field's value."""
    try:
        folder = download_videomae(st.session_state["hf_repo"].strip(), st.session_state["hf_dest"].strip())
    except CheckpointError as error:
        st.session_state["hf_error"] = str(error)
    else:
        st.session_state[WEIGHTS.key] = str(folder)


def reducer_ui() -> tuple[str, dict]:
    st.subheader("Token reducer")
    name = REDUCER.draw()
    return name, {param: field.draw() for param, field in PARAMS[name].items()}


def saliency_ui() -> SaliencySpec | None:
    """Attention rollout settings; off skips recording the attention (faster runs)."""
    st.subheader("Saliency")
    if not SALIENCY_ON.draw():
        return None
    return SaliencySpec(FUSION.draw(), float(DISCARD.draw()))
