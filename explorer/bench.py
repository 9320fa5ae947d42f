"""python -m explorer bench: measured numbers for batches of clips (decode, forward per reducer, redraw).

For dense and each reducer: tokens and GFLOPs per clip, clips per second (batch / median
batch time), peak memory while the timed batches ran, and the measured speedup over dense
beside the FLOP-ideal one (dense FLOPs / these FLOPs). How a batch runs:
  dense                    model(videos), one batched forward;
  pre-model (rlt, random,  packed: the kept tokens of all clips in one sequence, block-diagonal
  mask)                    attention (models/packed.py), no padding;
  tubes, mvit              batched: their tokens and networks take a batch as it is;
  tome, vtm, sta, evit     per clip: the engine runs one clip, so B runs one after another.
The engine decides (models/engine.py `batch_run`); every registered reducer is benchmarked.
Reducers' own work (RLT's comparison, VTM's motion) happens before the clock starts, as in
`analyze`. Speed targets are checked here, by printing numbers, never in timed tests.
"""

from __future__ import annotations

import ctypes
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from explorer.models import engine
from explorer.models.packed import attention_backend
from explorer.models.reducers import REDUCERS, ParameterError, make_reducer
from explorer.models.reducers.base import InputSelection, Reducer, check_number
from explorer.models.video_vit import VideoViT, normalize_video

from .analyze import ModelSpec, analyze, build_model, fit_reducer, model_flops
from .overlays import draw_clip
from .runtime import DTYPES, autocast, check_fits, memory_guard, resolve_device, resolve_precision, synchronize
from .trace import Trace
from .video import Clip, check_params, load_clip

MAX_BATCH, MAX_RUNS, MAX_THREADS = 1024, 100, 256
TARGET = "RLT's measured speedup at least 90% of its FLOP-ideal speedup (GPU, ViT-B, batch 32)"


@dataclass
class Row:
    model: str
    reducer: str
    run: str  # how the batch ran: batched, packed or per clip
    attention: str | None  # the packed attention's backend (models/packed.py), for packed rows
    tokens: float  # per clip entering the first block, mean over the batch
    average_tokens: float  # per clip over the layers, the quantity a budget fixes
    gflops: float  # per clip
    batch_ms: float  # median time of one batch
    clips_per_s: float
    peak_mb: float | None  # peak memory while the timed batches ran, over what was in use before
    speedup: float  # measured: this reducer's clips/s over dense's
    ideal: float  # dense FLOPs / these FLOPs


def bench(
    video: str | Path | None,
    models: list[str],
    reducers: list[str],
    *,
    batch: int | None = None,
    frames: int = 16,
    stride: int = 4,
    start: float = 0.0,
    size: int = 224,
    device: str = "auto",
    runs: int = 3,
    budget: float = 0.0,
    threads: int | None = None,
    precision: str = "auto",
) -> dict:
    """Benchmark batches of `batch` clips: `video` repeated, or (video None) different generated still-camera clips.

    batch defaults to 32 on a GPU and 8 on the CPU. The forward runs under autocast at `precision`
    (auto: bf16 on a GPU, fp32 on the CPU). threads: PyTorch's CPU threads while it runs (None:
    PyTorch's choice); restored afterwards. Running out of memory ends in one clear message.
    """
    check_params(frames, stride, size, start)
    check_number("budget", budget, 0.0, 1.0)
    if any(n is not None and n < 1 for n in (batch, threads)) or runs < 1:
        raise ParameterError(f"batch, runs and threads must be at least 1, got {batch}, {runs} and {threads}")
    if (batch or 0) > MAX_BATCH or runs > MAX_RUNS or (threads or 0) > MAX_THREADS:
        raise ParameterError(
            f"batch, runs and threads must be at most {MAX_BATCH}, {MAX_RUNS} and {MAX_THREADS}, "
            f"got {batch}, {runs} and {threads}"
        )
    check_fits(
        f"a batch of {batch or 32} clips of {frames} x {size} px",
        (batch or 32) * frames * size * size * 3 * (1 + 4 + 4),  # uint8 frames, the float clip, its normalized copy
        "use a smaller batch, fewer frames or a smaller size",
    )
    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        dev = resolve_device(device)
        precision = resolve_precision(precision, dev)
        with memory_guard(
            f"batches of {batch or 'the default'} clips of {frames} x {size} px",
            dev,
            "use a smaller batch, fewer frames, a smaller size or model",
        ):
            return _bench(video, models, reducers, batch, frames, stride, start, size, dev, precision, runs, budget)
    finally:
        torch.set_num_threads(before)


