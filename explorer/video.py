"""Video input: sample a few frames from a file or an upload as a square RGB clip.

Decoding uses PyAV. Long videos are sampled by seeking to a keyframe shortly before
each wanted frame instead of decoding everything, and only the sampled, already
resized frames are kept in memory.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "samples"
SAMPLES: dict[str, str] = {
    "Still and moving (generated)": "still_and_moving.mp4",
    "Big Buck Bunny (CC BY 3.0, Blender Foundation)": "bigbuckbunny.mp4",
}

PATCH = 16  # side of one token patch in pixels
MAX_FRAMES = 256
MAX_SIZE = 512  # 256 frames at 512 px is 200 MB of RGB: the bound on a clip's memory
DEFAULT_FPS = 25.0
SEEK_GAP = 2.0  # seconds: jumps shorter than this are decoded through, not sought
# Decoders that FFmpeg uses to render text files (by extension) as "video".
TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})


class VideoError(ValueError):
    """A video could not be used; the message names the problem in one line for a user."""


@dataclass(frozen=True)
class Clip:
    """Frames sampled from a video, resized and centre-cropped to size x size."""

    frames: np.ndarray  # uint8 (T, S, S, 3) RGB, C-contiguous
    fps: float  # source frame rate (average)
    times: np.ndarray  # float64 (T,) seconds from the start of the video
    source: str  # display name
    source_size: tuple[int, int]  # (width, height) of the source video, as displayed
    duration: float  # source duration in seconds (nan if unknown)
    padded: int = 0  # trailing repeats of the last frame because the video ended early

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def sample_path(name: str) -> Path:
    """Path of a bundled sample by its display name (a key of SAMPLES)."""
    return SAMPLES_DIR / SAMPLES[name]


def load_clip(
    source: str | os.PathLike | bytes,
    *,
    frames: int = 16,
    stride: int = 4,
    start: float = 0.0,
    size: int = 224,
    name: str | None = None,
    max_seconds: float = 60.0,
) -> Clip:
    """Sample `frames` frames, one every `stride` source frames, from `start` seconds on.

    `source` is a path or the raw bytes of an uploaded file. Raises VideoError with a
    one-line message when the video or the parameters cannot be used.
    """
    _check_params(frames, stride, start, size, max_seconds)
    if isinstance(source, bytes):
        display = name or "uploaded video"
        if not source:
            raise VideoError(f"{display}: the file is empty (0 bytes).")
        file: str | io.BytesIO = io.BytesIO(source)
    else:
        path = Path(source)
        display = name or path.name
        if not path.is_file():
            raise VideoError(f"File not found: {path}")
        if path.stat().st_size == 0:
            raise VideoError(f"{display}: the file is empty (0 bytes).")
        file = str(path)

    try:
        container = av.open(file, "r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"{display}: not a readable video file ({_reason(exc)}).") from None
    with container:
        if not container.streams.video:
            raise VideoError(f"{display}: the file has no video stream.")
        if container.streams.video[0].codec_context.name in TEXT_CODECS:
            raise VideoError(f"{display}: a text file, not a video.")
        reader = _Reader(container, container.streams.video[0], display, size, max_seconds)
        if not math.isnan(reader.duration) and start >= reader.duration:
            raise _past_end(display, start, reader.duration)
        picked, times = reader.sample(frames, stride, start)

    padded = frames - len(picked)
    picked += [picked[-1]] * padded
    times += [times[-1]] * padded
    return Clip(
        frames=np.stack(picked),
        fps=reader.fps,
        times=np.asarray(times, dtype=np.float64),
        source=display,
        source_size=reader.source_size,
        duration=reader.duration,
        padded=padded,
    )


def _check_params(frames: int, stride: int, start: float, size: int, max_seconds: float) -> None:
    if not 1 <= frames <= MAX_FRAMES:
        raise VideoError(f"Frames must be between 1 and {MAX_FRAMES}, got {frames}.")
    if stride < 1:
        raise VideoError(f"Stride must be at least 1, got {stride}.")
    if not (math.isfinite(start) and start >= 0):
        raise VideoError(f"Start must be a time of 0 seconds or more, got {start}.")
    if not PATCH <= size <= MAX_SIZE or size % PATCH:
        raise VideoError(f"Size must be a multiple of {PATCH} from {PATCH} to {MAX_SIZE} px, got {size}.")
    if not max_seconds > 0:
        raise VideoError(f"The decoding time limit must be positive, got {max_seconds}.")


def _reason(exc: Exception) -> str:
    """The first line of an error's message, without ffmpeg's errno prefix or file name."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0].strip()


def _too_small(display: str, width: int, height: int) -> VideoError:
    return VideoError(
        f"{display}: the video is {width}x{height} pixels, "
        f"smaller than one {PATCH}x{PATCH} patch."
    )


def _past_end(display: str, start: float, duration: float) -> VideoError:
    return VideoError(
        f"{display}: start {start:.2f} s is past the end (the video lasts {duration:.2f} s)."
    )


