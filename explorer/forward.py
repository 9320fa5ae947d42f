"""One clip through the model with a reducer, measured: what accuracy and scan record per clip and reducer.

analyze() does more (it traces every layer for the views); this is the lean path: fit the reducer's knob to
its budget, count the tokens per layer, run one untraced forward and time it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from explorer.models import engine
from explorer.models.reducers import Reducer
from explorer.models.video_vit import VideoViT

from .analyze import fit_reducer, model_flops
from .runtime import synchronize


@dataclass(frozen=True)
class Forward:
    """What one reduced forward gave and cost."""

    logits: np.ndarray  # float32 (classes,)
    tokens_per_layer: list[int]  # the input of every block, then the output of the last
    gflops: float
    ms: float  # the forward alone, measured (the knob's fitting and the token selection are not in it)
    reducer: Reducer  # with its knob fitted to the budget, if it had one

    @property
    def knob_value(self) -> float | None:
        knob = self.reducer.budget_knob
        return float(self.reducer.values[knob]) if knob else None


def reduced_forward(model: VideoViT, video: torch.Tensor, reducer: Reducer) -> Forward:
    """Run one normalized clip (3, T, H, W), already on the model's device and under the wanted autocast."""
    cfg = model.cfg
    reducer, _ = fit_reducer(reducer, video, model)
    counts = [int(n) for n in reducer.layer_tokens(video, cfg.grid, cfg.tubelet, cfg.patch, cfg.depth)]
    selection = engine.prepare(reducer, video, model)
    synchronize(video.device)
    begin = time.perf_counter()
    logits, _ = engine.run_clip(model, video[None], selection, reducer)
    logits = logits[0].float().cpu().numpy()  # the copy to the host waits for the device
    ms = (time.perf_counter() - begin) * 1e3
    gflops = model_flops(cfg, counts, mlp_tokens=reducer.mlp_tokens(counts)).sum() / 1e9
    return Forward(logits, counts, float(gflops), ms, reducer)
