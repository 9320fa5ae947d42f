"""The app's state in the URL: a link restores the widgets, a change rewrites the link, defaults leave it bare."""

import pytest
from streamlit.testing.v1 import AppTest

import explorer.ui.compare
import explorer.ui.sidebar
import explorer.ui.views  # noqa: F401  (these three declare the widgets, filling WIDGETS)
from explorer.ui.widgets import WIDGETS, Widget


def spec(default, **declaration):
    """A widget declared outside the registry, to read its URL text."""
    return Widget("key", "label", default, **declaration)


def sidebar_page():
    """The real sidebar between restore_from_link() and publish_to_link(), with the token view's layer and overlay."""
    from explorer.ui import compare, sidebar, views, widgets

    widgets.restore_from_link()
    sidebar.video_ui()
    sidebar.sampling_ui()
    sidebar.model_ui()
    sidebar.reducer_ui()
    sidebar.saliency_ui()
    compare.compare_ui()
    views.LAYER.draw(high=12)
    views.STYLE.draw()
    widgets.share_link_view()
    widgets.publish_to_link()


def page(query=None):
    at = AppTest.from_function(sidebar_page, default_timeout=60)
    at.query_params.update(query or {})
    return at.run()


def test_the_default_view_has_a_bare_link():
    at = page()
    assert not at.exception and not at.warning
    assert at.query_params == {}
    assert at.select_slider(key="frames").value == 16 and at.selectbox(key="reducer").value == "rlt"


def test_a_link_restores_the_widgets_and_stays_as_it_was():
    query = {
        "source": "Local path",
        "path": "/videos/clip.mp4",
        "frames": "8",
        "start": "1.5",
        "reducer": "tome",
        "param.tome.r": "10",
        "param.tome.prop_attn": "true",
        "saliency_on": "false",
        "layer": "3",
        "style": "heat",
    }
    at = page(query)
    assert not at.exception
    assert at.radio(key="source").value == "Local path" and at.text_input(key="path").value == ""
    assert at.query_params == query, "a path waiting to be opened stays in the link"
    at.button(key="link_paths_open").click().run()
    assert not at.exception and not at.warning
    assert at.text_input(key="path").value == "/videos/clip.mp4"
    assert at.select_slider(key="frames").value == 8 and at.number_input(key="start").value == 1.5
    assert at.selectbox(key="reducer").value == "tome"
    assert at.number_input(key="param.tome.r").value == 10 and at.checkbox(key="param.tome.prop_attn").value
    assert not at.toggle(key="saliency_on").value and at.slider(key="layer").value == 3
    assert at.radio(key="style").value == "heat"
    assert at.query_params == query
    assert "?" in at.code[0].value and "param.tome.r=10" in at.code[0].value


def test_changing_a_widget_rewrites_the_link_and_a_later_run_does_not_read_it_again():
    at = page()
    at.number_input(key="stride").set_value(8).run()
    assert at.query_params == {"stride": "8"}
    at.selectbox(key="reducer").set_value("tome").run()
    at.number_input(key="param.tome.r").set_value(12).run()
    assert at.query_params == {"stride": "8", "reducer": "tome", "param.tome.r": "12"}
    at.selectbox(key="reducer").set_value("rlt").run()  # another reducer's settings leave the link
    assert at.query_params == {"stride": "8"}
    at.number_input(key="stride").set_value(4).run()
    assert at.query_params == {}
    at.toggle(key="compare_on").set_value(True).run()
    assert at.query_params == {"compare_on": "true"}, "the comparison's defaults stay out of the link"
    at.slider(key="compare_budget").set_value(0.3).run()
    assert at.query_params == {"compare_on": "true", "compare_budget": "0.3"}
    at.toggle(key="compare_on").set_value(False).run()
    assert at.query_params == {}
    at.query_params["frames"] = "8"  # only a session's first run reads the link
    at.run()
    assert at.select_slider(key="frames").value == 16 and at.query_params == {}


