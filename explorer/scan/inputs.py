"""What a scan reads: the videos behind the paths given, each with its label when the layout gives one.

A path is a video file, a folder of videos, a folder of class folders (Kinetics, UCF101: the folder's name is
the label of the videos in it), or a CSV of path,label rows (a header row is allowed; relative paths are read
from the CSV's folder). Labels are matched to the checkpoint's label names ignoring case and treating `_`, `-`
and spaces alike.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from explorer.models.reducers import ParameterError

VIDEO_SUFFIXES = frozenset(".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .wmv .flv .ts .mts .3gp .ogv .gif".split())
MAX_CSV_BYTES = 256 * 2**20  # a CSV larger than this is not a list of videos


@dataclass(frozen=True)
class Item:
    """One video to scan, its label as the layout gives it (None: unknown), and where that came from."""

    video: str  # absolute path
    label: str | None = None


def expand(paths: Sequence[str | Path]) -> list[Item]:
    """The videos behind the paths, in a stable order, each once (the first label given wins)."""
    if not paths:
        raise ParameterError("give at least one video, folder or CSV to scan")
    items: dict[str, Item] = {}
    for path in map(Path, paths):
        for item in _items(path):
            items.setdefault(item.video, item)
    if not items:
        raise ParameterError(
            f"no video found in {', '.join(map(str, paths))} (looked for {', '.join(sorted(VIDEO_SUFFIXES))})"
        )
    return list(items.values())


def _items(path: Path) -> Iterable[Item]:
    if not path.exists():
        raise ParameterError(f"not found: {path}")
    if path.is_dir():
        yield from _folder(path)
    elif path.suffix.lower() == ".csv":
        yield from _csv(path)
    else:
        yield Item(str(path.resolve()))  # any file: a scan names what is wrong with it in its errors


def _folder(folder: Path) -> Iterable[Item]:
    """Videos in the folder (no label), then those in each class folder under it (labelled by its name)."""
    entries = sorted(folder.iterdir())
    for entry in entries:
        if entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES:
            yield Item(str(entry.resolve()))
    for entry in entries:
        if entry.is_dir() and not entry.name.startswith("."):
            for video in sorted(entry.iterdir()):
                if video.is_file() and video.suffix.lower() in VIDEO_SUFFIXES:
                    yield Item(str(video.resolve()), entry.name)


def _csv(path: Path) -> Iterable[Item]:
    """Rows of path,label (label may be empty); a first row whose path is not a file is taken for a header."""
    if path.stat().st_size > MAX_CSV_BYTES:
        raise ParameterError(f"{path.name}: over {MAX_CSV_BYTES >> 20} MB, too large for a list of videos")
    try:
        text = path.read_text(encoding="utf-8-sig")
        if "\x00" in text:
            raise csv.Error("it holds binary data")
        rows = list(csv.reader(text.splitlines()))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ParameterError(f"{path.name}: not a readable CSV of path,label rows ({error})") from None
    for number, row in enumerate(rows, 1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        video = (path.parent / cells[0]).resolve()
        if number == 1 and not video.is_file() and cells[0].lower() in {"path", "video", "file", "filename"}:
            continue  # a header
        label = cells[1] if len(cells) > 1 and cells[1] else None
        yield Item(str(video), label)  # a missing file becomes an error row, as any unreadable video


def normalize(label: str) -> str:
    """'Playing_Guitar' -> 'playing guitar': the form labels are compared in."""
    return re.sub(r"[\s_-]+", " ", label).strip().casefold()


def match_labels(labels: Iterable[str | None], names: Sequence[str] | None) -> dict[str, str | None]:
    """Each given label -> the checkpoint's label name it matches, or None when it matches none."""
    by_form = {normalize(name): name for name in names or ()}
    return {label: by_form.get(normalize(label)) for label in labels if label is not None}
