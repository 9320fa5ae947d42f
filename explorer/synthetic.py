"""Generated clips whose label needs motion: which way one shape moves, or that nothing does.

Every clip has a still, dim, textured background (smooth colour blobs under stripes), up to
two static distractor shapes and one target shape (disk, square, triangle or ring; colour,
size and place varied). The target either rests ("still") or moves steadily left, right, up
or down at 3-5 px per frame, across most of the frame (its centre stays inside; it may be half out
at the ends). A single frame cannot tell the classes apart, and neither can the static shapes: the
model has to find what moves.

Everything is drawn from a seed: `motion_clip(seed)` always gives the same clip, so the
held-out sets are fixed lists of seeds disjoint from the training seeds.

That first generator alone taught a model its own look, not motion (73% and 54% on moving shapes drawn
otherwise). The demo model now trains on `training_clip(seed)` (below): far broader, the first generator
a 15% share of it, with `validation_seeds` as the split to tune on. explorer/heldout.py is a second
held-out set from a generator written apart from this module.
"""

from __future__ import annotations

from dataclasses import dataclass

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


# ---------------------------------------------------------------------------------------------------------------
# The broad training distribution. `motion_clip` above is the first generator, kept as it was: its held-out seeds
# are a fixed benchmark. `training_clip` draws from many more kinds of clip, of which that generator is one.

TRAINING_SHAPES = (
    "disk",
    "ellipse",
    "square",
    "rectangle",
    "bar",
    "triangle",
    "polygon",
    "ring",
    "star",
    "plus",
    "blob",
)
TEXTURES = ("gradient", "blobs", "blocks", "stripes", "noise", "natural", "solid")
TRAINING_SPEED = (1.0, 6.0)  # px per frame
TRAINING_RADIUS = (4.0, 22.0)
FIRST_GENERATOR = 0.15  # share of training clips drawn by `motion_clip` itself
CODEC = 0.4  # share of training clips sent through H.264 (PyAV, in memory) and decoded back
CRF = (18, 35)
PRESETS = ("ultrafast", "veryfast", "medium")
VALIDATION_SEED = 2 * 10**9  # the training generator's validation seeds start here (tuning looks only at these)
CELL = 16  # the demo model's patch: the motion cells of `training_clip` are CELL x CELL
NATURAL_SOURCE = "samples/bigbuckbunny.mp4"  # under explorer/assets: frames cut into natural textures


def _natural_frames() -> np.ndarray:
    """(8, 224, 224, 3) uint8 frames of the bundled real clip, decoded once (through the app's loader)."""
    global _NATURAL
    if _NATURAL is None:
        from pathlib import Path

        from .video import load_clip

        path = Path(__file__).resolve().parent / "assets" / NATURAL_SOURCE
        _NATURAL = load_clip(path, frames=8, stride=16, size=224).frames
    return _NATURAL


_NATURAL: np.ndarray | None = None


def _any_colour(rng: np.random.Generator) -> np.ndarray:
    """Any colour: dark, grey, pale or saturated."""
    kind = rng.integers(3)
    if kind == 0:
        return _colour(rng)
    if kind == 1:
        return np.full(3, rng.uniform(0, 255), np.float32) + rng.uniform(-15, 15, 3).astype(np.float32)
    return rng.uniform(0, 255, 3).astype(np.float32)


