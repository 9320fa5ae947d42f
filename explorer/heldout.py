"""A held-out set of moving-shape clips from a generator written apart from the training one.

    python benchmarks/demo_generalization.py   # writes the clips once, then measures the demo model on them

`explorer/synthetic.py` draws with a numpy rasteriser on 112 px frames; this module shares none of
its code. It paints with PIL (ImageDraw: ellipses, stars, crosses, arrows, rounded boxes, letters
in the default font) at 4:3 and 224 x 168 px, on its own backgrounds (octaves of value noise,
checkerboards, frames of `assets/samples/still_and_moving.mp4`, solid colours and gradients), with
its own placements: the shape may start anywhere its path stays in the centre crop, a still bar
may hide part of it, and still distractors lie about. Each clip is 64 frames at 25 fps, where the
shape moves 1.5-5 px per 4 frames (in the 112 px crop) or rests; the light may drift. It is
encoded as an H.264 mp4 (CRF 20-32) and read back through `explorer.video.load_clip` with the
app's defaults (16 frames, stride 4, 112 px): resized, centre-cropped, decoded exactly as the app
would. Label `index % 5`, so any multiple of 5 clips is balanced; everything else comes from
`index`, so the set is fixed.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from .synthetic import LABELS
from .video import load_clip

WIDTH, HEIGHT = 224, 168  # source frames; load_clip scales by 112 / 168 and keeps the centre 112 x 112
SOURCE_FRAMES, STRIDE, FRAMES, SIZE = 64, 4, 16, 112
SCALE = HEIGHT / SIZE  # source px per crop px
CROP_LEFT = (WIDTH - HEIGHT) / 2  # the crop's left edge, in source px
SPEEDS = (1.5, 5.0)  # crop px per sampled frame (every STRIDE source frames)
CRFS = (20, 23, 26, 28, 30, 32)
CLIPS = 300
SEED = 7919  # the stream of this set: np.random.default_rng([SEED, index])
KINDS = ("ellipse", "star", "cross", "arrow", "box", "letter", "pentagon")
BACKGROUNDS = ("value_noise", "checkerboard", "real", "gradient", "solid")
REAL_SOURCE = "samples/still_and_moving.mp4"  # under explorer/assets
MOTION = {1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}  # label -> direction, as LABELS says

_real: np.ndarray | None = None


def label_of(index: int) -> int:
    return index % len(LABELS)


def _real_frames() -> np.ndarray:
    """Frames of the bundled still_and_moving sample, (4, 168, 168, 3): each used as a still background."""
    global _real
    if _real is None:
        path = Path(__file__).resolve().parent / "assets" / REAL_SOURCE
        _real = load_clip(path, frames=4, stride=40, size=176).frames[:, 4:172, 4:172]
    return _real


def _value_noise(rng: np.random.Generator) -> np.ndarray:
    """Perlin-like: octaves of random lattices, each bicubically enlarged by PIL, summed with halving weights."""
    from PIL import Image

    total = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    weight, cells = 1.0, int(rng.integers(2, 5))
    for _ in range(4):
        lattice = rng.uniform(0, 255, size=(cells, cells + cells // 3 + 1, 3)).astype(np.uint8)
        big = Image.fromarray(lattice).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
        total += weight * np.asarray(big, np.float32)
        weight, cells = weight / 2, cells * 2
    total /= 1.875
    tint = rng.uniform(0.4, 1.0, 3).astype(np.float32)
    return np.clip(total * tint + rng.uniform(0, 80), 0, 255)


def _background(rng: np.random.Generator) -> np.ndarray:
    kind = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    if kind == "value_noise":
        return _value_noise(rng)
    if kind == "checkerboard":
        square = int(rng.integers(5, 30))
        yy, xx = np.indices((HEIGHT, WIDTH))
        odd = ((yy + rng.integers(square)) // square + (xx + rng.integers(square)) // square) % 2
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        return np.where(odd[..., None] == 1, a, b).astype(np.float32)
    if kind == "real":
        frame = _real_frames()[rng.integers(4)].astype(np.float32)
        wide = np.concatenate([frame[:, ::-1][:, : WIDTH - HEIGHT], frame], axis=1)  # mirrored to 4:3
        return wide[:, :WIDTH]
    a = rng.uniform(0, 255, 3)
    if kind == "solid":
        return np.broadcast_to(a, (HEIGHT, WIDTH, 3)).astype(np.float32)
    b = rng.uniform(0, 255, 3)
    t = np.linspace(0, 1, HEIGHT if rng.random() < 0.5 else WIDTH, dtype=np.float32)
    ramp = t[:, None] if len(t) == HEIGHT else t[None, :]
    return (a + (b - a) * np.broadcast_to(ramp, (HEIGHT, WIDTH))[..., None]).astype(np.float32)


def _polygon_star(cx: float, cy: float, r: float, points: int, inner: float, turn: float) -> list[tuple[float, float]]:
    corners = []
    for k in range(points * 2):
        radius = r if k % 2 == 0 else r * inner
        angle = turn + k * math.pi / points
        corners.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return corners


def _draw(draw, kind: str, cx: float, cy: float, r: float, colour: tuple, extra: dict) -> None:  # noqa: ANN001
    """One shape with PIL's ImageDraw, centred at (cx, cy), about r px from its centre to its edge."""
    if kind == "ellipse":
        draw.ellipse([cx - r, cy - r * extra["aspect"], cx + r, cy + r * extra["aspect"]], fill=colour)
    elif kind == "star":
        draw.polygon(_polygon_star(cx, cy, r, extra["points"], 0.45, extra["turn"]), fill=colour)
    elif kind == "pentagon":
        draw.regular_polygon((cx, cy, r), 5, rotation=extra["turn"] * 57.3, fill=colour)
    elif kind == "cross":
        arm = r * 0.33
        draw.rectangle([cx - r, cy - arm, cx + r, cy + arm], fill=colour)
        draw.rectangle([cx - arm, cy - r, cx + arm, cy + r], fill=colour)
    elif kind == "arrow":
        draw.polygon(
            [(cx - r, cy - r * 0.3), (cx, cy - r * 0.3), (cx, cy - r), (cx + r, cy), (cx, cy + r), (cx, cy + r * 0.3)]
            + [(cx - r, cy + r * 0.3)],
            fill=colour,
        )
    elif kind == "box":
        draw.rounded_rectangle([cx - r, cy - r * 0.7, cx + r, cy + r * 0.7], radius=r * 0.3, fill=colour)
    else:  # a letter in PIL's default font
        from PIL import ImageFont

        font = ImageFont.load_default(size=max(8, int(r * 2.4)))
        draw.text((cx, cy), extra["letter"], fill=colour, font=font, anchor="mm")


