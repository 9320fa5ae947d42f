"""The scan's log: DIR/journal.jsonl, one JSON line per finished window (its rows) or error, flushed as it is
written. A killed scan loses only the windows in flight; the next run with the same command reads the log and
skips what is in it. windows.parquet and errors.parquet are rebuilt from it.

The first line records the settings that decide a window's rows (model, frames, stride, size, hop,
precision): a scan with other settings is refused rather than mixed in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from explorer.models.reducers import ParameterError
from explorer.outputs import writable_folder

NAME = "journal.jsonl"
KEYED = ("model", "frames", "stride", "size", "hop", "precision")  # the settings a window's rows depend on


class Journal:
    """Appends to DIR/journal.jsonl. `done` holds, per (video, window) already in it, the (reducer, budget) rows it
    has, and `dense_top1` the dense prediction: what a rerun needs to skip, without holding the rows."""

    def __init__(self, folder: Path, settings: dict[str, Any]) -> None:
        self.path = folder / NAME
        self.done: dict[tuple[str, int], set[tuple[str, float | None]]] = {}
        self.dense_top1: dict[tuple[str, int], int] = {}
        writable_folder(folder, "the scan")
        _cut_partial_line(self.path)
        header = None
        for entry in _entries(self.path):
            if entry["kind"] == "settings":
                header = entry["settings"]
            for row in entry.get("rows", ()):
                key = (row["video"], row["window"])
                self.done.setdefault(key, set()).add((row["reducer"], row["budget"]))
                if row["reducer"] == "none":
                    self.dense_top1[key] = row["top1_index"]
        if header is not None:
            _check_same(folder, header, settings)
        self._file: IO[str] = self.path.open("a", encoding="utf-8")
        if header is None:
            self._write({"kind": "settings", "settings": settings})

    def add_rows(self, rows: list[dict]) -> None:
        self._write({"kind": "rows", "rows": rows})

    def add_error(self, video: str, window: int | None, start_s: float | None, reason: str) -> None:
        self._write({"kind": "error", "video": video, "window": window, "start_s": start_s, "reason": reason})

    def close(self) -> None:
        self._file.close()

    def _write(self, entry: dict) -> None:
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def read(folder: Path) -> tuple[dict | None, list[dict], list[dict]]:
    """The settings, rows and errors a folder's journal holds (None and empty lists without one)."""
    entries = list(_entries(folder / NAME))
    header = next((e["settings"] for e in entries if e["kind"] == "settings"), None)
    rows = [row for e in entries if e["kind"] == "rows" for row in e["rows"]]
    return header, rows, [e for e in entries if e["kind"] == "error"]


def _cut_partial_line(path: Path) -> None:
    """Cut off a last line left short by a kill, so that appending goes on cleanly."""
    if not path.exists():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with path.open("r+b") as file:
            file.truncate(end)
            os.fsync(file.fileno())


def _entries(path: Path) -> Iterator[dict]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.endswith("\n"):
                return  # cut short by a kill: in flight, not written
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                raise ParameterError(f"{path}: line {number} is not JSON; the scan's journal is damaged") from None


def _check_same(folder: Path, before: dict[str, Any], now: dict[str, Any]) -> None:
    changed = [key for key in KEYED if before.get(key) != now.get(key)]
    if changed:
        what = ", ".join(f"{key} {before.get(key)!r} then {now.get(key)!r}" for key in changed)
        raise ParameterError(
            f"{folder} holds a scan made with other settings ({what}); give another --out, or remove the folder"
        )
