"""docs/notebook_example.py runs as written: the bundled sample, the demo model, two reducers at half the tokens,
a saved trace read back, and the trace's inline view written as HTML."""

import re
import runpy
import sys
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest

from explorer.trace import SCHEMA_VERSION, Trace

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "notebook_example.py"


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """What the example printed and where it wrote, run as a script in a folder of its own."""
    folder = tmp_path_factory.mktemp("notebook")
    out = folder / "out"
    argv, cwd = sys.argv, Path.cwd()
    sys.argv = [str(EXAMPLE), str(out)]
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(folder)
            printed = StringIO()
            with redirect_stdout(printed):
                runpy.run_path(str(EXAMPLE), run_name="__main__")
    finally:
        sys.argv = argv
    assert Path.cwd() == cwd
    return printed.getvalue(), out


def test_it_prints_token_counts_and_top_five_for_both_reducers(ran):
    printed, _ = ran
    assert "clip: 16 frames of 112 px from still_and_moving.mp4" in printed
    counts = {
        name: [int(n) for n in re.search(rf"^{name}: tokens per layer \[(.*)\]$", printed, re.M).group(1).split(", ")]
        for name in ("rlt", "tome")
    }
    assert counts["rlt"][0] < 392 and len(set(counts["rlt"])) == 1, "RLT drops before the blocks, then keeps"
    assert counts["tome"][0] == 392 and counts["tome"] == sorted(counts["tome"], reverse=True)
    for counts_of in counts.values():
        assert 0.4 * 392 <= sum(counts_of) / len(counts_of) <= 0.6 * 392, "half the tokens on average"
    guesses = re.findall(r"^  (.+): (0\.\d{3})$", printed, re.M)
    assert len(guesses) == 10 and all(not label.startswith("class ") for label, _ in guesses), "named classes"
    assert f"schema version {SCHEMA_VERSION}" in printed and "value 'size': cluster size (count)" in printed


def test_it_saves_a_trace_that_loads_and_writes_the_inline_view(ran):
    printed, out = ran
    back = Trace.load(out / "tome")
    assert back.meta["reducer"] == "tome" and back.meta["budget"]["fraction"] == 0.5
    page = (out / "trace.html").read_text()
    written = int(re.search(r"^wrote .*trace\.html \((\d+) characters\)$", printed, re.M).group(1))
    assert 0 < written < len(page)
    assert page.count('src="data:image/png;base64,') == 1 and "<svg" in page and "<script" not in page
    assert len(page) < 200_000, "small enough to keep in a notebook"
