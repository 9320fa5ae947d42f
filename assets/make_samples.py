"""Generate the bundled synthetic sample videos: `python assets/make_samples.py`.

"still_and_moving.mp4" (8 s) shows what run-length tokenization exploits: a still textured
background, a red ball that rolls during frames 0-40 and then rests, and a blue
square that moves during frames 0-100, rests during 100-160 (nothing moves at all)
and moves again during 160-200. Moving objects stay inside the central 288x288
region, the part the default centre crop keeps.

"long_still_moving_pan.mp4" (64 s) is for scans along time: LONG_STRETCHES lists its still, moving and
panning stretches. A textured panorama (some texture in every 16x16 patch, so that a pan changes them all)
stands still, then a ball and two squares move over it, then it stands still again, then the camera pans
right across it at PAN_SPEED pixels per frame, then it stands still at the pan's end.

Everything is deterministic.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT, FPS, NUM_FRAMES = 384, 288, 25, 200
OUT_DIR = Path(__file__).resolve().parent / "samples"
FILE_NAME = "still_and_moving.mp4"

BALL_RADIUS = 20.0
BALL_Y = 72.0
BALL_X = (84.0, 300.0)  # start and resting x of the ball's centre
BALL_STOP = 40  # the ball rests from this frame on
SQUARE_HALF = 22.0
SQUARE_PAUSE = (100, 160)  # the square rests between these frames (inclusive)

_Y, _X = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32) + 0.5  # pixel centres
_ALL = np.s_[:, :]


def _smoothstep(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


def _window(cx: float, cy: float, reach: float) -> tuple[slice, slice]:
    """The pixels within `reach` of a centre (plus a margin): where a moving shape can paint."""
    x0, y0 = max(0, int(cx - reach) - 2), max(0, int(cy - reach) - 2)
    return np.s_[y0 : int(cy + reach) + 3, x0 : int(cx + reach) + 3]


def _disk(cx: float, cy: float, r: float, win: tuple[slice, slice] = _ALL) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a disk, over the pixels of `win`."""
    dist = np.hypot(_X[win] - cx, _Y[win] - cy)
    return np.clip(r - dist + 0.5, 0.0, 1.0)


