"""The app's server: `streamlit run` on this file (or on the repository's app.py) serves the pages of page.py as
an st.App whose start-up loads what every session needs before the first one arrives.

The lifespan runs once, when the server starts and before it answers: it imports the libraries (warmup.py) and
prepares the demo model, the default sample and the guided tour's runs (warmup.warm_server), so that a class
opening the teacher's link on a fresh server finds nothing left to load. Sessions then run page.py as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import streamlit as st

PAGE = Path(__file__).with_name("page.py")


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    def prepare() -> None:
        from explorer.ui import warmup  # the libraries: torch, timm, plotly, pandas, …

        warmup.warm_server()

    await asyncio.to_thread(prepare)
    yield


app = st.App(PAGE, lifespan=lifespan)
