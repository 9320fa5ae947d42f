"""The trace as a public format: a schema version, clear errors for what is not a trace, loading with numpy
alone (no torch, timm, PyAV, OpenCV or Streamlit), what its values mean, and its inline view for notebooks."""

import base64
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from explorer.trace import READABLE_VERSIONS, SCHEMA_VERSION, Trace, TraceFormatError, ValueInfo

ROOT = Path(__file__).resolve().parent.parent
BLOCKED = ("torch", "timm", "av", "cv2", "streamlit", "plotly")


def hand_built(meta: dict | None = None) -> Trace:
    """2 x 2 x 2 cells of 2 frames x 16 px: eight tokens at the input, four after the one block, each of those
    standing for its home cell and the next (a merge within each frame)."""
    owner = np.stack([np.arange(8).reshape(2, 2, 2), np.repeat(np.arange(4), 2).reshape(2, 2, 2)])
    return Trace(
        grid=(2, 2, 2),
        cell=(2, 16, 16),
        owner=owner,
        tokens_per_layer=[8, 4],
        values={
            "cell": [np.arange(8), np.array([0, 2, 4, 6])],
            "size": [np.ones(8, dtype=np.int64), np.full(4, 2, dtype=np.int64)],
            "rollout": [np.linspace(0.5, 2.0, 8), np.array([1.0, np.nan, 3.0, 0.25])],
        },
        flops=np.array([1e6, 2e6]),
        dense_flops=np.array([1e6, 4e6]),
        seconds={"reduce": 0.001, "forward": 0.002},
        logits=np.array([0.5, 2.0, -1.0], dtype=np.float32),
        labels=["still", "up", "down"],
        meta={"reducer": "hand", "params": {"r": 4}, "notes": ["built by hand"]} if meta is None else meta,
    )


@pytest.fixture
def saved(tmp_path) -> Path:
    return hand_built().save(tmp_path / "trace")


def rewrite_summary(folder: Path, **changes) -> None:
    path = folder / "summary.json"
    summary = json.loads(path.read_text())
    for key, value in changes.items():
        if value is ...:
            summary.pop(key)
        else:
            summary[key] = value
    path.write_text(json.dumps(summary))


def test_the_summary_carries_the_schema_version_and_the_trace_round_trips(saved):
    summary = json.loads((saved / "summary.json").read_text())
    assert summary["schema_version"] == SCHEMA_VERSION == 1 and SCHEMA_VERSION in READABLE_VERSIONS
    assert next(iter(summary)) == "schema_version", "first, where a person opening the file sees it"
    back, trace = Trace.load(saved), hand_built()
    assert back.grid == trace.grid and back.cell == trace.cell and back.tokens_per_layer == [8, 4]
    assert np.array_equal(back.owner, trace.owner) and back.labels == trace.labels and back.meta == trace.meta
    for name, per_layer in trace.values.items():
        for layer in range(2):
            assert np.array_equal(back.values[name][layer], per_layer[layer], equal_nan=True)
    assert back.top_k(1) == [{"index": 1, "label": "up", "probability": pytest.approx(0.7856, abs=1e-4)}]


@pytest.mark.parametrize(
    "version, found",
    [(..., "no schema_version"), (0, "schema_version 0, older"), (2, "schema_version 2, newer"), ("1", "'1', not")],
)
def test_a_version_this_code_does_not_read_is_named_with_the_ones_it_does(saved, version, found):
    rewrite_summary(saved, schema_version=version)
    with pytest.raises(TraceFormatError, match=re.escape(found)) as caught:
        Trace.load(saved)
    assert "this code reads schema version 1" in str(caught.value)
    assert isinstance(caught.value, ValueError), "callers that catch ValueError (the CLI) catch it"


