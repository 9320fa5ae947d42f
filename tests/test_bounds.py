"""Numbers out of range and outputs that cannot be written end in one line, before any work: no traceback,
no hang, no allocation without bound."""

from pathlib import Path

import numpy as np
import pytest

import explorer
from explorer import ModelSpec
from explorer.cli import main
from explorer.errors import USER_ERRORS
from explorer.video import Clip

CLIP = ["analyze", "sample:still_and_moving"]


def cases(tmp_path):
    a_file = tmp_path / "taken.txt"
    if tmp_path.exists():
        a_file.write_text("a file")
    out = ["--out", str(tmp_path / "out")]
    return {
        "out is a device": (CLIP + ["--out", "/dev/null"], "/dev/null is not a folder: give a folder"),
        "out under a file": (CLIP + ["--out", str(a_file / "x")], "cannot write the trace to"),
        "out under /proc": (CLIP + ["--out", "/proc/explorer"], "cannot write the trace to /proc/explorer"),
        "a token per pixel": (
            CLIP + out + ["--reducer", "tubes", "--set", "tubes=1x1x1 stride 1,1,1"],
            "sparse tubes 1x1x1 stride 1,1,1 would make 200,704 tokens for a 16 x 112 x 112 clip; at most 65,536 fit",
        ),
        "tube offset 1e30": (
            CLIP + out + ["--reducer", "tubes", "--set", "tubes=2x16x16 stride 2,16,16 offset " + "9" * 31 + ",0,0"],
            "kernel, stride and offset must be at most 10000",
        ),
        "timed runs 1e12": (CLIP + out + ["--runs", "1000000000000"], "timing runs must be between 1 and 100"),
        "stride 1e20": (CLIP + out + ["--stride", "1" + "0" * 20], "Stride must be between 1 and 10,000"),
        "ToMe r=inf": (CLIP + out + ["--reducer", "tome", "--set", "r=inf"], "r must be a finite number"),
        "VTM gamma=inf": (CLIP + out + ["--reducer", "vtm", "--set", "gamma=inf"], "gamma must be a finite number"),
        "window of 3 frames": (CLIP + out + ["--window", "3"], "whole number of tubelets"),
        "accuracy clips 1e12": (["accuracy", "--clips", "1000000000000"] + out, "--clips must be between 1 and"),
        "accuracy out a device": (["accuracy", "--clips", "2", "--out", "/dev/null"], "/dev/null is not a folder"),
        "train steps 1e12": (["train", "--steps", "1000000000000", "--out", str(tmp_path / "m.st")], "at most"),
        "train out under /proc": (["train", "--steps", "1", "--out", "/proc/m.st"], "cannot write the weights"),
        "bench batch 1e9": (["bench", "--batch", "1000000000", "--models", "tiny"], "must be at most 1024"),
        "bench batch past memory": (
            ["bench", "--batch", "1024", "--frames", "256", "--size", "512", "--models", "tiny"],
            "would need about",
        ),
        "scan out a device": (["scan", "sample:still_and_moving", "--out", "/dev/null"], "/dev/null is not a folder"),
        "a token per pixel of 256 frames": (
            CLIP + out + ["--reducer", "tubes", "--set", "tubes=1x1x1 stride 1,1,1", "--frames", "256"],
            "would make 3,211,264 tokens for a 256 x 112 x 112 clip; at most 65,536 fit",
        ),
        "RLT at 256 x 448": (CLIP + out + ["--frames", "256", "--size", "448"], "rlt would make 100,352 tokens"),
        "MViT at 256 x 448": (
            CLIP + out + ["--reducer", "mvit", "--frames", "256", "--size", "448"],
            "mvit would compare 40,283,726,337 (query, key) pairs in one attention",
        ),
        "65 tubes": (CLIP + out + ["--reducer", "tubes", "--set", "tubes=" + "2x16x16 stride 2,16,16;" * 65], "64"),
        "a 5000-digit kernel": (
            CLIP + out + ["--reducer", "tubes", "--set", "tubes=" + "9" * 5000 + "x16x16 stride 2,16,16"],
            "kernel, stride and offset must be at most 10000",
        ),
        "ToMe r=1e30": (CLIP + out + ["--reducer", "tome", "--set", "r=1e30"], "r must be between 0 and 4096"),
        "random seed=-1e30": (CLIP + out + ["--reducer", "random", "--set", "seed=-1e30"], "seed must be between 0"),
        "RLT tau=nan": (CLIP + out + ["--reducer", "rlt", "--set", "tau=nan"], "tau must be a finite number"),
        "start 1e17": (CLIP + out + ["--start", "1e17"], "is past the end"),
        "start nan": (CLIP + out + ["--start", "nan"], "Start must be a time of 0 seconds or more"),
        "start -1": (CLIP + out + ["--start", "-1"], "Start must be a time of 0 seconds or more"),
        "frames 1e9": (CLIP + out + ["--frames", "1000000000"], "Frames must be between 1 and 256"),
        "size 1e9": (CLIP + out + ["--size", "1000000000"], "Size must be a multiple of 16 from 16 to 512"),
        "discard inf": (CLIP + out + ["--discard", "inf"], "discard ratio must be in [0, 1)"),
        "bench budget nan": (["bench", "--budget", "nan", "--models", "tiny"], "budget must be a finite number"),
        "bench budget 2": (["bench", "--budget", "2", "--models", "tiny"], "budget must be between 0.0 and 1.0"),
        "bench start inf": (["bench", "--start", "inf", "--models", "tiny"], "Start must be a time"),
        "bench frames 1e9": (["bench", "--frames", "1000000000", "--models", "tiny"], "Frames must be between"),
        "bench json under a file": (
            ["bench", "--models", "tiny", "--json", str(a_file / "x.json")],
            "is not a folder: give a folder to write the numbers to",
        ),
        "bench json a folder": (["bench", "--models", "tiny", "--json", str(tmp_path)], "is not a regular file"),
        "train lr nan": (["train", "--lr", "nan", "--out", str(tmp_path / "m.st")], "--lr must be a finite number"),
        "train lr -1": (["train", "--lr", "-1", "--out", str(tmp_path / "m.st")], "--lr must be between"),
        "train batch 1e9": (["train", "--batch", "1000000000", "--out", str(tmp_path / "m.st")], "between 1 and 1024"),
        "train threads 1e9": (["train", "--threads", "1000000000", "--out", str(tmp_path / "m.st")], "--threads"),
        "train out a device": (["train", "--out", "/dev/null"], "/dev/null is not a regular file"),
        "accuracy name with a folder": (["accuracy", "--name", "../x"] + out, "--name must be a plain file name"),
        "accuracy budget nan": (["accuracy", "--budgets", "nan"] + out, "budgets must be fractions in (0, 1]"),
        "scan hop 1e-300": (["scan", "sample:still_and_moving", "--hop", "1e-300"] + out, "--hop (seconds) must be"),
        "scan hop inf": (["scan", "sample:still_and_moving", "--hop", "inf"] + out, "--hop must be a positive number"),
        "scan windows 1e9": (["scan", "sample:still_and_moving", "--windows", "1000000000"] + out, "1,000,000"),
        "scan frames 1e9": (["scan", "sample:still_and_moving", "--frames", "1000000000"] + out, "Frames must be"),
        "scan dense at 256 x 448": (
            ["scan", "sample:still_and_moving", "--frames", "256", "--size", "448"] + out,
            "none would make 100,352 tokens",
        ),
        "scan out under /proc": (["scan", "sample:still_and_moving", "--out", "/proc/scan"], "cannot write the scan"),
        "download dest a device": (["download", "x/y", "--dest", "/dev/null"], "/dev/null is not a folder"),
        "app port 1e9": (["app", "--port", "1000000000", "--dry-run"], "--port must be between 1 and 65,535"),
        "app runs 0": (["app", "--runs", "0", "--dry-run"], "TOKEN_EXPLORER_RUNS must be a whole number of runs"),
    }


