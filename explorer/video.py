"""Video input: sample a few frames from a file or an upload as a square RGB clip.

Decoding uses PyAV. Long videos are sampled by seeking to a keyframe shortly before
each wanted frame instead of decoding everything, and only the sampled, already
resized frames are kept in memory; huge frames get fewer decoder threads, so that
an 8K video does not hold a frame per core, and frames over 8192x8192 are refused,
from the header or, where only the frames say so, by FFmpeg's decoders before they allocate.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SAMPLES_DIR = Path(__file__).resolve().parent / "assets" / "samples"
SAMPLES: dict[str, str] = {
    "Still and moving (generated)": "still_and_moving.mp4",
    "Big Buck Bunny (CC BY 3.0, Blender Foundation)": "bigbuckbunny.mp4",
    "Long: still, moving, panning (generated, 64 s)": "long_still_moving_pan.mp4",
}

PATCH = 16  # side of one token patch in pixels
MAX_FRAMES = 256
MAX_STRIDE = 10_000  # source frames between two sampled ones (at 60 fps, 2.8 minutes)
MAX_SIZE = 512  # 256 frames at 512 px is 200 MB of RGB: the bound on a clip's memory
# Larger frames are refused from the header, and FFmpeg's decoders (also those that read the first
# frames when the file is opened) are told to refuse them, whatever the header said: 8K (7680x4320) fits.
MAX_WIDTH = 8192
MAX_PIXELS = MAX_WIDTH * MAX_WIDTH
DECODER_OPTIONS = {"max_pixels": str(MAX_PIXELS)}
DEFAULT_FPS = 25.0
SEEK_GAP = 2.0  # seconds: jumps shorter than this are decoded through, not sought
# Each decoder thread holds a few frames: threads are capped so that one decoded frame per
# thread (counted at 3 bytes a pixel, enough for 10-bit 4:2:0) stays within this budget.
DECODE_MEMORY = 256 * 2**20
MAX_THREADS = 16
# Decoders that FFmpeg uses to render text files (by extension) as "video".
TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})
KINDS = {"audio": "audio", "subtitle": "subtitles"}  # stream types, as a message names them
HEAD = 16  # bytes read from the start of a file to recognise its kind
# (offset, bytes, name): how a file's first bytes name its container, for when it cannot be opened.
SIGNATURES = (
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (8, b"AVI ", "AVI"),
    (0, b"OggS", "Ogg"),
    (0, b"FLV\x01", "FLV"),
    (0, b"YUV4MPEG2", "Y4M"),
)


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
    check_params(frames, stride, size, start, max_seconds)
    deadline = time.monotonic() + max_seconds
    file, display, head = _source(source, name)
    with _open(file, display, head) as container:
        stream = _video_stream(container, display)
        reader = _Reader(container, stream, display, size, deadline)
        if not math.isnan(reader.duration) and start >= reader.duration:
            raise _past_end(display, start, reader.duration)
        return reader.clip(frames, stride, start)


def load_windows(
    source: str | os.PathLike,
    starts: Sequence[float],
    *,
    frames: int = 16,
    stride: int = 4,
    size: int = 224,
    max_seconds: float = 60.0,
) -> Iterator[Clip | VideoError]:
    """One clip per start time, as load_clip would give it, from one open file: a window that begins
    shortly after the last one ends is decoded on from there instead of seeking back to a keyframe.

    A window that cannot be read is yielded as its VideoError and the next one is tried; a file that
    cannot be opened raises it.
    """
    check_params(frames, stride, size, min(starts, default=0.0), max_seconds)
    file, display, head = _source(source, None)
    with _open(file, display, head) as container:
        reader = _Reader(container, _video_stream(container, display), display, size, math.inf)
        for start in starts:
            reader.deadline = time.monotonic() + max_seconds
            try:
                if not math.isnan(reader.duration) and start >= reader.duration:
                    raise _past_end(display, start, reader.duration)
                yield reader.clip(frames, stride, start)
            except VideoError as error:
                reader.restart()
                yield error


@dataclass(frozen=True)
class Probe:
    """What a video's header says, read without decoding."""

    duration: float  # seconds; from the packets' timestamps when the header has none
    fps: float


