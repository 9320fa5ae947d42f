"""The app's server: `streamlit run` on this file (or on the repository's app.py) serves the pages of page.py as
an st.App whose start-up loads what every session needs before the first one arrives.

The lifespan runs once, when the server starts and before it answers: it imports the libraries (warmup.py) and
prepares the demo model, the default sample and the guided tour's runs (warmup.warm_server), so that a class
opening the teacher's link on a fresh server finds nothing left to load. Sessions then run page.py as usual.
It also turns off the 40 ms delay that Streamlit's listening socket gives every kept-alive answer, and the
browser app's scripts go gzip-compressed (frontend_files.py).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import streamlit as st
from starlette.middleware import Middleware

from explorer.ui.frontend_files import FrontendFiles

PAGE = Path(__file__).with_name("page.py")


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    def prepare() -> None:
        from explorer.ui import warmup  # the libraries: torch, timm, plotly, pandas, …

        warmup.warm_server()

    answer_without_delay()
    await asyncio.to_thread(prepare)
    yield


def answer_without_delay() -> None:
    """Turn Nagle's algorithm off on the server's listening TCP sockets; the connections it accepts inherit that
    (Linux). Streamlit binds its socket without naming the protocol, so asyncio, which sets TCP_NODELAY only on
    sockets that name IPPROTO_TCP, leaves it on: every answer after the first on a kept-alive connection, and
    every burst of small websocket messages, then waited for the browser's delayed ACK, 40 ms each time (measured
    with curl: 42 ms per request on one connection, 0.5 ms with this). Elsewhere than Linux this does nothing."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return
    for fd in fds.iterdir():
        try:
            sock = socket.socket(fileno=int(fd.name))
        except (OSError, ValueError):  # not a socket, or closed since the listing
            continue
        try:
            tcp = sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
            if tcp and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        finally:
            sock.detach()  # the descriptor stays the server's


MIDDLEWARE = [Middleware(FrontendFiles)]
# `streamlit run` finds the app by reading this file for an `app = st.App(...)` assignment: keep it literal.
app = st.App(PAGE, lifespan=lifespan, middleware=MIDDLEWARE)
