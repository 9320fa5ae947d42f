"""Sidebar widgets. Each *_ui() draws its widgets and returns plain values."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import streamlit as st

from explorer.models.reducers import REDUCERS, Param
from explorer.models.video_vit import SIZES
from explorer.models.weights import CheckpointError, download_videomae, native_img_size

from ..analyze import DEMO, DEMO_WEIGHTS
from ..saliency import FUSIONS, SaliencySpec
from ..video import SAMPLES, sample_path

UPLOAD_TYPES = ["mp4", "webm", "mov", "mkv", "avi"]
NATIVE_SIZE = "model's own"
SIZE_OPTIONS = [NATIVE_SIZE, 112, 160, 224, 288]  # input sizes in px


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

    def with_size(self, native: int) -> "Sampling":
        """The sampling with the model's own size filled in."""
        return replace(self, size=self.size or native)


@dataclass(frozen=True)
class ModelChoice:
    size: str
    weights: str | None
    device: str
    timing_runs: int

    @property
    def native_size(self) -> int:
        """The input size the network was made for: what an explorer file records (the demo model: 112), else 224."""
        path = self.weights or (DEMO_WEIGHTS if self.size == DEMO else None)
        return (native_img_size(path) if path else None) or 224


def video_ui() -> VideoChoice | None:
    st.subheader("Video")
    kind = st.radio("Source", ["Sample", "Upload", "Local path"], horizontal=True, key="source")
    if kind == "Sample":
        name = st.selectbox("Sample", list(SAMPLES), key="sample")
        st.caption("Samples are credited in assets/samples/CREDITS.md. Big Buck Bunny: (c) 2008 Blender "
                   "Foundation, www.bigbuckbunny.org, CC BY 3.0.")
        path = sample_path(name)
        return VideoChoice(key=f"sample:{path}", source=str(path), name=name)
    if kind == "Upload":
        limit = st.get_option("server.maxUploadSize")
        upload = st.file_uploader("Video file", type=UPLOAD_TYPES, key="upload",
                                  help=f"Up to {limit} MB (server.maxUploadSize in .streamlit/config.toml).")
        if upload is None:
            return None
        return VideoChoice(key=f"upload:{upload.file_id}", source=upload.getvalue(), name=upload.name)
    text = st.text_input("Path on this machine", key="path", placeholder="/videos/clip.mp4").strip()
    if not text:
        return None
    path = Path(text).expanduser()
    stamp = f"{path.stat().st_mtime_ns}:{path.stat().st_size}" if path.is_file() else "missing"
    return VideoChoice(key=f"path:{path}:{stamp}", source=str(path), name=path.name)


def sampling_ui() -> Sampling:
    with st.expander("Sampling", expanded=False):
        frames = st.select_slider("Frames", options=list(range(2, 33, 2)), value=16, key="frames",
                                  help="Frames fed to the model; a tubelet is 2 frames.")
        stride = st.number_input("Temporal stride", min_value=1, max_value=64, value=4, step=1, key="stride",
                                 help="Take every S-th frame of the source.")
        start = st.number_input("Start (s)", min_value=0.0, value=0.0, step=0.5, key="start")
        size = st.select_slider("Input size (px)", options=SIZE_OPTIONS, key="size",
                                help="Shorter side resized to this, then centre-cropped. The model's own: 112 px for "
                                     "the demo model (what it was trained on), 224 px otherwise.")
    return Sampling(int(frames), int(stride), float(start), size if isinstance(size, int) else None)