def _bench(
    video: str | Path | None,
    models: list[str],
    reducers: list[str],
    batch: int | None,
    frames: int,
    stride: int,
    start: float,
    size: int,
    dev: torch.device,
    precision: str,
    runs: int,
    budget: float,
) -> dict:
    batch = batch if batch is not None else (32 if dev.type == "cuda" else 8)
    clips, source_ms = _clips(video, batch, frames, stride, start, size, runs)
    order = [0] * batch if len(clips) == 1 else list(range(batch))  # batch slot -> distinct clip
    videos = [normalize_video(torch.from_numpy(clip.frames)).to(dev) for clip in clips]
    batch_videos = torch.stack([videos[i] for i in order])
    rows, redraw = [], []
    for size_name in models:
        model, _ = build_model(ModelSpec(size=size_name), frames, size)
        model = model.to(dev)
        dense = None
        for name in ["none", *[r for r in reducers if r != "none"]]:
            fits = budget and REDUCERS[name].budget_knob  # MViT's pooling is its architecture: no budget
            asked = {"budget": budget} if fits else {}
            trace = analyze(
                clips[0],
                model,
                make_reducer(name, **asked),
                device=dev.type,
                precision=precision,
                timing_runs=1,
                saliency=None,
            )
            row = _bench_row(
                size_name, name, asked, model, videos, batch_videos, order, trace, dev, precision, runs, dense
            )
            dense = dense or row
            rows.append(row)
            if name == "rlt" and not redraw:
                for run in range(runs):
                    begin = time.perf_counter()
                    draw_clip(clips[0].frames, trace, run % (trace.layers + 1), "value", "run_length")
                    redraw.append(time.perf_counter() - begin)
    generated = f"different generated clips, seeds 0-{batch - 1}"
    return {
        "video": str(video) if video is not None else "generated still-camera clips",
        "clips": "the same clip repeated" if video is not None else generated,
        "batch": batch,
        "frames": frames,
        "stride": stride,
        "start": start,
        "size": size,
        "device": dev.type,
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "precision": precision,
        "dtype": str(DTYPES[precision]).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "budget": budget,
        "runs": runs,
        "warmup": _warmup(dev),
        "memory": _PeakMemory(dev).method,
        "decode_ms": source_ms if video is not None else None,
        "generate_ms": source_ms if video is None else None,
        "redraw_ms": float(np.median(redraw) * 1e3) if redraw else None,
        "rows": [row.__dict__ for row in rows],
    }


def _clips(
    video: str | Path | None, batch: int, frames: int, stride: int, start: float, size: int, runs: int
) -> tuple[list[Clip], float]:
    """The distinct clips of a batch and the ms it took to get them (decoding: the median of `runs`)."""
    if video is None:
        begin = time.perf_counter()
        clips = [_generated_clip(seed, frames, size) for seed in range(batch)]
        return clips, (time.perf_counter() - begin) * 1e3
    times = []
    for _ in range(runs):
        begin = time.perf_counter()
        clip = load_clip(video, frames=frames, stride=stride, start=start, size=size)
        times.append(time.perf_counter() - begin)
    return [clip], float(np.median(times) * 1e3)


