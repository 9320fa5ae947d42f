"""Where results go: a folder or a file's folder, checked (made if missing) before any work starts, so that a
run never ends in a traceback after minutes of work because it cannot write."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from explorer.models.reducers import ParameterError


def writable_folder(path: str | os.PathLike, what: str = "the results") -> Path:
    """The folder at `path`, made if missing; ParameterError naming it when it is a file or device, cannot
    be made, or cannot be written in."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ParameterError(f"{folder} is not a folder: give a folder to write {what} to")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # a file made and gone: the only test /proc and friends fail
            pass
    except OSError as error:
        raise ParameterError(f"cannot write {what} to {folder}: {error.strerror or error}") from None
    return folder


def writable_file(path: str | os.PathLike, what: str = "the file") -> Path:
    """The file at `path`, its folder made if missing; ParameterError when it names a folder or something
    other than a regular file, or its folder cannot be written in."""
    file = Path(path).expanduser()
    if file.exists() and not file.is_file():
        raise ParameterError(f"{file} is not a regular file: give a file name to write {what} to")
    writable_folder(file.parent, what)
    return file
