"""The local engine: one process; a thread decodes the next windows while the model runs the current one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence

from .compute import WindowRunner
from .tasks import Outcome, Task, decode_tasks

PREFETCH = 4  # decoded windows waiting for the model: bounds memory (4 x 2.4 MB at 16 x 224)
_END = object()


def run(
    tasks: Sequence[Task], runner: WindowRunner, frames: int, stride: int, size: int, emit: Callable[[Outcome], None]
) -> None:
    """Run every task, handing each window's outcome to `emit` as it is done (in the tasks' order)."""
    ready: queue.Queue = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()
    failure: list[BaseException] = []

    def decode() -> None:
        try:
            for item in decode_tasks(tasks, frames, stride, size):
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as error:  # handed to the main thread, which raises it
            failure.append(error)
        finally:
            ready.put(_END)

    decoder = threading.Thread(target=decode, name="scan-decode", daemon=True)
    decoder.start()
    try:
        while (item := ready.get()) is not _END:
            task, frames_or_reason = item
            emit(task.outcome(runner, frames_or_reason))
    finally:
        stop.set()
        while decoder.is_alive():  # let a blocked put go through, so that the thread ends
            try:
                ready.get(timeout=0.1)
            except queue.Empty:
                pass
    if failure:
        raise failure[0]