def probe(source: str | os.PathLike) -> Probe:
    """The duration and frame rate of a video file; VideoError when it cannot be used."""
    file, display, head = _source(source, None)
    with _open(file, display, head) as container:
        stream = _video_stream(container, display)
        fps, time_base = _rate(stream), stream.time_base or Fraction(1, 90000)
        duration = _duration(container, stream, time_base)
        if math.isnan(duration):  # no duration in the header: the last packet's end, found without decoding
            origin = float(stream.start_time * time_base) if stream.start_time else 0.0
            ends = [
                float((packet.pts + (packet.duration or 0)) * time_base) - origin
                for packet in container.demux(stream)
                if packet.pts is not None
            ]
            duration = max(ends) if ends else math.nan
        return Probe(duration=duration, fps=fps)


def check_params(frames: int, stride: int, size: int, start: float = 0.0, max_seconds: float = 60.0) -> None:
    """Raise VideoError naming the first sampling setting that cannot be used."""
    if not 1 <= frames <= MAX_FRAMES:
        raise VideoError(f"Frames must be between 1 and {MAX_FRAMES}, got {frames}.")
    if not 1 <= stride <= MAX_STRIDE:
        raise VideoError(f"Stride must be between 1 and {MAX_STRIDE:,}, got {stride}.")
    if not (math.isfinite(start) and start >= 0):
        raise VideoError(f"Start must be a time of 0 seconds or more, got {start}.")
    if not PATCH <= size <= MAX_SIZE or size % PATCH:
        raise VideoError(f"Size must be a multiple of {PATCH} from {PATCH} to {MAX_SIZE} px, got {size}.")
    if not max_seconds > 0:
        raise VideoError(f"The decoding time limit must be positive, got {max_seconds}.")


def _source(source: str | os.PathLike | bytes, name: str | None) -> tuple[str | io.BytesIO, str, bytes]:
    """What av.open reads, the name shown in messages, and the first bytes of the file."""
    if isinstance(source, bytes):
        display = name or "uploaded video"
        if not source:
            raise VideoError(f"{display}: the file is empty (0 bytes).")
        return io.BytesIO(source), display, source[:HEAD]
    path = Path(source)
    display = name or path.name
    if not path.is_file():
        raise VideoError(f"File not found: {path}")
    if path.stat().st_size == 0:
        raise VideoError(f"{display}: the file is empty (0 bytes).")
    with path.open("rb") as file:
        return str(path), display, file.read(HEAD)


def _open(file: str | io.BytesIO, display: str, head: bytes) -> av.container.InputContainer:
    """Open a container; garbled metadata text is replaced rather than refused."""
    try:
        return av.open(file, "r", metadata_errors="replace", options=DECODER_OPTIONS)
    except (av.FFmpegError, OSError) as exc:
        if head[4:8] == b"ftyp":  # an MP4/MOV whose index cannot be read
            raise VideoError(
                f"{display}: the MP4/MOV file is cut short or damaged; "
                f"its index (the moov atom) is missing or unreadable ({_reason(exc)})."
            ) from None
        kind = next((name for at, magic, name in SIGNATURES if head[at : at + len(magic)] == magic), None)
        if kind:
            raise VideoError(f"{display}: the {kind} file is cut short or damaged ({_reason(exc)}).") from None
        raise VideoError(f"{display}: not a readable video file ({_reason(exc)}).") from None


def _video_stream(container: av.container.InputContainer, display: str) -> av.video.stream.VideoStream:
    """The first video stream that moves (not cover art) and can be used, if it is neither text nor an image.

    Where no stream can be used, the first one is checked, so that the message names its problem.
    """
    streams = container.streams
    if not streams:
        raise VideoError(f"{display}: no stream could be read; the file is cut short or damaged.")
    cover = av.stream.Disposition.attached_pic
    videos = [s for s in streams.video if not s.disposition & cover]
    if not videos:
        found = sorted({KINDS.get(s.type, "other data") for s in streams if s.type != "video"})
        found += ["a cover image"] if streams.video else []
        raise VideoError(f"{display}: the file has no video stream (only {' and '.join(found)}).")
    stream = next((s for s in videos if _usable(s)), videos[0])
    codec = stream.codec_context
    if codec is None:
        raise VideoError(f"{display}: the video's codec is unknown or not supported by this FFmpeg build.")
    if codec.name in TEXT_CODECS:
        raise VideoError(f"{display}: a text file, not a video.")
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        raise VideoError(f"{display}: a still image ({codec.name.upper()}), not a video.")
    _check_size(display, codec.width, codec.height)
    return stream


