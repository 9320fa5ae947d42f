"""The app's memory stays flat across many reruns with new videos: every cache is bounded.

Measured in a fresh Python process: in the suite's own process, the threads, arenas and caches that earlier tests
left behind move the resident size by tens of MB on their own."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RERUNS = 50
GROWTH_MB = 50  # allowed growth from the 10th rerun (caches warm) to the 50th
ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, os, sys, tempfile
from pathlib import Path
import numpy as np
from streamlit.testing.v1 import AppTest
import explorer.ui.warmup as warmup
from tests.conftest import write_video

warmup.warm_server = lambda: None  # as every app test: no tour runs in the background
folder, reruns = Path(sys.argv[1]), int(sys.argv[2])

def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

at = AppTest.from_file("app.py", default_timeout=180)
at.session_state["model_size"] = "tiny"
at.session_state["frames"] = 8
at.session_state["size"] = 112
at.run()
at.radio(key="source").set_value("Upload").run()
before = sorted(os.listdir(tempfile.gettempdir()))
resident, problems = [], []
for i in range(reruns):
    frames = np.random.default_rng(i).integers(0, 255, (12, 96, 128, 3), dtype=np.uint8)
    path = folder / f"clip{i}.mp4"
    write_video(path, frames, fps=12)
    at.file_uploader[0].upload(path.name, path.read_bytes(), "video/mp4").run()
    if at.exception or at.error:
        problems.append(str([e.value for e in at.exception] + [e.value for e in at.error]))
    resident.append(resident_mb())
left = sorted(set(os.listdir(tempfile.gettempdir())) - set(before))
print(json.dumps({"resident": resident, "problems": problems, "left": left}))
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads resident memory from /proc (Linux)")
def test_memory_stays_flat_across_50_uploads(tmp_path):
    tmp = tempfile.gettempdir()
    before = set(Path(tmp).iterdir())
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), str(RERUNS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.returncode == 0, child.stderr[-3000:]
    seen = json.loads(child.stdout.strip().splitlines()[-1])
    resident = seen["resident"]
    print(
        f"resident memory: {resident[0]:.0f} MB after 1 upload, {resident[9]:.0f} after 10, "
        f"{resident[-1]:.0f} after {RERUNS}"
    )
    assert not seen["problems"], seen["problems"][:3]
    assert resident[-1] - resident[9] < GROWTH_MB
    assert not seen["left"] and set(Path(tmp).iterdir()) <= before  # uploads leave no temporary files behind
