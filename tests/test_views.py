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
