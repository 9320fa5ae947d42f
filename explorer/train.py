"""Train the demo model: a small video ViT that tells which way a shape moves (explorer/synthetic.py).

    python -m explorer train --out assets/demo_model.safetensors

Two phases, both seeded:
1. the ViT, dense, on a pool of clips of the broad training generator (`synthetic.training_clip`: many
   textures, shapes, speeds and lights, some through H.264; or, with generator="first", the first generator's
   `synthetic.motion_clip`: one shape on a plain texture), each drawn under a random one of the task's 16
   symmetries (mirrors, a swap of x and y, time reversal; `synthetic.symmetric`), with AdamW,
   warmup then cosine decay. Three choices make it learn in minutes on a CPU instead of hours;
   none changes the network:
   - half of the tubelet filters start as temporal differences (`difference_init`), so motion
     stands out of the still background from the first step;
   - besides the clip's label, every token is supervised with the clip's own head: the clip's
     label where the moving shape covers its cell, "still" elsewhere (`cell_targets`, deep supervision;
     flicker and codec noise change pixels but are "still");
   - denormal floats are flushed to zero: late in training they made CPU steps 2-3x slower.
2. VTM's learnable saliency u, with the ViT frozen, through VTM's auxiliary attention path:
   every block adds S = tanh(K u) to its attention logits, so the loss reaches u. At
   inference that path is dropped and S only chooses VTM's merge targets.

The weights, the labels, u and a record of the run (settings, time, held-out accuracy) go into
one safetensors file that `models.weights.load_model` reads. The record's accuracies: the training
generator's validation split (the only numbers tuned on) and the first generator's held-out seeds
(`synthetic.motion_clip`, what `python -m explorer accuracy` measures).

The shipped model is a chain of runs, each going on from the one before (--init): first the first generator
alone at the defaults, which learns motion in minutes, then the broad generator at a lower rate on fresh pools
(`make demo-model` runs the chain; the file's record nests each run's record in the next). From scratch on the
broad generator, a run at the defaults was still at chance after 190 steps and was stopped for time: not a
measured recipe.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import init_weights_vit_timm

from explorer.models.engine import forward_with_key_bias
from explorer.models.reducers import ParameterError
from explorer.models.reducers.vtm import VTMSaliency
from explorer.models.video_vit import VideoViT, VideoViTConfig, normalize_video
from explorer.models.weights import save_weights

from .runtime import autocast, memory_guard, resolve_precision
from .synthetic import (
    FRAMES,
    HELD_OUT_SEED,
    LABELS,
    SIZE,
    SYMMETRIES,
    first_batch,
    held_out_seeds,
    motion_batch,
    symmetric,
    training_batch,
    validation_seeds,
)

DEMO_CONFIG = VideoViTConfig(
    embed_dim=96, depth=4, num_heads=2, num_classes=len(LABELS), num_frames=FRAMES, img_size=SIZE
)
GENERATORS = {"broad": "explorer.synthetic.training_clip", "first": "explorer.synthetic.motion_clip"}
SEEDS_PER_RUN = 10**7  # training run `seed` draws its pool's seeds from [seed * 10**7, (seed + 1) * 10**7)
DIFFERENCE_GAIN = 8.0


@dataclass
class TrainSettings:
    steps: int = 1200
    batch: int = 32
    lr: float = 4e-3
    weight_decay: float = 0.05
    warmup: float = 0.1  # share of the steps
    difference_filters: float = 0.5  # share of tubelet filters that start as temporal differences
    token_loss: float = 1.0  # weight of the per-token loss (cell_targets): 0 trains on the clip label alone
    saliency_steps: int = 40
    saliency_lr: float = 0.05
    eval_clips: int = 500
    validation_clips: int = 300  # of the training generator, seeds no pool draws (synthetic.validation_seeds)
    train_clips: int = 2000  # the pool's size (1.2 GB of uint8 frames at the demo size)
    seed: int = 0
    threads: int | None = None  # torch CPU threads (None: PyTorch's default)
    init: str | None = None  # start from these weights (the demo's config) instead of from scratch
    generator: str = "broad"  # the pool's clips: "broad" (synthetic.training_clip) or "first" (motion_clip)
    precision: str = "fp32"  # autocast precision of the forward (explorer/runtime.py); the shipped model: fp32


@dataclass
class TrainResult:
    settings: TrainSettings
    losses: list[float] = field(default_factory=list)  # per step of phase 1
    saliency_losses: list[float] = field(default_factory=list)
    accuracy: float = 0.0  # held-out (the first generator, synthetic.motion_clip), dense
    validation_accuracy: float = 0.0  # the training generator's validation seeds, dense
    seconds: float = 0.0
    device: str = "cpu"
    init_record: dict | None = None  # the training record of the weights it started from (settings.init)

    def record(self) -> dict:
        """What is saved beside the weights: enough to tell how they were made."""
        return {
            "settings": asdict(self.settings),
            "held_out_accuracy": self.accuracy,
            "held_out_clips": self.settings.eval_clips,
            "validation_accuracy": self.validation_accuracy,
            "training_generator": GENERATORS[self.settings.generator],
            "train_seconds": round(self.seconds, 1),
            "device": self.device,
            "first_loss": self.losses[0] if self.losses else None,
            "last_loss": sum(self.losses[-20:]) / max(len(self.losses[-20:]), 1),
        } | ({"init_training": self.init_record} if self.init_record is not None else {})


def pool_seeds(settings: TrainSettings) -> list[int]:
    """The seeds of the training pool's clips, disjoint from every held-out seed."""
    base = settings.seed * SEEDS_PER_RUN
    if settings.seed < 0 or settings.train_clips > SEEDS_PER_RUN or base + settings.train_clips > HELD_OUT_SEED:
        raise ParameterError(
            f"--seed must be in [0, {HELD_OUT_SEED // SEEDS_PER_RUN}) with a pool of at most "
            f"{SEEDS_PER_RUN} clips: the pool would otherwise reach the held-out clips"
        )
    return list(range(base, base + settings.train_clips))