def _usable(stream: av.video.stream.VideoStream) -> bool:
    """Whether a stream has a decoder and a frame size (where its header gives one) that can be sampled."""
    codec = stream.codec_context
    return codec is not None and _size_problem(codec.width, codec.height) is None


def _size_problem(width: int, height: int) -> str | None:
    """What is wrong with frames of this size: smaller than a patch, or over MAX_PIXELS. 0 (unknown) passes."""
    if width and height and min(width, height) < PATCH:
        return f"the video is {width}x{height} pixels, smaller than one {PATCH}x{PATCH} patch"
    if width * height > MAX_PIXELS:
        return (
            f"the video is {width}x{height} pixels, "
            f"more than the {MAX_WIDTH}x{MAX_WIDTH} ({MAX_PIXELS / 1e6:.0f} million) that can be decoded"
        )
    return None


def _check_size(display: str, width: int, height: int) -> None:
    problem = _size_problem(width, height)
    if problem:
        raise VideoError(f"{display}: {problem}.")


def _threads(width: int, height: int) -> int:
    """Decoder threads for frames of this size: all cores, fewer for huge frames."""
    cap = DECODE_MEMORY // (3 * width * height) if width and height else MAX_THREADS
    return max(1, min(os.cpu_count() or 1, MAX_THREADS, cap))


def _reason(exc: Exception) -> str:
    """The first line of an error's message, without ffmpeg's errno prefix or file name."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0].strip()


def _past_end(display: str, start: float, duration: float) -> VideoError:
    return VideoError(f"{display}: start {start:.2f} s is past the end (the video lasts {duration:.2f} s).")


def _rate(stream: av.video.stream.VideoStream) -> float:
    """Average frame rate, falling back to frame count over duration, then 25."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < float(rate) <= 1000:
            return float(rate)
    if stream.frames and stream.duration and stream.duration > 0 and stream.time_base:
        return stream.frames / float(stream.duration * stream.time_base)
    return DEFAULT_FPS


def _duration(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, time_base: Fraction
) -> float:
    """Seconds from the stream, else the container; nan if neither gives a positive duration."""
    if stream.duration and stream.duration > 0:
        return float(stream.duration * time_base)
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    return math.nan


