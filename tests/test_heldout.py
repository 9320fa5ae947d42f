"""The held-out generator (explorer/heldout.py): fixed, balanced, read back as the app reads a video."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from explorer import heldout
from explorer.synthetic import LABELS


def test_the_set_is_balanced_over_the_labels():
    counts = Counter(LABELS[heldout.label_of(i)] for i in range(heldout.CLIPS))
    assert set(counts) == set(LABELS) and set(counts.values()) == {heldout.CLIPS // len(LABELS)}


def test_only_the_shape_moves_and_the_way_its_label_says():
    for index in range(10):
        frames, label = heldout.render(index, light=False)
        assert frames.shape == (heldout.SOURCE_FRAMES, heldout.HEIGHT, heldout.WIDTH, 3)
        changed = (frames[1:] != frames[:-1]).any(-1)
        if LABELS[label] == "still":
            assert not changed.any()
            continue
        steps = [c for c in changed if c.any()]  # PIL draws on whole pixels: slow shapes skip frames
        first, last = np.argwhere(steps[0]).mean(0), np.argwhere(steps[-1]).mean(0)
        dx, dy = heldout.MOTION[label]
        along = (last - first)[1] * dx + (last - first)[0] * dy  # along the labelled direction (row, column)
        assert along > 0


def test_clips_decode_through_load_clip(tmp_path):
    clips, labels = heldout.load(tmp_path / "a", 5)
    assert clips.shape == (5, 16, 112, 112, 3) and clips.dtype == np.uint8
    assert labels.tolist() == [0, 1, 2, 3, 4]
    assert sorted(p.suffix for p in (tmp_path / "a").iterdir()) == [".csv"] + [".mp4"] * 5


@pytest.mark.xfail(
    strict=False,
    reason="not yet reproducible every time: about one run of the whole file in two made different clips the "
    "second time; the cause is not found yet (issue 14)",
)
def test_clips_are_the_same_every_time(tmp_path):
    clips, _ = heldout.load(tmp_path / "a", 5)
    again, _ = heldout.load(tmp_path / "b", 5)
    assert np.array_equal(clips, again)


@pytest.mark.slow
def test_the_shipped_demo_model_holds_its_stated_accuracy_on_the_held_out_generator(tmp_path):
    """The figures the README and the app state (assets/demo_generalization.json) were measured on the shipped
    file, and it is right on at least 95% of the held-out generator's clips, as stated (within 3 clips of 300)."""
    import hashlib
    import json

    import torch

    from explorer.accuracy import GENERALIZATION
    from explorer.analyze import DEMO_WEIGHTS
    from explorer.models.video_vit import normalize_video
    from explorer.models.weights import load_model

    table = json.loads(GENERALIZATION.read_text())
    assert table["weights_sha256"] == hashlib.sha256(DEMO_WEIGHTS.read_bytes()).hexdigest()
    stated = table["rows"][0]["heldout"]["accuracy"]
    clips, labels = heldout.load(tmp_path, heldout.CLIPS)
    model, _ = load_model(DEMO_WEIGHTS)
    with torch.inference_mode():
        predicted = torch.cat([model(normalize_video(torch.from_numpy(c))).argmax(1) for c in np.split(clips, 6)])
    accuracy = float((predicted.numpy() == labels).mean())
    assert accuracy >= 0.95 and abs(accuracy - stated) <= 0.01, (accuracy, stated)
