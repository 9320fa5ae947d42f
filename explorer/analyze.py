"""analyze(): run a clip through a video ViT with a token reducer and fill the trace.

One function serves the app, the CLI, the benchmark and the tests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from explorer.models import engine
from explorer.models.engine import FlowRecord
from explorer.models.flops import embed_flops, vit_flops
from explorer.models.reducers import ParameterError, Reducer
from explorer.models.reducers.base import InputSelection, NetworkReducer, check_number
from explorer.models.reducers.budget import fit_budget
from explorer.models.video_vit import SIZES, VideoViT, VideoViTConfig, normalize_video
from explorer.models.weights import LoadReport, load_model

from .runtime import DTYPES, autocast, copy_to, memory_guard, resolve_device, resolve_precision, synchronize
from .saliency import SaliencySpec, rollout
from .trace import Trace, ValueInfo, cells_per_token
from .values import VALUES
from .video import PATCH, Clip, check_params

SALIENCY_BYTES = 2**30  # attention maps kept for rollout: beyond this, saliency is skipped with a note
MAX_TIMING_RUNS = 100
MAX_PAIRS = engine.MAX_TOKENS**2  # (query, key) pairs of one attention: the blocks' token limit, squared
CPU_FLOPS = 100e9  # a CPU's rough rate, FLOPs a second: for the order of an estimate's time, never a measurement
SCORES_BYTES = 4 * 2**30  # one block's attention scores, where a reducer needs them: beyond this, refused
DEMO = "demo"  # the model size that names the shipped, trained demo model
DEMO_WEIGHTS = Path(__file__).resolve().parent / "assets" / "demo_model.safetensors"


@dataclass(frozen=True)
class ModelSpec:
    """Which network: the trained demo model, a named size with random weights, or a checkpoint file/folder."""

    size: str = DEMO
    weights: str | None = None
    seed: int = 0

    def describe(self) -> str:
        if self.weights:
            return os.path.basename(os.path.normpath(self.weights))
        return "demo model (trained on generated motion clips)" if self.size == DEMO else f"ViT-{self.size} (untrained)"


def build_model(
    spec: ModelSpec, num_frames: int | None = None, img_size: int | None = None
) -> tuple[VideoViT, LoadReport | None]:
    """The network, for clips of num_frames x img_size^2 (None: the input it was built or trained for).

    Random weights are seeded, so reproducible.
    """
    check_number("the model's seed", spec.seed, 0, 2**63 - 1, whole=True)
    if num_frames is not None or img_size is not None:
        check_params(num_frames or 1, 1, img_size or PATCH)
    if spec.size == DEMO and not spec.weights and not DEMO_WEIGHTS.exists():
        raise ParameterError(f"the demo model is missing ({DEMO_WEIGHTS}): `python -m explorer train` makes it")
    if spec.weights or spec.size == DEMO:
        model, report = load_model(spec.weights or DEMO_WEIGHTS)
    else:
        if spec.size not in SIZES:
            raise ParameterError(f"unknown model size {spec.size!r} (choose from: {DEMO}, {', '.join(SIZES)})")
        with torch.random.fork_rng(devices=[]):  # seeded weights, leaving every generator as it was
            torch.random.default_generator.manual_seed(spec.seed)
            model, report = VideoViT(SIZES[spec.size]).eval(), None
    fit_input(model, num_frames or model.cfg.num_frames, img_size or model.cfg.img_size)
    return model, report


def fit_input(model: VideoViT, num_frames: int, img_size: int) -> None:
    """Resize the model's position table for clips of num_frames x img_size^2, or say why it cannot be."""
    try:
        model.resize_input(num_frames, img_size)
    except ValueError as error:
        raise ParameterError(str(error)) from None


