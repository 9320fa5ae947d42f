"""Resident memory over repeated saliency runs on one cached model (the app's situation).

    python benchmarks/saliency_memory.py small 30

Prints the process's resident memory (VmRSS) after loading, after runs 1, 10, 20 and the last,
and after handing the C library's freed heap back to the system (malloc_trim, so that what the
allocator keeps cached is told apart from what is still in use), and how many bytes of tensors
the model's modules hold beyond their parameters and buffers (what a run left behind on the
shared model). Uses only the public API, so the same script measures older versions too:

    PYTHONPATH=. python benchmarks/saliency_memory.py small 30
"""

from __future__ import annotations

import ctypes
import gc
import re
import sys
import time
from pathlib import Path

import torch

from explorer import ModelSpec, SaliencySpec, analyze, build_model, load_clip, make_reducer
from explorer.video import SAMPLES, sample_path


def rss_mb() -> float:
    return int(re.search(r"^VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1)) / 1024


def left_on_model(model: torch.nn.Module) -> int:
    """Bytes of tensors kept as plain attributes of the model's modules (not parameters or buffers)."""
    return sum(
        value.numel() * value.element_size()
        for module in model.modules()
        for value in vars(module).values()
        if isinstance(value, torch.Tensor)
    )


def main(size: str = "small", runs: int = 30, reducer: str = "none") -> None:
    clip = load_clip(sample_path(next(name for name in SAMPLES if "Bunny" in name)), frames=16, stride=4, size=224)
    model, _ = build_model(ModelSpec(size=size), 16, 224)
    series = [f"{rss_mb():.0f} loaded"]
    begin = time.perf_counter()
    for run in range(1, runs + 1):
        analyze(clip, model, make_reducer(reducer), device="cpu", saliency=SaliencySpec())
        if run in (1, 10, 20, runs):
            series.append(f"{rss_mb():.0f} after run {run}")
    seconds = (time.perf_counter() - begin) / runs
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    series.append(f"{rss_mb():.0f} trimmed")
    print(
        f"ViT-{size}, {reducer}, 16 x 224 with saliency, {runs} runs ({seconds:.1f} s each): resident MB "
        f"{' -> '.join(series)}; left on the model's modules: {left_on_model(model) / 2**20:.0f} MB"
    )


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else "small",
        int(sys.argv[2]) if len(sys.argv) > 2 else 30,
        sys.argv[3] if len(sys.argv) > 3 else "none",
    )
