"""Tests for explorer.video: sampling, seeking, parameters and bundled samples.

Bad and odd files (damaged, rotated, 10-bit, alpha, huge, ...) are in test_bad_videos.py.
"""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from explorer.video import SAMPLES, SAMPLES_DIR, Clip, VideoError, load_clip, sample_path
from tests.conftest import read_index, write_index_video, write_video

ROOT = Path(__file__).resolve().parent.parent


def indices(clip: Clip) -> list[int]:
    return [read_index(frame) for frame in clip.frames]


# --- sampling ---------------------------------------------------------------------------


def test_clip_fields(index_video):
    path = index_video(100)
    clip = load_clip(path, frames=8, stride=4, size=64)
    assert clip.frames.shape == (8, 64, 64, 3)
    assert clip.frames.dtype == np.uint8 and clip.frames.flags["C_CONTIGUOUS"]
    assert clip.times.dtype == np.float64
    assert clip.num_frames == 8
    assert clip.fps == 25.0
    assert clip.duration == pytest.approx(4.0)
    assert clip.source == "index.mp4"
    assert clip.source_size == (64, 64)
    assert clip.padded == 0
    assert indices(clip) == list(range(0, 32, 4))
    np.testing.assert_allclose(clip.times, np.arange(0, 32, 4) / 25)


@pytest.mark.parametrize("fps", [25, 30, 12, Fraction(30000, 1001)])
@pytest.mark.parametrize("stride", [1, 3, 7])
def test_stride_follows_source_frames(index_video, fps, stride):
    clip = load_clip(index_video(90, fps), frames=10, stride=stride, size=64)
    assert clip.fps == pytest.approx(float(fps))
    assert indices(clip) == [k * stride for k in range(10)]


@pytest.mark.parametrize(("start", "first"), [(0.0, 0), (2.0, 50), (1.03, 26), (3.53, 88)])
def test_start_picks_first_frame_at_or_after(index_video, start, first):
    clip = load_clip(index_video(150, gop=10), frames=6, stride=2, start=start, size=64)
    assert indices(clip) == [first + 2 * k for k in range(6)]
    np.testing.assert_allclose(clip.times, [(first + 2 * k) / 25 for k in range(6)])


def test_enlarge_keeps_content(index_video):
    clip = load_clip(index_video(20), frames=3, stride=5, size=128)
    assert clip.frames.shape == (3, 128, 128, 3)
    assert indices(clip) == [0, 5, 10]


def test_shorter_side_is_resized_then_centre_cropped(tmp_path):
    image = np.zeros((96, 160, 3), np.uint8)
    image[:, :, 0] = 220  # red margins ...
    image[:, 32:128] = (0, 200, 0)  # ... around a green centre the crop must keep
    path = tmp_path / "wide.mp4"
    write_video(path, [image] * 3)
    clip = load_clip(path, frames=2, stride=1, size=48)
    assert clip.frames.shape == (2, 48, 48, 3)
    assert clip.source_size == (160, 96)
    inner = clip.frames[:, :, 2:-2].astype(int)  # edges may blend with the margin
    assert inner[..., 1].min() > 150 and inner[..., 0].max() < 60


