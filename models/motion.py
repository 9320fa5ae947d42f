"""Motion per grid cell from the pixels: a stand-in for the codec motion vectors VTM reads.

Codec motion vectors live on the blocks of the current frame and point back to a
reference frame. The two stand-ins here do the same on decoded frames:
  flow        OpenCV Farneback optical flow from each frame back to the one before;
              magnitude in pixels per frame;
  difference  absolute difference to the frame before, in grey levels (0-255), averaged
              over the three channels; it cannot tell where a thing went from where it was,
              so both places light up.
A cell's motion is the mean over its patch and over the frames of its tubelet that have a
frame before them (the clip's first frame has none).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .video_vit import IMAGENET_MEAN, IMAGENET_STD

SOURCES = ("flow", "difference")


def to_pixels(video: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) ImageNet-normalized -> (T, H, W, 3) float32 in grey levels 0..255."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    pixels = (video.detach().float().cpu() * std + mean).clamp(0, 1) * 255
    return pixels.permute(1, 2, 3, 0).numpy()


def flow_magnitude(pixels: np.ndarray) -> np.ndarray:
    """(T, H, W): Farneback flow length at each pixel of frame f back to frame f-1; frame 0 is zero."""
    grey = [cv2.cvtColor(frame.round().astype(np.uint8), cv2.COLOR_RGB2GRAY) for frame in pixels]
    magnitude = np.zeros(pixels.shape[:3], dtype=np.float32)
    for f in range(1, len(grey)):
        flow = cv2.calcOpticalFlowFarneback(
            grey[f],
            grey[f - 1],
            None,
            pyr_scale=0.5,
            levels=3,
            winsize=15,
            iterations=3,
            poly_n=5,
            poly_sigma=1.2,
            flags=0,
        )
        magnitude[f] = np.linalg.norm(flow, axis=-1)
    return magnitude


def difference_magnitude(pixels: np.ndarray) -> np.ndarray:
    """(T, H, W): mean absolute difference over the channels to the frame before; frame 0 is zero."""
    magnitude = np.zeros(pixels.shape[:3], dtype=np.float32)
    magnitude[1:] = np.abs(pixels[1:] - pixels[:-1]).mean(axis=-1)
    return magnitude


def cell_motion(
    video: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int, source: str = "flow"
) -> np.ndarray:
    """(T', H', W') motion of each cell, measured by `source` ("flow" or "difference")."""
    if source not in SOURCES:
        raise ValueError(f"motion source must be one of {', '.join(SOURCES)}, got {source!r}")
    pixels = to_pixels(video)
    magnitude = flow_magnitude(pixels) if source == "flow" else difference_magnitude(pixels)
    T, H, W = grid
    magnitude = magnitude[: T * tubelet, : H * patch, : W * patch]
    per_patch = magnitude.reshape(T, tubelet, H, patch, W, patch).mean(axis=(3, 5))  # (T', tubelet, H', W')
    has_previous = (np.arange(T * tubelet) > 0).reshape(T, tubelet)  # frame 0 has no frame before it
    frames = np.maximum(has_previous.sum(axis=1), 1)[:, None, None]
    return per_patch.sum(axis=1) / frames
