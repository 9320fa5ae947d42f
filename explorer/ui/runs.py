"""Model runs for the pages: one RunQueue per server (explorer/serving.py), and the wait a session sees.

A page asks for a trace with trace(); the same run asked by two sessions is made once and shared, and its result
kept for the next (read-only: sessions share it). While a session waits it sees its place in the line and the
wait estimated from the runs before it, updated a few times a second; a session that leaves or reruns stops
waiting, and a run nobody waits for any more is dropped before it starts.
"""

from __future__ import annotations

import time
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import streamlit as st
from streamlit.logger import get_logger
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from explorer.models.reducers import make_reducer
from explorer.models.video_vit import VideoViT

from ..analyze import analyze
from ..saliency import SaliencySpec
from ..serving import Place, RunQueue, Ticket, freeze, slots_setting
from ..trace import Trace
from ..video import Clip

POLL = 0.2  # seconds between looks at a waiting session's place (redrawn when its words change)
RUN_STARTED = "_runs_page_run_started"  # session state: when this session's current page run began (page.py)
LOGGER = get_logger(__name__)


@st.cache_resource(show_spinner=False)
def queue() -> RunQueue:
    """The server's one queue, with $TOKEN_EXPLORER_RUNS slots (serving.slots_setting)."""
    return RunQueue(slots_setting())


def ask(
    clip_key: str,
    _clip: Clip,
    model_key: tuple,
    _model: VideoViT,
    labels: list[str] | None,
    reducer: str,
    params: tuple[tuple[str, object], ...],
    device: str,
    timing_runs: int,
    saliency: SaliencySpec | None,
    precision: str = "auto",
    window: int | None = None,
    pinned: bool = False,
    background: bool = False,
) -> Ticket:
    """Ask the queue for one run of analyze(): the keys (clip_key, model_key) stand for the clip and the model.
    `pinned` keeps the result for the server's life (the tour's runs); a `background` run waits until no session
    waits for one."""
    labelled = tuple(labels) if labels else None
    key = (clip_key, model_key, labelled, reducer, params, device, timing_runs, saliency, precision, window)

    def work() -> Trace:
        return freeze(
            analyze(
                _clip,
                _model,
                make_reducer(reducer, **dict(params)),
                device=device,
                precision=precision,
                labels=labels,
                model_name=str(model_key[0]),
                timing_runs=timing_runs,
                saliency=saliency,
                window=window,
            )
        )

    kind = (model_key, reducer, timing_runs, saliency is not None)
    return queue().submit(key, work, kind=kind, pinned=pinned, background=background)


def trace(reducer: str, **run: Any) -> Trace:
    """One run (ask's arguments), waited for on the page: its place in the line shows meanwhile."""
    return wait_for(ask(reducer=reducer, **run), "the dense model" if reducer == "none" else reducer)


def mark_page_run() -> None:
    """Note when this session's page run begins, for the log of how soon it asked for a run."""
    st.session_state[RUN_STARTED] = time.monotonic()


def wait_for(ticket: Ticket, what: str) -> Any:
    """The ticket's result; meanwhile the session's place in the line and its estimated wait. Each wait is logged
    (the server's log: how long a class waits, benchmarks/classroom_load.py reads it)."""
    runs = queue()
    if ticket.done():
        runs.leave(ticket)
        return runs.result(ticket)
    box = st.empty()
    asked, first, shown = time.monotonic(), None, ""
    into = asked - st.session_state.get(RUN_STARTED, asked)
    try:
        while True:
            place = runs.place(ticket)
            first = first or place
            text = place_text(place, what, runs.slots)
            if text != shown:  # at least once a second (its seconds); each update lets Streamlit stop a rerun
                box.info(text)
                shown = text
            try:
                result = runs.result(ticket, timeout=POLL)
                LOGGER.info(
                    "run queue: %s after %.2f s (asked %.2f s into its page's run, %d ahead, %d waiting now)",
                    what,
                    time.monotonic() - asked,
                    into,
                    first.ahead,
                    runs.waiting(),
                )
                return result
            except FutureTimeout:
                if not session_active():
                    st.stop()
    finally:
        runs.leave(ticket)
        box.empty()


def place_text(place: Place, what: str, slots: int) -> str:
    """What a waiting session reads: where its run stands and about how long it will take."""
    eta = "" if place.wait is None else f"; about {place.wait:.0f} s left" if place.wait >= 1 else "; about 1 s left"
    if place.running:
        return f"Running {what}… {place.seconds:.1f} s{eta}."
    line = "next in line" if place.ahead == 0 else f"{place.ahead} run{'s' if place.ahead > 1 else ''} ahead"
    shared = f"{slots} at a time" if slots > 1 else "one at a time"
    return f"Waiting for the model ({shared}): {line}, {place.seconds:.0f} s so far{eta}."


def session_active() -> bool:
    """Whether the session of this script run is still connected (False once its tab has closed)."""
    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():
        return True
    return Runtime.instance().is_active_session(ctx.session_id)