def analyze(
    clip: Clip,
    model: VideoViT,
    reducer: Reducer,
    *,
    device: str = "auto",
    precision: str = "auto",
    labels: list[str] | None = None,
    model_name: str = "",
    timing_runs: int = 1,
    saliency: SaliencySpec | None = SaliencySpec(),
    window: int | None = None,
) -> Trace:
    """Reduce, run and trace one clip.

    window: attention within windows of that many consecutive frames (a multiple of the tubelet), as
    VTM's blocks attend, merging within them too; None (the default) attends over the whole clip.

    The forward runs once untimed, tracing every layer (and the attention, for saliency);
    its output is the prediction. Then it runs `timing_runs` times timed, tracing nothing;
    the median is reported. It runs under autocast at `precision` (explorer/runtime.py: auto
    is bf16 on a GPU, fp32 on the CPU). A reducer with a token budget has its knob fitted
    first. Everything the run records is returned in the trace and nothing is left on the
    model, so several threads may analyze with one model at once.
    """
    cfg = model.cfg
    if (clip.num_frames, clip.frames.shape[1]) != (cfg.num_frames, cfg.img_size):
        raise ParameterError(
            f"the clip is {clip.num_frames} frames of {clip.frames.shape[1]} px but the model "
            f"expects {cfg.num_frames} frames of {cfg.img_size} px"
        )
    check_number("timing runs", timing_runs, 1, MAX_TIMING_RUNS, whole=True)
    check_work(reducer, model)
    dev = resolve_device(device)
    run = dict(
        window_slots=window_slots(window, cfg.tubelet, cfg.num_frames),
        labels=labels,
        model_name=model_name,
        timing_runs=timing_runs,
        saliency=saliency,
        precision=resolve_precision(precision, dev),
    )
    return _analyze_with_fallback(dev, clip, model, reducer, run)


@dataclass(frozen=True)
class Work:
    """One clip's forward by shape arithmetic alone, nothing decoded or allocated: what `check_work` bounds."""

    source: str  # what makes the tokens: the reducer (TubeViT: its tubes)
    clip: tuple[int, int, int]  # frames, px, px
    tokens: int  # entering the first block, the most the reducer may ask
    pairs: int  # (query, key) pairs of its widest attention
    heads: int
    flops: float  # one forward, roughly: every block at the first block's tokens

    @property
    def score_gib(self) -> float:
        """GiB of one block's float32 attention scores, where they are held at once."""
        return 4 * self.heads * self.pairs / 2**30

    @property
    def time_class(self) -> str:
        """The order of one forward's time on a CPU, from the FLOPs at about CPU_FLOPS a second."""
        seconds = self.flops / CPU_FLOPS
        classes = ((1, "under a second"), (60, "seconds"), (3600, "minutes"))
        return next((name for limit, name in classes if seconds < limit), "hours") + " on a CPU"

    def describe(self) -> str:
        """Its attention, memory and time, in words."""
        return (
            f"{self.pairs:,} attention pairs, {self.score_gib:,.1f} GiB of scores a block at fp32; about "
            f"{self.flops / 1e9:,.0f} GFLOPs, {self.time_class}"
        )


def estimate_work(reducer: Reducer, model: VideoViT) -> Work:
    """What one forward of this reducer on this model's input would take, before any of it runs."""
    cfg = model.cfg
    clip = (cfg.num_frames, cfg.img_size, cfg.img_size)
    tokens, pairs = reducer.shape_cost(clip, cfg.grid)
    if isinstance(reducer, NetworkReducer):
        flops = reducer.flops(clip)
    else:
        flops = float(model_flops(cfg, [tokens] * (cfg.depth + 1)).sum())
    return Work(reducer.token_source(), clip, tokens, pairs, cfg.num_heads, flops)


def check_work(reducer: Reducer, model: VideoViT) -> Work:
    """The work estimate; ParameterError, with its numbers, when it passes the tokens the blocks take, the attention
    pairs one block may compare, or the scores a reducer makes a block hold."""
    work = estimate_work(reducer, model)
    clip = " x ".join(map(str, work.clip))
    advice = "use fewer frames, a smaller size or larger strides"
    if not reducer.replaces_network and work.tokens > engine.MAX_TOKENS:
        raise ParameterError(
            f"{work.source} would make {work.tokens:,} tokens for a {clip} clip; at most {engine.MAX_TOKENS:,} fit "
            f"({work.describe()}): {advice}"
        )
    if work.pairs > MAX_PAIRS:
        raise ParameterError(
            f"{work.source} would compare {work.pairs:,} (query, key) pairs in one attention for a {clip} clip; at "
            f"most {MAX_PAIRS:,} fit ({work.describe()}): {advice}"
        )
    _check_scores(reducer, work.tokens, work.heads)
    return work


def _check_scores(reducer: Reducer, tokens: int, heads: int) -> None:
    """Refuse, naming the numbers, a run whose reducer makes blocks materialize their (heads, N, N) attention
    scores (attention weights read, or proportional attention's bias) when one block's would not fit."""
    needed = engine.score_bytes(reducer, heads, tokens)
    if needed > SCORES_BYTES:
        raise ParameterError(
            f"{reducer.name} needs each block's attention scores: {tokens} tokens x {heads} heads would take "
            f"{needed / 2**30:.1f} GiB at once (limit {SCORES_BYTES / 2**30:.0f} GiB); use fewer frames, a smaller "
            "size or another reducer"
        )


