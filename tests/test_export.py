"""Exports are valid files: PNG, animated GIF and browser-ready H.264 MP4 of a real trace's overlay."""

import io
import json
import struct

import av
import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from explorer.analyze import analyze
from explorer.export import gif_bytes, mp4_bytes, overlay_frames, playback_fps, png_bytes
from explorer.models.reducers import make_reducer
from explorer.models.video_vit import VideoViT, VideoViTConfig
from tests.clips import make_clip, moving_square_frames


@pytest.fixture(scope="module")
def clip_and_trace():
    torch.manual_seed(0)
    model = VideoViT(
        VideoViTConfig(embed_dim=64, depth=2, num_heads=2, num_classes=5, num_frames=8, img_size=64)
    ).eval()
    clip = make_clip(moving_square_frames(frames=8, size=64, row=1))
    return clip, analyze(clip, model, make_reducer("rlt"), device="cpu")


def top_level_boxes(data: bytes) -> list[str]:
    """The types of an MP4's top-level boxes, in file order."""
    boxes, at = [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size == 1:  # a 64-bit size follows the type
            size = struct.unpack(">Q", data[at + 8 : at + 16])[0]
        boxes.append(kind.decode("ascii"))
        if size < 8:
            break
        at += size
    return boxes


def test_overlay_frames_are_every_frame_of_the_clip_at_its_size(clip_and_trace):
    clip, trace = clip_and_trace
    for style, value in (("kept", None), ("value", "run_length"), ("heat", "rollout"), ("plain", None)):
        images = overlay_frames(clip.frames, trace, trace.layers, style, value, focus=(1, 1, 1))
        assert len(images) == 8
        assert all(image.shape == (64, 64, 3) and image.dtype == np.uint8 for image in images)
    plain = overlay_frames(clip.frames, trace, 0, "plain")
    assert not np.array_equal(plain[0], clip.frames[0]), "each frame carries its label"
    assert np.array_equal(plain[0][40:], clip.frames[0][40:]), "below the label, the frame itself"


def test_bad_overlay_parameters_are_named(clip_and_trace):
    clip, trace = clip_and_trace
    with pytest.raises(ValueError, match="layer must be between 0 and 2"):
        overlay_frames(clip.frames, trace, 3)
    with pytest.raises(ValueError, match="do not match the trace"):
        overlay_frames(clip.frames[:4], trace, 0)
    with pytest.raises(ValueError, match="style must be one of"):
        overlay_frames(clip.frames, trace, 0, "sparkles")


def test_the_gif_loops_with_one_frame_per_image(clip_and_trace):
    clip, trace = clip_and_trace
    images = overlay_frames(clip.frames, trace, 1, "value", "run_length")
    with Image.open(io.BytesIO(gif_bytes(images, fps=6.25))) as gif:
        assert gif.format == "GIF" and gif.size == (64, 64) and gif.n_frames == 8
        assert gif.info["loop"] == 0 and gif.info["duration"] == 160
        gif.seek(3)
        frame = np.asarray(gif.convert("RGB"), dtype=int)
    assert np.abs(frame - images[3]).mean() < 8, "a palette of 256 colours per frame keeps the picture"


def test_the_mp4_is_h264_yuv420p_with_its_index_first(clip_and_trace):
    clip, trace = clip_and_trace
    images = overlay_frames(clip.frames, trace, 0, "kept")
    data = mp4_bytes(images, fps=playback_fps(clip.times))
    boxes = top_level_boxes(data)
    assert boxes[0] == "ftyp" and boxes.index("moov") < boxes.index("mdat"), boxes
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == 25
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(decoded) == 8 and decoded[0].shape == (64, 64, 3)
    assert np.abs(decoded[5].astype(int) - images[5]).mean() < 8


def test_odd_sizes_get_one_more_row_and_column():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (35, 51, 3), dtype=np.uint8) for _ in range(3)]
    with av.open(io.BytesIO(mp4_bytes(images, fps=10))) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (52, 36)
        assert sum(1 for _ in container.decode(stream)) == 3
    with Image.open(io.BytesIO(gif_bytes(images, fps=10))) as gif:
        assert gif.size == (51, 35) and gif.n_frames == 3


def test_the_png_decodes_to_the_same_pixels(clip_and_trace):
    clip, trace = clip_and_trace
    image = overlay_frames(clip.frames, trace, 2, "heat", "attention")[4]
    with Image.open(io.BytesIO(png_bytes(image))) as png:
        assert png.format == "PNG"
        assert np.array_equal(np.asarray(png.convert("RGB")), image)


@pytest.mark.parametrize(
    "images, fps, message",
    [
        ([], 10, "no images"),
        ([np.zeros((8, 8), np.uint8)], 10, "RGB uint8"),
        ([np.zeros((8, 8, 3), np.float32)], 10, "RGB uint8"),
        ([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)], 10, "one size"),
        ([np.zeros((8, 8, 3), np.uint8)], 0, "fps must be"),
        ([np.zeros((8, 8, 3), np.uint8)], float("nan"), "fps must be"),
        ([np.zeros((8, 8, 3), np.uint8)], 120, "fps must be"),
    ],
)
def test_bad_images_or_rates_are_refused_with_a_reason(images, fps, message):
    for encode in (gif_bytes, mp4_bytes):
        with pytest.raises(ValueError, match=message):
            encode(images, fps)


def test_playback_rate_follows_the_sampled_times():
    assert playback_fps(np.arange(16) * 0.16) == pytest.approx(6.25)
    assert playback_fps([0.0]) == 8.0
    assert playback_fps(np.arange(4) * 0.001) == 50.0


def export_page():
    import torch

    from explorer.analyze import analyze
    from explorer.models.reducers import make_reducer
    from explorer.models.video_vit import VideoViT, VideoViTConfig
    from explorer.ui import views
    from tests.clips import make_clip, moving_square_frames

    torch.manual_seed(0)
    model = VideoViT(
        VideoViTConfig(embed_dim=64, depth=2, num_heads=2, num_classes=5, num_frames=8, img_size=64)
    ).eval()
    clip = make_clip(moving_square_frames(frames=8, size=64, row=1))
    trace, dense = (analyze(clip, model, make_reducer(name), device="cpu") for name in ("rlt", "none"))
    image, layer, style, value, focus = views.token_view(clip, trace)
    views.charts_view(trace, dense, layer)
    views.export_view(clip, trace, image, layer, style, value, focus)


def test_the_export_view_offers_every_file_and_charts_keep_their_png_button():
    at = AppTest.from_function(export_page, default_timeout=120).run()
    assert not at.exception
    labels = [button.proto.label for button in at.get("download_button")]
    assert labels == [
        "Overlay at layer 0 (PNG)",
        "Overlay over time (GIF)",
        "Overlay over time (MP4)",
        "Trace (summary.json + trace.npz)",
    ]
    assert any("camera icon" in caption.value for caption in at.caption)
    charts = at.get("plotly_chart")
    assert charts
    for chart in charts:  # plotly's own toolbar has "Download plot as a png" unless a config hides it
        config = json.loads(chart.proto.config or "{}")
        assert config.get("displayModeBar", True) is not False
        assert "toImage" not in config.get("modeBarButtonsToRemove", [])
