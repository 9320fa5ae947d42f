"""Bad and odd videos, all generated here: each gives a clip or one clear VideoError line.

Every corpus file goes through the one decode path (`load_clip`), the CLI (exit 0 or 2, one
`error:` line, no traceback) and the app (st.error or the analysis, never an exception).
Huge, long and pathological files have tests of their own that bound memory and time.
`pytest` lists how each corpus file ended at the end of the run.
"""

from __future__ import annotations

import functools
import io
import json
import re
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from explorer.cli import main
from explorer.ui.sidebar import UPLOAD_TYPES
from explorer.video import Clip, VideoError, load_clip
from tests.clips import can_make, encoder_params
from tests.conftest import index_frame, read_index, write_audio, write_index_video, write_video

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
FRAMES, SIZE = 8, 112  # what the CLI and the app are run with here
CLI_ARGS = ["--model", "tiny", "--frames", str(FRAMES), "--size", str(SIZE), "--device", "cpu"]
COLOR = np.array([200, 120, 40], np.uint8)


# --- writers ------------------------------------------------------------------------------


@functools.cache
def valid(suffix: str = ".mp4") -> bytes:
    """A valid file: 40 index frames, 64x64 H.264, a keyframe every 10; damaged copies start here."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"valid{suffix}"
        write_index_video(path, 40, gop=10)
        return path.read_bytes()


def box(data: bytes, kind: bytes) -> tuple[int, int]:
    """Start and end of the payload of the first top-level MP4 box of this kind."""
    start = data.index(kind) - 4
    return start + 8, start + int.from_bytes(data[start : start + 4], "big")


def fuzzed(suffix: str, seed: int, flips: int, region: bytes = b"") -> bytes:
    """valid(suffix) with `flips` random bytes changed, anywhere or in one MP4 box
    (moov: the index, mdat: the frames)."""
    data = bytearray(valid(suffix))
    lo, hi = box(data, region) if region else (0, len(data))
    rng = np.random.default_rng(seed)
    for pos in rng.integers(lo, hi, flips):
        data[pos] ^= int(rng.integers(1, 256))
    return bytes(data)


def zeroed_frames() -> bytes:
    """valid() with its index intact and all its frame data zeroed."""
    data = bytearray(valid())
    lo, hi = box(data, b"mdat")
    data[lo:hi] = bytes(hi - lo)
    return bytes(data)


def negative_duration() -> bytes:
    """valid(".mkv") with its Segment Duration (EBML id 0x4489, an 8-byte float) made negative."""
    data = bytearray(valid(".mkv"))
    at = data.index(b"\x44\x89") + 3
    assert data[at - 1] == 0x88, "an 8-byte float"
    data[at : at + 8] = struct.pack(">d", -1600.0)
    return bytes(data)


def zipped() -> bytes:
    """A zip archive holding valid()."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("clip.mp4", valid())
    return buffer.getvalue()


def solid(width: int, height: int, channels: int = 3) -> np.ndarray:
    """An image of COLOR, with alpha 100 (half of it 0) when it has four channels."""
    image = np.zeros((height, width, channels), np.uint8)
    image[..., :3] = COLOR
    if channels == 4:
        image[..., 3] = 100
        image[:, : width // 2, 3] = 0
    return image


def striped(width: int, height: int) -> np.ndarray:
    """Red, green, blue thirds along the long side: a centre crop sees only green."""
    image = np.zeros((height, width, 3), np.uint8)
    long = max(width, height)
    for k in range(3):
        part = slice(k * long // 3, (k + 1) * long // 3)
        (image[:, part] if width > height else image[part])[..., k] = 255
    return image


def write_audio_with_cover(path: Path) -> None:
    """AAC audio with a JPEG cover image: a video stream that is only an attached picture."""
    rate = 44100
    with av.open(str(path), "w") as container:
        cover = container.add_stream("mjpeg")
        cover.width, cover.height, cover.pix_fmt = 64, 64, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        audio = container.add_stream("aac", rate=rate, layout="mono")
        for packet in cover.encode(av.VideoFrame.from_ndarray(solid(64, 64), format="rgb24")):
            container.mux(packet)
        for packet in cover.encode(None):
            container.mux(packet)
        samples = audio.codec_context.frame_size
        for pos in range(0, rate, samples):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, samples), np.float32), format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, pos
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))


VFR_MS = np.cumsum([0] + [40, 40, 1000, 20, 20, 300, 2000, 10] * 5).tolist()  # 41 frames, 17 s