def window_slots(window: int | None, tubelet: int, num_frames: int) -> int | None:
    """Time slots per attention window for a window of `window` frames; None for global attention."""
    if window is None:
        return None
    if isinstance(window, bool) or not isinstance(window, int) or window < tubelet or window % tubelet:
        raise ParameterError(
            f"the attention window must be a whole number of tubelets ({tubelet} frames), got {window}"
        )
    return min(window, num_frames) // tubelet


def fit_reducer(reducer: Reducer, video: torch.Tensor, model: VideoViT) -> tuple[Reducer, list[str]]:
    """The reducer with its knob fitted to its token budget on this clip and given what was trained for it with
    the model (VTM's saliency); notes saying what it took."""
    cfg = model.cfg
    reducer = fit_budget(reducer, video, cfg.grid, cfg.tubelet, cfg.patch, cfg.depth)
    return reducer, reducer.attach(model)


def _analyze_with_fallback(dev: torch.device, clip: Clip, model: VideoViT, reducer: Reducer, run: dict) -> Trace:
    """Run on the device; when a GPU runs out of memory, the same run on a CPU copy of the model (the shared model
    stays where it is), said in the trace."""
    what = f"{clip.num_frames} frames of {model.cfg.img_size} px with {reducer.name}"
    advice = "use fewer frames, a smaller size or model, or turn saliency off"
    try:
        with memory_guard(what, dev, advice):
            return _analyze_on(dev, clip, model, reducer, **run)
    except ParameterError as error:
        if dev.type != "cuda" or not str(error).startswith("out of memory"):
            raise
    cpu = torch.device("cpu")
    with memory_guard(what, cpu, advice):
        trace = _analyze_on(cpu, clip, copy_to(model, cpu), reducer, **{**run, "precision": "fp32"})
    trace.meta["notes"].append(
        "the GPU ran out of memory, so this ran on the CPU instead (slower; times are CPU times)"
    )
    return trace


def _analyze_on(
    dev: torch.device,
    clip: Clip,
    model: VideoViT,
    reducer: Reducer,
    *,
    labels: list[str] | None,
    model_name: str,
    timing_runs: int,
    saliency: SaliencySpec | None,
    precision: str,
    window_slots: int | None = None,
) -> Trace:
    cfg = model.cfg
    if next(model.parameters()).device.type != dev.type:  # a copy there: the model may be shared, and others may run it
        model = copy_to(model, dev)
    video = normalize_video(torch.from_numpy(clip.frames)).to(dev)
    network = engine.network_for(reducer, cfg.num_frames, cfg.img_size, cfg.num_classes)
    if network is not None:
        return _network_trace(
            clip,
            model,
            reducer,
            network.to(dev).eval(),
            video,
            dev,
            labels=labels,
            model_name=model_name,
            timing_runs=timing_runs,
            precision=precision,
            windowed=window_slots is not None,
        )
    asked = dict(reducer.values)
    reducer, notes = fit_reducer(reducer, video, model)

    start = time.perf_counter()
    selection = engine.prepare(reducer, video, model)
    reduce_seconds = time.perf_counter() - start

    tokens_in = selection.keep.size
    needed = engine.saliency_bytes(cfg.depth, cfg.num_heads, tokens_in)
    if saliency is not None and needed > SALIENCY_BYTES:
        notes.append(
            f"saliency was not computed: {tokens_in} tokens would need {needed / 2**30:.1f} GiB "
            f"of attention maps (limit {SALIENCY_BYTES / 2**30:.0f} GiB); use fewer frames or a smaller size"
        )
        saliency = None
    fusion = saliency.fuse() if saliency else None
    (logits, record), timed = _run_and_time(
        dev,
        precision,
        timing_runs,
        lambda trace: engine.run_clip(
            model, video[None], selection, reducer, trace=trace, fusion=fusion, window_slots=window_slots
        ),
    )

    tokens = [layer.cells.size for layer in record.layers]
    flops = model_flops(
        cfg,
        tokens,
        mlp_tokens=[block.mlp_tokens for block in record.blocks],
        attention_pairs=[block.attention_pairs for block in record.blocks],
    )
    if record.boxes is not None:  # a tokenizer's kernels: each token reads 3 x the volume of its box
        volume = int(np.prod(record.boxes[:, 1::2] - record.boxes[:, 0::2], axis=1).sum())
        flops[0] = embed_flops(1, cfg.embed_dim, 3 * volume) + 2.0 * cfg.embed_dim * cfg.num_classes
    owner = np.stack([layer.owner.reshape(cfg.grid) for layer in record.layers])
    values = _token_values(record, owner, selection, saliency is not None)
    if selection.lengths is not None and model.length_embed is None:
        notes.append(
            "this model has no learned length embedding: run lengths are shown but the model does not use them"
        )
    meta = _meta(clip, reducer, dev, precision, model_name, timing_runs, notes, values)
    meta["saliency"] = {"fusion": saliency.fusion, "discard": saliency.discard} if saliency else None
    meta["window"] = window_slots * cfg.tubelet if window_slots else None
    if asked.get("budget"):
        meta["budget"] = {
            "fraction": asked["budget"],
            "knob": reducer.budget_knob,
            "value": reducer.values[reducer.budget_knob],
            "average_tokens": float(np.mean(tokens)),
        }
    return Trace(
        grid=cfg.grid,
        cell=(cfg.tubelet, cfg.patch, cfg.patch),
        owner=owner,
        tokens_per_layer=tokens,
        values=values,
        flops=flops,
        dense_flops=_dense_flops(cfg),
        seconds={"reduce": reduce_seconds, **timed},
        logits=logits[0].float().cpu().numpy() if cfg.num_classes else None,
        labels=labels,
        meta=meta,
        boxes=[record.boxes] * len(tokens) if record.boxes is not None else None,
    )


