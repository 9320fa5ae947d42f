"""Streamlit's browser app (its frontend build: ~300 hashed scripts, 23 MB) sent gzip-compressed, compressed once.

Streamlit serves those files uncompressed (its gzip middleware skips them: compressing them again for every
request would cost more than it saves). A browser's first visit asks for about 60 of them, 2.2 MB; a class of 30
cold browsers at once made the Python server push 66 MB through its HTTP stack, which took 2.4 s of a 2-core
server before any page ran (1.2 s with this). Here a script or style file is compressed once, on its first
request, kept, and sent to every browser that accepts gzip: about a quarter of the bytes. Everything else (fonts
and images, compressed already; a request for a range or a revalidation; a client without gzip) goes on to
Streamlit.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import mimetypes
from email.utils import formatdate
from pathlib import Path
from typing import Any

import streamlit
from starlette.responses import Response

BUILD = Path(streamlit.__file__).parent / "static"  # what Streamlit's static route serves at the app's root
COMPRESSIBLE = (".js", ".css", ".json", ".svg", ".map", ".txt")
CACHE_CONTROL = "public, immutable, max-age=31536000"  # Streamlit's own for hashed bundles (a year)
PASS_ON = {b"range", b"if-none-match", b"if-modified-since"}  # Streamlit answers these (206, 304)


class FrontendFiles:
    """ASGI middleware: a plain GET that accepts gzip, of a script or style of the build, answered compressed."""

    def __init__(self, app: Any, build: Path = BUILD) -> None:
        self.app = app
        self.build = build
        self.names = {
            path.relative_to(build).as_posix()
            for path in (build / "static").rglob("*")
            if path.is_file() and path.suffix in COMPRESSIBLE
        }
        self.kept: dict[str, Response] = {}
        base = streamlit.config.get_option("server.baseUrlPath").strip("/")  # set before the server starts
        self.prefix = f"/{base}" if base else ""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        name = self.asked(scope)
        if name is None:
            await self.app(scope, receive, send)
            return
        if name not in self.kept:  # compressed off the event loop; two browsers at once may both compress it
            self.kept[name] = await asyncio.to_thread(self.compressed, name)
        await self.kept[name](scope, receive, send)

    def asked(self, scope: dict) -> str | None:
        """The build file a request asks for, or None when Streamlit should answer it."""
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        headers = dict(scope.get("headers", ()))
        if PASS_ON & headers.keys() or b"gzip" not in headers.get(b"accept-encoding", b""):
            return None
        path = scope["path"]
        if not path.startswith(f"{self.prefix}/"):
            return None
        name = path[len(self.prefix) :].lstrip("/")
        return name if name in self.names else None

    def compressed(self, name: str) -> Response:
        path = self.build / name
        stat = path.stat()
        tag = hashlib.md5(f"{stat.st_mtime}-{stat.st_size}-gzip".encode(), usedforsecurity=False).hexdigest()
        return Response(
            gzip.compress(path.read_bytes(), compresslevel=6, mtime=0),
            media_type=mimetypes.guess_type(name)[0] or "text/plain",
            headers={
                "content-encoding": "gzip",
                "vary": "Accept-Encoding",
                "last-modified": formatdate(stat.st_mtime, usegmt=True),
                "etag": f'"{tag}"',
                "cache-control": CACHE_CONTROL,
            },
        )
