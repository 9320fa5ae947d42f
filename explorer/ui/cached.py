"""Cached steps, so that moving the layer or changing the overlay never decodes or builds anything again.

Clips are data (st.cache_data, bounded); models are shared resources (st.cache_resource, bounded); model runs
go through the server's run queue (runs.py), which keeps their traces. Arguments with a leading underscore are
not hashed: the key next to them stands for them.
"""

from __future__ import annotations

import streamlit as st
import torch
from plotly.graph_objects import Figure

from explorer.models.video_vit import VideoViT
from explorer.models.weights import LoadReport

from .. import charts
from ..accuracy import generalization_note, load_shipped
from ..analyze import ModelSpec, build_model
from ..export import mp4_bytes, playback_fps
from ..runtime import memory_guard, resolve_device
from ..video import Clip, load_clip


@st.cache_data(max_entries=8, show_spinner=False)
def clip(key: str, _source: str | bytes, name: str, frames: int, stride: int, start: float, size: int) -> Clip:
    return load_clip(_source, frames=frames, stride=stride, start=start, size=size, name=name)


@st.cache_data(max_entries=8, show_spinner=False)
def clip_video(key: str, _clip: Clip) -> bytes:
    """The sampled frames as an MP4 the browser plays: the player never serves the video file itself."""
    return mp4_bytes(list(_clip.frames), playback_fps(_clip.times))


def model(
    size: str, weights: str | None, num_frames: int, img_size: int, device: str
) -> tuple[VideoViT, LoadReport | None]:
    """The shared model on the device that `device` resolves to ("auto" and "cuda" share one GPU copy)."""
    return _model(size, weights, num_frames, img_size, resolve_device(device).type)


@st.cache_resource(max_entries=3, show_spinner=False)
def _model(
    size: str, weights: str | None, num_frames: int, img_size: int, device: str
) -> tuple[VideoViT, LoadReport | None]:
    network, report = build_model(ModelSpec(size=size, weights=weights), num_frames, img_size)
    with memory_guard(
        f"the model ({size}{', ' + weights if weights else ''})", torch.device(device), "use a smaller model or the CPU"
    ):
        return network.to(device), report


@st.cache_data(show_spinner=False)
def accuracy_table() -> dict | None:
    return load_shipped()


@st.cache_resource(show_spinner=False)
def accuracy_figure() -> Figure | None:
    """The accuracy-against-budget chart, made once per server: every page shows the same one (st.plotly_chart
    only reads it)."""
    table = accuracy_table()
    return None if table is None else charts.accuracy_budget(table)


@st.cache_data(max_entries=8, show_spinner=False)
def generalization(weights: str) -> str | None:
    return generalization_note(weights)
