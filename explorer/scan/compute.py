"""A window's rows: dense and every reducer (at every budget) on one decoded window, through the engine."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from explorer.accuracy import parse_spec
from explorer.analyze import ModelSpec, build_model, fit_input
from explorer.forward import reduced_forward
from explorer.models.reducers import make_reducer
from explorer.models.video_vit import VideoViT, normalize_video
from explorer.runtime import autocast, resolve_device, resolve_precision

from .windows import Window

Key = tuple[str, float | None]  # (reducer spec, budget)


class WindowRunner:
    """Holds the model on its device; run() gives a window's rows. One per process (or Ray actor)."""

    def __init__(
        self,
        model: VideoViT,
        labels: list[str] | None,
        device: str = "auto",
        precision: str = "auto",
        label_names: dict[str, str | None] | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.labels = labels
        self.label_names = label_names or {}  # a label as given -> the checkpoint's name it matched

    @classmethod
    def build(cls, spec: ModelSpec, frames: int, size: int, **kwargs: Any) -> WindowRunner:
        """A runner with its own copy of the model, for clips of frames x size^2."""
        model, report = build_model(spec)
        fit_input(model, frames, size)
        return cls(model, report.labels if report else None, **kwargs)

    def run(self, window: Window, frames: np.ndarray, keys: Sequence[Key], dense_top1: int | None) -> list[dict]:
        """The rows of `keys` for this window. `dense_top1`: the dense prediction when it was found before; the
        dense model runs when it is not given or "none" is asked for."""
        video = normalize_video(torch.from_numpy(frames)).to(self.device)
        rows = []
        with torch.inference_mode(), autocast(self.device, self.precision):
            wanted = list(keys)
            if dense_top1 is None and ("none", None) not in wanted:
                wanted.insert(0, ("none", None))
            for spec, budget in wanted:
                row = self._row(window, video, spec, budget)
                if spec == "none":
                    dense_top1 = row["top1_index"]
                if (spec, budget) in keys:
                    rows.append(row)
        for row in rows:
            row["agrees_with_dense"] = row["top1_index"] == dense_top1
        return rows

    def _row(self, window: Window, video: torch.Tensor, spec: str, budget: float | None) -> dict:
        name, settings = parse_spec(spec, budgeted=budget is not None)
        reducer = make_reducer(name, **settings, **({"budget": budget} if budget is not None else {}))
        run = reduced_forward(self.model, video, reducer)
        probabilities = torch.from_numpy(run.logits).softmax(-1)
        top = int(probabilities.argmax())
        true_label = self.label_names.get(window.label) if window.label is not None else None
        dense_tokens = int(np.prod(self.model.cfg.grid))
        fitted = {k: v for k, v in run.reducer.values.items() if k != "budget"}
        return {
            "video": window.video,
            "window": window.index,
            "label": window.label,
            "true_label": true_label,
            "start_s": window.start,
            "end_s": window.end,
            "reducer": spec,
            "params": json.dumps(fitted, sort_keys=True),
            "budget": budget,
            "knob": run.reducer.budget_knob if budget is not None else None,
            "knob_value": run.knob_value if budget is not None else None,
            "tokens_per_layer": run.tokens_per_layer,
            "kept_tokens": run.tokens_per_layer[0],
            "dense_tokens": dense_tokens,
            "kept_fraction": run.tokens_per_layer[0] / dense_tokens,
            "avg_tokens": float(np.mean(run.tokens_per_layer)),
            "gflops": run.gflops,
            "ms": run.ms,
            "top1": self.labels[top] if self.labels and top < len(self.labels) else f"class {top}",
            "top1_index": top,
            "top1_prob": float(probabilities[top]),
            "correct": (self.labels[top] == true_label) if true_label is not None and self.labels else None,
        }
