"""A video cut into windows: where each one starts, and its frames, decoded in order from one open file."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from explorer.video import VideoError, load_windows, probe

CHUNK = 16  # windows decoded in one go from one open file: the unit of work handed to a decoder


@dataclass(frozen=True)
class Window:
    """One window of one video: the rows of a scan are keyed by (video, index)."""

    video: str
    index: int
    start: float  # seconds
    end: float
    label: str | None = None


def starts(duration: float, fps: float, frames: int, stride: int, hop: float | None, cap: int | None) -> list[float]:
    """Start times of the windows that fit in the video: every `hop` seconds (default: back to back).

    A window spans frames x stride source frames; a video shorter than one window gives one window (its last
    frame repeated, as the explorer does). Times are rounded to microseconds so that every engine plans alike.
    """
    span = frames * stride / fps
    step = hop or span
    count = 1 if math.isnan(duration) else max(1, int((duration - span + 0.5 / fps) // step) + 1)
    if cap is not None:
        count = min(count, cap)
    return [round(k * step, 6) for k in range(count)]


def plan(video: str, label: str | None, frames: int, stride: int, hop: float | None, cap: int | None) -> list[Window]:
    """The video's windows; VideoError when its header cannot be read."""
    info = probe(video)
    span = frames * stride / info.fps
    last = info.duration if not math.isnan(info.duration) else math.inf
    return [
        Window(video, index, start, round(min(start + span, last), 6), label)
        for index, start in enumerate(starts(info.duration, info.fps, frames, stride, hop, cap))
    ]


def chunks(windows: Sequence[Window]) -> list[list[Window]]:
    """Consecutive windows of one video, CHUNK at most: each is decoded from one open file."""
    out: list[list[Window]] = []
    for window in windows:
        if out and out[-1][-1].video == window.video and len(out[-1]) < CHUNK:
            out[-1].append(window)
        else:
            out.append([window])
    return out


def decode(chunk: Sequence[Window], frames: int, stride: int, size: int) -> Iterator[tuple[Window, np.ndarray | str]]:
    """Each window with its frames (uint8 T x S x S x 3), or the reason it could not be read."""
    done = 0
    try:
        clips = load_windows(chunk[0].video, [w.start for w in chunk], frames=frames, stride=stride, size=size)
        for window, clip in zip(chunk, clips, strict=True):
            yield window, (str(clip) if isinstance(clip, VideoError) else clip.frames)
            done += 1
    except Exception as error:  # a bad file is an error row of the scan, whatever broke
        reason = str(error) if isinstance(error, VideoError) else f"{type(error).__name__}: {error}"
        for window in chunk[done:]:
            yield window, reason
