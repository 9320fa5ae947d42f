"""Shared helpers for tests: small synthetic videos written with PyAV."""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction

import av
import numpy as np
import pytest

INDEX_GRID = 4  # index frames carry a 4x4 grid of black/white cells: 16 bits


@pytest.fixture(autouse=True)
def cold_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """App tests (AppTest) start without the server's warm-up, whose tour runs in the background would count among
    a test's runs and take its CPU; tests marked `warm` (and every browser test: a real server) keep it."""
    if request.node.get_closest_marker("warm") is None:
        monkeypatch.setattr("explorer.ui.warmup.warm_server", lambda: None)


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float | Fraction = 25,
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
    options: dict[str, str] | None = None,
) -> None:
    """Encode RGB uint8 frames (H, W, 3), or RGBA (H, W, 4) for alpha formats.

    `gop` sets the keyframe interval in frames. libx264 defaults to crf 12 so small
    test patterns survive compression.
    """
    opts = {"crf": "12", "preset": "ultrafast"} if codec == "libx264" else {}
    opts.update(options or {})
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    with av.open(os.fspath(path), "w") as container:
        stream = None
        for image in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=rate, options=opts)
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = pix_fmt
                if gop is not None:
                    stream.codec_context.gop_size = gop
            fmt = "rgba" if image.shape[2] == 4 else "rgb24"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
            container.mux(stream.encode(frame))
        if stream is not None:
            container.mux(stream.encode(None))


def write_audio(path: str | os.PathLike, seconds: float = 1.0, codec: str = "aac") -> None:
    """Write an audio-only file (a 440 Hz tone)."""
    rate = 44100
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        size = stream.codec_context.frame_size or 1024
        for pos in range(0, len(tone), size):
            chunk = tone[pos : pos + size]
            chunk = np.pad(chunk, (0, size - len(chunk)))[None, :]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = pos
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def index_frame(i: int, width: int = 64, height: int = 64) -> np.ndarray:
    """A frame whose 4x4 grid of black/white cells spells `i` in binary (MSB first)."""
    bits = [(i >> (15 - b)) & 1 for b in range(INDEX_GRID * INDEX_GRID)]
    cells = np.array(bits, dtype=np.uint8).reshape(INDEX_GRID, INDEX_GRID) * 255
    rows = np.linspace(0, INDEX_GRID, height, endpoint=False).astype(int)
    cols = np.linspace(0, INDEX_GRID, width, endpoint=False).astype(int)
    return np.repeat(cells[rows][:, cols][:, :, None], 3, axis=2)


def read_index(image: np.ndarray) -> int:
    """Inverse of `index_frame` on a square (possibly resized) frame."""
    h, w = image.shape[:2]
    value = 0
    for r in range(INDEX_GRID):
        for c in range(INDEX_GRID):
            y0, y1 = (r * h) // INDEX_GRID, ((r + 1) * h) // INDEX_GRID
            x0, x1 = (c * w) // INDEX_GRID, ((c + 1) * w) // INDEX_GRID
            dy, dx = (y1 - y0) // 4, (x1 - x0) // 4
            cell = image[y0 + dy : y1 - dy, x0 + dx : x1 - dx]
            value = (value << 1) | int(cell.mean() > 127)
    return value


def write_index_video(
    path: str | os.PathLike, count: int, fps: float | Fraction = 25, size: int = 64, **kwargs
) -> None:
    """A square video whose frame i shows i (see `index_frame`)."""
    write_video(path, (index_frame(i, size, size) for i in range(count)), fps, **kwargs)


@pytest.fixture
def index_video(tmp_path):
    """Factory: index_video(count, fps=25, name="index.mp4", **write_video kwargs) -> path."""

    def make(count: int, fps: float | Fraction = 25, name: str = "index.mp4", **kwargs):
        path = tmp_path / name
        write_index_video(path, count, fps, **kwargs)
        return path

    return make


def pytest_terminal_summary(terminalreporter) -> None:
    """List how each corpus video ended (tests record it with record_property("corpus", ...))."""
    rows = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for key, value in report.user_properties
        if key == "corpus"
    ]
    if rows:
        terminalreporter.section(f"bad and odd videos ({len(rows)} rows)")
        for name, outcome in rows:
            terminalreporter.write_line(f"{name:40} {outcome}")