def _texture(rng: np.random.Generator, size: int, kind: str | None = None) -> np.ndarray:
    """(size, size, 3) float32 in [0, 255]: one of TEXTURES (or, a third of the time, two blended)."""
    import cv2

    kind = kind or TEXTURES[rng.integers(len(TEXTURES))]
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    a, b = _any_colour(rng), _any_colour(rng)
    if kind == "gradient":
        if rng.random() < 0.7:
            angle = rng.uniform(0, 2 * np.pi)
            t = (x * np.cos(angle) + y * np.sin(angle)) / size
        else:
            t = np.hypot(x - rng.uniform(0, size), y - rng.uniform(0, size)) / size
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
        image = a + t[..., None] * (b - a)
    elif kind == "blobs":
        cells = int(rng.integers(2, 8))
        coarse = rng.uniform(0, 255, size=(cells, cells, 3)).astype(np.float32)
        image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    elif kind == "blocks":
        cells = int(rng.integers(3, 24))
        palette = np.stack([_any_colour(rng) for _ in range(int(rng.integers(2, 6)))])
        coarse = palette[rng.integers(len(palette), size=(cells, cells))]
        image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_NEAREST)
    elif kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, 30)
        wave = np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period + rng.uniform(0, 2 * np.pi))
        if rng.random() < 0.5:
            wave = np.sign(wave)
        image = a + ((wave + 1) / 2)[..., None] * (b - a)
    elif kind == "noise":
        image = a + rng.normal(0, rng.uniform(5, 60), size=(size, size, 3)).astype(np.float32)
        if rng.random() < 0.5:
            image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 2.0))
    elif kind == "natural":
        frames = _natural_frames()
        frame = frames[rng.integers(len(frames))]
        side = int(rng.integers(48, frame.shape[0] + 1))
        top, left = rng.integers(0, frame.shape[0] - side + 1, size=2)
        image = cv2.resize(frame[top : top + side, left : left + side].astype(np.float32), (size, size))
    else:  # solid
        image = np.broadcast_to(a, (size, size, 3)).copy()
    image = image.astype(np.float32)
    if kind != "natural" and rng.random() < 0.3:  # two kinds blended
        image = 0.5 * (image + _texture(rng, size, TEXTURES[rng.integers(len(TEXTURES) - 1)]))
    if rng.random() < 0.3:  # lower contrast
        image = image.mean() + rng.uniform(0.3, 0.8) * (image - image.mean())
    return np.clip(image, 0, 255)


@dataclass(frozen=True)
class _Shape:
    kind: str
    r: float
    aspect: float  # ellipse, rectangle, bar: the ratio of the axes
    angle: float
    lobes: np.ndarray  # polygon: sides; star: points; blob: Fourier amplitudes and phases


def _random_shape(rng: np.random.Generator, radius: tuple[float, float] = TRAINING_RADIUS) -> _Shape:
    kind = TRAINING_SHAPES[rng.integers(len(TRAINING_SHAPES))]
    aspect = {"ellipse": rng.uniform(1.3, 2.5), "rectangle": rng.uniform(1.3, 2.5), "bar": rng.uniform(3, 6)}
    lobes = {
        "polygon": np.array([rng.integers(3, 9)]),
        "star": np.array([rng.integers(4, 8), rng.uniform(0.35, 0.6)]),
        "blob": rng.uniform(-0.2, 0.2, size=6),
    }
    r = rng.uniform(*radius)
    return _Shape(kind, r, float(aspect.get(kind, 1.0)), rng.uniform(0, 2 * np.pi), lobes.get(kind, np.zeros(1)))