def write_vfr(path: Path) -> None:
    """Frame k (an index frame) shown from VFR_MS[k] milliseconds on: gaps from 10 ms to 2 s."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", options={"crf": "12", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for k, ms in enumerate(VFR_MS):
            frame = av.VideoFrame.from_ndarray(index_frame(k), format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


MARKED = np.zeros((32, 64, 3), np.uint8)
MARKED[:10, 16:26] = 255  # a mark in the top-left corner of the centre square


def write_rotated(angle: int) -> Callable[[Path], None]:
    """MARKED (64x32) with a display matrix that rotates it by `angle` degrees."""

    def write(path: Path) -> None:
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
            stream.set_display_rotation(angle)
            for _ in range(3):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(MARKED, format="rgb24")))
            container.mux(stream.encode(None))

    return write


# --- checks on what loaded (each gets the clip and the file) ------------------------------------


def check_padded(clip: Clip, path: Path) -> None:
    assert clip.padded == FRAMES - 1 and np.all(clip.frames == clip.frames[0])


def check_green_centre(clip: Clip, path: Path) -> None:
    """The centre crop of a striped frame is its green third, enlarged."""
    mean = clip.frames[:, 8:-8, 8:-8].reshape(-1, 3).mean(axis=0)
    assert mean[1] > 200 and mean[0] < 40 and mean[2] < 40, mean


def check_color(clip: Clip, path: Path) -> None:
    np.testing.assert_allclose(clip.frames.reshape(-1, 3).mean(axis=0), COLOR, atol=6)


def check_gray(clip: Clip, path: Path) -> None:
    mean = clip.frames.reshape(-1, 3).mean(axis=0)
    assert np.ptp(mean) < 2 and 100 < mean[0] < 160, mean


def check_vfr(clip: Clip, path: Path) -> None:
    """Each sampled frame is the one on screen at its time, and times never go back."""
    assert np.all(np.diff(clip.times) >= 0) and clip.padded == 0
    for frame, t in zip(clip.frames, clip.times):
        assert VFR_MS[read_index(frame)] == round(t * 1000)


def check_half_light(clip: Clip, path: Path) -> None:
    frame = clip.frames[0].mean(axis=2)
    assert frame[: SIZE // 3].min() > 200 and frame[-SIZE // 3 :].max() < 40


def check_indices(*expected: int) -> Callable[[Clip, Path], None]:
    """The index frames sampled are these."""

    def check(clip: Clip, path: Path) -> None:
        assert [read_index(frame) for frame in clip.frames] == list(expected)

    return check


def tkhd_matrix(path: Path) -> tuple[float, float, float, float]:
    """(a, b, c, d) of the MP4 track header's display matrix (16.16 fixed point)."""
    data = path.read_bytes()
    at = data.index(b"tkhd") + 4
    assert data[at] == 0, "a version 0 track header"
    at += 40  # version, flags, times, track id, duration, layer, volume
    a, b, _, c, d = struct.unpack(">5i", data[at : at + 20])
    return a / 65536, b / 65536, c / 65536, d / 65536


def check_rotation(clip: Clip, path: Path) -> None:
    """The mark lands where the file's own display matrix puts it, whatever FFmpeg calls
    the angle (QuickTime: x' = a x + c y, y' = b x + d y, with y pointing down)."""
    a, b, c, d = tkhd_matrix(path)
    x, y = -1, -1  # the mark: top-left of the centre
    shown_x, shown_y = a * x + c * y, b * x + d * y
    frame = clip.frames[0].mean(axis=2)
    half = SIZE // 2
    rows = slice(0, half) if shown_y < 0 else slice(half, None)
    cols = slice(0, half) if shown_x < 0 else slice(half, None)
    mark = frame[rows, cols]
    assert mark.mean() > 40 and frame.mean() < 0.3 * mark.mean()
    assert clip.source_size == ((32, 64) if abs(b) == 1 else (64, 32))


# --- the corpus ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One corpus file: how to write it, and what load_clip must make of it."""

    name: str
    write: Callable[[Path], None]
    error: str | None = None  # a regex the VideoError message must match; None: it must load
    may_load: bool = False  # damaged files: loading is fine too, if any error is clean
    start: float = 0.0
    check: Callable[[Clip, Path], None] | None = None  # called when it loads
    needs: str | None = None  # an encoder the local FFmpeg may lack


