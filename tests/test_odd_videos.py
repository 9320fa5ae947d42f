"""Odd videos, a second corpus: many codec x container pairs, pixel formats, shapes, timestamps and
headers that test_bad_videos.py does not make, written here with PyAV encoders or by hand (Y4M, AVI,
MP4 and JPEG headers patched in place).

Each file goes through `load_clip` (16 frames, stride 2, 112 px) and `probe` under a deadline: a clip
of the right shape, or one VideoError line that names the file, never another exception or a hang.
Files that declare huge frames are also read in a child process whose address space is capped.
"""

from __future__ import annotations

import functools
import json
import math
import re
import resource
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av
import numpy as np
import pytest

from explorer.video import Clip, Probe, VideoError, load_clip, load_windows, probe
from tests.clips import can_make, encoder_params
from tests.conftest import index_frame, read_index, write_audio

ROOT = Path(__file__).resolve().parent.parent
FRAMES, STRIDE, SIZE = 16, 2, 112
COUNT = 32  # index frames in a pair's file: enough for 16 frames at stride 2
EVERY_OTHER = list(range(0, 2 * FRAMES, STRIDE))
DEADLINE = 10.0  # seconds for load_clip and probe together on one tiny file
GREY = 128  # the plain frames: grey whatever the colour matrix or range a codec assumes

Writer = Callable[[Path], None]
T = TypeVar("T")


# --- writers --------------------------------------------------------------------------------------


def index_images(count: int = COUNT, width: int = 64, height: int = 64) -> list[np.ndarray]:
    return [index_frame(i, width, height) for i in range(count)]


def grey(width: int, height: int, count: int = 3) -> list[np.ndarray]:
    return [np.full((height, width, 3), GREY, np.uint8)] * count


def encode(
    path: Path,
    codec: str,
    images: Iterable[np.ndarray],
    *,
    pix_fmt: str = "yuv420p",
    rate: int | Fraction = 25,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    rotation: float | None = None,
) -> None:
    """Encode RGB frames with PyAV; the container is chosen by the file's extension."""
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = None
        for image in images:
            if stream is None:
                stream = container.add_stream(codec, rate=rate, options=options or {})
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = pix_fmt
                if rotation is not None:
                    stream.set_display_rotation(rotation)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        assert stream is not None
        container.mux(stream.encode(None))


def pair(codec: str, count: int = COUNT, **kwargs) -> Writer:
    """`count` index frames, 64x64, in this codec."""
    return lambda path: encode(path, codec, index_images(count), **kwargs)


def shaped(codec: str, width: int, height: int, count: int = 3, **kwargs) -> Writer:
    """`count` grey frames, width x height, in this codec."""
    return lambda path: encode(path, codec, grey(width, height, count), **kwargs)


@functools.cache
def encoded(name: str, writer: Writer) -> bytes:
    """The bytes `writer` writes to a file called `name` (cached: damaged copies start here)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        writer(path)
        return path.read_bytes()


def y4m(width: int, height: int, rate: str = "25:1", colorspace: str = "420jpeg", frames: int = COUNT) -> bytes:
    """A YUV4MPEG2 stream written by hand: the header says what it likes, the frames follow it.

    Frames are index frames when the picture is 64x64, else mid-grey; a frame too large to write is
    left out, so that the header alone declares it.
    """
    header = f"YUV4MPEG2 W{width} H{height} F{rate} Ip A1:1 C{colorspace}\n".encode()
    depth = 2 if "p10" in colorspace else 1
    chroma = {"420jpeg": 0.5, "420p10": 0.5, "444": 2.0, "mono": 0.0}[colorspace]
    luma_size = width * height
    if luma_size > 2**22:
        return header + b"FRAME\n" + bytes(4096)
    body = []
    for k in range(frames):
        if (width, height) == (64, 64):
            luma = index_frame(k)[..., 0].astype(np.uint16)
        else:
            luma = np.full((height, width), 128, np.uint16)
        luma = luma * 4 if depth == 2 else luma
        planes = luma.astype("<u2" if depth == 2 else np.uint8).tobytes()
        chroma_bytes = int(luma_size * chroma) * depth
        neutral = (512).to_bytes(2, "little") if depth == 2 else b"\x80"
        body.append(b"FRAME\n" + planes + neutral * (chroma_bytes // depth))
    return header + b"".join(body)


def data(payload: bytes | Callable[[], bytes]) -> Writer:
    """A writer of these bytes (or of what the function gives)."""
    return lambda path: path.write_bytes(payload() if callable(payload) else payload)


def cut(name: str, writer: Writer, fraction: float) -> Writer:
    """The first `fraction` of the file."""
    return data(lambda: encoded(name, writer)[: int(len(encoded(name, writer)) * fraction)])


def garbled(name: str, writer: Writer, size: int = 2048) -> Writer:
    """The file with `size` random bytes written over its middle."""

    def payload() -> bytes:
        original = bytearray(encoded(name, writer))
        middle = len(original) // 2 - size // 2
        original[middle : middle + size] = np.random.default_rng(7).integers(0, 256, size, np.uint8).tobytes()
        return bytes(original)

    return data(payload)


def patched(name: str, writer: Writer, patch: Callable[[bytearray], None]) -> Writer:
    """The file with `patch` applied to its bytes in place."""

    def payload() -> bytes:
        original = bytearray(encoded(name, writer))
        patch(original)
        return bytes(original)

    return data(payload)


def avi_size(width: int, height: int) -> Callable[[bytearray], None]:
    """Declare width x height in an AVI's main header and in its video format (BITMAPINFOHEADER)."""

    def patch(avi: bytearray) -> None:
        main = avi.index(b"avih") + 8
        avi[main + 32 : main + 40] = struct.pack("<2i", width, height)
        bitmap = avi.index(b"strf") + 8
        avi[bitmap + 4 : bitmap + 12] = struct.pack("<2i", width, height)

    return patch