def _shape_coverage(shape: _Shape, cx: float, cy: float, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of `shape` centred at (cx, cy): a signed distance, clipped."""
    if shape.kind in ("disk", "square", "ring", "triangle"):
        return _coverage(shape.kind, cx, cy, shape.r, y, x)
    c, s = np.cos(shape.angle), np.sin(shape.angle)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    r = shape.r
    if shape.kind == "ellipse":  # the distance to the edge, scaled back near it
        a, b = r, r / shape.aspect
        rho = np.hypot(u / a, v / b)
        edge = (1 - rho) * np.minimum(a, b) * 1.0
    elif shape.kind in ("rectangle", "bar"):
        edge = np.minimum(r * 0.9 - np.abs(u), r * 0.9 / shape.aspect - np.abs(v))
    elif shape.kind == "plus":
        arm = r * 0.3
        edge = np.maximum(np.minimum(r - np.abs(u), arm - np.abs(v)), np.minimum(arm - np.abs(u), r - np.abs(v)))
    else:  # polygon, star, blob: a radius that depends on the angle
        theta, rho = np.arctan2(v, u), np.hypot(u, v)
        if shape.kind == "polygon":
            n = int(shape.lobes[0])
            sector = np.mod(theta, 2 * np.pi / n) - np.pi / n
            edge = r * np.cos(np.pi / n) - rho * np.cos(sector)
        elif shape.kind == "star":
            n, inner = int(shape.lobes[0]), float(shape.lobes[1])
            phase = np.abs(np.mod(theta * n / (2 * np.pi), 1.0) - 0.5) * 2  # 1 at a point, 0 between
            edge = (r * (inner + (1 - inner) * phase) - rho) * 0.7
        else:
            k = np.arange(2, 5)[:, None, None]
            amp, ph = shape.lobes[:3, None, None], shape.lobes[3:, None, None] * np.pi * 5
            edge = r * (1 + (amp * np.cos(k * theta + ph)).sum(0)) - rho
    return np.clip(edge + 0.5, 0.0, 1.0)


def _fill(rng: np.random.Generator, size: int) -> tuple[np.ndarray, bool]:
    """What a shape is painted with: a colour (3,) or, a third of the time, its own texture (size, size, 3)."""
    if rng.random() < 0.35:
        return _texture(rng, size), True
    return _any_colour(rng), False


def _contrast(fill: np.ndarray, under: np.ndarray) -> np.ndarray:
    """The fill, inverted when its mean colour is too close to what it covers (the shape must be visible)."""
    mean = fill.reshape(-1, 3).mean(0)
    if np.linalg.norm(mean - under.reshape(-1, 3).mean(0)) < 50:
        return 255 - fill
    return fill


def _translate(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    import cv2

    matrix = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    return cv2.warpAffine(image, matrix, image.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def h264_round_trip(video: np.ndarray, crf: int, preset: str = "medium", fps: int = 25) -> np.ndarray:
    """(T, H, W, 3) uint8 through H.264 (yuv420p, in memory) and back."""
    import io

    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset, "threads": "1"}  # one thread: the same bytes every time
        for frame in video:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer, "r") as reader:
        frames = [f.to_ndarray(format="rgb24") for f in reader.decode(video=0)]
    return np.stack(frames[: len(video)])


def _pixel_cells(video: np.ndarray, cell: int = CELL) -> np.ndarray:
    """(T, H/cell, W/cell) bool: cells that change into or out of each frame (exact, for noiseless clips)."""
    change = (video[1:] != video[:-1]).any(-1)
    T, H, W = change.shape
    change = change.reshape(T, H // cell, cell, W // cell, cell).any(axis=(2, 4))
    cells = np.zeros((T + 1, H // cell, W // cell), bool)
    cells[1:] |= change
    cells[:-1] |= change
    return cells


def _broad_clip(rng: np.random.Generator, label: int, frames: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    background = _texture(rng, size)
    shape, (fill, textured) = _random_shape(rng), _fill(rng, size)
    r = shape.r * max(shape.aspect, 1.0) if shape.kind in ("ellipse", "rectangle", "bar") else shape.r
    dx, dy = DIRECTIONS.get(label, (0.0, 0.0))
    if label and rng.random() < 0.2:  # a slight drift across the direction of motion
        drift = rng.uniform(-0.2, 0.2)
        dx, dy = dx + drift * abs(dy), dy + drift * abs(dx)
    travel = rng.uniform(*TRAINING_SPEED) * (frames - 1)
    margin = rng.uniform(-0.3, 1.0) * r  # negative: the shape may start or end partly out of the frame
    margin = min(margin, (size - travel) / 2 - 1) if label else margin
    lo_x, hi_x = margin - min(dx, 0) * travel, size - margin - max(dx, 0) * travel
    lo_y, hi_y = margin - min(dy, 0) * travel, size - margin - max(dy, 0) * travel
    x0, y0 = rng.uniform(lo_x, max(hi_x, lo_x)), rng.uniform(lo_y, max(hi_y, lo_y))
    distractors = []
    for _ in range(int(rng.integers(0, 5))):
        d = _random_shape(rng, (4.0, 16.0))
        cover = _shape_coverage(d, rng.uniform(0, size), rng.uniform(0, size), y, x)[..., None]
        d_fill = _texture(rng, size) if rng.random() < 0.25 else _any_colour(rng)
        distractors.append((cover, d_fill, rng.random() < 0.25))  # a quarter pass in front of the target
    still = background.copy()
    for cover, d_fill, front in distractors:
        if not front:
            still += cover * (d_fill - still)
    start_cover = _shape_coverage(shape, x0, y0, y, x)
    under = still[start_cover > 0.5] if (start_cover > 0.5).any() else still
    fill = _contrast(fill if textured else fill[None, None], under[None] if under.ndim == 2 else under)
    video = np.empty((frames, size, size, 3), np.float32)
    cells = np.zeros((frames, size // CELL, size // CELL), bool)
    for i in range(frames):
        step = travel * i / (frames - 1)
        px, py = x0 + dx * step, y0 + dy * step
        cover = _shape_coverage(shape, px, py, y, x)[..., None]
        paint = _translate(fill, px - x0, py - y0) if textured else fill
        frame = still + cover * (paint - still)
        for d_cover, d_fill, front in distractors:
            if front:
                frame += d_cover * (d_fill - frame)
        video[i] = frame
        if label:
            cells[i] = (cover[..., 0] > 0.05).reshape(size // CELL, CELL, size // CELL, CELL).any(axis=(1, 3))
    # light over time: a ramp or a flicker of the whole frame, and sensor noise; none of it moves
    light = rng.random()
    if light < 0.2:
        video *= np.linspace(1.0, rng.uniform(0.7, 1.3), frames, dtype=np.float32)[:, None, None, None]
    elif light < 0.4:
        video *= rng.uniform(0.92, 1.08, size=frames).astype(np.float32)[:, None, None, None]
    elif light < 0.5:
        video += np.linspace(0, rng.uniform(-30, 30), frames, dtype=np.float32)[:, None, None, None]
    if rng.random() < 0.25:
        video += rng.normal(0, rng.uniform(1, 5), size=video.shape).astype(np.float32)
    return np.round(np.clip(video, 0, 255)).astype(np.uint8), cells


def training_clip(seed: int, frames: int = FRAMES, size: int = SIZE) -> tuple[np.ndarray, int, np.ndarray]:
    """A clip of the broad training distribution: (frames, size, size, 3) uint8, its label, and (frames,
    size/16, size/16) bool: the cells the moving shape covers in each frame (none when still).

    Varied: background textures (TEXTURES, natural ones cut from the bundled real clip), shapes
    (TRAINING_SHAPES, colours or their own texture, 4-22 px), speeds 1-6 px per frame, start
    anywhere the path fits (partly out of the frame allowed), up to four still distractors (some in
    front of the target), light that ramps or flickers, sensor noise, and on CODEC of the clips an
    H.264 round trip at CRF 18-35. FIRST_GENERATOR of them are `motion_clip`'s. "Still" means
    nothing moves: light and codec noise change pixels of still clips too.
    """
    rng = np.random.default_rng([seed, 1])  # a stream apart from motion_clip's own
    if rng.random() < FIRST_GENERATOR:
        video, label = motion_clip(seed, frames, size)
        return video, label, _pixel_cells(video) if label else np.zeros((frames, size // CELL, size // CELL), bool)
    label = int(rng.integers(len(LABELS)))
    video, cells = _broad_clip(rng, label, frames, size)
    if rng.random() < CODEC:
        video = h264_round_trip(video, int(rng.integers(CRF[0], CRF[1] + 1)), PRESETS[rng.integers(len(PRESETS))])
    return video, label, cells


def training_batch(seeds: list[int], frames: int = FRAMES, size: int = SIZE) -> tuple[torch.Tensor, ...]:
    """(B, T, H, W, 3) uint8 clips, (B,) labels and (B, T, H/16, W/16) bool motion cells of `training_clip`."""
    clips, labels, cells = zip(*(training_clip(s, frames, size) for s in seeds))
    return torch.from_numpy(np.stack(clips)), torch.tensor(labels), torch.from_numpy(np.stack(cells))


def first_batch(seeds: list[int], frames: int = FRAMES, size: int = SIZE) -> tuple[torch.Tensor, ...]:
    """`motion_clip`'s clips as `training_batch` gives them: clips, labels and the cells that change (the shape's:
    nothing else moves or flickers in them)."""
    clips, labels = motion_batch(seeds, frames, size)
    cells = [
        _pixel_cells(clip) if label else np.zeros((frames, size // CELL, size // CELL), bool)
        for clip, label in zip(clips.numpy(), labels.tolist())
    ]
    return clips, labels, torch.from_numpy(np.stack(cells))


def validation_seeds(count: int) -> list[int]:
    """Seeds of `training_clip` that no training pool draws: the split that tuning looks at."""
    return list(range(VALIDATION_SEED, VALIDATION_SEED + count))