def test_unknown_and_bad_settings_are_named_once_and_ignored():
    at = page({"frames": "17", "stride": "many", "device": "tpu", "layer": "-1", "bogus": "1", "size": "160"})
    assert not at.exception
    assert len(at.warning) == 1
    message = at.warning[0].value
    for part in (
        "frames=17 (must be one of 2, 4",
        "stride=many (must be a whole number)",
        "device=tpu",
        "layer=-1 (must be at least 0)",
        "bogus=1 (not a setting)",
    ):
        assert part in message, message
    assert "size" not in message and at.select_slider(key="size").value == 160
    assert at.select_slider(key="frames").value == 16 and at.slider(key="layer").value == 0
    assert at.query_params == {"size": "160"}, "ignored settings leave the link"
    at.run()
    assert not at.warning, "the warning comes once, with the link"


def test_a_hidden_widgets_setting_stays_out_of_the_link():
    at = page({"path": "/videos/clip.mp4", "focus_t": "2"})  # the source is a sample; no cell is followed
    assert not at.warning and at.query_params == {}


@pytest.mark.parametrize("key", list(WIDGETS))
def test_every_default_reads_back_from_its_own_text(key):
    declared = WIDGETS[key]
    assert declared.parse(declared.text(declared.default)) == declared.default


@pytest.mark.parametrize(
    "spec, text, value",
    [
        (spec(0.0, low=0.0, high=2.0), "0.15", 0.15),
        (spec(True), "OFF", False),
        (spec(["a"], choices=("a", "b", "c"), high=2), "b,a,b", ["b", "a"]),
        (spec("x", choices=("x", "y z")), "y z", "y z"),
        (spec("own", choices=("own", 112, 160)), "160", 160),
    ],
)
def test_values_parse_by_type(spec, text, value):
    assert spec.parse(text) == value and spec.parse(spec.text(value)) == value


@pytest.mark.parametrize(
    "spec, text, message",
    [
        (spec(0.0, low=0.0, high=2.0), "3", "must be between 0 and 2"),
        (spec(0.0), "nan", "finite"),
        (spec(1), "1.5", "whole number"),
        (spec(True), "maybe", "true or false"),
        (spec(["a"], choices=("a", "b", "c"), high=2), "a,b,c", "at most 2 items"),
        (spec(["a"], choices=("a", "b")), "a,z", "must be one of a, b"),
        (spec(112, choices=("own", 112, 160)), "224", "must be one of own, 112, 160"),
    ],
)
def test_bad_values_say_why(spec, text, message):
    with pytest.raises(ValueError, match=message):
        spec.parse(text)


def test_a_link_naming_server_paths_opens_nothing_until_the_user_says_so():
    at = page({"source": "Local path", "path": "/videos/clip.mp4", "weights": "/ckpt/model.pth", "frames": "8"})
    assert not at.exception and len(at.warning) == 1
    assert "Nothing is opened until you say so" in at.warning[0].value
    assert [c.value for c in at.code[:2]] == ["/videos/clip.mp4", "/ckpt/model.pth"]
    assert at.text_input(key="path").value == "" and at.text_input(key="weights").value == ""
    assert at.select_slider(key="frames").value == 8, "the other settings apply at once"
    at.button(key="link_paths_ignore").click().run()
    assert not at.exception and not at.warning
    assert at.text_input(key="path").value == "" and at.text_input(key="weights").value == ""
    assert at.query_params == {"source": "Local path", "frames": "8"}


def test_a_shared_server_refuses_server_paths_from_a_link_and_offers_none(monkeypatch):
    monkeypatch.setenv("TOKEN_EXPLORER_SHARED", "1")
    at = page({"source": "Local path", "path": "/etc/passwd", "weights": "/ckpt/model.pth", "frames": "8"})
    assert not at.exception and len(at.warning) == 1
    message = at.warning[0].value
    for part in (
        "source=Local path (not offered on this shared server)",
        "path=/etc/passwd (this shared server opens no paths on it)",
        "weights=/ckpt/model.pth (this shared server opens no paths on it)",
    ):
        assert part in message, message
    assert at.radio(key="source").options == ["Sample", "Upload"] and at.radio(key="source").value == "Sample"
    assert not [t for t in at.text_input if t.key in ("path", "weights", "hf_dest")], "no field names a server path"
    assert not at.button and not [e for e in at.expander if "VideoMAE" in e.label]
    assert any("loads no checkpoints" in c.value for c in at.caption)
    assert at.query_params == {"frames": "8"}
