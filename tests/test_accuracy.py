"""python -m explorer accuracy: every reducer at several budgets on the held-out generated clips."""

from __future__ import annotations

import json

import pytest
import torch

from explorer import accuracy
from explorer.accuracy import GENERALIZATION
from explorer.cli import main
from explorer.models.reducers import ParameterError
from explorer.models.video_vit import VideoViT, VideoViTConfig
from explorer.models.weights import save_weights
from explorer.synthetic import LABELS

TINY = VideoViTConfig(embed_dim=32, depth=6, num_heads=2, num_classes=len(LABELS), num_frames=16, img_size=112)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_weights(VideoViT(TINY).eval(), path, list(LABELS))
    return path


@pytest.mark.slow
def test_cli_end_to_end(weights, tmp_path, capsys):
    out = tmp_path / "acc"  # NAME defaults to accuracy
    code = main(
        [
            "accuracy",
            "--weights",
            str(weights),
            "--clips",
            "4",
            "--budgets",
            "1",
            "0.5",
            "--reducers",
            "rlt",
            "tome",
            "vtm:targets=learnable",
            "sta",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "accuracy.json").read_text())
    rows = result["rows"]
    assert [r["reducer"] for r in rows] == ["none"] + [
        r for r in ("rlt", "tome", "vtm:targets=learnable", "sta") for _ in range(2)
    ]
    dense = rows[0]
    assert dense["average_tokens"] == 392 and dense["agreement"] == 1.0
    by = {(r["reducer"], r["budget"]): r for r in rows}
    assert by["tome", 1.0]["average_tokens"] == 392 and by["tome", 1.0]["agreement"] == 1.0  # r = 0: dense
    assert by["tome", 1.0]["accuracy"] == dense["accuracy"]
    for name in ("tome", "vtm:targets=learnable", "sta"):
        assert abs(by[name, 0.5]["average_tokens"] / 392 - 0.5) < 0.05
        assert by[name, 0.5]["gflops"] < 0.7 * dense["gflops"]
    # a still background repeats exactly: RLT cannot keep more than the moving cells, even at budget 1
    assert by["rlt", 0.5]["average_tokens"] <= by["rlt", 1.0]["average_tokens"] < 392
    assert all(0 <= r["accuracy"] <= 1 and r["forward_ms"] > 0 for r in rows)
    assert (out / "accuracy.md").read_text().count("\n") == len(rows) + 4
    assert "plotly" in (out / "accuracy.html").read_text()[:200000].lower()


def test_bad_requests_are_refused(weights, tmp_path, capsys):
    for args, message in (
        (["--reducers", "tubes"], "'tubes' cannot be evaluated"),
        (["--reducers", "vtm:targets"], "key=value"),
        (["--budgets", "1.5"], "budgets must be fractions"),
        (["--clips", "0"], "--clips must be between 1 and 100,000, got 0"),
    ):
        assert main(["accuracy", "--weights", str(weights), "--out", str(tmp_path), *args]) == 2
        assert message in capsys.readouterr().err


def test_a_model_not_trained_on_the_clips_is_refused():
    model = VideoViT(TINY)
    with pytest.raises(ParameterError, match="generated motion clips"):
        accuracy.evaluate(model, ["a", "b", "c", "d", "e"], clips=1)


def test_the_generalization_note_speaks_only_for_the_weights_it_was_measured_on(tmp_path):
    import shutil

    from explorer.accuracy import generalization_note
    from explorer.analyze import DEMO_WEIGHTS

    note = generalization_note(DEMO_WEIGHTS)
    table = json.loads(GENERALIZATION.read_text())
    assert note is not None and f"{table['rows'][0]['heldout']['accuracy']:.1%}" in note
    copy = tmp_path / "other.safetensors"
    shutil.copy(DEMO_WEIGHTS, copy)
    assert generalization_note(copy) is not None  # the same bytes
    copy.write_bytes(copy.read_bytes() + b" ")
    assert generalization_note(copy) is None and generalization_note(None) is None
    assert generalization_note(tmp_path / "missing.safetensors") is None
