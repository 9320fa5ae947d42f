"""VideoMAE's reconstruction figure: the clip, what the encoder saw, and what the decoder painted back.

VideoMAE's target for a hidden patch is the patch itself (2 x 16 x 16 pixels in [0, 1],
channel-last order (p0 p1 p2 c)) normalized per channel by its own mean and standard
deviation (unbiased variance; + 1e-6 after the square root). The decoder predicts that
normalized patch; the official visualization (run_videomae_vis.py) undoes the
normalization with the ORIGINAL patch's mean and std, so each painted patch takes its
average colour and contrast from the clip and only its pattern from the model. Visible
patches are copied from the clip; the masked video shows hidden patches black.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from explorer.models.video_vit import VideoViT, normalize_video
from explorer.models.videomae_decoder import VideoMAEDecoder

from .runtime import autocast, copy_to, memory_guard, resolve_device, resolve_precision
from .video import Clip

TARGET_EPS = 1e-6


@dataclass(frozen=True)
class Reconstruction:
    original: np.ndarray  # uint8 (T, H, W, 3)
    masked: np.ndarray  # uint8 (T, H, W, 3): hidden patches black
    reconstruction: np.ndarray  # uint8 (T, H, W, 3): visible patches from the clip, hidden ones from the decoder
    visible: np.ndarray  # bool (T', H', W')
    loss: float  # VideoMAE's pre-training loss here: MSE of the prediction and the normalized hidden patches


def patchify(pixels: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """(T, H, W, C) -> (N, tubelet * patch * patch, C): tokens in (t, h, w) order, pixels in (p0 p1 p2) order."""
    T, H, W, C = pixels.shape
    x = pixels.reshape(T // tubelet, tubelet, H // patch, patch, W // patch, patch, C)
    return x.permute(0, 2, 4, 1, 3, 5, 6).reshape(-1, tubelet * patch * patch, C)


def unpatchify(patches: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int) -> torch.Tensor:
    """Inverse of `patchify`."""
    t, h, w = grid
    C = patches.shape[-1]
    x = patches.reshape(t, h, w, tubelet, patch, patch, C).permute(0, 3, 1, 4, 2, 5, 6)
    return x.reshape(t * tubelet, h * patch, w * patch, C)


def normalize_patches(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VideoMAE's target: each patch and channel minus its mean, over its std + 1e-6; also that mean and std."""
    mean = patches.mean(dim=1, keepdim=True)
    std = patches.var(dim=1, unbiased=True, keepdim=True).sqrt() + TARGET_EPS
    return (patches - mean) / std, mean, std


def reconstruct(
    clip: Clip,
    model: VideoViT,
    decoder: VideoMAEDecoder,
    keep: np.ndarray,
    device: str = "cpu",
    precision: str = "fp32",
) -> Reconstruction:
    """Encode only the tokens at `keep` (flat (t, h, w) indices), decode the others, draw the three videos.

    `model` must be the pre-training encoder (no classifier): the decoder reads the output of
    its blocks and final norm (a LayerNorm in VideoMAE's; none in a transformers model
    pre-trained with mean pooling, as transformers runs it). Runs under autocast at `precision`
    (fp32 by default: the painted patches are compared with the clip); the patches are
    un-normalized in float32. The models are not moved: a copy runs where they live elsewhere.
    """
    cfg = model.cfg
    t, p = cfg.tubelet, cfg.patch
    total = int(np.prod(cfg.grid))
    keep = np.asarray(keep, dtype=np.int64)
    if keep.size == 0 or keep.size != np.unique(keep).size or keep.min() < 0 or keep.max() >= total:
        raise ValueError(f"keep must hold distinct token indices in 0..{total - 1}, at least one")
    if cfg.num_classes:
        raise ValueError("reconstruction needs the pre-training encoder; this model is a fine-tuned classifier")
    if decoder.cfg.encoder_dim != cfg.embed_dim or decoder.cfg.out_dim != 3 * t * p * p:
        raise ValueError(
            f"the decoder takes {decoder.cfg.encoder_dim}-wide tokens and paints {decoder.cfg.out_dim} "
            f"values per patch; this encoder is {cfg.embed_dim} wide with {3 * t * p * p}"
        )
    keep = np.sort(keep)
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    model, decoder = (m if next(m.parameters()).device.type == dev.type else copy_to(m, dev) for m in (model, decoder))
    frames = torch.from_numpy(clip.frames)
    keep_t = torch.from_numpy(keep).to(dev)[None]
    with (
        memory_guard(f"reconstructing {clip.num_frames} frames", dev, "use fewer frames or the CPU"),
        torch.inference_mode(),
        autocast(dev, precision),
    ):
        encoded = model.forward_blocks(model.embed(normalize_video(frames).to(dev)[None], keep_t))
        predicted = decoder(encoded, keep_t, total)[0].float().cpu()

    patches = patchify(frames.float() / 255, t, p)
    target, mean, std = normalize_patches(patches)
    hidden = torch.from_numpy(np.setdiff1d(np.arange(total), keep))
    predicted = predicted.reshape(hidden.numel(), -1, 3)
    painted, blacked = patches.clone(), patches.clone()
    if decoder.cfg.normalized_target:
        painted[hidden] = predicted * std[hidden] + mean[hidden]
    else:  # a transformers model pre-trained with norm_pix_loss = false predicts raw pixels
        target = patches
        painted[hidden] = predicted
    blacked[hidden] = 0

    def to_video(x: torch.Tensor) -> np.ndarray:
        return (unpatchify(x, cfg.grid, t, p).clamp(0, 1) * 255).round().to(torch.uint8).numpy()

    visible = np.zeros(total, dtype=bool)
    visible[keep] = True
    loss = F.mse_loss(predicted, target[hidden]).item() if hidden.numel() else 0.0
    return Reconstruction(
        original=clip.frames.copy(),
        masked=to_video(blacked),
        reconstruction=to_video(painted),
        visible=visible.reshape(cfg.grid),
        loss=loss,
    )
