"""The app driven by streamlit.testing: widgets, uploads and errors, no browser."""

from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import explorer.ui.runs as runs_module
from explorer.models.reducers import REDUCERS
from explorer.ui.views import STYLE_NAMES
from explorer.video import SAMPLES
from tests.conftest import write_video

STYLES = {label: style for style, label in STYLE_NAMES.items()}

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def app(monkeypatch):
    """A fresh app on the tiny model at 8 frames of 112 px, counting model runs."""
    st.cache_data.clear()
    st.cache_resource.clear()
    runs = []
    real = runs_module.analyze

    def counting(*args, **kwargs):
        runs.append(args[2].name)
        return real(*args, **kwargs)

    monkeypatch.setattr(runs_module, "analyze", counting)
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["model_size"] = "tiny"
    at.session_state["frames"] = 8
    at.session_state["size"] = 112
    at.runs = runs
    return at.run()


def metric(at, label):
    return next(m.value for m in at.metric if m.label.startswith(label))


def test_default_run_shows_the_numbers_the_overlay_and_the_charts(app):
    assert not app.exception and not app.error
    assert metric(app, "Tokens per layer").endswith("/ 196")
    assert "G" in metric(app, "FLOPs") and "ms" in metric(app, "Forward time")
    assert app.get("image"), "the overlay image is drawn"
    assert len(app.get("plotly_chart")) == 3  # tokens per layer, run lengths, accuracy against budget
    assert any("Untrained model" in w.value for w in app.warning)
    assert any("run length" in m.value for m in app.markdown)
    assert sorted(app.runs) == ["none", "rlt"]


def test_moving_the_layer_or_the_overlay_never_reruns_the_model(app):
    app.slider(key="layer").set_value(7).run()
    app.radio(key="style").set_value("kept").run()
    app.toggle(key="every_frame").set_value(True).run()
    assert not app.exception
    assert sorted(app.runs) == ["none", "rlt"]


def test_changing_tau_changes_the_tokens(app):
    before = metric(app, "Tokens per layer")
    app.slider(key="param.rlt.tau").set_value(1.5).run()
    after = metric(app, "Tokens per layer")
    assert not app.exception and before != after
    assert int(after.split("/")[0]) < int(before.split("/")[0])
    assert app.runs.count("rlt") == 2 and app.runs.count("none") == 1


@pytest.mark.slow
def test_every_reducer_can_be_chosen_and_every_overlay_drawn(app):
    for name in REDUCERS:
        app.selectbox(key="reducer").set_value(name).run()
        assert not app.exception and not app.error, name
        for layer in (3, 12):
            app.slider(key="layer").set_value(min(layer, app.slider(key="layer").max)).run()
            for label in app.radio(key="style").options:
                app.radio(key="style").set_value(STYLES[label]).run()
                assert not app.exception, (name, layer, label)
    assert sorted(set(app.runs)) == sorted(REDUCERS)


def test_merging_shows_fewer_tokens_per_layer_and_clusters(app):
    app.selectbox(key="reducer").set_value("tome").run()
    app.number_input(key="param.tome.r").set_value(20).run()
    assert not app.exception and not app.error
    app.slider(key="layer").set_value(5).run()
    assert app.get("image")[0].proto.imgs[0].caption.startswith("96 tokens at layer 5")
    app.radio(key="style").set_value("clusters").run()
    app.toggle(key="focus_on").set_value(True).run()
    assert not app.exception


def test_a_token_budget_and_saliency_settings_apply(app):
    app.selectbox(key="reducer").set_value("sta").run()
    app.slider(key="param.sta.budget").set_value(0.5).run()
    assert not app.exception and not app.error
    app.radio(key="fusion").set_value("max").run()
    app.slider(key="discard").set_value(0.5).run()
    app.radio(key="style").set_value("heat").run()
    app.selectbox(key="heat_value").set_value("rollout").run()
    assert not app.exception
    app.toggle(key="saliency_on").set_value(False).run()
    assert not app.exception and not app.error


