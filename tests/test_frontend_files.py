"""The browser app's scripts sent gzip-compressed, compressed once (explorer/ui/frontend_files.py)."""

from __future__ import annotations

import asyncio
import gzip
import mimetypes

from explorer.ui.frontend_files import BUILD, FrontendFiles


class Downstream:
    """Streamlit's place in the chain: records what reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-answered-by", b"streamlit")]})
        await send({"type": "http.response.body", "body": b""})


def get(app, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """One GET through an ASGI app: its status, headers and body."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


def a_script() -> str:
    return min(p.relative_to(BUILD).as_posix() for p in (BUILD / "static" / "js").glob("*.js"))


def test_a_script_goes_compressed_once_to_browsers_that_accept_gzip():
    downstream = Downstream()
    files = FrontendFiles(downstream)
    name = a_script()
    status, headers, body = get(files, f"/{name}", accept_encoding="gzip, deflate, br")
    assert status == 200 and downstream.paths == []
    assert gzip.decompress(body) == (BUILD / name).read_bytes()
    assert headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
    assert headers["content-type"].split(";")[0] == mimetypes.guess_type(name)[0]  # as Streamlit's own answer
    assert headers["cache-control"] == "public, immutable, max-age=31536000"
    assert int(headers["content-length"]) == len(body)
    kept = files.kept[name]
    get(files, f"/{name}", accept_encoding="gzip")
    assert files.kept[name] is kept  # compressed once


def test_everything_else_goes_on_to_streamlit():
    downstream = Downstream()
    files = FrontendFiles(downstream)
    name = a_script()
    font = next((BUILD / "static").rglob("*.woff2")).relative_to(BUILD).as_posix()
    asks = [
        (f"/{name}", {}),  # no gzip
        (f"/{name}", {"accept_encoding": "gzip", "range": "bytes=0-9"}),
        (f"/{name}", {"accept_encoding": "gzip", "if_none_match": '"x"'}),
        (f"/{font}", {"accept_encoding": "gzip"}),  # compressed already
        ("/", {"accept_encoding": "gzip"}),  # the page itself: Streamlit's, never cached
        ("/static/js/../../index.html", {"accept_encoding": "gzip"}),
        ("/_stcore/health", {"accept_encoding": "gzip"}),
    ]
    for path, headers in asks:
        status, answered, _ = get(files, path, **headers)
        assert answered.get("x-answered-by") == "streamlit", path
    assert len(downstream.paths) == len(asks) and not files.kept
