"""Generated clips whose label needs motion: which way one shape moves, or that nothing does.

Every clip has a still, dim, textured background (smooth colour blobs under stripes), up to
two static distractor shapes and one target shape (disk, square, triangle or ring; colour,
size and place varied). The target either rests ("still") or moves steadily left, right, up
or down at 3-5 px per frame, across most of the frame (its centre stays inside; it may be half out
at the ends). A single frame cannot tell the classes apart, and neither can the static shapes: the
model has to find what moves.

Everything is drawn from a seed: `motion_clip(seed)` always gives the same clip, so the
held-out sets are fixed lists of seeds disjoint from the training seeds.
"""

from __future__ import annotations

import numpy as np
import torch

LABELS = ("still", "moving left", "moving right", "moving up", "moving down")
DIRECTIONS = {1: (-1.0, 0.0), 2: (1.0, 0.0), 3: (0.0, -1.0), 4: (0.0, 1.0)}  # label -> (dx, dy) per frame
SHAPES = ("disk", "square", "triangle", "ring")
FRAMES, SIZE = 16, 112  # the demo model's input: 8 x 7 x 7 = 392 tokens
SPEED = (3.0, 5.0)  # px per frame
MARGIN = 2.0  # px: the moving shape's centre stays this far inside the frame (the shape may be half out)
RADIUS = (5.0, 9.0)
HELD_OUT_SEED = 10**9  # held-out seeds start here; training draws seeds below it
# how each symmetry relabels: index = old label, value = new label
MIRROR_X = torch.tensor([0, 2, 1, 3, 4])  # left <-> right
MIRROR_Y = torch.tensor([0, 1, 2, 4, 3])  # up <-> down
SWAP_XY = torch.tensor([0, 3, 4, 1, 2])  # left <-> up, right <-> down
REVERSE = torch.tensor([0, 2, 1, 4, 3])  # played backwards: every direction turns round
SYMMETRIES = 16


def _coverage(shape: str, cx: float, cy: float, r: float, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape centred at (cx, cy) of radius r."""
    dx, dy = x - cx, y - cy
    if shape == "disk":
        edge = r - np.hypot(dx, dy)
    elif shape == "square":
        edge = r * 0.85 - np.maximum(np.abs(dx), np.abs(dy))
    elif shape == "ring":
        edge = r * 0.3 - np.abs(np.hypot(dx, dy) - r * 0.7)
    else:  # a triangle pointing down: inside all three edges
        edges = [dy + 0.5 * r, (np.sqrt(3) * dx - dy) * 0.5 + 0.5 * r, (-np.sqrt(3) * dx - dy) * 0.5 + 0.5 * r]
        edge = np.minimum.reduce(edges) * 1.4
    return np.clip(edge + 0.5, 0.0, 1.0)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A bright, saturated colour: one channel high, one low, one anywhere."""
    channels = rng.permutation(3)
    colour = np.empty(3, np.float32)
    colour[channels[0]] = rng.uniform(200, 255)
    colour[channels[1]] = rng.uniform(0, 60)
    colour[channels[2]] = rng.uniform(0, 255)
    return colour


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Dim, smooth colour blobs (a coarse random grid, upsampled) under faint stripes: the shapes stand out."""
    import cv2

    cells = int(rng.integers(2, 6))
    coarse = rng.uniform(20, 110, size=(cells, cells, 3)).astype(np.float32)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(5, 14)
    stripes = np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period)
    image += rng.uniform(4, 12) * stripes[..., None]
    return image


def motion_clip(seed: int, frames: int = FRAMES, size: int = SIZE) -> tuple[np.ndarray, int]:
    """(frames, size, size, 3) uint8 RGB and its label (an index into LABELS), drawn from `seed`."""
    rng = np.random.default_rng(seed)
    label = int(rng.integers(len(LABELS)))
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    still = _background(rng, size)
    for _ in range(int(rng.integers(0, 3))):  # distractors, drawn into the still background
        r = rng.uniform(*RADIUS)
        cover = _coverage(
            SHAPES[rng.integers(len(SHAPES))], rng.uniform(r, size - r), rng.uniform(r, size - r), r, y, x
        )
        still += cover[..., None] * (_colour(rng) - still)
    shape, r, colour = SHAPES[rng.integers(len(SHAPES))], rng.uniform(*RADIUS), _colour(rng)
    dx, dy = DIRECTIONS.get(label, (0.0, 0.0))
    travel = rng.uniform(*SPEED) * (frames - 1)
    # start where the centre's whole path stays inside the frame; a still shape is wholly inside
    margin = r if label == 0 else MARGIN
    lo_x, hi_x = margin - min(dx, 0) * travel, size - margin - max(dx, 0) * travel
    lo_y, hi_y = margin - min(dy, 0) * travel, size - margin - max(dy, 0) * travel
    x0, y0 = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
    video = np.empty((frames, size, size, 3), np.uint8)
    for i in range(frames):
        step = travel * i / (frames - 1)
        cover = _coverage(shape, x0 + dx * step, y0 + dy * step, r, y, x)[..., None]
        video[i] = np.round(np.clip(still + cover * (colour - still), 0, 255))
    return video, label


def held_out_seeds(count: int) -> list[int]:
    """The fixed held-out set: `count` seeds no training run draws."""
    return list(range(HELD_OUT_SEED, HELD_OUT_SEED + count))


def motion_batch(seeds: list[int], frames: int = FRAMES, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, H, W, 3) uint8 clips and (B,) labels for the given seeds."""
    clips, labels = zip(*(motion_clip(s, frames, size) for s in seeds))
    return torch.from_numpy(np.stack(clips)), torch.tensor(labels)


def symmetric(clips: torch.Tensor, labels: torch.Tensor, which: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each (T, H, W, 3) clip under one of the 16 symmetries of the task, relabelled.

    Bits of `which` (B,) ints in [0, 16): 1 mirrors x, 2 mirrors y, 4 swaps x and y, 8 plays the clip
    backwards. The generator draws every clip and its image with the same probability, so training on
    the images of a pool of clips is training on 16 times as many clips of the same task.
    """
    out, relabelled = [], []
    for clip, label, w in zip(clips, labels.tolist(), which.tolist()):
        if w & 1:
            clip, label = clip.flip(2), int(MIRROR_X[label])
        if w & 2:
            clip, label = clip.flip(1), int(MIRROR_Y[label])
        if w & 4:
            clip, label = clip.transpose(1, 2), int(SWAP_XY[label])
        if w & 8:
            clip, label = clip.flip(0), int(REVERSE[label])
        out.append(clip)
        relabelled.append(label)
    return torch.stack(out), torch.tensor(relabelled)