def test_a_bad_merge_list_is_a_clear_message(app):
    app.selectbox(key="reducer").set_value("tome").run()
    app.text_input(key="param.tome.r_list").input("8,x").run()
    assert not app.exception
    assert any("r_list" in e.value for e in app.error)


def test_an_uploaded_video_is_analyzed(app, tmp_path):
    frames = np.zeros((24, 96, 128, 3), dtype=np.uint8)
    for i in range(24):
        frames[i, 30:60, 4 * i : 4 * i + 30] = 255
    write_video(tmp_path / "clip.mp4", frames, fps=24)
    app.radio(key="source").set_value("Upload").run()
    app.file_uploader(key="upload").upload("clip.mp4", (tmp_path / "clip.mp4").read_bytes(), "video/mp4").run()
    assert not app.exception and not app.error
    assert any("clip.mp4" in e.label for e in app.expander)


def test_a_bad_upload_and_a_bad_checkpoint_get_a_clear_message(app, tmp_path):
    app.radio(key="source").set_value("Upload").run()
    app.file_uploader(key="upload").upload("notes.mp4", b"this is not a video", "video/mp4").run()
    assert not app.exception
    assert app.error and "notes.mp4" in app.error[0].value
    app.radio(key="source").set_value("Sample").run()
    (tmp_path / "model.pth").write_text("not a checkpoint")
    app.text_input(key="weights").input(str(tmp_path / "model.pth")).run()
    assert not app.exception
    assert app.error and "model.pth" in app.error[0].value


def test_a_checkpoint_with_labels_names_the_predictions(app, tmp_path):
    from dataclasses import replace

    import torch

    from explorer.models.video_vit import SIZES, VideoViT
    from explorer.models.weights import save_weights

    torch.manual_seed(1)
    labels = ["left", "right", "still"]
    save_weights(VideoViT(replace(SIZES["tiny"], depth=2, num_classes=3)), tmp_path / "demo.safetensors", labels)
    app.text_input(key="weights").input(str(tmp_path / "demo.safetensors")).run()
    assert not app.exception and not app.error
    assert not any("Untrained model" in w.value for w in app.warning)
    assert metric(app, "Top-1 prediction") in labels
    assert any("explorer checkpoint" in c.value for c in app.caption)


def test_a_local_path_is_analyzed_and_a_missing_one_is_named(app, tmp_path):
    from explorer.video import SAMPLES, sample_path

    app.radio(key="source").set_value("Local path").run()
    app.text_input(key="path").input(str(sample_path(next(iter(SAMPLES))))).run()
    assert not app.exception and not app.error and app.get("image")
    app.text_input(key="path").input(str(tmp_path / "gone.mp4")).run()
    assert not app.exception and "gone.mp4" in app.error[0].value


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a GPU")
def test_asking_for_cuda_without_a_gpu_says_so(app):
    app.radio(key="device").set_value("cuda").run()
    assert not app.exception
    assert app.error and "no GPU" in app.error[0].value


def test_masks_tubes_and_mvit_take_their_parameters(app):
    app.selectbox(key="reducer").set_value("mask").run()
    assert metric(app, "Tokens per layer").startswith("20 /")  # 4 slots x (49 - int(0.9 x 49))
    app.selectbox(key="param.mask.pattern").set_value("random").run()
    app.slider(key="param.mask.mask_ratio").set_value(0.5).run()
    assert not app.exception and not app.error and metric(app, "Tokens per layer").startswith("100 /")
    assert any("Reconstruction" in i.value for i in app.info)  # says what it would show with a decoder
    app.selectbox(key="reducer").set_value("tubes").run()
    app.text_area(key="param.tubes.tubes").input("4x16x16 stride 2,16,16").run()
    assert not app.exception and not app.error and metric(app, "Tokens (boxes)") == "147"  # 3 x 7 x 7
    app.text_area(key="param.tubes.tubes").input("4x16x16 stride 0,16,16").run()
    assert any("stride must be positive" in e.value for e in app.error)
    app.selectbox(key="reducer").set_value("mvit").run()
    assert not app.exception and not app.error
    assert app.slider(key="layer").max == 6
    grids = next(table.value for table in app.dataframe if "query grid" in table.value.columns)
    assert list(grids["query grid"]) == ["4x28x28", "4x28x28", "4x14x14", "4x14x14", "4x7x7", "4x7x7", "4x7x7"]