class _Reader:
    """Decodes one video stream forward, seeking ahead where that is cheaper."""

    def __init__(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        display: str,
        size: int,
        deadline: float,
    ) -> None:
        width, height = stream.codec_context.width, stream.codec_context.height
        stream.thread_type = "AUTO"
        stream.thread_count = _threads(width, height)
        stream.codec_context.options = dict(DECODER_OPTIONS)
        self.container, self.stream, self.display, self.size = container, stream, display, size
        self.deadline = deadline  # time.monotonic() after which decoding gives up
        self.fps = _rate(stream)
        self.time_base = stream.time_base or Fraction(1, 90000)
        self.origin = float(stream.start_time * self.time_base) if stream.start_time else 0.0
        self.duration = _duration(container, stream, self.time_base)
        self.source_size = (width, height)  # replaced by the first frame's, as displayed
        self.decoded = 0  # frames decoded, all seeks included
        self.refused = ""  # why the decoder refused the last packet it refused, for the message when none decodes
        self.seek_to: float | None = None  # set by seek(), consumed by _frames()
        self.last_time = -math.inf  # time of the last decoded frame
        self.key_time = -math.inf  # time of the last decoded keyframe
        self.gop = 0.0  # longest keyframe interval seen so far
        self.playing: Iterator[tuple[float, av.VideoFrame]] | None = None  # the frames, where the last sample left them

    def clip(self, count: int, stride: int, start: float) -> Clip:
        """`count` frames from `start` on, the last repeated when the video ends early."""
        picked, times = self.sample(count, stride, start)
        padded = count - len(picked)
        picked += [picked[-1]] * padded
        times += [times[-1]] * padded
        return Clip(
            frames=np.stack(picked),
            fps=self.fps,
            times=np.asarray(times, dtype=np.float64),
            source=self.display,
            source_size=self.source_size,
            duration=self.duration,
            padded=padded,
        )

    def restart(self) -> None:
        """Forget where decoding is: the next sample seeks afresh."""
        self.playing = None

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
        ahead = start - tol - self.last_time  # how far the wanted start is past the last frame decoded
        if self.playing is None or not 0 < ahead <= max(SEEK_GAP, self.gop):
            self.playing = self._frames(start)
        for t, frame in self.playing:
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
                why = f" ({self.refused})" if self.refused else ""
                raise VideoError(f"{self.display}: no frame of the video could be decoded{why}.")
            end = self.duration if math.isfinite(self.duration) else self.last_time + 1 / self.fps
            raise _past_end(self.display, start, end)
        return picked, times

    def seek(self, target: float) -> None:
        """Make `_frames` go on from the last keyframe at or before `target`."""
        self.seek_to = target

    def _frames(self, start: float) -> Iterator[tuple[float, av.VideoFrame]]:
        """Yield (seconds from video start, frame) in presentation order."""
        packets = self.container.demux()
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
            self.container.seek(int((target + self.origin) / self.time_base), stream=self.stream, backward=True)
        except av.FFmpegError:
            pass
        self.last_time = self.key_time = -math.inf
        return self.container.demux()

    def _decode(self, packets: Iterator[av.Packet]) -> Iterator[av.VideoFrame]:
        """Decode the stream's packets, skipping corrupt ones; a demuxer error ends the video.

        `packets` holds every stream's packets, so that the time limit is checked even
        while a file has nothing but other streams' packets for a long stretch.
        """
        try:
            for packet in packets:
                if time.monotonic() >= self.deadline:
                    raise VideoError(
                        f"{self.display}: decoding took too long; "
                        "try an earlier start, fewer frames or a smaller stride."
                    )
                if packet.stream.index != self.stream.index:  # (stream_index is 0 in flush packets)
                    continue
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:  # a corrupt packet: the decoder resyncs on a later one
                    self.refused = _reason(exc)
                    continue
                for frame in frames:
                    self.decoded += 1
                    yield frame
        except (av.FFmpegError, IndexError) as exc:  # IndexError: PyAV, on a stream found mid-file
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
        """To RGB with the shorter side shrunk to `size` at most; centre-crop, enlarge, rotate.

        Cropping comes before any enlargement, so no intermediate image is larger than
        the decoded frame, whatever the aspect ratio.
        """
        w, h = frame.width, frame.height
        turns = _quarter_turns(frame.rotation)
        if first:
            self.source_size = (h, w) if turns % 2 else (w, h)
            _check_size(self.display, *self.source_size)
        shrink = min(1.0, self.size / min(w, h))
        rgb = frame.reformat(
            width=max(1, round(w * shrink)),
            height=max(1, round(h * shrink)),
            format="rgb24",
            interpolation="AREA",
        ).to_ndarray()
        side = min(rgb.shape[:2])
        top, left = (rgb.shape[0] - side) // 2, (rgb.shape[1] - side) // 2
        square = rgb[top : top + side, left : left + side]
        if side != self.size:
            square = _enlarge(square, self.size)
        return np.ascontiguousarray(np.rot90(square, turns))


def _quarter_turns(degrees: float) -> int:
    """Quarter turns for a display rotation; none for a degenerate display matrix (PyAV: INT_MIN, for NaN)."""
    return round(degrees / 90) % 4 if degrees and abs(degrees) <= 360 else 0


def _enlarge(square: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a square RGB image to size x size."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(square), format="rgb24")
    return frame.reformat(width=size, height=size, interpolation="BILINEAR").to_ndarray()