def _generated_clip(seed: int, frames: int, size: int) -> Clip:
    """A still camera: a fixed textured background and one square that moves in a straight line (or hardly at all).

    Both ends of its path lie inside the frame, so the square stays in view at any size and length;
    how far it goes depends on the seed, so clips of one batch keep different numbers of tokens.
    """
    rng = np.random.default_rng(seed)
    block = max(1, size // 16)
    coarse = rng.integers(40, 216, size=(-(-size // block), -(-size // block), 3))
    background = np.kron(coarse, np.ones((block, block, 1)))[:size, :size] + rng.uniform(-12, 12, (size, size, 3))
    side = max(1, size // 5)
    begin, end = rng.uniform(0, size - side, 2), rng.uniform(0, size - side, 2)
    end = begin + (end - begin) * rng.uniform(0, 1)  # some squares barely move
    colour = rng.integers(0, 256, 3)
    pixels = np.repeat(np.clip(background, 0, 255).astype(np.uint8)[None], frames, axis=0)
    for i, (y, x) in enumerate(np.linspace(begin, end, frames).round().astype(int)):
        pixels[i, y : y + side, x : x + side] = colour
    return Clip(
        frames=pixels,
        fps=float("nan"),
        times=np.full(frames, np.nan),
        source=f"generated:{seed}",
        source_size=(size, size),
        duration=float("nan"),
    )


def _bench_row(
    model_name: str,
    name: str,
    asked: dict,
    model: VideoViT,
    videos: list[torch.Tensor],
    batch_videos: torch.Tensor,
    order: list[int],
    trace: Trace,
    dev: torch.device,
    precision: str,
    runs: int,
    dense: Row | None,
) -> Row:
    """Time one reducer's batch. Token counts and FLOPs come from the trace of the first clip, except for
    pre-model reducers, whose counts differ from clip to clip: those come from each clip's selection."""
    reducer = make_reducer(name, **asked)
    tokens, average, gflops = trace.tokens_per_layer[0], float(np.mean(trace.tokens_per_layer)), trace.flops.sum() / 1e9
    prepared = [_prepare(reducer, video, model) for video in videos]
    batch = engine.batch_run(model, reducer, batch_videos, [prepared[i] for i in order])
    attention = None
    if batch.selections is not None:  # packed: each clip keeps its own count
        kept = [s.keep.size for s in batch.selections]
        tokens = average = float(np.mean(kept))
        gflops = float(np.mean([model_flops(model.cfg, [k] * (model.cfg.depth + 1)).sum() for k in kept])) / 1e9
        attention = attention_backend(dev, DTYPES[precision])
    run, forward = batch.how, batch.forward
    seconds, peak = _time_batches(dev, precision, runs, forward)
    clips_per_s = batch_videos.shape[0] / seconds
    return Row(
        model_name,
        name,
        run,
        attention,
        float(tokens),
        average,
        float(gflops),
        seconds * 1e3,
        clips_per_s,
        peak / 2**20 if peak is not None else None,
        speedup=clips_per_s / dense.clips_per_s if dense else 1.0,
        ideal=dense.gflops / float(gflops) if dense else 1.0,
    )


def _prepare(reducer: Reducer, video: torch.Tensor, model: VideoViT) -> tuple[Reducer, InputSelection]:
    """A fresh copy of the reducer fitted to this clip's budget, and its selection (the clip prepared)."""
    own, _ = fit_reducer(type(reducer)(**reducer.values), video, model)  # a copy: prepare() keeps per-clip state
    return own, engine.prepare(own, video, model)


def _warmup(dev: torch.device) -> int:
    return 3 if dev.type == "cuda" else 1  # CUDA picks kernels and fills its caches on the first runs


def _time_batches(
    dev: torch.device, precision: str, runs: int, forward: Callable[[], object]
) -> tuple[float, float | None]:
    """Median seconds of `runs` batches after warm-up, and the peak bytes in use above the start while they ran."""
    with torch.inference_mode(), autocast(dev, precision):
        for _ in range(_warmup(dev)):
            forward()
        synchronize(dev)
        times = []
        with _PeakMemory(dev) as memory:
            for _ in range(runs):
                begin = time.perf_counter()
                forward()
                synchronize(dev)
                times.append(time.perf_counter() - begin)
    return float(np.median(times)), memory.peak


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (macOS, Windows, musl)
        return None


_LIBC = _glibc()


class _PeakMemory:
    """Peak memory while the block runs, above what was in use when it began (bytes; None where unknown).

    CUDA: the caching allocator's max_memory_allocated, its peak reset first. CPU (Linux): the
    process's peak resident set (VmHWM), reset by writing 5 to /proc/self/clear_refs; where that
    is refused, the peak is the process's lifetime peak and `method` says so. Before the CPU
    measure starts, glibc's malloc_trim hands freed heap back to the system, so that memory
    malloc kept from earlier runs neither counts as in use nor hides this run's growth.
    """

    STATUS = Path("/proc/self/status")
    CLEAR = Path("/proc/self/clear_refs")

    def __init__(self, dev: torch.device):
        self.dev = dev
        self.before = 0
        self.peak: float | None = None
        self.resettable = dev.type == "cuda" or self._can_reset()
        if dev.type == "cuda":
            self.method = "CUDA max_memory_allocated (its peak reset first) minus memory_allocated before"
        elif not self.STATUS.exists():
            self.method = "unavailable (no /proc/self/status)"
        else:
            self.method = (
                "process peak RSS (VmHWM, "
                + (
                    "reset through /proc/self/clear_refs"
                    if self.resettable
                    else "not resettable here: the process's lifetime peak"
                )
                + ") minus VmRSS before"
                + (", after malloc_trim" if _LIBC is not None else "")
            )

    def __enter__(self) -> _PeakMemory:
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
            torch.cuda.reset_peak_memory_stats(self.dev)
            self.before = torch.cuda.memory_allocated(self.dev)
        elif self.STATUS.exists():
            if _LIBC is not None:
                _LIBC.malloc_trim(0)
            if self.resettable:
                self.CLEAR.write_text("5")
            self.before = self._status_kb("VmRSS") * 1024
        return self

    def __exit__(self, *exc) -> None:
        if self.dev.type == "cuda":
            self.peak = float(torch.cuda.max_memory_allocated(self.dev) - self.before)
        elif self.STATUS.exists():
            self.peak = float(max(0, self._status_kb("VmHWM") * 1024 - self.before))

    def _can_reset(self) -> bool:
        try:
            self.CLEAR.write_text("5")
            return True
        except OSError:
            return False

    def _status_kb(self, field: str) -> int:
        return int(re.search(rf"^{field}:\s+(\d+) kB", self.STATUS.read_text(), re.M).group(1))


def format_table(result: dict) -> str:
    source = (
        f"decode {result['frames']} frames: {result['decode_ms']:.0f} ms"
        if result["decode_ms"] is not None
        else f"generate {result['batch']} clips: {result['generate_ms']:.0f} ms"
    )
    lines = [
        f"{result['video']}: {result['frames']} frames"
        + (f" from {result['start']:g} s, stride {result['stride']}" if result["decode_ms"] is not None else "")
        + f", {result['size']} px; batch {result['batch']} ({result['clips']}); device {result['device']}"
        + (f" ({result['device_name']})" if result.get("device_name") else "")
        + f", {result['dtype']}, {result['threads']} threads; median of {result['runs']} batches after "
        f"{result['warmup']} warm-up" + (f"; token budget {result['budget']:g}" if result.get("budget") else ""),
        source,
    ]
    if result["redraw_ms"] is not None:
        lines.append(f"overlay redraw (a layer change): {result['redraw_ms']:.1f} ms")
    if not result["rows"]:
        return "\n".join(lines)
    lines.append(
        f"{'model':<7}{'reducer':<9}{'run':<10}{'tokens':>7}{'avg/layer':>10}{'GFLOPs':>8}{'batch ms':>10}"
        f"{'clips/s':>9}{'peak MB':>9}{'speedup':>9}{'FLOP-ideal':>11}{'of ideal':>9}"
    )
    for r in result["rows"]:
        peak = f"{r['peak_mb']:.0f}" if r["peak_mb"] is not None else "?"
        lines.append(
            f"{r['model']:<7}{r['reducer']:<9}{r['run']:<10}{r['tokens']:>7.0f}{r['average_tokens']:>10.0f}"
            f"{r['gflops']:>8.1f}{r['batch_ms']:>10.1f}{r['clips_per_s']:>9.2f}{peak:>9}{r['speedup']:>8.2f}x"
            f"{r['ideal']:>10.2f}x{r['speedup'] / r['ideal']:>9.0%}"
        )
    lines += ["tokens and GFLOPs are per clip; peak MB: " + result["memory"]]
    backends = sorted({r["attention"] for r in result["rows"] if r["attention"]})
    if backends:
        lines.append(f"packed attention: {', '.join(backends)}")
    rlt = [r for r in result["rows"] if r["reducer"] == "rlt"]
    if rlt:
        lines.append(
            f"target: {TARGET}; this run ({result['device']}, batch {result['batch']}): "
            + ", ".join(f"{r['model']} {r['speedup'] / r['ideal']:.0%}" for r in rlt)
        )
    return "\n".join(lines)


def write_json(result: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2))
