"""Sessions that speak Streamlit's own websocket protocol, for load tests where the class's browsers are elsewhere.

A headless chromium tab costs seconds of CPU to load and draw the app; thirty of them on the server's own cores
measure the browser more than the server. A wire session costs the server what a browser on another machine
would: it fetches the page and the files the page names, opens `/_stcore/stream`, asks for a run as the
frontend does on load (BackMsg rerun_script with the link's query string) and reads the ForwardMsgs, fetching
each image of the main area as a browser would. It notes, like tests/browser.py's MARKS, when the first element,
the first word on where its run stands and the first overlay (an image of the main area, fetched) arrive.
Standard library, protobufs from streamlit and the `websockets` package that its server already installs.
"""

from __future__ import annotations

import gzip
import http.client
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

from tests import browser

PLACED = re.compile(browser.PLACED)  # the words MARKS looks for in a browser
ASSETS = re.compile(r'(?:src|href)="(\./static/[^"]+)"')  # the files index.html names (the app's script and style)
MAIN = 0  # RootContainer.MAIN: the delta path's first step


@dataclass
class WireVisit:
    """One wire session: ms from its start to having the page (and its files), to its first element, to its first
    word on where its run stands and to its first overlay fetched (None if it never came), and what went wrong."""

    url: str
    page_ms: float | None = None
    script_ms: float | None = None
    place_ms: float | None = None
    overlay_ms: float | None = None
    place_text: str = ""
    exceptions: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)
    finished: bool = False


class Files:
    """One kept-alive HTTP connection, as a browser keeps one to the app for the page, its files and images."""

    def __init__(self, netloc: str) -> None:
        self.connection = http.client.HTTPConnection(netloc, timeout=60)

    def get(self, path: str) -> bytes:
        try:
            answer = self._ask(path)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # the server closed the idle connection (uvicorn keeps one alive 5 s): a browser opens a new one
            self.connection.close()
            answer = self._ask(path)
        body = answer.read()
        if answer.getheader("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if answer.status != 200:
            raise OSError(f"GET {path}: HTTP {answer.status}")
        return body

    def _ask(self, path: str) -> http.client.HTTPResponse:
        self.connection.request("GET", path, headers={"Accept-Encoding": "gzip"})  # as every browser does
        return self.connection.getresponse()

    def close(self) -> None:
        self.connection.close()


def visit(url: str, timeout: float = 120, hold: Callable[[], None] | None = None, app_files: bool = True) -> WireVisit:
    """Open `url` (the app's address with the link's query string) as one session until its first run has
    finished with an overlay, or for `timeout` s; then call `hold` (waiting for the other sessions of its burst)
    before closing the connection, which ends the session as closing a tab does. `app_files=False`: a browser that
    has the app's files from an earlier visit (Streamlit serves them as immutable) fetches the page alone."""
    seen = WireVisit(url)
    parts = urlsplit(url)
    files = Files(parts.netloc)  # straight to the server, never through an http_proxy
    started = time.perf_counter()

    def now_ms() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        page = files.get(f"/?{parts.query}").decode(errors="replace")
        for asset in ASSETS.findall(page) if app_files else ():
            files.get(asset.removeprefix("."))
        seen.page_ms = now_ms()
        ask = BackMsg()
        ask.rerun_script.query_string = parts.query
        ask.rerun_script.page_script_hash = ""
        ask.rerun_script.context_info.timezone = "UTC"
        ask.rerun_script.context_info.locale = "en-US"
        ask.rerun_script.context_info.url = url
        stream = f"ws://{parts.netloc}/_stcore/stream"
        with connect(stream, subprotocols=["streamlit"], open_timeout=30, max_size=None) as socket:  # type: ignore[list-item]
            socket.send(ask.SerializeToString())
            deadline = started + timeout
            while time.perf_counter() < deadline:
                try:
                    raw = socket.recv(timeout=max(0.05, min(1.0, deadline - time.perf_counter())))
                except TimeoutError:
                    continue
                message = ForwardMsg()
                message.ParseFromString(raw if isinstance(raw, bytes) else raw.encode())
                kind = message.WhichOneof("type")
                if kind == "script_finished" and seen.overlay_ms is not None:
                    seen.finished = True
                    break
                if kind != "delta" or message.delta.WhichOneof("type") != "new_element":
                    continue
                element = message.delta.new_element
                what = element.WhichOneof("type")
                if seen.script_ms is None:
                    seen.script_ms = now_ms()
                if what == "exception":
                    seen.exceptions.append(f"{element.exception.type}: {element.exception.message}"[:300])
                elif what == "alert" and seen.place_ms is None and PLACED.search(element.alert.body):
                    seen.place_ms, seen.place_text = now_ms(), element.alert.body
                elif what == "imgs" and message.metadata.delta_path[:1] == [MAIN] and seen.overlay_ms is None:
                    for image in element.imgs.imgs:
                        files.get(urljoin("/", image.url))
                    seen.overlay_ms = now_ms()
                    if seen.place_ms is None:
                        seen.place_ms = seen.overlay_ms
            if seen.overlay_ms is None:
                seen.script_errors.append(f"no overlay within {timeout:.0f} s")
            if hold is not None:
                hold()
    except Exception as error:  # a refused connection, a closed socket, an HTTP error: the visit says what it saw
        seen.script_errors.append(f"{type(error).__name__}: {error}"[:300])
    finally:
        files.close()
    return seen


def burst(urls: list[str], timeout: float = 120, app_files: bool = True) -> list[WireVisit]:
    """Open every url at once, one thread each (released together), and keep every session open until all have
    their overlay (or timed out); their visits, in the order of `urls`."""
    gate, left, everyone_done = threading.Barrier(len(urls)), [len(urls)], threading.Condition()
    visits: list[WireVisit | None] = [None] * len(urls)

    def arrive() -> None:
        with everyone_done:
            left[0] -= 1
            everyone_done.notify_all()
            everyone_done.wait_for(lambda: left[0] <= 0, timeout)

    def one(index: int) -> None:
        gate.wait()
        arrived = threading.Event()

        def hold() -> None:
            arrived.set()
            arrive()

        visits[index] = visit(urls[index], timeout, hold, app_files)
        if not arrived.is_set():  # it failed before its connection: the others need not wait for it
            arrive()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [v for v in visits if v is not None]
