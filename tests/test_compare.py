"""The side-by-side comparison of reducers: its pure helpers, and its sidebar and view driven by streamlit.testing
on a tiny model (2 blocks, 64-d, 8 frames of 64 px: 4 x 4 x 4 = 64 tokens)."""

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer.ui.compare import CompareChoice, prediction_change

LABELS = ["walk", "run", "jump", "sit", "wave"]


def compare_page(reducers, budget=0.5, logits=None):
    """Dense and the reducers on a moving square; `logits` (name -> list) replaces predictions to make a case."""
    from dataclasses import replace

    import numpy as np
    import streamlit as st
    import torch

    from explorer.models.video_vit import VideoViT, VideoViTConfig
    from explorer.saliency import SaliencySpec
    from explorer.ui import compare, runs
    from tests.clips import make_clip, moving_square_frames

    @st.cache_resource
    def setup():
        torch.manual_seed(0)
        config = VideoViTConfig(embed_dim=64, depth=2, num_heads=2, num_classes=5, num_frames=8, img_size=64)
        return VideoViT(config).eval(), make_clip(moving_square_frames(8, 64, row=1))

    model, clip = setup()
    run = dict(
        clip_key="compare-test",
        _clip=clip,
        model_key=("compare-test", None, 8, 64),
        _model=model,
        labels=["walk", "run", "jump", "sit", "wave"],
        device="cpu",
        timing_runs=1,
        saliency=SaliencySpec(),
    )
    dense = runs.trace(reducer="none", params=(), **run)
    traces = compare.compare_traces(compare.CompareChoice(tuple(reducers), budget), run)
    if logits:
        made = {
            name: replace(trace, logits=np.asarray(logits[name], dtype=np.float32))
            for name, trace in {"dense": dense, **traces}.items()
            if name in logits
        }
        dense, traces = made.pop("dense", dense), traces | made
    st.session_state["traces"] = traces
    st.session_state["dense"] = dense
    st.session_state[compare.COMPARE_ON.key] = True  # as in the app: the shared controls show while comparing
    compare.compare_view(clip, dense, traces)


def sidebar_page():
    import streamlit as st

    from explorer.ui import compare

    st.session_state["choice"] = compare.compare_ui()


def page(reducers, **kwargs):
    return AppTest.from_function(compare_page, args=(reducers,), kwargs=kwargs, default_timeout=120).run()


def image_captions(at):
    return [image.proto.imgs[0].caption for image in at.get("image")]


def test_prediction_change_on_hand_made_logits():
    p, q = np.log([0.7, 0.2, 0.1]), np.log([0.1, 0.6, 0.3])
    change = prediction_change(p, q + 100.0)  # logits: a shift changes nothing
    assert (change.dense_top1, change.top1, change.same_top1) == (0, 1, False)
    assert change.dense_top1_probability == pytest.approx(0.7) and change.kept_probability == pytest.approx(0.1)
    assert change.total_variation == pytest.approx(0.5 * (0.6 + 0.4 + 0.2))
    assert change.kl == pytest.approx(0.7 * np.log(7) + 0.2 * np.log(1 / 3) + 0.1 * np.log(1 / 3))

    same = prediction_change(p, p)
    assert same.same_top1 and same.total_variation == pytest.approx(0) and same.kl == pytest.approx(0)
    assert prediction_change(p, np.log([0.5, 0.3, 0.2])).same_top1


def test_a_budget_goes_only_to_reducers_with_a_knob():
    choice = CompareChoice(("tome", "mvit"), 0.4)
    assert choice.params("tome") == (("budget", 0.4),) and choice.params("mvit") == ()


def test_the_sidebar_gives_two_to_four_reducers_and_one_budget():
    at = AppTest.from_function(sidebar_page, default_timeout=30).run()
    assert at.session_state["choice"] is None  # off by default
    at.toggle(key="compare_on").set_value(True).run()
    assert at.session_state["choice"] == CompareChoice(("rlt", "tome", "vtm"), 0.5)
    assert "None (dense)" not in at.multiselect(key="compare_reducers").options  # dense is always the reference
    at.multiselect(key="compare_reducers").set_value(["rlt"]).run()
    assert at.session_state["choice"] is None and any("at least two" in c.value for c in at.caption)
    at.multiselect(key="compare_reducers").set_value(["tome", "mvit"]).run()
    at.slider(key="compare_budget").set_value(0.3).run()
    assert not at.exception
    assert at.session_state["choice"] == CompareChoice(("tome", "mvit"), 0.3)
    assert any("No budget knob" in c.value and "mvit" in c.value for c in at.caption)