def data(payload: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    """A writer of these bytes (or of what the function gives)."""
    return lambda path: path.write_bytes(payload() if callable(payload) else payload)


def video(frames: list[np.ndarray], **kwargs) -> Callable[[Path], None]:
    """A writer of these frames with `write_video`."""
    return lambda path: write_video(path, frames, **kwargs)


def write_8k(path: Path) -> None:
    """8 frames of 7680x4320 H.264, top half light, bottom half dark (written as YUV planes)."""
    width, height = 7680, 4320
    planes = np.full((height * 3 // 2, width), 128, np.uint8)  # Y, then U and V at quarter size
    planes[: height // 2], planes[height // 2 : height] = 235, 16
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "35"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(8):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")))
        container.mux(stream.encode(None))


def write_many_packets(path: Path, count: int = 40_000) -> None:
    """`count` frames of 16x16 H.264 at 25 fps, one keyframe: a 15-byte packet repeated."""
    with tempfile.TemporaryDirectory() as tmp:
        write_index_video(Path(tmp) / "two.mp4", 2, size=16, gop=1000)
        with av.open(str(Path(tmp) / "two.mp4")) as source, av.open(str(path), "w") as container:
            key, delta = (bytes(p) for p in source.demux(source.streams.video[0]) if p.size)
            stream = container.add_stream_from_template(source.streams.video[0])
            tick = round(1 / (25 * stream.time_base))
            for k in range(count):
                packet = av.Packet(delta if k else key)
                packet.stream, packet.pts, packet.dts, packet.is_keyframe = stream, k * tick, k * tick, k == 0
                container.mux(packet)


NOT_READABLE = "not a readable video file"
CUT_SHORT = "cut short or damaged"
NOISE = np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes()
EIGHT_K, LONG, MANY = "8k_7680x4320.mp4", "two_hours_1fps.mp4", "many_tiny_packets.mp4"
NON_ASCII = "vidéo clip 東京 (1).mp4"

CASES = [
    Case("notes.txt", data(b"not a video\n" * 50), "a text file, not a video"),
    Case("text.mp4", data(b"just some text, not a video"), NOT_READABLE),
    Case("noise.mp4", data(NOISE), NOT_READABLE),
    Case("image.png", video([solid(32, 32)], codec="png", pix_fmt="rgb24"), r"a still image \(PNG\), not a video"),
    Case("archive.zip", data(zipped), NOT_READABLE),
    Case("empty.mp4", data(b""), r"the file is empty \(0 bytes\)"),
    Case("first_half.mp4", data(lambda: valid()[: len(valid()) // 2]), CUT_SHORT + r".*moov atom"),
    Case("moov_cut.mp4", data(lambda: valid()[: box(valid(), b"moov")[0] + 40]), CUT_SHORT),
    Case("ftyp_then_zeros.mp4", data(b"\x00\x00\x00\x18ftypmp42" + bytes(200)), CUT_SHORT),
    Case("zeroed_frames.mp4", data(zeroed_frames), "no frame of the video could be decoded"),
    *(
        Case(f"fuzz_index_{seed}.mp4", data(functools.partial(fuzzed, ".mp4", seed, 4, b"moov")), "", True)
        for seed in range(4)
    ),
    *(
        Case(f"fuzz_frames_{seed}.mp4", data(functools.partial(fuzzed, ".mp4", seed, 16, b"mdat")), "", True)
        for seed in range(4)
    ),
    # MPEG-TS, 60 bytes changed, from 1.2 s on. With this FFmpeg both grow a stream mid-file: seed 2
    # once crashed on its end-of-file packet (numbered stream 0), seed 6 on an IndexError in PyAV
    *(
        Case(f"fuzz_ts_{seed}.ts", data(functools.partial(fuzzed, ".ts", seed, 60)), "", True, start=1.2)
        for seed in (2, 6)
    ),
    Case(
        "unknown_codec.mp4",
        data(lambda: valid().replace(b"avc1", b"zzzz")),
        "codec is unknown or not supported by this FFmpeg build",
    ),
    Case(
        "bad_utf8_tags.mp4",
        data(lambda: valid().replace(b"Lavf", b"\xff\xfe\xfd\xfc")),
        check=check_indices(*range(0, 32, 4)),
    ),
    Case("negative_duration.mkv", data(negative_duration), check=check_indices(*range(0, 32, 4))),
    Case("tone.m4a", lambda path: write_audio(path, codec="aac"), r"no video stream \(only audio\)"),
    Case("tone.mka", lambda path: write_audio(path, codec="mp2"), r"no video stream \(only audio\)"),
    Case("song_with_cover.mp4", write_audio_with_cover, r"no video stream \(only audio and a cover image\)"),
    Case("one_frame.mp4", video([solid(64, 48)]), check=check_padded),
    Case("tiny_8x8.mp4", video([solid(8, 8)] * 3), r"8x8 pixels, smaller than one 16x16 patch"),
    Case(EIGHT_K, write_8k, check=check_half_light),
    Case("wide_4000x16.mp4", video([striped(4000, 16)] * 3), check=check_green_centre),
    Case("tall_16x2000.mp4", video([striped(16, 2000)] * 3), check=check_green_centre),
    Case("variable_rate.mp4", write_vfr, check=check_vfr),
    *(Case(f"rotated_{angle}.mp4", write_rotated(angle), check=check_rotation) for angle in (90, 180, 270)),
    Case("gray.mkv", video([solid(64, 48)] * 3, codec="ffv1", pix_fmt="gray"), check=check_gray),
    Case("ten_bit_h264.mp4", video([solid(64, 48)] * 3, pix_fmt="yuv420p10le"), check=check_color),
    Case(
        "ten_bit_hevc.mp4",
        video([solid(64, 48)] * 3, codec="libx265", pix_fmt="yuv420p10le", options={"x265-params": "log-level=none"}),
        check=check_color,
        needs="libx265",
    ),
    Case("alpha_png.mov", video([solid(64, 48, 4)] * 3, codec="png", pix_fmt="rgba"), check=check_color),
    Case("alpha_qtrle.mov", video([solid(64, 48, 4)] * 3, codec="qtrle", pix_fmt="argb"), check=check_color),
    Case(
        "alpha_vp9.webm",
        video([solid(64, 48, 4)] * 3, codec="libvpx-vp9", pix_fmt="yuva420p"),
        check=check_color,
        needs="libvpx-vp9",
    ),
    Case(
        LONG,
        lambda path: write_index_video(path, 7200, 1, size=32, gop=600),
        start=5400,
        check=check_indices(*range(5400, 5432, 4)),
    ),
    Case(MANY, write_many_packets, check=check_indices(0, *[1] * 7)),  # the packet repeated shows frame 1
    Case("ends_at_1.6s.mp4", data(valid), r"start 99\.00 s is past the end \(the video lasts 1\.60 s\)", start=99),
    Case(NON_ASCII, data(valid), check=check_indices(*range(0, 32, 4))),
]


PARAMS = encoder_params(CASES)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """Every corpus file, written once: name -> path."""
    folder = tmp_path_factory.mktemp("corpus")
    paths = {case.name: folder / case.name for case in CASES if can_make(case)}
    for case in CASES:
        if case.name in paths:
            case.write(paths[case.name])
    return paths


def outcome(source: Path | bytes, start: float, name: str | None = None) -> Clip | str:
    """The clip, or the VideoError message, with the settings the CLI and app use here."""
    try:
        return load_clip(source, frames=FRAMES, size=SIZE, start=start, name=name)
    except VideoError as error:
        return str(error)


def describe(clip: Clip) -> str:
    """A clip in one line, for the summary."""
    w, h = clip.source_size
    padded = f", padded with {clip.padded}" if clip.padded else ""
    return f"works: {w}x{h}, {clip.fps:.3g} fps, {clip.duration:.1f} s{padded}"


# --- the one decode path, the CLI and the app on every corpus file --------------------------------


@pytest.mark.parametrize("case", PARAMS)
def test_load_clip_gives_a_clip_or_one_clear_line(case, corpus, record_property):
    path = corpus[case.name]
    result = outcome(path, case.start)
    record_property("corpus", (case.name, f"VideoError: {result}" if isinstance(result, str) else describe(result)))
    if isinstance(result, str):
        assert case.error is not None, f"should load: {result}"
        assert re.search(case.error, result) and "\n" not in result and result.startswith(f"{case.name}: ")
    else:
        assert case.error is None or case.may_load, "should raise VideoError"
        assert result.frames.shape == (FRAMES, SIZE, SIZE, 3)
        if case.check:
            case.check(result, path)


@pytest.mark.slow
@pytest.mark.parametrize("case", PARAMS)
def test_cli_exits_0_or_2_with_one_error_line(case, corpus, tmp_path, capfd):
    """capfd: FFmpeg's own logging, written by C code, would show up here too."""
    path = corpus[case.name]
    code = main(["analyze", str(path), *CLI_ARGS, "--start", str(case.start), "--out", str(tmp_path)])
    err = capfd.readouterr().err
    result = outcome(path, case.start)
    if isinstance(result, str):
        assert code == 2 and err.splitlines() == [f"error: {result}"]
    else:
        assert code == 0 and err == "" and (tmp_path / "summary.json").is_file()


@pytest.mark.slow
def test_cli_in_a_fresh_process(corpus, tmp_path):
    """The real command on a file name with spaces and non-ASCII letters."""
    result = subprocess.run(
        [sys.executable, "-m", "explorer", "analyze", str(corpus[NON_ASCII]), *CLI_ARGS, "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )
    assert result.returncode == 0 and result.stderr == "" and f"{NON_ASCII}: " in result.stdout


@pytest.fixture(scope="module")
def app() -> AppTest:
    """The app on the tiny model at 8 frames of 112 px, with Upload chosen as the source."""
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["model_size"] = "tiny"
    at.session_state["frames"] = FRAMES
    at.session_state["size"] = SIZE
    at.session_state["source"] = "Upload"
    return at.run()


def upload_name(name: str) -> str:
    """The name uploaded: the file's own when the uploader takes its type, else with .mp4 added."""
    return name if name.rsplit(".", 1)[-1] in UPLOAD_TYPES else f"{name}.mp4"


@pytest.mark.slow
@pytest.mark.parametrize("case", PARAMS)
def test_app_shows_an_error_or_the_clip(case, corpus, app):
    payload, name = corpus[case.name].read_bytes(), upload_name(case.name)
    app.session_state["start"] = case.start
    app.file_uploader(key="upload").upload(name, payload, "video/mp4").run()
    assert not app.exception
    result = outcome(payload, case.start, name)
    if isinstance(result, str):
        assert [e.value for e in app.error] == [result]
    else:
        assert not app.error and any(e.label.startswith(f"{name}: ") for e in app.expander)


# --- memory and time -----------------------------------------------------------------------------

MEASURE = """
import importlib.util, json, os, sys, time
def status(key):  # kB; VmHWM is the peak resident size of this program (not of its parent)
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))
spec = importlib.util.spec_from_file_location("video", sys.argv[1])
video = sys.modules["video"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(video)
os.cpu_count = lambda: 16  # as on a big machine: decoder threads must not multiply the memory
before = status("VmRSS:")
start = time.perf_counter()
clip = video.load_clip(sys.argv[2], **json.loads(sys.argv[3]))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "growth_mb": (status("VmHWM:") - before) / 1024}))
"""
ON_LINUX = pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="peak memory is read from /proc")


def measure(path: Path, **kwargs) -> dict[str, float]:
    """load_clip in a fresh process (explorer/video.py alone, no torch): seconds and peak RSS growth in MB."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(ROOT / "explorer" / "video.py"), str(path), json.dumps(kwargs)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


@ON_LINUX
@pytest.mark.parametrize(("name", "bound_mb"), [(EIGHT_K, 384), ("wide_4000x16.mp4", 64), ("tall_16x2000.mp4", 64)])
def test_memory_stays_bounded(corpus, record_property, name, bound_mb):
    """16 frames at 512 px are 12 MB. Decoding 8K with a thread per core (16) took 738 MB,
    enlarging 4000x16 frames before cropping them (to 128000x512) 321 MB."""
    measured = measure(corpus[name], frames=16, stride=1, size=512)
    record_property(
        "corpus",
        (f"{name} memory", f"peak RSS growth {measured['growth_mb']:.0f} MB (16 frames at 512 px, 16 cores assumed)"),
    )
    assert measured["growth_mb"] < bound_mb


@ON_LINUX
def test_two_hours_are_sampled_by_seeking(corpus, record_property):
    path = corpus[LONG]
    begin = time.perf_counter()
    clip = load_clip(path, frames=FRAMES, stride=900, size=SIZE)  # a frame every 15 minutes
    seconds = time.perf_counter() - begin
    assert [read_index(frame) for frame in clip.frames] == [900 * k for k in range(FRAMES)]
    assert clip.duration == pytest.approx(7200)
    measured = measure(path, frames=FRAMES, stride=4, start=5400.0, size=SIZE)
    record_property(
        "corpus",
        (
            f"{LONG} time",
            f"{seconds * 1e3:.0f} ms for a frame every 15 min, "
            f"{measured['seconds'] * 1e3:.0f} ms from 1.5 h on; "
            f"peak RSS growth {measured['growth_mb']:.0f} MB",
        ),
    )
    assert seconds < 2 and measured["seconds"] < 2 and measured["growth_mb"] < 64


def test_time_limit_stops_a_file_of_many_tiny_packets(corpus, record_property):
    """Near the end of 40 000 packets with one keyframe, everything must be decoded: the limit stops it."""
    begin = time.perf_counter()
    with pytest.raises(VideoError, match="decoding took too long") as info:
        load_clip(corpus[MANY], frames=FRAMES, start=1590.0, size=SIZE, max_seconds=0.3)
    seconds = time.perf_counter() - begin
    record_property("corpus", (f"{MANY} from 1590 s, limit 0.3 s", f"VideoError after {seconds:.2f} s: {info.value}"))
    assert seconds < 1.3
