"""Token Reduction Explorer. Run with: streamlit run app.py.

`streamlit run` reads this file for the server (explorer/ui/server.py: an st.App whose start-up loads the libraries,
the demo model and the tour before any session) and each session runs the page (explorer/ui/page.py). Run as a
session's script (streamlit.testing's AppTest does), it runs the page itself.
"""

import runpy

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

if get_script_run_ctx() is None:  # the server, finding its app: `app = st.App(...)` is what `streamlit run` looks for
    from explorer.ui.server import MIDDLEWARE, PAGE, lifespan

    app = st.App(PAGE, lifespan=lifespan, middleware=MIDDLEWARE)
else:
    runpy.run_module("explorer.ui.page", run_name="__main__")
