import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from explorer.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_analyze_end_to_end_in_a_fresh_process(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "explorer",
            "analyze",
            "sample:still_and_moving",
            "--model",
            "tiny",
            "--reducer",
            "rlt",
            "--set",
            "tau=0.2",
            "--frames",
            "8",
            "--size",
            "112",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "kept" in result.stdout and "wrote" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["params"] == {"tau": 0.2, "budget": 0.0} and summary["grid"] == [4, 7, 7]
    with np.load(out / "trace.npz") as npz:
        assert npz["owner"].shape == (13, 4, 7, 7)
        assert npz["run_length"].sum() == 4 * 7 * 7


def test_random_baseline_and_listing(tmp_path, capsys):
    assert (
        main(
            [
                "analyze",
                "sample:still_and_moving",
                "--model",
                "tiny",
                "--reducer",
                "random",
                "--frames",
                "4",
                "--size",
                "64",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "summary.json").read_text())["reducer"] == "random"
    assert main(["reducers"]) == 0 and "tau=0.1" in capsys.readouterr().out
    assert main(["samples"]) == 0 and "sample:still_and_moving" in capsys.readouterr().out


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: [str(d / "nothing.mp4")], "nothing.mp4"),
        (lambda d: [str(_write(d / "notes.mp4", b"just some text, not a video"))], "notes.mp4"),
        (lambda d: [str(_write(d / "empty.mp4", b""))], "empty"),
        (lambda d: ["sample:still_and_moving", "--set", "tau=-1"], "tau must be between"),
        (lambda d: ["sample:still_and_moving", "--set", "tau"], "key=value"),
        (lambda d: ["sample:still_and_moving", "--reducer", "tome2"], "unknown reducer"),
        (lambda d: ["sample:nope"], "no bundled sample"),
        (lambda d: ["sample:still_and_moving", "--weights", str(_write(d / "w.pth", b"\x00garbage"))], "w.pth"),
        (lambda d: ["sample:still_and_moving", "--frames", "0"], "Frames must be"),
        (lambda d: ["sample:still_and_moving", "--frames", "5"], "multiple of 2 frames"),
    ],
)
def test_bad_input_is_one_clear_line_and_a_nonzero_exit(tmp_path, capsys, make_args, message):
    video, *extra = make_args(tmp_path)  # later flags override the small defaults
    code = main(
        ["analyze", video, "--model", "tiny", "--frames", "4", "--size", "64", "--out", str(tmp_path / "out"), *extra]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: ") and message in err[-1]
    assert "Traceback" not in "\n".join(err)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.slow
def test_bench_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "sample:still_and_moving",
                "--models",
                "tiny",
                "--frames",
                "4",
                "--size",
                "64",
                "--runs",
                "1",
                "--device",
                "cpu",
                "--reducers",
                "rlt",
                "random",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "decode 4 frames" in table and "tiny" in table and "rlt" in table
    result = json.loads(out.read_text())
    rows = {row["reducer"]: row for row in result["rows"]}
    assert set(rows) == {"none", "rlt", "random"}
    assert rows["none"]["tokens"] == 4 // 2 * 4 * 4 and rows["rlt"]["tokens"] == rows["random"]["tokens"]
    assert rows["rlt"]["ideal"] == pytest.approx(rows["none"]["gflops"] / rows["rlt"]["gflops"])
    assert result["decode_ms"] > 0 and result["redraw_ms"] > 0


@pytest.mark.slow
def test_bench_runs_reducers_at_a_common_budget(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "sample:still_and_moving",
                "--models",
                "tiny",
                "--frames",
                "4",
                "--size",
                "64",
                "--runs",
                "1",
                "--device",
                "cpu",
                "--reducers",
                "tome",
                "sta",
                "--budget",
                "0.5",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert "token budget 0.5" in capsys.readouterr().out
    rows = {row["reducer"]: row for row in json.loads(out.read_text())["rows"]}
    assert rows["none"]["average_tokens"] == 32
    assert abs(rows["tome"]["average_tokens"] / 32 - 0.5) < 0.1
    assert rows["sta"]["average_tokens"] < 32
