"""The app's memory stays flat across many reruns with new videos: every cache is bounded."""

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_video
from tests.test_app import app  # noqa: F401  (the fixture: the app on the tiny model)

pytestmark = pytest.mark.slow

RERUNS = 50
GROWTH_MB = 50  # allowed growth from the 10th rerun (caches warm) to the 50th


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads resident memory from /proc (Linux)")
def test_memory_stays_flat_across_50_uploads(app, tmp_path):
    app.radio(key="source").set_value("Upload").run()
    before = set(os.listdir(tempfile.gettempdir()))
    resident = []
    for i in range(RERUNS):
        frames = np.random.default_rng(i).integers(0, 255, (12, 96, 128, 3), dtype=np.uint8)
        path = tmp_path / f"clip{i}.mp4"
        write_video(path, frames, fps=12)
        app.file_uploader[0].upload(path.name, path.read_bytes(), "video/mp4").run()
        assert not app.exception and not app.error
        resident.append(resident_mb())
    print(
        f"resident memory: {resident[0]:.0f} MB after 1 upload, {resident[9]:.0f} after 10, "
        f"{resident[-1]:.0f} after {RERUNS}"
    )
    assert resident[-1] - resident[9] < GROWTH_MB
    assert set(os.listdir(tempfile.gettempdir())) <= before  # uploads leave no temporary files behind
