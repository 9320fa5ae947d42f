"""What a server prepares once, so that a class opening the same link at the same moment finds it ready.

Imported first by the page (page.py), before any session draws: importing it loads the libraries the pages use,
pandas included. Plotly imports pandas lazily, inside whichever session's thread draws the first chart, and
reads it from sys.modules: a second session drawing at that moment saw a half-made module ("partially initialized
module 'pandas'"). An import statement waits for a module another thread is still making, so the sessions
that arrive while the first loads these wait here instead of racing. warm_server() then prepares the tour: its
clip and model, and every run its steps can show (learn_steps.tour_runs), asked of the run queue once.
"""

from __future__ import annotations

import gc

import av  # noqa: F401
import cv2  # noqa: F401
import pandas  # noqa: F401
import plotly.express  # noqa: F401
import plotly.graph_objects  # noqa: F401
import plotly.io  # noqa: F401
import streamlit as st
import timm  # noqa: F401
import torch  # noqa: F401

from explorer.errors import USER_ERRORS

from . import cached, learn_steps


@st.cache_resource(show_spinner=False)
def warm_server() -> str | None:
    """Ask for every run of the tour, once per server; they run in the queue's order while sessions go on.
    Returns the reason when the tour cannot be prepared (the same message its page shows)."""
    try:
        lab = learn_steps.tour_lab()
    except USER_ERRORS as error:
        return str(error)
    for reducer, params, saliency in learn_steps.tour_runs():
        lab.ask(reducer, params, saliency)
    draw_each_chart(lab)
    freeze_what_is_loaded()
    return None


def freeze_what_is_loaded() -> None:
    """Move every object alive now (the modules of torch, timm, plotly, pandas, … and the demo model: half a
    million objects) out of the garbage collector's sight. Streamlit runs a full collection after each script
    and fragment run (runner.postScriptGC); with those objects in view it held the interpreter 0.25 s each time,
    every session waiting on it. They live as long as the server, so the collector has nothing to find in them."""
    gc.collect()
    gc.freeze()


def draw_each_chart(lab: learn_steps.Lab) -> None:
    """Make and serialise one figure of each kind the pages draw. Plotly imports much of itself lazily (the
    validators of each trace type, its use of pandas) in the thread that first makes such a figure: here, once,
    rather than in the first sessions' threads, which it slowed and left holding that memory."""
    from explorer.models.reducers import make_reducer

    from .. import charts
    from ..analyze import analyze

    made = {
        name: analyze(lab.clip, lab.model, make_reducer(name), labels=lab.labels, timing_runs=1)
        for name in ("rlt", "tome")
    }
    rlt, tome = made["rlt"], made["tome"]
    figures = [
        charts.tokens_per_layer(made, 1),
        charts.flops_per_layer(made),
        charts.value_histogram(rlt, "run_length", 0),
        charts.cluster_sizes(tome, tome.layers),
        charts.token_timeline(tome, 1),
    ]
    accuracy = cached.accuracy_figure()  # the one every page shows, made here for the first session
    if accuracy is not None:
        figures.append(accuracy)
    for figure in figures:
        plotly.io.to_json(figure, validate=True)


LOADED = True  # the last line: a session that finds it set has nothing to wait for (page.py)