def test_missing_files_are_named(saved, tmp_path):
    with pytest.raises(TraceFormatError, match="summary.json is missing"):
        Trace.load(tmp_path / "nowhere")
    (saved / "trace.npz").unlink()
    with pytest.raises(TraceFormatError, match="trace.npz is missing"):
        Trace.load(saved)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "summary.json").write_text("{not json"), "is not readable JSON"),
        (lambda d: (d / "summary.json").write_bytes(b"\xff\xfe\x00"), "is not readable JSON"),
        (lambda d: (d / "summary.json").write_text("[1, 2]"), "holds a JSON list, not an object"),
        (lambda d: rewrite_summary(d, grid=...), "needs 'grid' as a JSON list, found nothing"),
        (lambda d: rewrite_summary(d, seconds=3), "needs 'seconds' as a JSON object, found a int"),
        (lambda d: rewrite_summary(d, meta=[1]), "'meta' must be an object"),
        (lambda d: rewrite_summary(d, grid=[2, 2]), "grid must be three whole numbers"),
        (lambda d: rewrite_summary(d, grid=[2, 2, 4]), "owner, grid and tokens_per_layer disagree"),
        (lambda d: (d / "trace.npz").write_bytes(b"not a zip at all"), "is not a readable .npz archive"),
        (lambda d: (d / "trace.npz").write_bytes((d / "trace.npz").read_bytes()[:200]), "not a readable .npz"),
        (lambda d: resave(d, drop="owner"), "lacks the array(s) owner"),
        (lambda d: resave(d, drop="token.cell"), "lacks the array(s) token.cell"),
        (lambda d: resave(d, tokens_per_layer=np.array([8, 5])), "does not hold a consistent trace"),
        (lambda d: resave(d, flops=np.zeros(3)), "flops has shape (3,), not one entry per layer (2)"),
        (lambda d: resave(d, dense_flops=np.zeros((2, 2))), "dense_flops (2, 2) is not one per layer"),
    ],
)
def test_a_malformed_trace_is_refused_with_a_reason_never_a_key_error(saved, damage, message):
    damage(saved)
    with pytest.raises(TraceFormatError, match=re.escape(message)):
        Trace.load(saved)


def resave(folder: Path, drop: str | None = None, **replace: np.ndarray) -> None:
    with np.load(folder / "trace.npz") as npz:
        arrays = {key: npz[key] for key in npz.files if key != drop}
    np.savez_compressed(folder / "trace.npz", **(arrays | replace))


def test_value_info_reads_what_the_trace_says_its_values_mean():
    described = {"label": "cluster size", "explanation": "cells per token", "kind": "count"}
    trace = hand_built({"values": {"size": described, "rollout": {"label": "x", "explanation": "y", "kind": "odd"}}})
    assert trace.value_info("size") == ValueInfo("cluster size", "cells per token", "count")
    assert trace.value_info("rollout") is None, "a kind the views do not know is not passed on"
    assert trace.value_info("cell") is None, "not described"
    assert hand_built({}).value_info("size") is None, "a trace that describes nothing"
    assert hand_built({"values": ["size"]}).value_info("size") is None


def test_a_trace_from_analyze_describes_its_values_and_keeps_them_through_a_save(tmp_path):
    import torch

    from explorer.analyze import analyze
    from explorer.models.reducers import make_reducer
    from explorer.models.video_vit import VideoViT, VideoViTConfig
    from tests.clips import make_clip, moving_square_frames

    torch.manual_seed(0)
    model = VideoViT(VideoViTConfig(embed_dim=32, depth=2, num_heads=2, num_classes=3, num_frames=4, img_size=32))
    trace = analyze(
        make_clip(moving_square_frames(frames=4, size=32, row=0)), model.eval(), make_reducer("rlt"), device="cpu"
    )
    back = Trace.load(trace.save(tmp_path))
    for name in trace.values:
        assert back.value_info(name) == trace.value_info(name)
    run_length = back.value_info("run_length")
    assert run_length is not None and run_length.kind == "count" and run_length.label
    assert (
        back.value_info("cell") == ValueInfo(**trace.meta["values"]["cell"]) and back.value_info("cell").kind == "index"
    )