def _shape(rng: np.random.Generator, r: float) -> tuple[str, dict]:
    kind = KINDS[rng.integers(len(KINDS))]
    extra = {
        "aspect": float(rng.uniform(0.5, 1.0)),
        "points": int(rng.integers(5, 7)),
        "turn": float(rng.uniform(0, math.pi)),
        "letter": "AEHKMRSWXZ"[rng.integers(10)],
    }
    return kind, extra


def _contrasting(rng: np.random.Generator, under: np.ndarray) -> tuple[int, int, int]:
    """A colour at least 90 (RGB distance) from the mean of what the shape covers."""
    mean = under.reshape(-1, 3).mean(0)
    for _ in range(50):
        colour = rng.integers(0, 256, 3)
        if np.linalg.norm(colour - mean) >= 90:
            break
    else:
        colour = np.where(mean > 127, 0, 255)
    return int(colour[0]), int(colour[1]), int(colour[2])


def render(index: int, light: bool = True) -> tuple[np.ndarray, int]:
    """The source frames of clip `index`: (64, 168, 224, 3) uint8 RGB, and its label. `light=False` leaves
    out the drift of the light (a test's view: then only the shape changes pixels, or nothing)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([SEED, index])
    label = label_of(index)
    background = _background(rng)
    still = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(still)
    for _ in range(int(rng.integers(0, 4))):  # still distractors, anywhere in the frame
        r = rng.uniform(5, 22)
        kind, extra = _shape(rng, r)
        x, y = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        _draw(draw, kind, x, y, r, tuple(int(c) for c in rng.integers(0, 256, 3)), extra)
    r = rng.uniform(6, 20) * SCALE  # source px
    kind, extra = _shape(rng, r)
    dx, dy = MOTION.get(label, (0, 0))
    speed = rng.uniform(*SPEEDS) * SCALE / STRIDE  # source px per source frame
    travel = speed * (SOURCE_FRAMES - 1)
    # the centre's path stays in the centre crop (a little inside it); any start where it does
    left, right, top, bottom = CROP_LEFT + 4, CROP_LEFT + HEIGHT - 4, 4.0, HEIGHT - 4.0
    x0 = rng.uniform(left - min(dx, 0) * travel, right - max(dx, 0) * travel)
    y0 = rng.uniform(top - min(dy, 0) * travel, bottom - max(dy, 0) * travel)
    base = np.asarray(still, np.float32)
    under = base[int(max(y0 - r, 0)) : int(y0 + r) + 1, int(max(x0 - r, 0)) : int(x0 + r) + 1]
    colour = _contrasting(rng, under)
    occluder = None
    if rng.random() < 0.3:  # a still bar in front, across the path: it hides part of the shape for a while
        mid_x, mid_y = x0 + dx * travel / 2, y0 + dy * travel / 2
        width = rng.uniform(4, 10) * SCALE
        vertical = dx != 0 or (dy == 0 and rng.random() < 0.5)
        box = (
            [mid_x - width / 2, 0, mid_x + width / 2, HEIGHT]
            if vertical
            else [0, mid_y - width / 2, WIDTH, mid_y + width / 2]
        )
        occluder = (box, tuple(int(c) for c in rng.integers(0, 256, 3)))
    drifts = rng.random() < 0.3
    drift = rng.uniform(-0.2, 0.2) if drifts and light else 0.0  # the light dims or brightens over the clip
    frames = np.empty((SOURCE_FRAMES, HEIGHT, WIDTH, 3), np.uint8)
    for i in range(SOURCE_FRAMES):
        image = still.copy()
        painter = ImageDraw.Draw(image)
        _draw(painter, kind, x0 + dx * speed * i, y0 + dy * speed * i, r, colour, extra)
        if occluder:
            painter.rectangle(occluder[0], fill=occluder[1])
        gain = 1 + drift * i / (SOURCE_FRAMES - 1)
        frames[i] = np.clip(np.asarray(image, np.float32) * gain, 0, 255).astype(np.uint8)
    return frames, label


def encode(frames: np.ndarray, crf: int) -> bytes:
    """H.264 mp4 (yuv420p, 25 fps, libx264's medium preset) of (T, H, W, 3) uint8 RGB frames."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium", "threads": "1"}  # one thread: the same bytes every time
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def write(folder: str | Path, count: int = CLIPS) -> Path:
    """Clips 0..count-1 as NNN_LABEL.mp4 in `folder`, with labels.csv (file,label); existing ones are kept."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(count):
        label = label_of(index)
        path = folder / f"{index:03d}_{LABELS[label].replace(' ', '_')}.mp4"
        if not path.exists():
            frames, _ = render(index)
            crf = CRFS[np.random.default_rng([SEED, index, 1]).integers(len(CRFS))]
            path.write_bytes(encode(frames, int(crf)))
        rows.append((path.name, LABELS[label]))
    with (folder / "labels.csv").open("w", newline="") as file:
        csv.writer(file).writerows([("file", "label"), *rows])
    return folder


def load(folder: str | Path, count: int = CLIPS) -> tuple[np.ndarray, np.ndarray]:
    """(count, 16, 112, 112, 3) uint8 clips, read as the app reads a video, and (count,) labels; writes the
    files first when they are not there."""
    folder = write(folder, count)
    with (folder / "labels.csv").open() as file:
        rows = list(csv.DictReader(file))[:count]
    clips = [load_clip(folder / row["file"], frames=FRAMES, stride=STRIDE, size=SIZE).frames for row in rows]
    return np.stack(clips), np.array([LABELS.index(row["label"]) for row in rows])
