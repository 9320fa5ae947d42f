"""The Learn page (/learn) driven by streamlit.testing: every step draws its view, the page's link names its step,
a bad ?step is named, and every step's link into the explorer holds only settings the explorer takes."""

import gc
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

import pytest
from streamlit.testing.v1 import AppTest

from explorer.ui.learn_steps import STEPS
from explorer.ui.widgets import WIDGETS

APP = str(Path(__file__).resolve().parent.parent / "app.py")
LEARN_PAGE = "explorer/ui/learn_page.py"  # relative to app.py, as AppTest.switch_page wants it
NUMBERS = range(1, len(STEPS) + 1)


def open_learn(query: dict[str, str]) -> AppTest:
    """The app, switched to the Learn page with this link's query. The explorer's first run waits for an upload, so
    it runs no model."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["source"] = "Upload"
    at.run()
    at.query_params.clear()
    at.query_params.update(query)
    return at.switch_page(LEARN_PAGE).run()


def page_step(at: AppTest) -> str:
    assert not at.exception, [e.value for e in at.exception]
    return at.query_params["step"][0] if isinstance(at.query_params["step"], list) else at.query_params["step"]


def explorer_query(at: AppTest) -> dict[str, str]:
    """The query of the step's link into the explorer, one value per key."""
    url = next(button.proto.url for button in at.link_button if button.label == "Open this view in the explorer")
    assert url.startswith("./?"), url  # from /learn, the explorer at the app's root
    pairs = parse_qsl(urlparse(url).query, keep_blank_values=True, strict_parsing=True)
    assert len(pairs) == len(dict(pairs)), f"a setting is repeated: {pairs}"
    return dict(pairs)


def left_out(query: dict[str, str]) -> list[str]:
    """What the explorer would not take from this query: keys that name no widget and values its widgets refuse
    (restore_from_link warns about these), and settings of widgets the link itself hides (publish_to_link drops
    them, so the view would not be the step's)."""
    parsed: dict[str, Any] = {}
    refused = []
    for key, text in query.items():
        if key not in WIDGETS:
            refused.append(f"{key} (not a setting)")
            continue
        try:
            parsed[key] = WIDGETS[key].parse(text)
        except ValueError as error:
            refused.append(f"{key}={text} ({error})")

    def shown(key: str) -> bool:
        condition = WIDGETS[key].only_if
        if condition is None:
            return True
        other, value = condition
        return shown(other) and parsed.get(other, WIDGETS[other].default) == value

    return refused + [f"{key} (hidden by the link's other settings)" for key in parsed if not shown(key)]


@pytest.mark.parametrize("number", NUMBERS)
def test_every_step_opens_from_its_link_and_draws_its_view(number):
    at = open_learn({"step": str(number)})
    step = STEPS[number - 1]
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not at.warning, [w.value for w in at.warning]
    assert [h.value for h in at.header] == [f"{number}. {step.title}"]
    assert at.selectbox(key="learn_step").value == number and page_step(at) == str(number)
    assert at.get("image"), "the step's view is drawn"
    assert any(step.question in m.value for m in at.markdown)
    answer = next(e for e in at.expander if e.label == "Answer")
    assert answer.markdown and any(ch.isdigit() for ch in answer.markdown[0].value), (
        "the answer gives the run's numbers"
    )
    query = explorer_query(at)
    assert not left_out(query), left_out(query)
    assert query["source"] == "Sample" and WIDGETS["sample"].parse(query["sample"])


@pytest.mark.parametrize("text", ["0", "11", "two", "-1"])
def test_a_bad_step_in_the_link_is_named_and_step_one_shown(text):
    at = open_learn({"step": text})
    assert not at.exception and not at.error
    assert any(f"step={text}" in w.value and f"1 to {len(STEPS)}" in w.value for w in at.warning), at.warning
    assert at.header[0].value == f"1. {STEPS[0].title}" and page_step(at) == "1"


def test_no_step_in_the_link_is_step_one_and_the_chooser_and_buttons_move_the_link():
    at = open_learn({})
    assert not at.exception and not at.warning and page_step(at) == "1"
    at.button(key="learn_next").click().run()
    assert at.header[0].value == f"2. {STEPS[1].title}" and page_step(at) == "2"
    at.selectbox(key="learn_step").set_value(len(STEPS)).run()
    assert at.header[0].value == f"{len(STEPS)}. {STEPS[-1].title}" and page_step(at) == str(len(STEPS))
    assert [b.key for b in at.button] == ["learn_back"], "the last step has no next"
    at.button(key="learn_back").click().run()
    assert not at.exception and page_step(at) == str(len(STEPS) - 1)


def test_a_step_link_opens_the_explorer_in_that_state():
    at = open_learn({"step": "3"})
    at.select_slider(key="learn.rlt.tau").set_value(0.2).run()
    query = explorer_query(at)
    assert query["param.rlt.tau"] == "0.2"
    explorer = AppTest.from_file(APP, default_timeout=120)
    explorer.query_params.update(query)
    explorer.run()
    assert not explorer.exception and not explorer.error and not explorer.warning, explorer.warning
    assert explorer.selectbox(key="reducer").value == "rlt" and explorer.slider(key="param.rlt.tau").value == 0.2
    assert explorer.radio(key="style").value == "value"
    assert explorer.selectbox(key="sample").value == query["sample"]


@pytest.mark.warm
def test_a_warm_server_has_every_run_of_the_tour_so_following_it_runs_no_model():
    import streamlit as st

    from explorer.ui import runs
    from explorer.ui.learn_steps import BUDGETS, STOPS

    st.cache_resource.clear()  # a fresh server: its first session asks for the tour
    gc.unfreeze()  # whatever an earlier test left frozen
    at = open_learn({"step": "1"})
    # what was loaded is out of the collector's sight: Streamlit's full collection after each run skips it
    assert gc.get_freeze_count() > 100_000
    gc.unfreeze()  # this test's process is not a server
    queue = runs.queue()
    deadline = time.monotonic() + 300
    while (queue.waiting() or queue._running) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not queue.waiting(), "the tour's runs were not done within 300 s"
    computed = queue.counts.computed
    controls = {("rlt", "tau"): 3, ("tome", "r"): 5, ("tubes", "stride_scale"): 8}
    for number in NUMBERS:
        at.selectbox(key="learn_step").set_value(number).run()
        assert not at.exception and not at.error, (number, [e.value for e in at.exception])
        for (reducer, name), step in controls.items():
            if step == number:
                for stop in STOPS[reducer, name]:
                    at.select_slider(key=f"learn.{reducer}.{name}").set_value(stop).run()
                    assert not at.exception and not at.error, (reducer, name, stop)
        if number == 4:
            for pattern in ("random", "tube"):
                at.radio(key="learn.mask.pattern").set_value(pattern).run()
        if number == len(STEPS):
            for budget in BUDGETS:
                at.select_slider(key="learn.compare.budget").set_value(budget).run()
                assert not at.exception and not at.error, budget
    assert queue.counts.computed == computed, "following the tour ran the model"