def test_a_saved_trace_loads_with_numpy_alone(saved):
    """A fresh Python where torch, timm, PyAV, OpenCV, Streamlit and plotly cannot be imported (a None entry in
    sys.modules makes `import torch` raise ImportError) loads the trace, through the package's lazy names too."""
    script = textwrap.dedent(
        f"""
        import json, sys
        for name in {BLOCKED!r}:
            sys.modules[name] = None
        from explorer.trace import Trace
        trace = Trace.load(sys.argv[1])
        import explorer
        assert explorer.Trace is Trace
        try:
            explorer.analyze
        except ImportError as error:
            lazy = str(error)
        page = trace._repr_html_()
        print(json.dumps({{
            "tokens": trace.tokens_per_layer,
            "owner": trace.owner[1].ravel().tolist(),
            "size": trace.values["size"][1].tolist(),
            "rollout": trace.cell_values("rollout", 0).ravel().tolist(),
            "top": trace.top_k(2),
            "size_info": trace.value_info("size"),
            "lazy": lazy,
            "page": page,
            "loaded": sorted(name for name in {BLOCKED!r} if sys.modules.get(name) is not None),
        }}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(saved)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["tokens"] == [8, 4] and result["owner"] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert result["size"] == [2, 2, 2, 2] and result["rollout"] == pytest.approx(np.linspace(0.5, 2.0, 8).tolist())
    assert [guess["label"] for guess in result["top"]] == ["up", "still"]
    assert result["size_info"] is None and result["loaded"] == []
    assert "torch" in result["lazy"], "the model's names still need torch, and say so when used"
    assert "<svg" in result["page"] and "The overlay needs OpenCV" in result["page"] and "<img" not in result["page"]


def test_the_package_names_are_lazy_and_the_same_as_before():
    """explorer.analyze is the function even when the submodule explorer.analyze was imported first."""
    script = textwrap.dedent(
        """
        import sys
        import explorer.analyze
        import explorer
        from explorer import analyze, REDUCERS, make_reducer, Clip, load_clip, ModelSpec, SaliencySpec, Trace
        from explorer import build_model
        assert callable(explorer.analyze) and explorer.analyze is analyze
        assert analyze is sys.modules["explorer.analyze"].analyze
        assert "rlt" in REDUCERS and Trace.__module__ == "explorer.trace" and Clip.__module__ == "explorer.video"
        assert explorer.video.sample_path is sys.modules["explorer.video"].sample_path
        assert set(explorer.__all__) <= set(dir(explorer)) and "_SOURCES" not in dir(explorer)
        try:
            explorer.no_such_name
        except AttributeError as error:
            assert "no_such_name" in str(error)
        else:
            raise AssertionError("an unknown name must raise AttributeError")
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def png_of(page: str) -> np.ndarray:
    data = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    return cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def test_the_inline_view_is_one_offline_html_block_with_the_overlay_and_the_chart():
    trace = hand_built()
    page = trace._repr_html_()
    assert "<script" not in page and 'src="http' not in page and "cdn" not in page.lower(), "nothing fetched"
    assert "<svg" in page and "Tokens per layer" in page and page.count("<circle") == 2
    assert "hand (r=4)" in page and "up 78.6%" in page and "built by hand" in page
    assert "style &#x27;clusters&#x27; on neutral grey" in page, "a merge within a frame: its clusters"
    image = png_of(page)
    assert image.shape == (32, 2 * 32 + 4, 3), "one 32 px frame per tubelet, side by side"
    with_frames = png_of(trace.html(np.zeros((4, 32, 32, 3), np.uint8), layer=0))
    on_grey = png_of(trace.html(layer=0))
    assert with_frames.shape == on_grey.shape == image.shape and not np.array_equal(with_frames, on_grey)
    assert "style &#x27;kept&#x27;" in trace.html(layer=0)
    with pytest.raises(ValueError, match="layer must be between 0 and 1"):
        trace.html(layer=2)
    with pytest.raises(ValueError, match="the trace covers"):
        trace.html(np.zeros((4, 64, 64, 3), np.uint8))


def test_show_displays_the_html_with_ipython_and_says_how_to_view_it_without(monkeypatch, capsys):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    trace = hand_built()
    trace.show(layer=0)
    assert len(shown) == 1 and shown[0].data == trace.html(layer=0)
    monkeypatch.setitem(sys.modules, "IPython", None)
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    trace.show()
    assert "IPython is not installed" in capsys.readouterr().out
