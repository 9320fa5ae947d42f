"""Clips with known answers, built in memory (no decoding)."""

from __future__ import annotations

from collections.abc import Iterable

import av
import numpy as np
import pytest

from explorer.video import Clip

GREY = 128


def make_clip(frames: np.ndarray, source: str = "synthetic") -> Clip:
    count = frames.shape[0]
    return Clip(
        frames=np.ascontiguousarray(frames),
        fps=25.0,
        times=np.arange(count) / 25.0,
        source=source,
        source_size=(frames.shape[2], frames.shape[1]),
        duration=count / 25.0,
    )


def still_frames(frames: int = 16, size: int = 224, seed: int = 0) -> np.ndarray:
    """One textured image repeated: nothing moves."""
    image = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return np.repeat(image[None], frames, axis=0)


def moving_square_frames(frames: int = 16, size: int = 224, row: int = 5) -> np.ndarray:
    """A white 16 x 16 square on grey, in grid row `row`, at column j during frames 2j and 2j+1."""
    video = np.full((frames, size, size, 3), GREY, dtype=np.uint8)
    for f in range(frames):
        col = f // 2
        video[f, row * 16 : (row + 1) * 16, col * 16 : (col + 1) * 16] = 255
    return video


def has_encoder(codec: str) -> bool:
    """Whether the local FFmpeg can encode with this codec."""
    try:
        av.codec.Codec(codec, "w")
    except av.codec.codec.UnknownCodecError:
        return False
    return True


def can_make(case) -> bool:
    """Whether this FFmpeg can make a corpus case (one with .needs, the encoder it needs, or None)."""
    return case.needs is None or has_encoder(case.needs)


def encoder_params(cases: Iterable) -> list:
    """pytest params of corpus cases (each with .name and .needs), skipped with the reason where this FFmpeg
    cannot make them."""
    return [
        pytest.param(
            case,
            id=case.name,
            marks=[] if can_make(case) else [pytest.mark.skip(reason=f"this FFmpeg has no {case.needs} encoder")],
        )
        for case in cases
    ]
