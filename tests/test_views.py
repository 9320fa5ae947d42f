"""token_view and charts_view on a hand-built merging trace, driven by streamlit.testing."""

import json

from streamlit.testing.v1 import AppTest


def merge_page():
    import numpy as np
    import streamlit as st

    from explorer.ui import views
    from explorer.video import Clip
    from tests.test_overlays import clip_frames, merge_trace

    trace = merge_trace()
    trace.meta["reducer"] = "tome"
    clip = Clip(
        frames=clip_frames(), fps=25.0, times=np.arange(4) / 25, source="toy", source_size=(32, 32), duration=0.16
    )
    image, layer, *_ = views.token_view(clip, trace)
    st.session_state["drawn"] = (image.shape, layer)
    views.charts_view(trace, trace, layer)


def test_a_merging_trace_offers_clusters_heat_and_a_followed_cell():
    at = AppTest.from_function(merge_page, default_timeout=60).run()
    assert not at.exception
    assert at.radio(key="style").options == ["Clusters", "Heat", "Kept / pruned", "Frames only"]
    assert any("A cluster is the set of cells" in c.value for c in at.caption)
    assert at.session_state["drawn"] == ((32, 2 * 36 - 4, 3), 0)
    sizes = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert "Tokens by cluster size at layer 0" in sizes["layout"]["title"]["text"] and sizes["data"][0]["y"] == [8]

    at.radio(key="style").set_value("heat").run()
    assert not at.exception and at.selectbox(key="heat_value").options == ["attention received"]
    assert any("attention received" in h.proto.body for h in at.get("html"))  # the colour bar
    assert any("relative to uniform" in c.value for c in at.caption)

    at.toggle(key="focus_on").set_value(True).run()
    at.number_input(key="focus_t").set_value(1).run()
    at.slider(key="layer").set_value(2).run()
    assert not at.exception and at.session_state["drawn"][1] == 2
    assert at.number_input(key="focus_h").max == 1
    assert json.loads(at.get("plotly_chart")[1].proto.spec)["data"][0]["x"] == ["1", "2", "3"]
    assert any(m.label == "Cluster size" and m.value == "3 cells" for m in at.metric)
    assert any("t'=0: 1, t'=1: 2" in m.value for m in at.markdown)
    assert any("**Merged at layer**: 1" in m.value and "**Pruned at layer**: never" in m.value for m in at.markdown)

    at.number_input(key="focus_t").set_value(0).run()
    at.number_input(key="focus_w").set_value(1).run()
    assert any(m.label == "Token" and m.value == "none" for m in at.metric)
    assert any("**Pruned at layer**: 1" in m.value for m in at.markdown)


def numbers_page():
    import streamlit as st

    from explorer.ui import views
    from tests.test_overlays import merge_trace

    dense, reduced = merge_trace(), merge_trace()
    dense.meta |= {"reducer": "none", "device": "cpu", "precision": "fp32", "dtype": "float32", "timing_runs": 5}
    reduced.meta |= {**dense.meta, "reducer": st.session_state.get("reducer_name", "tome")}
    dense.seconds = {"reduce": 0.0, "forward": 0.010, "forward_min": 0.009, "forward_max": 0.011}
    reduced.seconds = {"reduce": 0.001, "forward": 0.020, "forward_min": 0.010, "forward_max": 0.050}
    reduced.meta["own_network"] = st.session_state.get("own_network", False)
    views.numbers_view(reduced, dense)


def test_times_say_their_spread_and_deltas_need_the_same_network():
    at = AppTest.from_function(numbers_page, default_timeout=60).run()
    assert not at.exception
    time = next(m for m in at.metric if m.label.startswith("Forward time"))
    assert time.value == "20 ms" and time.delta == "+100% vs dense (10 ms)"
    assert "median of 5 runs 20 ms (fastest 10, slowest 50)" in time.proto.help
    notes = [c.value for c in at.caption if "spread widely" in c.value]
    assert len(notes) == 1 and "tome: median of 5 runs 20 ms" in notes[0] and "none:" not in notes[0]

    at.session_state["own_network"] = True
    at.session_state["reducer_name"] = "mvit"
    at.run()
    assert not at.exception
    deltas = {m.label: m.delta for m in at.metric}
    assert all(not deltas[label] for label in deltas if label != "Top-1 prediction"), deltas
    assert all("own network; dense is the ViT" in m.proto.help for m in at.metric if m.label != "Top-1 prediction")
