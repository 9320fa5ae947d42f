"""The unit of work both engines hand out: a window, the rows it still needs, and what running it gave."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .compute import Key, WindowRunner
from .windows import Window, chunks, decode


@dataclass(frozen=True)
class Outcome:
    """A window's rows, or why it has none."""

    window: Window
    rows: list[dict] | None = None
    error: str | None = None


@dataclass(frozen=True)
class Task:
    """A window and the (reducer, budget) rows it still needs; `dense_top1` when its dense row was written before."""

    window: Window
    keys: tuple[Key, ...]
    dense_top1: int | None = None

    def outcome(self, runner: WindowRunner, frames: np.ndarray | str) -> Outcome:
        """Run the window's frames (or pass on why they could not be read)."""
        if isinstance(frames, str):
            return Outcome(self.window, error=frames)
        try:
            return Outcome(self.window, rows=runner.run(self.window, frames, self.keys, self.dense_top1))
        except Exception as error:  # a window the model cannot run is an error row, not the end of the scan
            return Outcome(self.window, error=f"the model failed on this window ({type(error).__name__}: {error})")


def decode_tasks(tasks: Sequence[Task], frames: int, stride: int, size: int) -> Iterator[tuple[Task, np.ndarray | str]]:
    """Each task with its window's frames or the reason they could not be read, consecutive windows of a video
    decoded from one open file."""
    by_window = {(t.window.video, t.window.index): t for t in tasks}
    for chunk in chunks([t.window for t in tasks]):
        for window, got in decode(chunk, frames, stride, size):
            yield by_window[window.video, window.index], got
