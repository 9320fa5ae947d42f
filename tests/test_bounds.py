"""Numbers out of range and outputs that cannot be written end in one line, before any work: no traceback,
no hang, no allocation without bound."""

import pytest

from explorer.cli import main

CLIP = ["analyze", "sample:still_and_moving"]


def cases(tmp_path):
    a_file = tmp_path / "taken.txt"
    a_file.write_text("a file")
    out = ["--out", str(tmp_path / "out")]
    return {
        "out is a device": (CLIP + ["--out", "/dev/null"], "/dev/null is not a folder: give a folder"),
        "out under a file": (CLIP + ["--out", str(a_file / "x")], "cannot write the trace to"),
        "out under /proc": (CLIP + ["--out", "/proc/explorer"], "cannot write the trace to /proc/explorer"),
        "a token per pixel": (
            CLIP + out + ["--reducer", "tubes", "--set", "tubes=1x1x1 stride 1,1,1"],
            "tubes would send 200,704 tokens through the blocks of a 16 x 112 x 112 clip; at most 65,536",
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
    }


@pytest.mark.parametrize(
    "name",
    [
        "out is a device",
        "out under a file",
        "out under /proc",
        "a token per pixel",
        "tube offset 1e30",
        "timed runs 1e12",
        "stride 1e20",
        "ToMe r=inf",
        "VTM gamma=inf",
        "window of 3 frames",
        "accuracy clips 1e12",
        "accuracy out a device",
        "train steps 1e12",
        "train out under /proc",
        "bench batch 1e9",
        "bench batch past memory",
        "scan out a device",
    ],
)
def test_each_is_refused_in_one_line_before_any_work(name, tmp_path, capsys):
    argv, message = cases(tmp_path)[name]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
