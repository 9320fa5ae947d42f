"""VideoMAE's figure: the frames, what the encoder saw, and what the pre-training decoder painted back."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import streamlit as st

from explorer.models.video_vit import VideoViT
from explorer.models.videomae_decoder import VideoMAEDecoder
from explorer.models.weights import load_decoder

from ..reconstruction import Reconstruction, reconstruct
from ..trace import Trace
from ..video import Clip

GAP = 4  # white pixels between frames


@st.cache_resource(max_entries=2, show_spinner=False)
def decoder(weights: str | None) -> VideoMAEDecoder | None:
    """The pre-training decoder in the weights file or folder; None without one (raises CheckpointError if broken)."""
    return load_decoder(weights) if weights else None


@st.cache_data(max_entries=8, show_spinner=False)
def _reconstruction(
    clip_key: str,
    _clip: Clip,
    model_key: Hashable,
    _model: VideoViT,
    _decoder: VideoMAEDecoder,
    keep: np.ndarray,
    device: str,
) -> Reconstruction:
    return reconstruct(_clip, _model, _decoder, keep, device=device)


def reconstruction_view(
    clip: Clip, trace: Trace, model: VideoViT, decoder: VideoMAEDecoder | None, *, clip_key: str, model_key: Hashable
) -> None:
    """clip_key and model_key name the clip and the model (with its weights) for the cache, as cached.trace's do."""
    if decoder is None:
        st.info(
            "**Reconstruction.** With a VideoMAE pre-training checkpoint, this shows the paper's figure: the "
            "frames, the tokens the encoder saw (the others blacked out), and the hidden patches painted back "
            "by the pre-training decoder from the visible ones alone. It needs a checkpoint that holds both "
            "encoder and decoder: the official pre-training `.pth`, or a Hugging Face `VideoMAEForPreTraining` "
            "folder, e.g. `python -m explorer download MCG-NJU/videomae-base --dest weights/videomae-base`, "
            "then choose that folder as the weights."
        )
        return
    keep = np.sort(trace.values["cell"][0])
    if tuple(trace.grid) != model.grid or int(trace.home(0).sum()) != keep.size:
        st.info(
            "**Reconstruction** needs tokens that are the model's own tubelets; this reducer makes tokens of its "
            "own, so there is nothing for the decoder to fill in."
        )
        return
    if keep.size == trace.input_tokens:
        st.info(
            "**Reconstruction.** Every tubelet enters the encoder here, so nothing is hidden and nothing is left "
            "to paint. Choose *VideoMAE masking* (or any reducer that drops tubelets before the model: RLT, random "
            "drop) to see the decoder fill in the rest."
        )
        return
    device = next(model.parameters()).device.type
    try:
        with st.spinner("Decoding the hidden patches…"):
            result = _reconstruction(clip_key, clip, model_key, model, decoder, keep, device)
    except ValueError as error:  # an encoder and a decoder that do not belong together
        st.warning(f"No reconstruction: {error}.")
        return
    step = trace.cell[0]  # one frame per tubelet: its first
    for name, video in (
        ("Original", result.original),
        ("Masked: what the encoder saw", result.masked),
        ("Reconstruction", result.reconstruction),
    ):
        st.image(_filmstrip(video[::step]), caption=name, width="stretch")
    total = trace.input_tokens
    normalized = (
        "It predicts each patch normalized by its own mean and standard deviation, so, as in VideoMAE's "
        "visualization script, the picture puts back the original patch's mean and standard deviation: a "
        "painted patch's average colour and contrast come from the clip, only its pattern from the model. "
        f"Pre-training loss on this clip: {result.loss:.3f} (mean squared error on the normalized hidden "
        "patches; about 1 for a flat guess)."
    )
    raw = (
        f"This decoder predicts raw pixels. Pre-training loss on this clip: {result.loss:.4f} (mean squared error "
        "on the hidden pixels, in [0, 1])."
    )
    st.caption(
        f"{keep.size} of {total} tokens visible ({keep.size / total:.0%}): the encoder ran on those alone (the trace's "
        f"layer 0) and the {decoder.cfg.summary()} painted the other {total - keep.size} from them. Frames "
        f"{', '.join(str(i) for i in range(0, clip.num_frames, step))} (the first of each tubelet). In the bottom row, "
        "visible patches are the clip's own; hidden ones are the decoder's. "
        + (normalized if decoder.cfg.normalized_target else raw)
    )


def _filmstrip(frames: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) -> one (H, n * W + gaps, 3) image."""
    gap = np.full((frames.shape[1], GAP, 3), 255, dtype=np.uint8)
    parts = [frames[0]]
    for frame in frames[1:]:
        parts += [gap, frame]
    return np.concatenate(parts, axis=1)