def test_odd_size(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "odd.mkv"
    image = rng.integers(0, 256, (61, 97, 3), np.uint8)
    write_video(path, [image] * 5, codec="ffv1", pix_fmt="bgr0")
    clip = load_clip(path, frames=2, stride=2, size=32)
    assert clip.frames.shape == (2, 32, 32, 3)
    assert clip.source_size == (97, 61)


def test_raw_stream_without_container_timing(tmp_path):
    path = tmp_path / "raw.h264"
    write_index_video(path, 40)
    clip = load_clip(path, frames=4, stride=8, size=64)
    assert indices(clip) == [0, 8, 16, 24]
    assert clip.fps > 0
    assert np.all(np.diff(clip.times) > 0)


def test_bytes_input_matches_path(index_video):
    path = index_video(40)
    from_path = load_clip(path, frames=5, stride=3, start=0.4, size=64)
    from_bytes = load_clip(path.read_bytes(), frames=5, stride=3, start=0.4, size=64)
    np.testing.assert_array_equal(from_bytes.frames, from_path.frames)
    np.testing.assert_array_equal(from_bytes.times, from_path.times)
    assert from_bytes.source == "uploaded video"
    assert load_clip(path.read_bytes(), frames=1, size=64, name="mine.mp4").source == "mine.mp4"


# --- short videos ----------------------------------------------------------------------


def test_too_short_video_is_padded(index_video):
    clip = load_clip(index_video(10), frames=16, stride=1, size=64)
    assert clip.padded == 6
    assert indices(clip) == list(range(10)) + [9] * 6
    assert np.all(clip.times[9:] == clip.times[9])


# --- long videos: seeking --------------------------------------------------------------


class CountingContainer:
    """Wraps an input container and counts the packets demuxed from it."""

    opened: list[CountingContainer] = []

    def __init__(self, container):
        self._container = container
        self.packets = 0
        CountingContainer.opened.append(self)

    def __getattr__(self, name):
        return getattr(self._container, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._container.close()

    def demux(self, *args, **kwargs):
        for packet in self._container.demux(*args, **kwargs):
            self.packets += 1
            yield packet


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """60 s at 25 fps (1500 frames), 64x64, a keyframe every second."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    write_index_video(path, 1500, gop=25)
    return path


@pytest.fixture
def count_packets(monkeypatch):
    real_open = av.open
    CountingContainer.opened = []
    monkeypatch.setattr(av, "open", lambda *a, **k: CountingContainer(real_open(*a, **k)))
    return lambda: sum(c.packets for c in CountingContainer.opened)


def test_late_start_seeks(long_video, count_packets):
    clip = load_clip(long_video, frames=16, stride=4, start=50.0, size=64)
    assert indices(clip) == [1250 + 4 * k for k in range(16)]
    assert clip.duration == pytest.approx(60.0)
    assert count_packets() < 150  # 16 * 4 frames plus at most a GOP, not 1250+


def test_large_stride_seeks_between_targets(long_video, count_packets):
    clip = load_clip(long_video, frames=10, stride=125, start=2.4, size=64)
    assert indices(clip) == [60 + 125 * k for k in range(10)]
    assert count_packets() < 300  # each target costs at most about one GOP (25 frames)


def test_time_limit(long_video):
    with pytest.raises(VideoError, match="too long"):
        load_clip(long_video, frames=16, stride=90, size=64, max_seconds=1e-6)


# --- bad parameters (bad files: test_bad_videos.py) --------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        load_clip(tmp_path / "nope.mp4")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frames": 0},
        {"frames": 257},
        {"stride": 0},
        {"start": -1.0},
        {"start": float("nan")},
        {"size": 8},
        {"size": 100},
        {"size": 528},
        {"max_seconds": 0},
    ],
)
def test_bad_parameters(index_video, kwargs):
    with pytest.raises(VideoError):
        load_clip(index_video(5), **kwargs)


# --- bundled samples ---------------------------------------------------------------------


def load_make_samples():
    path = ROOT / "assets" / "make_samples.py"
    spec = importlib.util.spec_from_file_location("make_samples", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_bundled_samples_decode(name):
    path = sample_path(name)
    assert path.is_file() and path.stat().st_size < 2 * 1024 * 1024
    assert path.name in (SAMPLES_DIR / "CREDITS.md").read_text()
    clip = load_clip(path)
    assert clip.frames.shape == (16, 224, 224, 3) and clip.padded == 0


def test_render_frame_is_deterministic():
    make_samples = load_make_samples()
    first = make_samples.render_frame(37)
    assert first.shape == (288, 384, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(make_samples.render_frame(37), first)


def test_rendered_motion_schedule():
    make_samples = load_make_samples()
    wanted = sorted({*range(0, 200, 10), *range(38, 43), *range(99, 163), 199})
    frames = {i: make_samples.render_frame(i) for i in wanted}
    still = frames[100]
    for i in range(100, 161):
        np.testing.assert_array_equal(frames[i], still, err_msg=f"frame {i} moved")
    for a, b in [(0, 10), (38, 39), (90, 99), (161, 162), (180, 190)]:
        assert not np.array_equal(frames[a], frames[b]), (a, b)
    ball_rows = slice(40, 105)  # the ball's band: still after frame 40
    np.testing.assert_array_equal(frames[40][ball_rows], frames[199][ball_rows])
    for image in frames.values():  # motion stays inside the central 288x288 crop
        np.testing.assert_array_equal(image[:, :48], frames[0][:, :48])
        np.testing.assert_array_equal(image[:, 336:], frames[0][:, 336:])


def test_generated_sample_matches_renderer():
    make_samples = load_make_samples()
    path = sample_path("Still and moving (generated)")
    clip = load_clip(path, frames=4, stride=50, size=288)
    assert clip.source_size == (384, 288) and clip.fps == 25
    assert clip.duration == pytest.approx(8.0)
    for k, frame in enumerate(clip.frames):
        rendered = make_samples.render_frame(50 * k)[:, 48:336].astype(int)
        assert np.abs(frame.astype(int) - rendered).mean() < 3
