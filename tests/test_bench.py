"""python -m explorer bench end to end on a tiny model: batches, packed RLT, the table and the JSON."""

import json

import pytest

from explorer.cli import main

TINY = ["--models", "tiny", "--size", "64", "--runs", "1", "--device", "cpu", "--threads", "1", "--batch", "3"]


def run_bench(tmp_path, capsys, *args: str) -> tuple[str, dict]:
    out = tmp_path / "bench.json"
    assert main(["bench", *args, *TINY, "--json", str(out)]) == 0
    return capsys.readouterr().out, json.loads(out.read_text())


def check_rows(result: dict) -> dict:
    rows = {row["reducer"]: row for row in result["rows"]}
    for row in rows.values():
        assert row["clips_per_s"] > 0 and row["batch_ms"] > 0
        assert row["peak_mb"] is not None and row["peak_mb"] >= 0
        assert row["ideal"] == pytest.approx(rows["none"]["gflops"] / row["gflops"])
        assert row["speedup"] == pytest.approx(row["clips_per_s"] / rows["none"]["clips_per_s"])
    assert rows["rlt"]["tokens"] < rows["none"]["tokens"] and rows["rlt"]["ideal"] > 1
    assert rows["rlt"]["run"] == "packed" and rows["rlt"]["attention"] == "sdpa per segment"
    return rows


def test_bench_on_the_sample_repeated(tmp_path, capsys):
    table, result = run_bench(
        tmp_path, capsys, "sample:still_and_moving", "--frames", "4", "--reducers", "rlt", "random", "tome"
    )
    assert result["batch"] == 3 and result["clips"] == "the same clip repeated" and result["threads"] == 1
    assert result["decode_ms"] > 0 and result["redraw_ms"] > 0 and "VmHWM" in result["memory"]
    rows = check_rows(result)
    assert rows["none"]["tokens"] == 4 // 2 * 4 * 4 and rows["none"]["run"] == "batched"
    assert rows["tome"]["run"] == "batched" and rows["random"]["tokens"] == rows["rlt"]["tokens"]
    assert "clips/s" in table and "packed attention: sdpa per segment" in table and "target:" in table


def test_bench_on_different_generated_clips(tmp_path, capsys):
    table, result = run_bench(tmp_path, capsys, "--generated", "--frames", "8", "--reducers", "rlt", "mask")
    assert result["decode_ms"] is None and result["generate_ms"] > 0
    assert result["clips"].startswith("different generated clips")
    check_rows(result)
    assert "generate 3 clips" in table


def test_bench_refuses_a_video_and_generated_clips_together(capsys):
    assert main(["bench", "sample:still_and_moving", "--generated", *TINY]) == 2
    assert "not both" in capsys.readouterr().err