def avi_rate(scale: int, rate: int) -> Callable[[bytearray], None]:
    """Declare a frame rate of rate / scale in an AVI's stream header."""

    def patch(avi: bytearray) -> None:
        header = avi.index(b"strh") + 8
        avi[header + 20 : header + 28] = struct.pack("<2I", scale, rate)

    return patch


def avi_without_index(avi: bytearray) -> None:
    """Rename the idx1 chunk so that the demuxer finds no index."""
    at = avi.index(b"idx1")
    avi[at : at + 4] = b"JUNK"


def jpeg_size(width: int, height: int) -> Callable[[bytearray], None]:
    """Declare width x height in every baseline JPEG frame header (SOF0) of an MJPEG stream."""

    def patch(mjpeg: bytearray) -> None:
        at = mjpeg.find(b"\xff\xc0")
        while at >= 0:
            mjpeg[at + 5 : at + 9] = struct.pack(">2H", height, width)
            at = mjpeg.find(b"\xff\xc0", at + 9)

    return patch


def mp4_timescale(timescale: int) -> Callable[[bytearray], None]:
    """Set the video track's media timescale (ticks a second) in its mdhd box (version 0)."""

    def patch(mp4: bytearray) -> None:
        at = mp4.index(b"mdhd") + 4
        assert mp4[at] == 0, "a version 0 media header"
        mp4[at + 12 : at + 16] = struct.pack(">I", timescale)

    return patch


def mp4_matrix(a: float, b: float, c: float, d: float) -> Callable[[bytearray], None]:
    """Set (a, b, c, d) of the track header's display matrix (16.16 fixed point)."""

    def patch(mp4: bytearray) -> None:
        at = mp4.index(b"tkhd") + 4
        assert mp4[at] == 0, "a version 0 track header"
        values = (round(a * 65536), round(b * 65536), 0, round(c * 65536), round(d * 65536))
        mp4[at + 40 : at + 60] = struct.pack(">5i", *values)

    return patch