def test_at_one_budget_every_column_shows_its_numbers():
    at = page(["rlt", "tome", "vtm"])
    assert not at.exception and not at.error
    traces, dense = at.session_state["traces"], at.session_state["dense"]
    for name, knob in (("rlt", "tau"), ("tome", "r"), ("vtm", "merge_fraction")):
        assert traces[name].meta["budget"]["fraction"] == 0.5
        assert any(c.value.startswith(f"Budget 0.5: {knob} = ") for c in at.caption), name
    tokens = [m for m in at.metric if m.label == "Tokens per layer (average)"]
    assert [m.value for m in tokens] == [f"{np.mean(t.tokens_per_layer):.0f}" for t in traces.values()]
    assert len([m for m in at.metric if m.label == "GFLOPs"]) == 3
    assert len([m for m in at.metric if m.label.startswith("Forward")]) == 3
    assert image_captions(at) == [f"{t.tokens_per_layer[0]} tokens at layer 0, frame 1." for t in traces.values()]
    assert sum("**Top-5**" in m.value for m in at.markdown) == 3
    table = at.dataframe[0].value
    assert list(table["reducer"]) == ["dense", "rlt", "tome", "vtm"]
    assert list(table["tokens/layer"])[0] == np.mean(dense.tokens_per_layer)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [line["name"] for line in chart["data"]] == ["dense", "rlt", "tome", "vtm"]


def test_the_shared_layer_frame_and_overlay_move_every_column():
    at = page(["rlt", "tome", "vtm"])
    traces = at.session_state["traces"]
    at.slider(key="compare_layer").set_value(2).run()
    at.select_slider(key="compare_frame").set_value(5).run()
    assert not at.exception
    assert image_captions(at) == [f"{t.tokens_per_layer[2]} tokens at layer 2, frame 5." for t in traces.values()]
    assert at.radio(key="compare_style").options == ["Clusters", "Heat", "Kept / pruned", "Frames only"]
    at.radio(key="compare_style").set_value("heat").run()
    assert not at.exception and at.selectbox(key="compare_heat_value").options == [
        "attention rollout",
        "attention received",
    ]
    assert any("One colour scale" in c.value for c in at.caption)


def test_a_reducer_without_a_budget_knob_is_labelled_and_keeps_its_own_depth():
    at = page(["rlt", "mvit"])
    assert not at.exception and not at.error
    assert any(c.value.startswith("No budget knob: mvit runs at its defaults") for c in at.caption)
    assert at.slider(key="compare_layer").max == 6  # MViT-small's blocks; the ViT has 2
    assert "Heat" not in at.radio(key="compare_style").options  # MViT records no attention
    at.slider(key="compare_layer").set_value(4).run()
    captions = image_captions(at)
    assert captions[0].endswith("at layer 2 (its last; 4 asked), frame 1.") and "at layer 4, frame 1" in captions[1]


def test_the_difference_from_dense_is_said_for_a_made_case():
    logits = {"dense": [3, 1, 0, 0, 0], "rlt": [2, 0, 0, 0, 0], "tome": [0, 2, 0, 0, 0]}
    at = page(["rlt", "tome"], logits=logits)
    assert not at.exception
    text = [m.value for m in at.markdown if "Top-1" in m.value and "Top-5" not in m.value]
    tome = prediction_change(np.array(logits["dense"], float), np.array(logits["tome"], float))
    assert text[0].startswith("**Top-1 same as dense**: walk.")
    assert text[1].startswith("**Top-1 changed**: run (dense: walk).")
    assert f"Dense's top-1 here: {tome.kept_probability:.1%} (dense: {tome.dense_top1_probability:.1%})" in text[1]
    assert f"Total variation {tome.total_variation:.3f}, KL(dense ‖ this) {tome.kl:.3f} nats" in text[1]
    table = at.dataframe[0].value
    assert list(table["same top-1"]) == [True, True, False] and list(table["top-1"]) == ["walk", "walk", "run"]


def test_an_error_in_one_reducer_stays_in_its_column():
    at = page(["rlt", "mvit"], budget=1.5)  # out of range for RLT's budget; MViT takes none
    assert not at.exception
    assert len(at.error) == 1 and "budget must be between 0.0 and 1.0" in at.error[0].value
    assert len(image_captions(at)) == 1 and len([m for m in at.metric if m.label == "GFLOPs"]) == 1
    assert list(at.dataframe[0].value["reducer"]) == ["dense", "mvit"]
