"""python -m explorer bench: measured numbers for one clip (decode, forward per reducer, redraw).

Speed targets are checked here, by printing numbers, never in timed tests.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.reducers import REDUCERS, make_reducer

from .analyze import ModelSpec, analyze, build_model, resolve_device
from .overlays import draw_clip
from .video import load_clip


@dataclass
class Row:
    model: str
    reducer: str
    tokens: int  # entering the first block
    average_tokens: float  # over the layers, the quantity a budget fixes
    gflops: float
    forward_ms: float
    speedup: float  # measured, dense time / this time
    ideal: float  # dense FLOPs / these FLOPs


def bench(video: str | Path, models: list[str], reducers: list[str], *, frames: int = 16, stride: int = 4,
          start: float = 0.0, size: int = 224, device: str = "auto", runs: int = 3, budget: float = 0.0) -> dict:
    decode = []
    for _ in range(runs):
        begin = time.perf_counter()
        clip = load_clip(video, frames=frames, stride=stride, start=start, size=size)
        decode.append(time.perf_counter() - begin)
    rows, redraw, device_used = [], [], resolve_device(device).type
    for size_name in models:
        model, _ = build_model(ModelSpec(size=size_name), clip.num_frames, size)
        dense = None
        for name in ["none", *[r for r in reducers if r != "none"]]:
            fits = budget and REDUCERS[name].budget_knob  # MViT's pooling is its architecture: no budget
            reducer = make_reducer(name, **({"budget": budget} if fits else {}))
            trace = analyze(clip, model, reducer, device=device, timing_runs=runs, saliency=None)
            dense = dense or trace
            seconds = trace.seconds["forward"]
            rows.append(Row(size_name, name, trace.tokens_per_layer[0], float(np.mean(trace.tokens_per_layer)),
                            trace.flops.sum() / 1e9, seconds * 1e3, dense.seconds["forward"] / seconds,
                            dense.flops.sum() / trace.flops.sum()))
            if name == "rlt" and not redraw:
                for run in range(runs):
                    begin = time.perf_counter()
                    draw_clip(clip.frames, trace, run % (trace.layers + 1), "value", "run_length")
                    redraw.append(time.perf_counter() - begin)
    return {"video": str(video), "frames": frames, "stride": stride, "start": start, "size": size, "device": device_used,
            "budget": budget,
            "runs": runs, "decode_ms": float(np.median(decode) * 1e3),
            "redraw_ms": float(np.median(redraw) * 1e3) if redraw else None,
            "rows": [row.__dict__ for row in rows]}


def format_table(result: dict) -> str:
    lines = [f"{result['video']}: {result['frames']} frames from {result['start']:g} s, stride {result['stride']}, "
             f"{result['size']} px, "
             f"device {result['device']}, median of {result['runs']} runs"
             + (f", token budget {result['budget']:g}" if result.get("budget") else ""),
             f"decode {result['frames']} frames: {result['decode_ms']:.0f} ms"]
    if result["redraw_ms"] is not None:
        lines.append(f"overlay redraw (a layer change): {result['redraw_ms']:.1f} ms")
    if not result["rows"]:
        return "\n".join(lines)
    lines.append(f"{'model':<7}{'reducer':<9}{'tokens':>7}{'avg/layer':>10}{'GFLOPs':>9}{'forward ms':>12}"
                 f"{'speedup':>9}{'FLOP-ideal':>12}")
    for r in result["rows"]:
        lines.append(f"{r['model']:<7}{r['reducer']:<9}{r['tokens']:>7}{r['average_tokens']:>10.0f}{r['gflops']:>9.1f}"
                     f"{r['forward_ms']:>12.1f}{r['speedup']:>8.2f}x{r['ideal']:>11.2f}x")
    return "\n".join(lines)


def write_json(result: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2))
