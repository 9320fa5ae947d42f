"""The served app under a class (explorer/ui/server.py): sockets that answer at once, and bursts of sessions that
speak Streamlit's own protocol (tests/wire.py), so no browser is needed."""

from __future__ import annotations

import gzip
import http.client
import socket
from pathlib import Path
from urllib.parse import urlencode

import pytest

from explorer.ui.server import answer_without_delay
from tests import wire
from tests.browser import ROOT, Server


def test_streamlit_run_serves_the_start_up_app_from_both_entry_points():
    """`streamlit run` reads a file for an `app = st.App(...)` assignment, without running it; a file that builds
    its app any other way is served without the start-up, the sockets' fix and the compressed scripts."""
    from streamlit.web.server.app_discovery import discover_asgi_app

    for entry in (ROOT / "app.py", ROOT / "explorer" / "ui" / "server.py"):
        assert discover_asgi_app(entry).is_asgi_app, entry


def no_delay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_listening_sockets_and_what_they_accept_answer_without_delay():
    listener = socket.socket()  # as Streamlit binds: no protocol named, so asyncio leaves Nagle on
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    bystander = socket.socket()  # a socket that does not listen is not the server's to change
    try:
        assert no_delay(listener) == 0 and no_delay(bystander) == 0
        answer_without_delay()
        assert no_delay(listener) == 1
        assert no_delay(bystander) == 0
        with socket.create_connection(listener.getsockname()) as client:
            accepted, _ = listener.accept()
            with accepted:
                assert no_delay(accepted) == 1  # inherited from the listener
                client.sendall(b"still open")
                assert accepted.recv(16) == b"still open"  # the descriptors stayed the server's
    finally:
        listener.close()
        bystander.close()


@pytest.mark.slow
def test_a_class_of_sessions_on_a_fresh_then_warm_server_all_get_their_overlay(tmp_path: Path):
    """8 sessions at once on a fresh server's default link, then 30 at once each with its own setting: every page
    says where its run stands, draws its overlay and shows no exception."""
    server = Server(tmp_path / "streamlit.log")
    try:
        server.wait_ready()
        page = wire.Files(f"127.0.0.1:{server.port}").get("/").decode()
        script = next(name for name in wire.ASSETS.findall(page) if name.endswith(".js")).lstrip(".")
        connection = http.client.HTTPConnection(f"127.0.0.1:{server.port}")
        connection.request("GET", script, headers={"Accept-Encoding": "gzip"})
        answer = connection.getresponse()
        assert answer.status == 200 and answer.getheader("content-encoding") == "gzip"  # frontend_files.py
        compressed = answer.read()
        connection.request("GET", script)
        plain = connection.getresponse().read()
        assert gzip.decompress(compressed) == plain and len(compressed) < len(plain)
        connection.close()
        fresh = wire.burst([f"{server.url}/"] * 8, app_files=True)
        settings = [
            {"reducer": "rlt", "param.rlt.tau": f"{0.02 + i / 100:.2f}"}
            if i % 2 == 0
            else {"reducer": "tome", "param.tome.r": str(2 + i)}
            for i in range(30)
        ]
        warm = wire.burst([f"{server.url}/?{urlencode(s)}" for s in settings], app_files=False)
        for visit in fresh + warm:
            assert not visit.exceptions and not visit.script_errors, (visit.url, visit.exceptions, visit.script_errors)
            assert visit.place_ms is not None and visit.overlay_ms is not None and visit.finished, visit
        assert all(visit.place_ms <= visit.overlay_ms for visit in fresh + warm)
        waited = [visit for visit in warm if visit.place_text.startswith("Waiting for the model")]
        assert len(waited) >= 10  # 30 runs, one at a time: most pages showed their place in the line first
        assert "Traceback" not in server.log()
    finally:
        server.stop()