def model_ui() -> ModelChoice:
    st.subheader("Model")
    networks = [DEMO, *SIZES] if DEMO_WEIGHTS.exists() else list(SIZES)  # the demo model, unless it was deleted
    size = st.selectbox("Network", networks, index=0 if DEMO_WEIGHTS.exists() else networks.index("small"),
                        key="model_size", format_func=_network_name,
                        help="Used when no weights are given: the demo model (trained here on generated clips of "
                             "shapes moving left, right, up, down or not at all; assets/demo_model.safetensors) or "
                             "a ViT of that size with random weights.")
    weights = st.text_input("Weights (optional)", key="weights", placeholder="checkpoint.pth or a Hugging Face folder",
                            help="VideoMAE checkpoints (official .pth, or a folder with config.json and "
                                 "model.safetensors) or explorer safetensors. Loaded without running code.").strip()
    with st.expander("Get VideoMAE weights (needs internet)"):
        st.text_input("Hugging Face repo", value="MCG-NJU/videomae-base-finetuned-kinetics", key="hf_repo")
        st.text_input("Save to folder", value="weights/videomae-base-kinetics", key="hf_dest")
        st.button("Download", key="hf_download", on_click=_download_weights,
                  help="Fetches config.json and model.safetensors only, then fills in the weights field.")
        if "hf_error" in st.session_state:
            st.error(st.session_state.pop("hf_error"))
    device = st.radio("Device", ["auto", "cpu", "cuda"], horizontal=True, key="device")
    runs = st.number_input("Timed runs", min_value=1, max_value=10, value=1, key="timing_runs",
                           help="Forward passes timed; the median is shown.")
    return ModelChoice(size, os.path.expanduser(weights) if weights else None, device, int(runs))


def _network_name(size: str) -> str:
    if size == DEMO:
        return "Demo model (trained: which way a shape moves)"
    return f"ViT-{size}, untrained ({SIZES[size].embed_dim}-d, {SIZES[size].depth} blocks)"


def _download_weights() -> None:
    """Runs before the rerun, so it may set the weights field's value."""
    try:
        folder = download_videomae(st.session_state["hf_repo"].strip(), st.session_state["hf_dest"].strip())
    except CheckpointError as error:
        st.session_state["hf_error"] = str(error)
    else:
        st.session_state["weights"] = str(folder)


def reducer_ui() -> tuple[str, dict]:
    st.subheader("Token reducer")
    names = list(REDUCERS)
    name = st.selectbox("Reducer", names, index=names.index("rlt"), key="reducer",
                        format_func=lambda n: REDUCERS[n].title)
    return name, {p.name: param_widget(name, p) for p in REDUCERS[name].params}


def saliency_ui() -> SaliencySpec | None:
    """Attention rollout settings; off skips recording the attention (faster runs)."""
    st.subheader("Saliency")
    if not st.toggle("Attention rollout", value=True, key="saliency_on",
                     help="Records every block's attention once per run (not in the timed runs) to compute "
                          "rollout and the attention each token receives."):
        return None
    fusion = st.radio("Head fusion", FUSIONS, horizontal=True, key="fusion",
                      help="How the heads' attention maps become one: their mean, max or min.")
    discard = st.slider("Discard ratio", 0.0, 0.95, 0.0, 0.05, key="discard",
                        help="Zero this fraction of the weakest attention weights before rolling out "
                             "(sharpens the map).")
    return SaliencySpec(fusion, float(discard))


def param_widget(reducer: str, p: Param):
    key = f"param.{reducer}.{p.name}"
    if p.choices:
        return st.selectbox(p.name, p.choices, index=p.choices.index(p.default), help=p.help, key=key)
    if p.kind is str:
        field = st.text_area if "\n" in p.default else st.text_input  # several lines: a table such as tubes
        return field(p.name, value=p.default, help=p.help, key=key)
    if p.kind is bool:
        return st.checkbox(p.name, value=p.default, help=p.help, key=key)
    if p.kind is int:
        return st.number_input(p.name, min_value=int(p.low), max_value=int(p.high), value=p.default, step=1,
                               help=p.help, key=key)
    return st.slider(p.name, min_value=float(p.low), max_value=float(p.high), value=float(p.default),
                     step=float(p.step or 0.01), help=p.help, key=key)
