"""The bundled long sample: its stretches as rendered and encoded, and RLT's kept tokens following them."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.scan import ScanSettings, scan
from explorer.video import SAMPLES, load_clip, sample_path
from tests.test_video import load_make_samples

NAME = next(name for name in SAMPLES if name.startswith("Long"))
CROP = np.s_[:, 48:336]  # the centre crop the models see
PATCH = 16


@pytest.fixture(scope="module")
def samples():
    return load_make_samples()


def stretches(samples, content: str) -> list[tuple[int, int]]:
    return [(start, end) for kind, start, end in samples.LONG_STRETCHES if kind == content]


def test_the_stretches_cover_a_minute_back_to_back(samples):
    spans = samples.LONG_STRETCHES
    assert spans[0][1] == 0 and spans[-1][2] >= 60
    assert all(a[2] == b[1] for a, b in zip(spans, spans[1:]))
    assert {kind for kind, *_ in spans} == {"still", "moving", "pan"}
    assert samples.LONG_FRAMES == spans[-1][2] * samples.FPS


def test_still_stretches_do_not_change_and_the_others_do(samples):
    fps = samples.FPS
    for start, end in stretches(samples, "still"):
        first = samples.render_long_frame(start * fps)
        for i in range(start * fps, end * fps, 37):
            np.testing.assert_array_equal(samples.render_long_frame(i), first, err_msg=f"frame {i} moved")
    for start, end in stretches(samples, "moving") + stretches(samples, "pan"):
        middle = (start + end) * fps // 2
        assert not np.array_equal(samples.render_long_frame(middle), samples.render_long_frame(middle + 4))


def patch_change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference per 16x16 patch of the centre crop, in grey levels."""
    diff = np.abs(a[CROP].astype(np.float32) - b[CROP].astype(np.float32)).mean(-1)
    h, w = diff.shape
    return diff.reshape(h // PATCH, PATCH, w // PATCH, PATCH).mean((1, 3))


def test_a_pan_changes_every_patch_and_the_movers_only_some(samples):
    fps, gap = samples.FPS, 12  # frames RLT compares at stride 4 lie 12 source frames apart
    (start, end), *_ = stretches(samples, "pan")
    middle = (start + end) * fps // 2
    pan = patch_change(samples.render_long_frame(middle), samples.render_long_frame(middle + gap))
    assert (pan > 6).mean() > 0.9  # RLT's tau = 0.1 in normalized units is about 6 grey levels
    (start, end), *_ = stretches(samples, "moving")
    middle = (start + end) * fps // 2
    moving = patch_change(samples.render_long_frame(middle), samples.render_long_frame(middle + gap))
    assert 0.03 < (moving > 6).mean() < 0.5


def test_the_encoded_file_matches_the_renderer(samples):
    path = sample_path(NAME)
    assert path.name == samples.LONG_FILE_NAME and path.stat().st_size < 1.5 * 1024 * 1024
    clip = load_clip(path, frames=4, stride=400, start=1.0, size=288)
    assert clip.duration == pytest.approx(samples.LONG_STRETCHES[-1][2]) and clip.fps == samples.FPS
    for k, frame in enumerate(clip.frames):
        rendered = samples.render_long_frame(samples.FPS + 400 * k)[CROP].astype(int)
        assert np.abs(frame.astype(int) - rendered).mean() < 4


def test_rlt_keeps_the_first_tubelet_on_still_stretches_and_nearly_all_during_the_pan(samples, tmp_path):
    result = scan([sample_path(NAME)], tmp_path / "scan", ScanSettings(reducers=("rlt",)))
    rlt = result.windows[result.windows.reducer == "rlt"]
    assert len(rlt) == len(result.windows) // 2 >= 20 and result.errors.empty
    kept = rlt.kept_tokens / rlt.dense_tokens
    first_tubelet = 2 / result.summary["settings"]["frames"]  # tubelets are 2 frames deep
    by_content: dict[str, list[float]] = {"still": [], "moving": [], "pan": []}
    for (_, row), fraction in zip(rlt.iterrows(), kept):
        inside = [kind for kind, start, end in samples.LONG_STRETCHES if start <= row.start_s and row.end_s <= end]
        if inside:  # windows across a boundary are left out
            by_content[inside[0]].append(fraction)
    assert all(len(fractions) >= 3 for fractions in by_content.values()), by_content
    assert max(by_content["still"]) == pytest.approx(first_tubelet)
    assert min(by_content["pan"]) > 0.95
    assert 0.2 < min(by_content["moving"]) and max(by_content["moving"]) < 0.6
