"""What a server prepares once, so that a class opening the same link at the same moment finds it ready.

Imported first by the page (page.py), before any session draws: importing it loads the libraries the pages use,
pandas included. Plotly imports pandas lazily, inside whichever session's thread draws the first chart, and
reads it from sys.modules: a second session drawing at that moment saw a half-made module ("partially initialized
module 'pandas'"). An import statement waits for a module another thread is still making, so the sessions
that arrive while the first loads these wait here instead of racing. warm_server() then prepares the tour: its
clip and model, and every run its steps can show (learn_steps.tour_runs), asked of the run queue once.
"""

from __future__ import annotations

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

from . import learn_steps


@st.cache_resource(show_spinner=False)
def warm_server() -> str | None:
    """Ask for every run of the tour, once per server; they run in the queue's order while sessions go on.
    Returns the reason when the tour cannot be prepared (the same message its page shows)."""
    try:
        lab = learn_steps.tour_lab()
    except USER_ERRORS as error:
        return str(error)
    for reducer, params, saliency in learn_steps.tour_runs():
        lab.trace(reducer, params, saliency, wait=False)
    return None


LOADED = True  # the last line: a session that finds it set has nothing to wait for (page.py)
