"""analyze(): run a clip through a video ViT with a token reducer and fill the trace.

One function serves the app, the CLI, the benchmark and the tests.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from models.flops import vit_flops
from models.reducers import ParameterError, Reducer
from models.video_vit import SIZES, VideoViT, normalize_video
from models.weights import LoadReport, load_model

from .trace import Trace
from .video import Clip


@dataclass(frozen=True)
class ModelSpec:
    """Which network: a named size with random weights, or a checkpoint file/folder."""

    size: str = "small"
    weights: str | None = None
    seed: int = 0

    def describe(self) -> str:
        return os.path.basename(os.path.normpath(self.weights)) if self.weights else f"ViT-{self.size} (untrained)"


def build_model(spec: ModelSpec, num_frames: int, img_size: int) -> tuple[VideoViT, LoadReport | None]:
    """The network for clips of num_frames x img_size^2; random weights are seeded, so reproducible."""
    if spec.weights:
        model, report = load_model(spec.weights)
    else:
        if spec.size not in SIZES:
            raise ParameterError(f"unknown model size {spec.size!r} (choose from: {', '.join(SIZES)})")
        torch.manual_seed(spec.seed)
        model, report = VideoViT(SIZES[spec.size]).eval(), None
    try:
        model.resize_input(num_frames, img_size)
    except ValueError as error:
        raise ParameterError(str(error)) from None
    return model, report


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device 'cuda' was asked for, but PyTorch sees no GPU here (use auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise ParameterError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


def analyze(clip: Clip, model: VideoViT, reducer: Reducer, *, device: str = "auto",
            labels: list[str] | None = None, model_name: str = "", timing_runs: int = 1) -> Trace:
    """Reduce, run and trace one clip.

    The forward runs once untimed (its output is the prediction), then `timing_runs` times
    timed; the median is reported. On CUDA it runs in bf16.
    """
    cfg = model.cfg
    if (clip.num_frames, clip.frames.shape[1]) != (cfg.num_frames, cfg.img_size):
        raise ParameterError(f"the clip is {clip.num_frames} frames of {clip.frames.shape[1]} px but the model "
                             f"expects {cfg.num_frames} frames of {cfg.img_size} px")
    if timing_runs < 1:
        raise ParameterError(f"timing runs must be at least 1, got {timing_runs}")
    dev = resolve_device(device)
    model = model.to(dev)
    video = normalize_video(torch.from_numpy(clip.frames)).to(dev)

    start = time.perf_counter()
    selection = reducer.select(video, cfg.grid, cfg.tubelet, cfg.patch)
    reduce_seconds = time.perf_counter() - start

    keep = torch.from_numpy(selection.keep).to(dev)[None]
    lengths = torch.from_numpy(selection.lengths).to(dev)[None] if selection.lengths is not None else None
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")

    def forward() -> tuple[torch.Tensor, float]:
        _sync(dev)
        begin = time.perf_counter()
        with torch.inference_mode(), autocast:
            out = model(video[None], keep, lengths)
        _sync(dev)
        return out, time.perf_counter() - begin

    logits, _ = forward()  # also the warm-up: first calls pay for allocation and kernel choice
    runs = [forward()[1] for _ in range(timing_runs)]

    tokens = [int(keep.shape[1])] * (cfg.depth + 1)
    patch_values = 3 * cfg.tubelet * cfg.patch * cfg.patch
    flops = vit_flops(tokens, cfg.embed_dim, cfg.mlp_ratio, patch_values, cfg.num_classes)
    dense = vit_flops([int(np.prod(cfg.grid))] * (cfg.depth + 1), cfg.embed_dim, cfg.mlp_ratio, patch_values,
                      cfg.num_classes)
    values = {"cell": selection.keep, **selection.values}
    notes = []
    if clip.padded:
        notes.append(f"the video ended early: the last {clip.padded} frames repeat the last decoded frame")
    if selection.lengths is not None and model.length_embed is None:
        notes.append("this model has no learned length embedding: run lengths are shown but the model does not use them")
    return Trace(
        grid=cfg.grid,
        cell=(cfg.tubelet, cfg.patch, cfg.patch),
        owner=np.repeat(selection.owner[None], cfg.depth + 1, axis=0),
        tokens_per_layer=tokens,
        values={name: [v] * (cfg.depth + 1) for name, v in values.items()},
        flops=flops,
        dense_flops=dense,
        seconds={"reduce": reduce_seconds, "forward": float(np.median(runs))},
        logits=logits[0].float().cpu().numpy() if cfg.num_classes else None,
        labels=labels,
        meta={"reducer": reducer.name, "params": dict(reducer.values), "model": model_name,
              "device": dev.type, "dtype": "bfloat16" if dev.type == "cuda" else "float32",
              "timing_runs": timing_runs, "source": clip.source, "notes": notes},
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
