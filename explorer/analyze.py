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
from models.reducers.base import InModelReducer, InputSelection
from models.reducers.budget import fit_budget
from models.token_flow import FlowRecord, run_tokens
from models.video_vit import SIZES, VideoViT, normalize_video
from models.weights import LoadReport, load_model

from .saliency import SaliencySpec, rollout
from .trace import Trace
from .video import Clip

SALIENCY_BYTES = 2**30  # attention maps kept for rollout: beyond this, saliency is skipped with a note


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
            labels: list[str] | None = None, model_name: str = "", timing_runs: int = 1,
            saliency: SaliencySpec | None = SaliencySpec()) -> Trace:
    """Reduce, run and trace one clip.

    The forward runs once untimed, tracing every layer (and the attention, for saliency);
    its output is the prediction. Then it runs `timing_runs` times timed, tracing nothing;
    the median is reported. On CUDA it runs in bf16. A reducer with a token budget has its
    knob fitted first.
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
    asked = dict(reducer.values)
    reducer = fit_budget(reducer, video, cfg.grid, cfg.tubelet, cfg.patch, cfg.depth)

    start = time.perf_counter()
    selection = reducer.select(video, cfg.grid, cfg.tubelet, cfg.patch)
    if isinstance(reducer, InModelReducer):
        reducer.prepare(video, cfg.grid, cfg.tubelet, cfg.patch)
    reduce_seconds = time.perf_counter() - start

    notes = []
    if saliency is not None and cfg.depth * selection.keep.size ** 2 * 4 > SALIENCY_BYTES:
        notes.append(f"saliency was not computed: {selection.keep.size} tokens would need "
                     f"{cfg.depth * selection.keep.size ** 2 * 4 / 2**30:.1f} GiB of attention maps "
                     f"(limit {SALIENCY_BYTES / 2**30:.0f} GiB); use fewer frames or a smaller size")
        saliency = None
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")

    def forward(trace: bool) -> tuple[torch.Tensor, FlowRecord | None, float]:
        _sync(dev)
        begin = time.perf_counter()
        with torch.inference_mode(), autocast:
            logits, record = run_tokens(model, video[None], selection, reducer, trace=trace,
                                        fusion=saliency.fuse() if saliency else None)
        _sync(dev)
        return logits, record, time.perf_counter() - begin

    logits, record, _ = forward(trace=True)  # also the warm-up: first calls pay for allocation and kernel choice
    runs = [forward(trace=False)[2] for _ in range(timing_runs)]

    tokens = [layer.cells.size for layer in record.layers]
    patch_values = 3 * cfg.tubelet * cfg.patch * cfg.patch
    flops = vit_flops(tokens, cfg.embed_dim, cfg.mlp_ratio, patch_values, cfg.num_classes,
                      mlp_tokens=[block.mlp_tokens for block in record.blocks])
    dense = vit_flops([int(np.prod(cfg.grid))] * (cfg.depth + 1), cfg.embed_dim, cfg.mlp_ratio, patch_values,
                      cfg.num_classes)
    owner = np.stack([layer.owner.reshape(cfg.grid) for layer in record.layers])
    values = _token_values(record, owner, selection, saliency is not None)
    if clip.padded:
        notes.append(f"the video ended early: the last {clip.padded} frames repeat the last decoded frame")
    if selection.lengths is not None and model.length_embed is None:
        notes.append("this model has no learned length embedding: run lengths are shown but the model does not use them")
    meta = {"reducer": reducer.name, "params": dict(reducer.values), "model": model_name,
            "device": dev.type, "dtype": "bfloat16" if dev.type == "cuda" else "float32",
            "timing_runs": timing_runs, "source": clip.source, "notes": notes,
            "saliency": {"fusion": saliency.fusion, "discard": saliency.discard} if saliency else None}
    if asked.get("budget"):
        meta["budget"] = {"fraction": asked["budget"], "knob": reducer.budget_knob,
                          "value": reducer.values[reducer.budget_knob], "average_tokens": float(np.mean(tokens))}
    return Trace(
        grid=cfg.grid,
        cell=(cfg.tubelet, cfg.patch, cfg.patch),
        owner=owner,
        tokens_per_layer=tokens,
        values=values,
        flops=flops,
        dense_flops=dense,
        seconds={"reduce": reduce_seconds, "forward": float(np.median(runs))},
        logits=logits[0].float().cpu().numpy() if cfg.num_classes else None,
        labels=labels,
        meta=meta,
    )


def _token_values(record: FlowRecord, owner: np.ndarray, selection: InputSelection,
                  with_saliency: bool) -> dict[str, list[np.ndarray]]:
    """Per-token values of every layer: the cell, the cells stood for, the reducer's own, saliency.

    A value found in a block belongs to the layer whose tokens entered it; where no block
    reported it (e.g. the last layer), it is NaN. Saliency is given per cell, relative to a
    uniform share: 1 is average, and a token standing for k cells spreads its share over them.
    """
    layers = record.layers
    cells_per_token = [np.bincount(o[o >= 0].ravel(), minlength=l.cells.size) for o, l in zip(owner, layers)]
    values = {"cell": [layer.cells for layer in layers], "size": cells_per_token}
    for name, per_token in selection.values.items():  # a pre-model reducer's values hold at every layer
        values[name] = [per_token] * len(layers)
    for name in sorted({name for layer in layers for name in layer.values}):
        values[name] = [layer.values.get(name, np.full(layer.cells.size, np.nan)) for layer in layers]
    if with_saliency:
        n_cells = owner[0].size
        shares = {"rollout": rollout(record.blocks, layers[-1].size),
                  "attention": [b.received for b in record.blocks] + [np.full(layers[-1].cells.size, np.nan)]}
        for name, per_layer in shares.items():
            values[name] = [share * n_cells / np.maximum(cells, 1) for share, cells in zip(per_layer, cells_per_token)]
    return values


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