@pytest.mark.parametrize("name", list(cases(Path("/nonexistent"))))
def test_each_is_refused_in_one_line_before_any_work(name, tmp_path, capsys):
    argv, message = cases(tmp_path)[name]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err


API_CASES = {
    "frames 1e9": (lambda: explorer.build_model(ModelSpec(size="tiny"), 10**9, 224), "Frames must be between 1"),
    "size nan": (lambda: explorer.build_model(ModelSpec(size="tiny"), 16, float("nan")), "Size must be a multiple"),
    "seed 1e30": (lambda: explorer.build_model(ModelSpec(size="tiny", seed=10**30)), "seed must be between"),
    "timing runs nan": (lambda: _analyze(timing_runs=float("nan")), "timing runs must be a finite number"),
    "timing runs 1e12": (lambda: _analyze(timing_runs=10**12), "timing runs must be between 1 and 100"),
    "a token per pixel": (
        lambda: _analyze(reducer=explorer.make_reducer("tubes", tubes="1x1x1 stride 1,1,1")),
        "sparse tubes 1x1x1 stride 1,1,1 would make 200,704 tokens",
    ),
    "r=1e30": (lambda: explorer.make_reducer("tome", r=10**30), "r must be between 0 and 4096"),
    "gamma=inf": (lambda: explorer.make_reducer("vtm", gamma=float("inf")), "gamma must be a finite number"),
}


def _analyze(reducer=None, **run):
    """A still 16 x 112 x 112 clip through the demo model: every refusal here comes before it runs."""
    model, _ = explorer.build_model(ModelSpec())
    clip = Clip(np.zeros((16, 112, 112, 3), np.uint8), 25.0, np.arange(16) / 25, "still", (112, 112), 1.0)
    return explorer.analyze(clip, model, reducer or explorer.make_reducer("none"), **run)


@pytest.mark.parametrize("name", list(API_CASES))
def test_the_python_api_refuses_the_same_numbers(name):
    call, message = API_CASES[name]
    with pytest.raises(USER_ERRORS) as refused:
        call()
    assert message in str(refused.value)


def test_the_work_estimate_counts_tokens_pairs_and_scores_before_a_run():
    model, _ = explorer.build_model(ModelSpec(), 16, 224)
    work = explorer.estimate_work(explorer.make_reducer("none"), model)
    assert (work.tokens, work.pairs, work.heads) == (1568, 1568**2, 2)
    assert work.score_gib == 4 * 2 * 1568**2 / 2**30 and work.time_class == "under a second on a CPU"
    mvit = explorer.estimate_work(explorer.make_reducer("mvit"), model)
    assert mvit.tokens == 8 * 56 * 56 + 1 and mvit.pairs == (8 * 56 * 56 + 1) * (8 * 7 * 7 + 1)  # class token too