def test_a_fresh_session_opens_on_the_trained_demo_model():
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="model_size").value == "demo"
    assert metric(at, "Tokens per layer").endswith("/ 392")  # 16 frames of 112 px, the demo model's own input
    assert not any("Untrained model" in w.value for w in at.warning)
    assert any("held-out generated clips" in c.value for c in at.caption)  # the training record
    labels = {"still", "moving left", "moving right", "moving up", "moving down"}
    table = at.dataframe[0].value
    assert set(table["dense"].str.rsplit(" (", n=1).str[0]) == labels
    assert any(chart.proto.spec and "Accuracy" in chart.proto.spec for chart in at.get("plotly_chart"))


def test_reducers_side_by_side_at_one_budget(app):
    app.session_state["compare_reducers"] = ["rlt", "tome", "sta"]
    app.toggle(key="compare_on").set_value(True).run()
    assert not app.exception and not app.error
    assert sorted(set(app.runs)) == ["none", "rlt", "sta", "tome"]
    captions = " ".join(c.value for c in app.caption)
    assert captions.count("fitted") >= 3  # each column names its fitted knob
    runs = len(app.runs)
    app.slider(key="compare_layer").set_value(4).run()
    assert not app.exception and len(app.runs) == runs  # the shared layer redraws, never reruns
    captions = [image.proto.imgs[0].caption for image in app.get("image")]
    assert len(captions) == 3 and all(" tokens at layer 4, frame " in c for c in captions)


def test_a_link_reopens_the_same_view():
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(
        {
            "model_size": "tiny",
            "frames": "8",
            "size": "112",
            "reducer": "tome",
            "param.tome.r": "20",
            "layer": "5",
            "style": "clusters",
        }
    )
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="reducer").value == "tome" and at.slider(key="layer").value == 5
    assert at.radio(key="style").value == "clusters"
    assert at.get("image")[0].proto.imgs[0].caption.startswith("96 tokens at layer 5")
    at.slider(key="layer").set_value(7).run()
    assert at.query_params["layer"] == "7"


def test_the_prediction_says_what_it_is_worth(app):
    assert any("Untrained network" in c.value for c in app.caption)
    app.selectbox(key="model_size").set_value("demo").run()
    assert not app.exception
    assert not any("learned from generated clips" in c.value for c in app.caption), "a generated sample"
    app.selectbox(key="sample").set_value(next(name for name in SAMPLES if "Bunny" in name)).run()
    assert not app.exception
    caveat = next(c.value for c in app.caption if "learned from generated clips" in c.value)
    assert "Big Buck Bunny" in caveat and "16 frames of 112 px" in caveat


def test_a_long_clip_pages_its_frames_and_shows_a_timeline_with_its_windows(app):
    app.select_slider(key="frames").set_value(64).run()
    app.select_slider(key="window").set_value(16).run()
    assert not app.exception and not app.error
    assert "/ 1568" in metric(app, "Tokens per layer")  # 32 slots of 7 x 7 at 112 px
    assert "Time slots 0-15 of 32." in app.get("image")[0].proto.imgs[0].caption
    timeline = next(c for c in app.get("plotly_chart") if "Tokens per time slot" in c.proto.spec)
    assert "windows of 16 frames" in timeline.proto.spec
    app.slider(key="slots_from").set_value(16).run()
    assert not app.exception and "Time slots 16-31 of 32." in app.get("image")[0].proto.imgs[0].caption


def test_the_default_view_is_one_where_the_demo_model_is_right_and_says_how_well_it_generalizes():
    """The first thing a newcomer sees: the bundled sample's ball and square move right in its first 2.4 s, and the
    demo model says so, dense and with the default reducer; beside it, its measured held-out accuracies."""
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert not at.exception and not at.error
    rows = at.dataframe[0].value
    assert rows.iloc[0, 1].startswith("moving right") and rows.iloc[0, 2].startswith("moving right"), rows
    assert any("held-out generator written apart from its training one" in c.value for c in at.caption)