def cell_targets(cells: torch.Tensor, labels: torch.Tensor, tubelet: int) -> torch.Tensor:
    """(B, N) per-token labels from (B, T, h, w) bool motion cells (where the moving shape is in each frame):
    the clip's label where the shape covers the token's cell in its tubelet's frames or the next one, "still"
    (0) elsewhere. Light changes and codec noise are no motion: they never make a token move."""
    B, T, h, w = cells.shape
    padded = torch.cat([cells, torch.zeros_like(cells[:, :1])], dim=1)
    moving = padded[:, :T].reshape(B, T // tubelet, tubelet, h, w).any(dim=2)
    moving |= padded[:, tubelet::tubelet][:, : T // tubelet]  # the first frame of the next tubelet
    return torch.where(moving.reshape(B, -1), labels[:, None], 0)


def batches(
    pool: tuple[torch.Tensor, ...],
    settings: TrainSettings,
    stream: int,
    count: int,
    device: torch.device,
    cfg: VideoViTConfig,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """`count` batches of (video, labels, token labels): clips of the pool, each under a random symmetry, drawn
    from a generator seeded by the run's seed and `stream`, each batch prepared in a thread while the previous
    one trains."""
    clips, labels, cells = pool
    generator = torch.Generator().manual_seed(settings.seed * SEEDS_PER_RUN + stream)

    def draw() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index = torch.randint(len(labels), (settings.batch,), generator=generator)
        which = torch.randint(SYMMETRIES, (settings.batch,), generator=generator)
        batch, batch_labels = symmetric(clips[index], labels[index], which)
        batch_cells = symmetric(cells[index, ..., None], labels[index], which)[0][..., 0]
        return normalize_video(batch), batch_labels, cell_targets(batch_cells, batch_labels, cfg.tubelet)

    with ThreadPoolExecutor(max_workers=1) as worker:  # one worker: draws happen in order, so runs repeat
        pending = worker.submit(draw) if count else None
        for step in range(count):
            batch = pending.result()
            if step + 1 < count:
                pending = worker.submit(draw)
            yield tuple(t.to(device) for t in batch)


def difference_init(proj: torch.nn.Conv3d, share: float, gain: float = DIFFERENCE_GAIN) -> None:
    """Start a share of the tubelet filters as temporal differences (second frame's weights = minus the first's).

    Such a filter gives zero on anything still. Motion changes a few percent of a tubelet's pixels, so at the
    usual init scale its response is tiny next to the static content, and SGD takes thousands of steps to
    find it; `gain` makes these filters respond about as strongly to motion as the others do to content.
    """
    count = round(share * proj.out_channels)
    with torch.no_grad():
        proj.weight[:count, :, :1] *= gain
        proj.weight[:count, :, 1:] = -proj.weight[:count, :, :1]


def token_loss(token_logits: torch.Tensor, per_token: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per token, moving and still tokens weighted equally (few tokens move)."""
    losses = F.cross_entropy(token_logits.flatten(0, 1), per_token.flatten(), reduction="none")
    moving = per_token.flatten() > 0
    n_moving = moving.sum()
    n_still = moving.numel() - n_moving
    halves = torch.where(moving, 0.5 / n_moving.clamp_min(1), 0.5 / n_still.clamp_min(1))  # read nothing back
    return torch.where((n_moving > 0) & (n_still > 0), (losses * halves).sum(), losses.mean())


def learning_rate(step: int, settings: TrainSettings) -> float:
    warmup = max(1, int(settings.warmup * settings.steps))
    if step < warmup:
        return settings.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, settings.steps - warmup)
    return settings.lr * 0.5 * (1 + math.cos(math.pi * progress))


def forward_with_saliency(model: VideoViT, video: torch.Tensor, saliency: VTMSaliency) -> torch.Tensor:
    """The ViT with VTM's auxiliary path: each block's attention logits get S = tanh(K u) added, K the block's
    keys averaged over heads (as VTM sees them), computed with the block's own q and v."""
    return forward_with_key_bias(model, video, lambda block, keys: saliency.attention_bias(keys, block))


@torch.no_grad()
def evaluate(
    model: VideoViT,
    seeds: list[int],
    batch: int = 50,
    device: torch.device | str = "cpu",
    generator: Callable[[list[int]], tuple[torch.Tensor, ...]] = motion_batch,
) -> float:
    """Dense accuracy on the clips of the given seeds (of `motion_batch`, or `training_batch`)."""
    model.eval()
    correct = 0
    for i in range(0, len(seeds), batch):
        clips, labels = generator(seeds[i : i + batch])[:2]
        video = normalize_video(clips).to(device)
        correct += int((model(video).argmax(dim=1).cpu() == labels).sum())
    return correct / len(seeds)


def train(
    settings: TrainSettings, cfg: VideoViTConfig = DEMO_CONFIG, device: str = "cpu", log: Callable[[str], None] = print
) -> tuple[VideoViT, VTMSaliency, TrainResult]:
    """Both phases; returns the model (eval mode), the trained saliency and what was measured."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.set_flush_denormal(True)
    dev = torch.device(device)
    try:
        with memory_guard(f"training batches of {settings.batch} clips", dev, "use a smaller --batch"):
            return _train(settings, cfg, dev, log)
    finally:
        torch.set_flush_denormal(False)  # PyTorch's default; training is the only place that needs it


def _train(
    settings: TrainSettings, cfg: VideoViTConfig, dev: torch.device, log: Callable[[str], None]
) -> tuple[VideoViT, VTMSaliency, TrainResult]:
    torch.manual_seed(settings.seed)
    init_record: dict = {}
    model = VideoViT(cfg)
    if settings.init:  # go on from a trained model: its weights, not the initialisation below
        state, init_record = start_from(settings.init, cfg)
        model.load_state_dict(state)
    else:
        model.apply(init_weights_vit_timm)  # truncated normal, std 0.02, zero biases: learns much faster from scratch
        difference_init(model.patch_embed.proj, settings.difference_filters)
    model = model.to(dev).train()
    result = TrainResult(settings, device=str(dev), init_record=init_record if settings.init else None)
    started = time.perf_counter()
    pool = (training_batch if settings.generator == "broad" else first_batch)(pool_seeds(settings))
    log(f"generated {settings.train_clips} training clips in {time.perf_counter() - started:.0f} s")
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    losses, hits = [], []  # on the device; read back only when logging, so steps do not wait for it
    precision = resolve_precision(settings.precision, dev)
    for step, (video, labels, per_token) in enumerate(batches(pool, settings, 0, settings.steps, dev, cfg)):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, settings)
        with autocast(dev, precision):
            x = model.forward_blocks(model.embed(video))
            token_logits = model.head(model.fc_norm(x))  # the clip's head on every token: deep supervision
            logits = model.forward_head(x)
            loss = F.cross_entropy(logits, labels) + settings.token_loss * token_loss(token_logits, per_token)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.detach().float())
        hits.append((logits.argmax(dim=1) == labels).float().mean())
        if step % 10 == 0 or step == settings.steps - 1:
            result.losses += torch.stack(losses[len(result.losses) :]).tolist()
            recent = torch.stack(hits[-50:]).mean().item()
            log(
                f"step {step + 1}/{settings.steps}  loss {result.losses[-1]:.3f}  "
                f"training accuracy (last 50 steps) {recent:.1%}  {time.perf_counter() - started:.0f} s"
            )
    saliency = train_saliency(model, pool, settings, dev, result, log)
    result.seconds = time.perf_counter() - started  # training alone: generating the pool, both phases
    validation = validation_seeds(settings.validation_clips)
    result.validation_accuracy = evaluate(model, validation, device=dev, generator=training_batch)
    result.accuracy = evaluate(model, held_out_seeds(settings.eval_clips), device=dev)
    log(
        f"validation accuracy {result.validation_accuracy:.1%} on {len(validation)} clips of the training "
        f"generator; held-out accuracy {result.accuracy:.1%} on {settings.eval_clips} clips of the first "
        f"generator; trained in {result.seconds:.0f} s"
    )
    return model, saliency, result


def start_from(path: str | Path, cfg: VideoViTConfig) -> tuple[dict[str, torch.Tensor], dict]:
    """The ViT's weights in a model file of the same config (its saliency u is left out: phase 2 trains it anew),
    and the file's training record."""
    from explorer.models.weights import load_model

    model, report = load_model(path)
    if model.cfg.to_dict() != cfg.to_dict():
        raise ParameterError(f"{path}: its config differs from the one being trained")
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("vtm_saliency")}
    return state, dict(report.training or {})


def train_saliency(
    model: VideoViT,
    pool: tuple[torch.Tensor, ...],
    settings: TrainSettings,
    device: torch.device,
    result: TrainResult,
    log: Callable[[str], None] = print,
) -> VTMSaliency:
    """Phase 2: u alone learns, through the auxiliary attention path, on the same pool (new draws)."""
    model.eval().requires_grad_(False)
    saliency = VTMSaliency(model.cfg.depth, model.cfg.embed_dim // model.cfg.num_heads, settings.seed).to(device)
    saliency.train()
    optimizer = torch.optim.Adam(saliency.parameters(), lr=settings.saliency_lr)
    steps = batches(pool, settings, 1, settings.saliency_steps, device, model.cfg)
    for step, (video, labels, _) in enumerate(steps):
        loss = F.cross_entropy(forward_with_saliency(model, video, saliency), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        result.saliency_losses.append(loss.item())
        if step % 20 == 0 or step == settings.saliency_steps - 1:
            log(f"saliency step {step + 1}/{settings.saliency_steps}  loss {loss.item():.3f}")
    return saliency.eval()


def save_demo(model: VideoViT, saliency: VTMSaliency, result: TrainResult, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.vtm_saliency = saliency  # saved as part of the state dict; load_model attaches it again
    save_weights(model, path, list(LABELS), training=result.record())
    return path