def _rate(stream: av.video.stream.VideoStream) -> float:
    """Average frame rate, falling back to frame count over duration, then 25."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < float(rate) <= 1000:
            return float(rate)
    if stream.frames and stream.duration and stream.time_base:
        return stream.frames / float(stream.duration * stream.time_base)
    return DEFAULT_FPS


class _Reader:
    """Decodes one video stream forward, seeking ahead where that is cheaper."""

    def __init__(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        display: str,
        size: int,
        max_seconds: float,
    ) -> None:
        width, height = stream.codec_context.width, stream.codec_context.height
        if width and height and min(width, height) < PATCH:
            raise _too_small(display, width, height)
        stream.thread_type = "AUTO"
        self.container, self.stream, self.display, self.size = container, stream, display, size
        self.deadline = time.monotonic() + max_seconds
        self.fps = _rate(stream)
        self.time_base = stream.time_base or Fraction(1, 90000)
        self.origin = float(stream.start_time * self.time_base) if stream.start_time else 0.0
        if stream.duration:
            self.duration = float(stream.duration * self.time_base)
        elif container.duration:
            self.duration = container.duration / av.time_base
        else:
            self.duration = math.nan
        self.source_size = (width, height)  # replaced by the first frame's, as displayed
        self.decoded = 0  # frames decoded, all seeks included
        self.seek_to: float | None = None  # set by seek(), consumed by _frames()
        self.last_time = -math.inf  # time of the last decoded frame
        self.key_time = -math.inf  # time of the last decoded keyframe
        self.gop = 0.0  # longest keyframe interval seen so far

    def sample(self, count: int, stride: int, start: float) -> tuple[list[np.ndarray], list[float]]:
        """Pick the first frame at or after each target time (half a frame of tolerance).

        Targets are the first frame at or after `start`, then every `stride / fps`
        seconds. Jumps ahead are sought only when longer than both SEEK_GAP and the
        keyframe spacing seen so far, so a seek cannot land far behind where decoding
        already is.
        """
        tol = 0.5 / self.fps
        picked: list[np.ndarray] = []
        times: list[float] = []
        target = start
        for t, frame in self._frames(start):
            if t < target - tol:
                continue
            image = self._to_rgb(frame, first=not picked)
            while len(picked) < count and t >= target - tol:
                picked.append(image)
                times.append(t)
                target = times[0] + len(picked) * stride / self.fps
            if len(picked) == count:
                break
            if target - t > max(SEEK_GAP, self.gop, t - self.key_time):
                self.seek(target)
        if not picked:
            if not self.decoded:
                raise VideoError(f"{self.display}: no frame of the video could be decoded.")
            end = self.duration if math.isfinite(self.duration) else self.last_time + 1 / self.fps
            raise _past_end(self.display, start, end)
        return picked, times

    def seek(self, target: float) -> None:
        """Make `_frames` go on from the last keyframe at or before `target`."""
        self.seek_to = target

    def _frames(self, start: float) -> Iterator[tuple[float, av.VideoFrame]]:
        """Yield (seconds from video start, frame) in presentation order."""
        packets = self.container.demux(self.stream)
        self.seek_to = start if start > 0 else None
        backoff = 0.0
        while True:
            wanted, self.seek_to = self.seek_to, None
            if wanted is not None:
                point = max(0.0, wanted - backoff)
                packets = self._seek_packets(point)
            for frame in self._decode(packets):
                t = self._timestamp(frame)
                if wanted is not None:
                    if t > wanted + 0.5 / self.fps and point > 0:
                        # The seek overshot (a poor index): retry from further back.
                        backoff = max(SEEK_GAP, 2 * backoff)
                        self.seek_to = wanted
                        break
                    wanted, backoff = None, 0.0
                yield t, frame
                if self.seek_to is not None:
                    break
            else:
                return

    def _seek_packets(self, target: float) -> Iterator[av.Packet]:
        """Seek to a keyframe at or before `target`; if that fails, go on from here."""
        try:
            self.container.seek(
                int((target + self.origin) / self.time_base), stream=self.stream, backward=True
            )
        except av.FFmpegError:
            pass
        self.last_time = self.key_time = -math.inf
        return self.container.demux(self.stream)

    def _decode(self, packets: Iterator[av.Packet]) -> Iterator[av.VideoFrame]:
        """Decode packets, skipping corrupt ones; a demuxer error ends the video."""
        try:
            for packet in packets:
                if time.monotonic() >= self.deadline:
                    raise VideoError(
                        f"{self.display}: decoding took too long; "
                        "try an earlier start, fewer frames or a smaller stride."
                    )
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    continue
                for frame in frames:
                    self.decoded += 1
                    yield frame
        except av.FFmpegError as exc:
            if not self.decoded:
                message = f"{self.display}: the video cannot be decoded ({_reason(exc)})."
                raise VideoError(message) from None

    def _timestamp(self, frame: av.VideoFrame) -> float:
        """Seconds from the start of the video; also tracks the keyframe spacing."""
        if frame.pts is not None:
            t = float(frame.pts * self.time_base) - self.origin
        else:
            t = max(self.last_time + 1 / self.fps, 0.0)
        if frame.key_frame:
            if self.key_time > -math.inf:
                self.gop = max(self.gop, t - self.key_time)
            self.key_time = t
        self.last_time = t
        return t

    def _to_rgb(self, frame: av.VideoFrame, first: bool) -> np.ndarray:
        """Scale so the shorter side is `size` while converting to RGB, centre-crop, rotate."""
        w, h = frame.width, frame.height
        turns = round(frame.rotation / 90) % 4 if frame.rotation else 0
        if first:
            self.source_size = (h, w) if turns % 2 else (w, h)
            if min(w, h) < PATCH:
                raise _too_small(self.display, *self.source_size)
        scale = self.size / min(w, h)
        out_w, out_h = max(self.size, round(w * scale)), max(self.size, round(h * scale))
        rgb = frame.reformat(
            width=out_w,
            height=out_h,
            format="rgb24",
            interpolation="AREA" if scale < 1 else "BILINEAR",
        ).to_ndarray()
        top, left = (out_h - self.size) // 2, (out_w - self.size) // 2
        rgb = rgb[top : top + self.size, left : left + self.size]
        return np.ascontiguousarray(np.rot90(rgb, turns))