def write_timed(path: Path, codec: str, milliseconds: list[int]) -> None:
    """Index frame k shown from milliseconds[k] on (a time base of 1 ms)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for k, ms in enumerate(milliseconds):
            frame = av.VideoFrame.from_ndarray(index_frame(k), format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_two_videos(first: tuple[int, int], second: tuple[int, int]) -> Writer:
    """Two video streams of these sizes (index frames, then grey), interleaved."""

    def write(path: Path) -> None:
        with av.open(str(path), "w") as container:
            streams = []
            for width, height in (first, second):
                stream = container.add_stream("ffv1", rate=25)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                streams.append(stream)
            for k in range(COUNT):
                for stream, image in zip(streams, (index_frame(k, *first), grey(*second, 1)[0])):
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            for stream in streams:
                container.mux(stream.encode(None))

    return write


def write_image(codec: str, pix_fmt: str = "rgb24") -> Writer:
    """One 64x64 picture in an image codec, as its bare file (PNG, JPEG, BMP, WebP)."""

    def write(path: Path) -> None:
        frame = av.VideoFrame.from_ndarray(index_frame(3), format="rgb24").reformat(format=pix_fmt)
        context = av.CodecContext.create(codec, "w")
        context.width, context.height, context.pix_fmt = 64, 64, pix_fmt
        context.time_base = Fraction(1, 25)
        path.write_bytes(b"".join(bytes(packet) for packet in [*context.encode(frame), *context.encode(None)]))

    return write


def concatenated(*parts: tuple[str, Writer]) -> Writer:
    """Files written one after the other, byte for byte (MPEG-TS and MPEG-PS play on across the joins)."""
    return data(lambda: b"".join(encoded(name, writer) for name, writer in parts))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def black_png(width: int, height: int, rows: int = 64) -> bytes:
    """A black RGB PNG of any size in a few hundred kB, fast: one deflate block of `rows` zero rows,
    ended by a full flush (which makes the next block's bytes the same), repeated."""
    row = bytes(1 + 3 * width)  # a filter byte, then the pixels
    compressor = zlib.compressobj(9)
    first = compressor.compress(row * rows) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(row * rows) + compressor.flush(zlib.Z_FULL_FLUSH)
    full, rest = divmod(height, rows)
    end = compressor.compress(row * rest) + compressor.flush(zlib.Z_FINISH)
    checksum = 1
    for _ in range(full):
        checksum = zlib.adler32(row * rows, checksum)
    checksum = zlib.adler32(row * rest, checksum)
    pixels = first[:2] + block * full + end[:-4] + struct.pack(">I", checksum)  # zlib header, blocks, Adler-32
    header = struct.pack(">2I5B", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b"")


def write_png_frames(side: int, declared: int, count: int = 2) -> Writer:
    """A MOV of `count` black side x side PNG frames whose track header declares declared x declared:
    a small file (side 12000: 0.4 MB a frame) that decodes to 432 MB a frame."""

    def write(path: Path) -> None:
        picture = black_png(side, side)
        with av.open(str(path), "w") as container:
            stream = container.add_stream("png", rate=25)
            stream.width, stream.height, stream.pix_fmt = declared, declared, "rgb24"
            for k in range(count):
                packet = av.Packet(picture)
                packet.stream, packet.pts, packet.dts, packet.is_keyframe = stream, k, k, True
                packet.time_base = Fraction(1, 25)
                container.mux(packet)

    return write


# --- checks on what loaded ------------------------------------------------------------------------


def check_indices(*expected: int) -> Callable[[Clip], None]:
    def check(clip: Clip) -> None:
        assert [read_index(frame) for frame in clip.frames] == list(expected)

    return check


def check_times(*frames: int) -> Callable[[Clip], None]:
    """The sampled frames' timestamps are these source frames' (at 25 fps); for lossy codecs that
    blur the index pattern."""

    def check(clip: Clip) -> None:
        np.testing.assert_allclose(clip.times, np.asarray(frames) / 25)

    return check


def check_grey(clip: Clip) -> None:
    assert np.abs(clip.frames.astype(int) - GREY).max() <= 3


def check_size(width: int, height: int) -> Callable[[Clip], None]:
    """The source size, as displayed."""

    def check(clip: Clip) -> None:
        assert clip.source_size == (width, height)

    return check


def check_padded(padded: int) -> Callable[[Clip], None]:
    def check(clip: Clip) -> None:
        assert clip.padded == padded and np.all(clip.frames[-padded - 1 :] == clip.frames[-1])

    return check


# --- the corpus -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Odd:
    """One corpus file: how to write it, and what load_clip must make of it."""

    name: str
    write: Writer
    error: str | None = None  # a regex the VideoError must match; None: it must load
    may_load: bool = False  # damaged files: a clip is fine too, if any error is clean
    check: Callable[[Clip], None] | None = None  # called when it loads
    needs: str | None = None  # an encoder the local FFmpeg may lack


def paired(name: str, codec: str, needs: str | None = None, **kwargs) -> Odd:
    """A codec x container pair of index frames: frames 0, 2, ..., 30 must come back."""
    return Odd(name, pair(codec, **kwargs), check=check_indices(*EVERY_OTHER), needs=needs)


def lossy_pair(name: str, codec: str, needs: str, **kwargs) -> Odd:
    """As `paired`, for a codec that blurs index frames at this size: the frames' times are checked."""
    return Odd(name, pair(codec, **kwargs), check=check_times(*EVERY_OTHER), needs=needs)


X265 = {"x265-params": "log-level=none"}
SVT = {"preset": "12", "crf": "10", "svtav1-params": "log-level=0"}
TOO_SMALL = "smaller than one 16x16 patch"
NOT_READABLE = "not a readable video file"
TOO_LARGE = r"pixels, more than the 8192x8192 \(67 million\) that can be decoded"
NOTHING_DECODED = "no frame of the video could be decoded"
CUT_SHORT = "file is cut short or damaged"
STILL = r"a still image \({}\), not a video"
AUDIO_ONLY = r"no video stream \(only audio\)"

PAIRS = [
    paired("mpeg4.avi", "mpeg4"),
    paired("mpeg4.mkv", "mpeg4"),
    paired("msmpeg4.avi", "msmpeg4"),
    paired("wmv2.wmv", "wmv2"),
    paired("flv1.flv", "flv"),
    paired("vp8.webm", "libvpx", needs="libvpx"),
    paired("vp8.ogv", "libvpx", needs="libvpx"),
    paired("vp9.webm", "libvpx-vp9", needs="libvpx-vp9"),
    paired("mjpeg.avi", "mjpeg", pix_fmt="yuvj420p"),
    paired("mjpeg.mov", "mjpeg", pix_fmt="yuvj422p"),
    paired("ffv1_yuv444.mkv", "ffv1", pix_fmt="yuv444p"),
    paired("ffv1_10bit.avi", "ffv1", pix_fmt="yuv420p10le"),
    paired("ffv1_bgr0.mkv", "ffv1", pix_fmt="bgr0"),
    paired("huffyuv_rgb24.avi", "huffyuv", pix_fmt="rgb24"),
    paired("ffvhuff.avi", "ffvhuff", pix_fmt="yuv422p"),
    paired("utvideo.avi", "utvideo"),
    paired("prores.mov", "prores_ks", pix_fmt="yuv422p10le"),
    paired("prores_4444.mov", "prores_ks", pix_fmt="yuva444p10le", options={"profile": "4444"}),
    paired("mpeg1.mpg", "mpeg1video"),
    paired("mpeg2.ts", "mpeg2video"),
    paired("mpeg2.vob", "mpeg2video"),
    paired("mpeg2_422.mxf", "mpeg2video", pix_fmt="yuv422p"),
    paired("h264.ts", "libx264"),
    paired("h264.flv", "libx264"),
    paired("h264_yuv444.mp4", "libx264", pix_fmt="yuv444p"),
    paired("h264_10bit.mkv", "libx264", pix_fmt="yuv420p10le"),
    paired("h264_rgb.mkv", "libx264rgb", pix_fmt="bgr0", needs="libx264rgb"),
    paired("h264_gray.mp4", "libx264", pix_fmt="gray"),
    paired("h264_moov_at_end.mp4", "libx264"),
    paired("h264_faststart.mp4", "libx264", container_options={"movflags": "+faststart"}),
    paired("h264_fragmented.mp4", "libx264", container_options={"movflags": "frag_keyframe+empty_moov"}),
    paired("h264_annexb.h264", "libx264"),  # a bare stream: no container, no timestamps
    paired("mpeg4_bare.m4v", "mpeg4"),
    paired("hevc.mkv", "libx265", options=X265, needs="libx265"),
    paired("hevc_10bit.mp4", "libx265", pix_fmt="yuv420p10le", options=X265, needs="libx265"),
    lossy_pair("av1.mp4", "libsvtav1", options=SVT, needs="libsvtav1"),
    lossy_pair("av1.ivf", "libsvtav1", options=SVT, needs="libsvtav1"),
    paired("gif.gif", "gif", pix_fmt="bgr8"),
    paired("apng.apng", "apng", pix_fmt="rgb24"),
    paired("png.avi", "png", pix_fmt="rgb24"),
    paired("qtrle.mov", "qtrle", pix_fmt="rgb24"),
    paired("raw_bgr24.avi", "rawvideo", pix_fmt="bgr24"),
    paired("raw_yuv420.nut", "rawvideo"),
    paired("snow.nut", "snow"),
    paired("jpeg2000.mkv", "jpeg2000"),
    paired("cinepak.avi", "cinepak", pix_fmt="rgb24"),
    Odd("y4m_by_hand.y4m", data(y4m(64, 64)), check=check_indices(*EVERY_OTHER)),
    Odd("y4m_10bit.y4m", data(y4m(48, 32, colorspace="420p10")), check=check_grey),
    Odd("y4m_gray.y4m", data(y4m(48, 32, colorspace="mono")), check=check_grey),
    Odd("dnxhr.mov", shaped("dnxhd", 256, 128, pix_fmt="yuv422p", options={"profile": "dnxhr_lb"}), check=check_grey),
    Odd("h263.3gp", shaped("h263", 128, 96), check=check_grey),
    Odd("dv_ntsc.dv", shaped("dvvideo", 720, 480, rate=Fraction(30000, 1001), pix_fmt="yuv411p"), check=check_grey),
    # FFmpeg's WebP demuxer is an image reader: an animated WebP is taken for a still image
    Odd("animated.webp", shaped("libwebp_anim", 64, 64), STILL.format("WEBP"), needs="libwebp_anim"),
]

SHAPES = [
    Odd("odd_97x65.mkv", shaped("ffv1", 97, 65, pix_fmt="yuv444p"), check=check_size(97, 65)),
    Odd("odd_97x65_h264.mp4", shaped("libx264", 97, 65, pix_fmt="yuv444p"), check=check_size(97, 65)),
    Odd("exactly_16x16.webm", shaped("libvpx-vp9", 16, 16), check=check_grey, needs="libvpx-vp9"),
    Odd("one_pixel.nut", shaped("rawvideo", 1, 1, pix_fmt="rgb24"), "1x1 pixels, " + TOO_SMALL),
    Odd("narrow_15x200.nut", shaped("rawvideo", 15, 200, pix_fmt="rgb24"), "15x200 pixels, " + TOO_SMALL),
    Odd("wide_2400x16.avi", shaped("mjpeg", 2400, 16, pix_fmt="yuvj444p"), check=check_size(2400, 16)),
    Odd("tall_16x1800.webm", shaped("libvpx-vp9", 16, 1800), check=check_size(16, 1800), needs="libvpx-vp9"),
    Odd("rotated_minus_90.mov", shaped("libx264", 64, 32, rotation=-90), check=check_size(32, 64)),
    Odd("rotated_90.mkv", shaped("ffv1", 64, 32, rotation=90), check=check_size(32, 64)),
    Odd("rotated_45.mp4", shaped("libx264", 64, 32, rotation=45), check=check_size(64, 32)),
    Odd(
        "zero_matrix.mp4",
        patched("plain.mp4", shaped("libx264", 64, 32), mp4_matrix(0, 0, 0, 0)),
        check=check_size(64, 32),
    ),
    Odd("one_frame.webm", pair("libvpx-vp9", 1), check=check_padded(FRAMES - 1), needs="libvpx-vp9"),
    Odd("one_frame.mov", pair("prores_ks", 1, pix_fmt="yuv422p10le"), check=check_padded(FRAMES - 1)),
    Odd("one_frame.y4m", data(y4m(64, 64, frames=1)), check=check_padded(FRAMES - 1)),
    Odd("five_frames.avi", pair("mpeg4", 5), check=check_indices(0, 2, 4, *[4] * (FRAMES - 3))),
]

VFR_MS = [0, 40, 45, 500, 520, 2600, 2610, 2640, *range(2680, 3800, 40)]

TIMING = [
    # the first frame at or after each time: frame 3 (at 0.5 s) stands for 0.08 to 0.48 s, frame 5 for the rest
    Odd("vfr.mkv", lambda path: write_timed(path, "libx264", VFR_MS), check=check_indices(0, *[3] * 6, *[5] * 9)),
    # timestamps go back to 0 after 10 frames: the second file's frames 10, 12, ... come next
    Odd(
        "restarts_at_0.ts",
        concatenated(("a.ts", pair("mpeg2video", 10)), ("b.ts", pair("mpeg2video"))),
        check=check_indices(*EVERY_OTHER),
    ),
    Odd(
        "restarts_at_0.mpg",
        concatenated(("a.mpg", pair("mpeg1video", 10)), ("b.mpg", pair("mpeg1video"))),
        check=check_indices(*EVERY_OTHER),
    ),
    Odd("no_index.avi", patched("mpeg4.avi", pair("mpeg4"), avi_without_index), check=check_indices(*EVERY_OTHER)),
    Odd("bare.mjpeg", pair("mjpeg", pix_fmt="yuvj420p"), check=check_indices(*EVERY_OTHER)),
    Odd("y4m_rate_0.y4m", data(y4m(64, 64, "0:1")), check=check_indices(*EVERY_OTHER)),  # FFmpeg assumes 25
    Odd("y4m_rate_0_0.y4m", data(y4m(64, 64, "0:0")), check=check_indices(*EVERY_OTHER)),
    Odd("avi_rate_0.avi", patched("mpeg4.avi", pair("mpeg4"), avi_rate(1, 0)), check=check_indices(*EVERY_OTHER)),
    Odd("y4m_frame_a_day.y4m", data(y4m(64, 64, "1:86400")), check=check_indices(*EVERY_OTHER)),
    # a million frames a second, taken as 25: 32 frames last 32 us, so the first frame is all there is
    Odd("y4m_million_fps.y4m", data(y4m(64, 64, "1000000:1")), check=check_padded(FRAMES - 1)),
    Odd(
        "avi_million_fps.avi",
        patched("mpeg4.avi", pair("mpeg4"), avi_rate(1, 1_000_000)),
        check=check_padded(FRAMES - 1),
    ),
    Odd("mp4_timescale_1.mp4", patched("h264.mp4", pair("libx264"), mp4_timescale(1))),
    Odd("mp4_timescale_max.mp4", patched("h264.mp4", pair("libx264"), mp4_timescale(2**31 - 1))),
]


def tone(codec: str) -> Writer:
    return lambda path: write_audio(path, codec=codec)


def renamed(name: str, writer: Writer) -> Writer:
    """What `writer` writes to a file called `name`, saved under another name."""
    return data(lambda: encoded(name, writer))


HTML = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not found</body></html>\n"
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"></svg>\n'
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"

OTHER_FILES = [
    Odd("flac_only.ogg", tone("flac"), AUDIO_ONLY),
    Odd("mp3_named.mp4", renamed("tone.mp3", tone("libmp3lame")), AUDIO_ONLY, needs="libmp3lame"),
    Odd("wav_named.mp4", renamed("tone.wav", tone("pcm_s16le")), AUDIO_ONLY),
    Odd("two_videos.mkv", write_two_videos((64, 64), (48, 32)), check=check_indices(*EVERY_OTHER)),
    Odd("too_small_then_good.mkv", write_two_videos((8, 8), (64, 64)), check=check_grey),
    Odd("png_named.mp4", write_image("png"), STILL.format("PNG")),
    Odd("jpeg_named.mp4", write_image("mjpeg", "yuvj420p"), STILL.format("MJPEG")),
    Odd("bmp_named.mp4", write_image("bmp", "bgr24"), STILL.format("BMP")),
    Odd("gif_still_named.mp4", renamed("still.gif", pair("gif", 1, pix_fmt="bgr8")), check=check_padded(FRAMES - 1)),
    Odd("error_page.mp4", data(HTML), NOT_READABLE),
    Odd("drawing.mp4", data(SVG), "codec is unknown or not supported"),
    Odd("document.mp4", data(PDF), NOT_READABLE),
    Odd("one_byte.mp4", data(b"\x00"), NOT_READABLE),
    Odd("zeros.webm", data(bytes(4096)), NOT_READABLE),
    Odd("empty.mkv", data(b""), r"the file is empty \(0 bytes\)"),
    Odd("only_ftyp.mp4", data(b"\x00\x00\x00\x14ftypisom\x00\x00\x02\x00isom"), "MP4/MOV " + CUT_SHORT),
]

DAMAGEABLE = {
    "mkv": pair("libx264"),
    "webm": pair("libvpx-vp9"),
    "avi": pair("mpeg4"),
    "ts": pair("mpeg2video"),
    "mp4": pair("libx264"),
    "y4m": data(y4m(64, 64)),
    "ogv": pair("libvpx"),
    "flv": pair("flv"),
}


def damaged() -> list[Odd]:
    """Each container cut at 10, 50 and 90 %, and with random bytes over its middle: a clip, or a clean error."""
    cases = []
    for ext, writer in DAMAGEABLE.items():
        source = f"source.{ext}"
        for percent in (10, 50, 90):
            cases.append(Odd(f"cut_{percent}.{ext}", cut(source, writer, percent / 100), "", may_load=True))
        cases.append(Odd(f"garbage_middle.{ext}", garbled(source, writer), "", may_load=True))
    faststart = pair("libx264", container_options={"movflags": "+faststart"})
    for percent in (10, 50, 90):
        cases.append(Odd(f"faststart_cut_{percent}.mp4", cut("fast.mp4", faststart, percent / 100), "", may_load=True))
    return cases


MJPEG_AVI = pair("mjpeg", pix_fmt="yuvj420p")
FFV1_AVI = pair("ffv1")
RAW_AVI = pair("rawvideo", pix_fmt="bgr24")

# Frames over 8192x8192: refused from the header when it says so, by the decoder when only the frames do
HUGE = [
    Odd("y4m_60000x60000.y4m", data(y4m(60000, 60000)), "Y4M " + CUT_SHORT),  # FFmpeg refuses the header
    Odd("y4m_16000x16000.y4m", data(y4m(16000, 16000)), "16000x16000 " + TOO_LARGE),
    Odd("y4m_8192x8193.y4m", data(y4m(8192, 8193)), "8192x8193 " + TOO_LARGE),
    Odd("avi_60000x60000.avi", patched("raw.avi", RAW_AVI, avi_size(60000, 60000)), NOTHING_DECODED),
    Odd("avi_16000x16000.avi", patched("ffv1.avi", FFV1_AVI, avi_size(16000, 16000)), NOTHING_DECODED),
    Odd("avi_upside_down.avi", patched("ffv1.avi", FFV1_AVI, avi_size(64, -64)), "", may_load=True),
    Odd("jpeg_says_16000x16000.avi", patched("mjpeg.avi", MJPEG_AVI, jpeg_size(16000, 16000)), NOTHING_DECODED),
    Odd("jpeg_says_65535x65535.avi", patched("mjpeg.avi", MJPEG_AVI, jpeg_size(65535, 65535)), NOTHING_DECODED),
    Odd("png_12000x12000.mov", write_png_frames(12000, 12000), NOTHING_DECODED),
    Odd("png_12000x12000_says_64x64.mov", write_png_frames(12000, 64), NOTHING_DECODED),
]

CASES = [*PAIRS, *SHAPES, *TIMING, *OTHER_FILES, *damaged(), *HUGE]


# --- running a case: under a deadline, one clean line or a clip -----------------------------------


PARAMS = encoder_params(CASES)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """Every corpus file, written once: name -> path."""
    folder = tmp_path_factory.mktemp("odd")
    paths = {}
    for case in CASES:
        if can_make(case):
            paths[case.name] = folder / case.name
            case.write(paths[case.name])
    return paths


def within(seconds: float, call: Callable[[], T]) -> T:
    """call() in a thread, failing the test if it has not returned after `seconds` (the thread is left
    behind: C code cannot be stopped from Python)."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["value"] = call()
        except BaseException as error:  # handed to the test's thread below
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s")
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]


def attempt(call: Callable[[], T]) -> T | str:
    """What call() gives, or its VideoError's message; any other exception fails the test."""
    try:
        return call()
    except VideoError as error:
        return str(error)


def assert_one_clear_line(message: str, name: str) -> None:
    assert message.startswith(f"{name}: ") and "\n" not in message and len(message) < 300, message


def assert_valid_clip(clip: Clip) -> None:
    assert clip.frames.shape == (FRAMES, SIZE, SIZE, 3) and clip.frames.dtype == np.uint8
    assert clip.frames.flags["C_CONTIGUOUS"] and 0 <= clip.padded < FRAMES
    assert np.all(np.isfinite(clip.times)) and math.isfinite(clip.fps) and clip.fps > 0
    assert min(clip.source_size) >= 16 and clip.source_size[0] * clip.source_size[1] <= 8192 * 8192


def describe(result: Clip | str) -> str:
    if isinstance(result, str):
        return f"VideoError: {result}"
    w, h = result.source_size
    padded = f", padded with {result.padded}" if result.padded else ""
    return f"works: {w}x{h}, {result.fps:.3g} fps, {result.duration:.3g} s{padded}"


@pytest.mark.parametrize("case", PARAMS)
def test_load_clip_and_probe_give_a_clip_or_one_clear_line(case, corpus, record_property):
    path = corpus[case.name]
    begin = time.perf_counter()
    result = within(DEADLINE, lambda: attempt(lambda: load_clip(path, frames=FRAMES, stride=STRIDE, size=SIZE)))
    info = within(DEADLINE, lambda: attempt(lambda: probe(path)))
    seconds = time.perf_counter() - begin
    record_property("corpus", (case.name, f"{describe(result)} ({seconds * 1e3:.0f} ms)"))
    if isinstance(result, str):
        assert case.error is not None, f"should load: {result}"
        assert_one_clear_line(result, case.name)
        assert re.search(case.error, result), result
    else:
        assert case.error is None or case.may_load, "should raise VideoError"
        assert_valid_clip(result)
        if case.check:
            case.check(result)
    if isinstance(info, str):
        assert_one_clear_line(info, case.name)
        assert isinstance(result, str), f"probe refused a file that loads: {info}"
    else:
        assert isinstance(info, Probe) and math.isfinite(info.fps) and info.fps > 0
        assert math.isnan(info.duration) or info.duration >= 0


# --- windows, as the scan reads them ----------------------------------------------------------------

WINDOWED = [
    "restarts_at_0.ts",
    "vfr.mkv",
    "h264_annexb.h264",
    "y4m_million_fps.y4m",
    "cut_90.ts",
    "garbage_middle.webm",
    "two_videos.mkv",
    "png_12000x12000_says_64x64.mov",
]


@pytest.mark.parametrize("name", WINDOWED)
def test_load_windows_gives_clips_or_clean_errors(corpus, name):
    """Windows from 0 s, overlapping, past the end and back: each a clip or its VideoError."""
    starts = [0.0, 0.3, 0.5, 99.0, 0.1]
    results = within(
        DEADLINE, lambda: list(load_windows(corpus[name], starts, frames=FRAMES, stride=STRIDE, size=SIZE))
    )
    assert len(results) == len(starts)
    for start, result in zip(starts, results):
        if isinstance(result, VideoError):
            assert_one_clear_line(str(result), name)
        else:
            assert_valid_clip(result)
            assert result.times[0] >= start - 0.5 / result.fps
    assert isinstance(results[3], VideoError) and "past the end" in str(results[3])


@pytest.mark.parametrize("name", WINDOWED)
def test_scan_windows_are_frames_or_the_video_error(corpus, name):
    """The scan's plan (probe) and decode (load_windows): a bad file is an error row with the VideoError's
    line, never another exception's name."""
    from explorer.scan.windows import chunks, decode, plan  # imports torch: only this test pays for it

    try:
        windows = within(DEADLINE, lambda: plan(str(corpus[name]), None, FRAMES, STRIDE, None, None))
    except VideoError as error:
        assert_one_clear_line(str(error), name)
        return
    assert windows
    for chunk in chunks(windows):
        for window, result in within(DEADLINE, lambda chunk=chunk: list(decode(chunk, FRAMES, STRIDE, SIZE))):
            assert window.video == str(corpus[name])
            if isinstance(result, str):
                assert_one_clear_line(result, name)
            else:
                assert result.shape == (FRAMES, SIZE, SIZE, 3) and result.dtype == np.uint8


# --- memory: huge frames, in a child process with a capped address space -----------------------------

ADDRESS_SPACE = 2 * 2**30  # bytes a child may map: a decoder that tries to allocate more fails there
MEASURE = """
import importlib.util, json, sys, time
def peak():  # kB; VmHWM, the peak resident size, reset between files through clear_refs
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
spec = importlib.util.spec_from_file_location("video", sys.argv[1])
video = sys.modules["video"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(video)
for path in sys.argv[2:]:
    open("/proc/self/clear_refs", "w").write("5")
    before, start = peak(), time.perf_counter()
    try:
        clip = video.load_clip(path, frames=16, stride=2, size=112)
        outcome = "clip"
    except video.VideoError as error:
        outcome = str(error)
    seconds = time.perf_counter() - start
    print(json.dumps({"outcome": outcome, "seconds": seconds, "growth_mb": (peak() - before) / 1024}), flush=True)
"""
ON_LINUX = pytest.mark.skipif(not Path("/proc/self/clear_refs").is_file(), reason="peak memory is read from /proc")


def cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def measure(paths: list[Path]) -> list[dict]:
    """load_clip on each file in one child (explorer/video.py alone, no torch), its address space capped."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(ROOT / "explorer" / "video.py"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=cap_address_space,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


@ON_LINUX
def test_huge_frames_are_refused_in_bounded_memory_and_time(corpus, record_property):
    """Each file declares, or decodes to, frames over 8192x8192: PNG frames of 12000x12000 (432 MB each)
    in a 1 MB file took 876 MB and 20 s before the decoders were told the limit, FFmpeg's own
    probe of the file included."""
    names = [case.name for case in HUGE]
    for name, measured in zip(names, measure([corpus[name] for name in names])):
        record_property("corpus", (f"{name} memory", f"{measured['growth_mb']:.0f} MB, {measured['seconds']:.2f} s"))
        assert measured["growth_mb"] < 64 and measured["seconds"] < 2, (name, measured)


@ON_LINUX
def test_largest_frames_decoded_stay_in_memory_bounds(tmp_path, record_property):
    """Two black 8192x8192 PNG frames (the most decoded, 201 MB each) in a 0.3 MB file: 2 s a frame for
    FFmpeg's PNG decoder, about 410 MB at the peak."""
    path = tmp_path / "png_8192x8192.mov"
    write_png_frames(8192, 8192)(path)
    (measured,) = measure([path])
    record_property("corpus", (f"{path.name} memory", f"{measured['growth_mb']:.0f} MB, {measured['seconds']:.1f} s"))
    assert measured["outcome"] == "clip" and measured["growth_mb"] < 768