def _run_and_time(
    dev: torch.device, precision: str, timing_runs: int, forward: Callable[[bool], tuple]
) -> tuple[tuple, dict[str, float]]:
    """Run once tracing (its output is the result, and the warm-up), then time untraced runs: their median
    ("forward"), fastest and slowest, so that a view can say how far one number can be trusted."""
    with torch.inference_mode(), autocast(dev, precision):
        result = forward(True)
        runs = []
        for _ in range(timing_runs):
            synchronize(dev)
            begin = time.perf_counter()
            forward(False)
            synchronize(dev)
            runs.append(time.perf_counter() - begin)
    return result, {"forward": float(np.median(runs)), "forward_min": min(runs), "forward_max": max(runs)}


def _meta(
    clip: Clip,
    reducer: Reducer,
    dev: torch.device,
    precision: str,
    model_name: str,
    timing_runs: int,
    notes: list[str],
    values: dict[str, list[np.ndarray]],
) -> dict:
    if clip.padded:
        notes = notes + [f"the video ended early: the last {clip.padded} frames repeat the last decoded frame"]
    return {
        "reducer": reducer.name,
        "params": dict(reducer.values),
        "model": model_name,
        "device": dev.type,
        "precision": precision,
        "dtype": str(DTYPES[precision]).removeprefix("torch."),
        "timing_runs": timing_runs,
        "source": clip.source,
        "notes": notes,
        "values": _value_infos(reducer, values),
    }


def _value_infos(reducer: Reducer, values: dict[str, list[np.ndarray]]) -> dict[str, dict[str, str]]:
    """What each per-token value of the trace means, from the reducer's declarations and the generic ones."""
    declared: dict[str, ValueInfo] = {**VALUES, **type(reducer).token_values}
    return {name: asdict(declared[name]) for name in values if name in declared}


def _network_trace(
    clip: Clip,
    model: VideoViT,
    reducer: Reducer,
    network: torch.nn.Module,
    video: torch.Tensor,
    dev: torch.device,
    *,
    labels: list[str] | None,
    model_name: str,
    timing_runs: int,
    precision: str,
    windowed: bool = False,
) -> Trace:
    """A network of its own (MViT): its token grids tile the clip, so owner maps cells to pooled tokens."""
    cfg = model.cfg
    (logits, record), timed = _run_and_time(
        dev, precision, timing_runs, lambda trace: engine.run_network(reducer, network, video[None], trace)
    )
    base = record.grids[0]
    owner, boxes, homes = zip(*(_tiling(base, grid, record.cell) for grid in record.grids))
    owner = np.stack(owner)
    sizes = [cells_per_token(o, len(h)) for o, h in zip(owner, homes)]
    values = {"cell": list(homes), "size": sizes}
    meta = _meta(
        clip,
        reducer,
        dev,
        precision,
        model_name,
        timing_runs,
        [f"{reducer.title} replaces the chosen ViT; 'dense' is still the ViT, for comparison"]
        + [f"{reducer.title}'s attention is its own (pooled, global): the attention window does not apply"] * windowed,
        values,
    )
    meta |= {
        "own_network": True,  # not the ViT that dense ran: no deltas against dense
        "saliency": None,
        "layer_info": [
            {"q_grid": list(grid), "kv_grid": list(kv) if kv else None, **info}
            for grid, kv, info in zip(record.grids, [None, *record.kv_grids], record.info or [{}] * len(record.grids))
        ],
    }
    return Trace(
        grid=base,
        cell=record.cell,
        owner=owner,
        tokens_per_layer=[len(h) for h in homes],
        values=values,
        flops=record.flops,
        dense_flops=_dense_flops(cfg),
        seconds={"reduce": 0.0, **timed},
        logits=logits[0].float().cpu().numpy(),
        labels=labels,
        meta=meta,
        boxes=list(boxes),
    )


