"""Exports of the token overlay: a PNG of any picture, and the overlay over time as an animated GIF or an
H.264 MP4 that browsers play (no Streamlit; the app, the CLI and the Python API share these).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from tempfile import TemporaryDirectory

import av
import numpy as np
from PIL import Image

from .overlays import Cell, draw_frames
from .trace import Trace

MAX_FPS = 50.0  # GIF delays count hundredths of a second, and browsers slow delays under 0.02 s down to 0.1 s
MP4_OPTIONS = {"preset": "veryfast", "crf": "20"}  # crf 20 keeps one-pixel cell outlines sharp


def overlay_frames(
    frames: np.ndarray,
    trace: Trace,
    layer: int,
    style: str = "kept",
    value: str | None = None,
    focus: Cell | None = None,
) -> list[np.ndarray]:
    """The overlay of `layer` on every frame of the clip, each RGB uint8 and labelled with its frame and t'.

    Every frame rather than one per tubelet, so that the animation plays the clip's motion at its own
    rate; the two frames of a tubelet share one token map, as they do in the model.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be RGB uint8 of shape (frames, height, width, 3), got {frames.dtype} {frames.shape}"
        )
    tf, ph, pw = trace.cell
    expected = (trace.grid[0] * tf, trace.grid[1] * ph, trace.grid[2] * pw)
    if frames.shape[:3] != expected:
        raise ValueError(
            f"frames {frames.shape[:3]} do not match the trace, which covers {expected} (frames, height, width)"
        )
    if not 0 <= layer <= trace.layers:
        raise ValueError(f"layer must be between 0 and {trace.layers}, got {layer}")
    return draw_frames(frames, trace, layer, style, value, focus=focus)


def playback_fps(times: Sequence[float] | np.ndarray) -> float:
    """The rate of the sampled frames (their timestamps in seconds), so that an animation lasts as long as
    the stretch of video it shows; within 1 to MAX_FPS, and 8 when the times say nothing."""
    times = np.asarray(times, dtype=np.float64)
    span = float(times[-1] - times[0]) if times.size > 1 else 0.0
    if not math.isfinite(span) or span <= 0:
        return 8.0
    return float(np.clip((times.size - 1) / span, 1.0, MAX_FPS))


def png_bytes(image: np.ndarray, compress_level: int = 6) -> bytes:
    """An RGB uint8 image as a PNG file (zlib's `compress_level`, 0-9: 1 is three times faster than the default
    6 and a third larger)."""
    _check_images([image])
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def gif_bytes(images: Sequence[np.ndarray], fps: float) -> bytes:
    """An animated GIF that loops forever, one image per frame (RGB uint8, all the same size).

    Each frame gets its own 256-colour palette, by octree: median cut (Pillow's default) takes 100 times
    longer on a heat overlay's many colours. Pillow merges a frame identical to the one before into it
    (adding up their durations), so a still stretch may hold fewer frames than images.
    """
    _check_images(images)
    delay = round(1000 / _check_fps(fps))
    pictures = [Image.fromarray(image).quantize(256, method=Image.Quantize.FASTOCTREE) for image in images]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=delay, loop=0)
    return buffer.getvalue()


def mp4_bytes(images: Sequence[np.ndarray], fps: float) -> bytes:
    """An H.264 MP4 that browsers play: yuv420p, the index (moov) before the data (faststart), so playback
    starts before the whole file has arrived. 4:2:0 needs an even width and height, so an odd one gets one
    more row or column, a copy of the last.

    The MP4 muxer moves the index to the front by reading its own output back, which it cannot do in a
    memory buffer, so the file is written to a temporary folder, read once and deleted.
    """
    height, width = _check_images(images)
    rate = Fraction(_check_fps(fps)).limit_denominator(1001)
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    with TemporaryDirectory() as folder:
        path = Path(folder) / "overlay.mp4"
        with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=rate, options=MP4_OPTIONS)
            stream.height, stream.width = height + height % 2, width + width % 2
            stream.pix_fmt = "yuv420p"
            for image in images:
                frame = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(np.pad(image, pad, mode="edge")), format="rgb24"
                )
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        return path.read_bytes()


def _check_images(images: Sequence[np.ndarray]) -> tuple[int, int]:
    """(height, width) of a non-empty sequence of RGB uint8 images of one size; ValueError otherwise."""
    if len(images) == 0:
        raise ValueError("there are no images to encode")
    first = np.asarray(images[0])
    for image in images:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                "images must be RGB uint8 arrays of shape (height, width, 3), got "
                f"{getattr(image, 'dtype', type(image).__name__)} {np.shape(image)}"
            )
        if image.shape != first.shape:
            raise ValueError(f"images must all have one size, got {first.shape[:2]} and {image.shape[:2]}")
    if min(first.shape[:2]) < 2:
        raise ValueError(f"images must be at least 2 x 2 pixels, got {first.shape[:2]}")
    return first.shape[0], first.shape[1]


def _check_fps(fps: float) -> float:
    try:
        rate = float(fps)
    except (TypeError, ValueError):
        rate = math.nan
    if not 0 < rate <= MAX_FPS:  # NaN fails too
        raise ValueError(f"fps must be a number above 0 and at most {MAX_FPS:g}, got {fps!r}")
    return rate