def _rect(cx: float, cy: float, half_w: float, half_h: float, win: tuple[slice, slice] = _ALL) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of an axis-aligned rectangle, over the pixels of `win`."""
    cover_x = np.clip(half_w - np.abs(_X[win] - cx) + 0.5, 0.0, 1.0)
    cover_y = np.clip(half_h - np.abs(_Y[win] - cy) + 0.5, 0.0, 1.0)
    return cover_x * cover_y


def _paint(image: np.ndarray, cover: np.ndarray, color: np.ndarray) -> None:
    """Blend `color` (3,) or (H, W, 3) into `image` in place by `cover`."""
    image += cover[..., None] * (color - image)


@lru_cache(maxsize=1)
def _background() -> np.ndarray:
    """The still scene: sky and ground gradients, a sun, hills, a pole and a checker floor."""
    x, y = _X / WIDTH, _Y / HEIGHT
    sky = np.stack([70 + 60 * y, 120 + 70 * y, 200 + 30 * x], axis=-1)
    image = sky.astype(np.float32)
    ground = np.clip((_Y - (150 + 18 * np.sin(_X / 45.0))) + 0.5, 0.0, 1.0)
    _paint(image, ground, np.stack([60 + 40 * x, 130 - 30 * y, np.full_like(x, 60)], axis=-1))
    _paint(image, _disk(350.0, 40.0, 26.0), np.array([250, 215, 80], np.float32))
    checker = ((_X // 16 + _Y // 16) % 2).astype(np.float32)
    floor = np.clip(_Y - 244.0 + 0.5, 0.0, 1.0)
    tiles = np.stack([200 - 90 * checker, 190 - 90 * checker, 170 - 80 * checker], axis=-1)
    _paint(image, floor, tiles)
    _paint(image, _rect(24.0, 176.0, 3.0, 64.0), np.array([90, 70, 60], np.float32))
    _paint(image, _rect(24.0, 112.0, 16.0, 10.0), np.array([235, 235, 225], np.float32))
    return image


def _ball_x(i: int) -> float:
    start, stop = BALL_X
    return start + (stop - start) * _smoothstep(i / BALL_STOP)


def _square_center(i: int) -> tuple[float, float]:
    """The square follows one wave-shaped path: 60% of it by frame 100, the rest after 160."""
    pause, resume = SQUARE_PAUSE
    if i <= pause:
        u = 0.6 * i / pause
    elif i <= resume:
        u = 0.6
    else:
        u = 0.6 + 0.4 * (i - resume) / (NUM_FRAMES - 1 - resume)
    return 96.0 + 196.0 * u, 185.0 + 35.0 * np.sin(2.0 * np.pi * u)


def render_frame(i: int) -> np.ndarray:
    """Frame `i` (0 <= i < NUM_FRAMES) as uint8 RGB (HEIGHT, WIDTH, 3)."""
    image = _background().copy()
    bx = _ball_x(i)
    win = _window(bx, BALL_Y, BALL_RADIUS)
    light = np.hypot(_X[win] - (bx - 7), _Y[win] - (BALL_Y - 7)) / (2 * BALL_RADIUS)
    shade = np.clip(1.0 - light, 0, 1)
    ball = np.stack([120 + 135 * shade, 20 + 60 * shade**3, 20 + 60 * shade**3], axis=-1)
    _paint(image[win], _disk(bx, BALL_Y, BALL_RADIUS, win), ball)
    sx, sy = _square_center(i)
    win = _window(sx, sy, SQUARE_HALF)
    outer, inner = SQUARE_HALF, SQUARE_HALF - 9.0
    _paint(image[win], _rect(sx, sy, outer, outer, win), np.array([30, 60, 200], np.float32))
    _paint(image[win], _rect(sx, sy, inner, inner, win), np.array([90, 140, 240], np.float32))
    return np.round(np.clip(image, 0, 255)).astype(np.uint8)


# -- the long sample

LONG_FILE_NAME = "long_still_moving_pan.mp4"
LONG_STRETCHES = (("still", 0, 12), ("moving", 12, 24), ("still", 24, 36), ("pan", 36, 52), ("still", 52, 64))
"""(content, start s, end s) of each stretch of the long sample, back to back."""
LONG_FRAMES = LONG_STRETCHES[-1][2] * FPS
PAN_SPEED = 2  # pixels per frame: 24 px between the frames RLT compares at stride 4
_PAN_START, _PAN_END = (FPS * t for t in LONG_STRETCHES[3][1:])
PANORAMA_WIDTH = WIDTH + PAN_SPEED * (_PAN_END - _PAN_START)


@lru_cache(maxsize=1)
def _panorama() -> np.ndarray:
    """Sky with clouds over textured fields: sums of sinusoids of 20-110 px, so no patch is flat."""
    y, x = np.mgrid[0:HEIGHT, 0:PANORAMA_WIDTH].astype(np.float32)
    rng = np.random.default_rng(2024)

    def waves(count: int, shortest: float, longest: float) -> np.ndarray:
        total = np.zeros_like(x)
        for _ in range(count):
            angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
            k = 2 * np.pi / rng.uniform(shortest, longest)
            total += np.sin(k * (np.cos(angle) * x + np.sin(angle) * y) + phase)
        return total / count

    clouds, fields, rows = waves(6, 50, 110), waves(8, 20, 60), np.sin(2 * np.pi * y / 14)
    sky = np.stack([110 + 70 * clouds, 150 + 60 * clouds, 225 + 25 * clouds], axis=-1)
    ground = np.stack([90 + 60 * fields + 12 * rows, 140 + 50 * fields, 60 + 40 * fields - 12 * rows], axis=-1)
    horizon = 120 + 22 * np.sin(x / 53.0) + 9 * np.sin(x / 17.0)
    return sky + np.clip(y - horizon + 0.5, 0.0, 1.0)[..., None] * (ground - sky)


def _long_offset(i: int) -> int:
    """The panorama's column at the frame's left edge."""
    return PAN_SPEED * min(max(i - _PAN_START, 0), _PAN_END - _PAN_START)


def render_long_frame(i: int) -> np.ndarray:
    """Frame `i` (0 <= i < LONG_FRAMES) of the long sample as uint8 RGB (HEIGHT, WIDTH, 3)."""
    offset = _long_offset(i)
    image = _panorama()[:, offset : offset + WIDTH].copy()
    _, move_start, move_end = LONG_STRETCHES[1]
    u = (min(max(i, FPS * move_start), FPS * move_end) - FPS * move_start) / (FPS * (move_end - move_start))
    if 0 < u < 1:  # the movers show only while they move, so the still stretches around them are the same
        bx, by = 80 + 220 * u, 200 - 90 * abs(np.sin(6 * np.pi * u))
        win = _window(bx, by, BALL_RADIUS)
        _paint(image[win], _disk(bx, by, BALL_RADIUS, win), np.array([220, 40, 40], np.float32))
        for phase, color in ((0.0, (30, 60, 200)), (np.pi, (250, 220, 60))):
            sx = 192 + 90 * np.cos(4 * np.pi * u + phase)
            sy = 144 + 60 * np.sin(4 * np.pi * u + phase)
            win = _window(sx, sy, SQUARE_HALF)
            _paint(image[win], _rect(sx, sy, SQUARE_HALF, SQUARE_HALF, win), np.array(color, np.float32))
    return np.round(np.clip(image, 0, 255)).astype(np.uint8)


def write_sample(path: Path, render=render_frame, num_frames: int = NUM_FRAMES, crf: int = 19) -> None:
    """Encode frames 0..num_frames-1 of `render` with fixed libx264 settings (single-threaded, bit-exact muxing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"crf": str(crf), "preset": "medium", "threads": "1"}
    with av.open(str(path), "w", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = 2 * FPS
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(render(i), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


if __name__ == "__main__":
    for target, args in ((OUT_DIR / FILE_NAME, ()), (OUT_DIR / LONG_FILE_NAME, (render_long_frame, LONG_FRAMES, 23))):
        write_sample(target, *args)
        print(f"wrote {target} ({target.stat().st_size / 1024:.0f} KiB)")