def model_flops(
    cfg: VideoViTConfig,
    tokens_per_layer: list[int],
    mlp_tokens: list[int] | None = None,
    attention_pairs: list[int] | None = None,
) -> np.ndarray:
    """FLOPs per layer of this ViT when its layers hold these many tokens (MLPs: mlp_tokens, attention:
    attention_pairs (query, key) pairs, if given)."""
    return vit_flops(
        tokens_per_layer,
        cfg.embed_dim,
        cfg.mlp_ratio,
        3 * cfg.tubelet * cfg.patch * cfg.patch,
        cfg.num_classes,
        mlp_tokens=mlp_tokens,
        attention_pairs=attention_pairs,
    )


def _dense_flops(cfg: VideoViTConfig) -> np.ndarray:
    """What the chosen ViT costs with every tubelet: the reference each trace is compared with."""
    return model_flops(cfg, [int(np.prod(cfg.grid))] * (cfg.depth + 1))


def _tiling(
    base: tuple[int, int, int], grid: tuple[int, int, int], cell: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a coarser grid tiling the base grid: each base cell's token, each token's box and home cell."""
    axes = [np.arange(b) * g // b for b, g in zip(base, grid)]  # base index -> coarse index, per axis
    owner = (axes[0][:, None, None] * grid[1] + axes[1][None, :, None]) * grid[2] + axes[2][None, None, :]
    first = [-(-np.arange(g + 1) * b // g) for b, g in zip(base, grid)]  # first base index of each coarse index
    t, h, w = np.meshgrid(*(np.arange(g) for g in grid), indexing="ij")
    boxes = np.stack(
        [
            first[0][t] * cell[0],
            first[0][t + 1] * cell[0],
            first[1][h] * cell[1],
            first[1][h + 1] * cell[1],
            first[2][w] * cell[2],
            first[2][w + 1] * cell[2],
        ],
        -1,
    ).reshape(-1, 6)
    homes = ((first[0][t] * base[1] + first[1][h]) * base[2] + first[2][w]).reshape(-1)
    return owner.astype(np.int32), boxes.astype(np.int64), homes.astype(np.int64)


def _token_values(
    record: FlowRecord, owner: np.ndarray, selection: InputSelection, with_saliency: bool
) -> dict[str, list[np.ndarray]]:
    """Per-token values of every layer: the cell, the cells stood for, the reducer's own, saliency.

    A value found in a block belongs to the layer whose tokens entered it; where no block
    reported it (e.g. the last layer), it is NaN. Saliency is given per cell, relative to a
    uniform share: 1 is average, and a token standing for k cells spreads its share over them.
    """
    layers = record.layers
    sizes = [cells_per_token(o, layer.cells.size) for o, layer in zip(owner, layers)]
    values = {"cell": [layer.cells for layer in layers], "size": sizes}
    for name, per_token in selection.values.items():  # a pre-model reducer's values hold at every layer
        values[name] = [per_token] * len(layers)
    for name in sorted({name for layer in layers for name in layer.values}):
        values[name] = [layer.values.get(name, np.full(layer.cells.size, np.nan)) for layer in layers]
    if with_saliency:
        n_cells = owner[0].size
        shares = {
            "rollout": rollout(record.blocks, record.pooling),
            "attention": [b.received for b in record.blocks] + [np.full(layers[-1].cells.size, np.nan)],
        }
        for name, per_layer in shares.items():
            values[name] = [share * n_cells / np.maximum(cells, 1) for share, cells in zip(per_layer, sizes)]
    return values
