"""One bounded queue for the model runs of every session a server holds.

A class opens the same link at once: without a bound, every session runs its own forward and they all fight
over the same cores (or GPU), each slower than if they had waited their turn. RunQueue runs at most `slots`
jobs at a time, in the order asked; a job asked for again while it waits or runs is shared, not run twice;
a finished result is kept (bounded in bytes, least recently used first out, or pinned for the tour); a job
nobody waits for any more is dropped before it starts. Background jobs (the tour, asked at server start) run only
when no session waits; a session asking for one moves it into the line. Each waiter can read its place in the line and a
wait estimated from the durations of the runs before it. Nothing here knows Streamlit (explorer/ui/runs.py).
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import numpy as np
import torch

from explorer.models.reducers import ParameterError

SLOTS_ENV = "TOKEN_EXPLORER_RUNS"  # how many runs at a time (default: default_slots())
MAX_SLOTS = 64
KEEP_BYTES = 256 * 2**20  # finished results kept for reuse (at most KEEP_RESULTS of them), pinned ones aside
KEEP_RESULTS = 32
SMOOTHING = 0.3  # weight of the newest duration in a kind's running estimate


def default_slots() -> int:
    """Runs at a time: one per GPU (a second would only wait for the first), else a few on a CPU: one per 8
    cores, up to 4, since each run already spreads over the cores."""
    if torch.cuda.is_available():
        return torch.cuda.device_count()
    return max(1, min(4, (os.cpu_count() or 1) // 8))


def slots_setting(text: str | None = None) -> int:
    """The slots a server runs with: `text` (or $TOKEN_EXPLORER_RUNS) when given, else default_slots()."""
    text = os.environ.get(SLOTS_ENV) if text is None else text
    if text is None or not text.strip():
        return default_slots()
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_SLOTS:
        raise ParameterError(f"{SLOTS_ENV} must be a whole number of runs at a time, 1 to {MAX_SLOTS}; got {text!r}")
    return int(text)


def _malloc_trim() -> Callable[[], object]:
    """glibc's malloc_trim(0), or a no-op elsewhere: runs allocate and free large tensors in the queue's threads,
    and without a trim the freed pages stay with the process (its resident memory grew run after run)."""
    name = ctypes.util.find_library("c")
    try:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        trim = None
    return (lambda: trim(0)) if trim is not None else (lambda: None)


TRIM = _malloc_trim()
# A trim takes ~2 ms: after a run this long or longer (ViT-S's, which free hundreds of MB), or when the line is
# empty; between the short runs of a burst (the demo model's, 0.07 s) the next run goes first.
TRIM_AFTER = 0.25


def arrays_in(value: Any) -> Iterator[np.ndarray | torch.Tensor]:
    """The numpy arrays and torch tensors in a value (dataclass fields, dicts, lists, tuples), each once."""
    seen: set[int] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (np.ndarray, torch.Tensor)):
            yield item
        elif is_dataclass(item) and not isinstance(item, type):
            pending += [getattr(item, f.name) for f in fields(item)]
        elif isinstance(item, dict):
            pending += item.values()
        elif isinstance(item, (list, tuple)):
            pending += item


def nbytes(value: Any) -> int:
    """Bytes held by the arrays and tensors in a value, each counted once."""
    return sum(a.nbytes if isinstance(a, np.ndarray) else a.element_size() * a.nelement() for a in arrays_in(value))


def freeze(value: Any) -> Any:
    """Make the numpy arrays in a value read-only: a result shared by many sessions must never change under them."""
    for array in arrays_in(value):
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return value


@dataclass(eq=False)
class Job:
    key: Hashable
    work: Callable[[], Any]
    kind: Hashable  # runs of one kind take about as long as each other (the wait estimate's unit)
    pinned: bool
    background: bool = False
    future: Future = field(default_factory=Future)
    waiters: int = 1
    asked: float = field(default_factory=time.monotonic)
    started: float | None = None


@dataclass(frozen=True)
class Ticket:
    """A session's claim on a job's result. `job` is None when the result was already there."""

    key: Hashable
    job: Job | None
    future: Future

    def done(self) -> bool:
        return self.future.done()


@dataclass(frozen=True)
class Place:
    """Where a ticket's job stands: ahead = jobs that start before it (0: it runs now or is next in line),
    running = whether it runs, seconds = how long it has run or waited, wait = estimated seconds to its result
    (None until a run of any kind has finished)."""

    ahead: int
    running: bool
    seconds: float
    wait: float | None


@dataclass
class Counts:
    computed: int = 0  # jobs run
    shared: int = 0  # asks answered by a job already waiting or running
    reused: int = 0  # asks answered by a kept result
    dropped: int = 0  # jobs dropped before they started, nobody waiting any more
    failed: int = 0


class RunQueue:
    def __init__(
        self,
        slots: int,
        keep_bytes: int = KEEP_BYTES,
        keep_results: int = KEEP_RESULTS,
        size_of: Callable[[Any], int] = nbytes,
    ) -> None:
        if slots < 1:
            raise ValueError("a run queue needs at least one slot")
        self.slots = slots
        self.keep_bytes, self.keep_results = keep_bytes, keep_results
        self.counts = Counts()
        self._size_of = size_of
        self._lock = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._later: deque[Job] = deque()  # background jobs: run when nothing waits
        self._running: dict[Hashable, Job] = {}
        self._kept: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._kept_bytes = 0
        self._pinned: dict[Hashable, Any] = {}
        self._durations: dict[Hashable, float] = {}
        self._closed = False
        self._workers = [threading.Thread(target=self._work, name=f"run-queue-{i}", daemon=True) for i in range(slots)]
        for worker in self._workers:
            worker.start()
        atexit.register(self.close)  # a thread still inside torch when Python exits aborts the process

    # -- asking

    def submit(
        self,
        key: Hashable,
        work: Callable[[], Any],
        kind: Hashable = None,
        pinned: bool = False,
        background: bool = False,
    ) -> Ticket:
        """A ticket for the result of `work()`, run once for every ask with this key; a background job waits until
        nothing else does."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the run queue is closed: the server is stopping")
            if key in self._pinned or key in self._kept:
                self.counts.reused += 1
                if key in self._kept:
                    self._kept.move_to_end(key)
                value = self._pinned[key] if key in self._pinned else self._kept[key][0]
                return Ticket(key, None, _resolved(value))
            job = self._running.get(key) or next((j for j in (*self._waiting, *self._later) if j.key == key), None)
            if job is not None:
                job.waiters += 1
                job.pinned |= pinned
                self.counts.shared += 1
                if job.background and not background and job.started is None:  # someone waits: into the line
                    self._later.remove(job)
                    job.background = False
                    self._waiting.append(job)
                return Ticket(key, job, job.future)
            job = Job(key, work, kind, pinned, background)
            (self._later if background else self._waiting).append(job)
            self._lock.notify()
            return Ticket(key, job, job.future)

    def place(self, ticket: Ticket) -> Place:
        """The ticket's place in the line and its estimated wait."""
        job = ticket.job
        with self._lock:
            now = time.monotonic()
            if job is None or job.future.done():
                return Place(0, False, 0.0, 0.0)
            running = list(self._running.values())
            mine = self._expected(job.kind)
            if job.started is not None:
                ran = now - job.started
                return Place(0, True, ran, None if mine is None else max(0.0, mine - ran))
            line = [*self._waiting, *self._later]
            ahead = line[: next(i for i, other in enumerate(line) if other is job)]
            if mine is None:
                return Place(len(ahead), False, now - job.asked, None)
            busy = sum(max(0.0, (self._expected(j.kind) or mine) - (now - (j.started or now))) for j in running)
            queued = sum(self._expected(j.kind) or mine for j in ahead)
            return Place(len(ahead), False, now - job.asked, (busy + queued) / self.slots + mine)

    def leave(self, ticket: Ticket) -> None:
        """The asker no longer waits (its session left or reran): a job nobody waits for is dropped before it
        starts; one that runs finishes and is kept."""
        job = ticket.job
        if job is None:
            return
        with self._lock:
            job.waiters -= 1
            if job.waiters <= 0 and not job.pinned and job.started is None and job in self._waiting:
                self._waiting.remove(job)  # (a background job is pinned: the tour's)
                job.future.cancel()
                self.counts.dropped += 1

    def result(self, ticket: Ticket, timeout: float | None = None) -> Any:
        """The job's result (or its exception); TimeoutError when not there within `timeout` s."""
        try:
            return ticket.future.result(timeout)
        except CancelledError:
            raise RuntimeError("this run was dropped: nobody waited for it") from None

    def waiting(self) -> int:
        """Jobs not started, background ones included."""
        with self._lock:
            return len(self._waiting) + len(self._later)

    def kept(self) -> list[Hashable]:
        """Keys of the kept results, least recently used first (pinned ones aside)."""
        with self._lock:
            return list(self._kept)

    def kept_bytes(self) -> int:
        with self._lock:
            return self._kept_bytes

    def close(self, timeout: float = 60) -> None:
        """Drop the jobs not started, let the running ones finish (up to `timeout` s), and stop the workers."""
        with self._lock:
            self._closed = True
            for job in (*self._waiting, *self._later):
                job.future.cancel()
            self._waiting.clear()
            self._later.clear()
            self._lock.notify_all()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            if worker is not threading.current_thread():
                worker.join(max(0.0, deadline - time.monotonic()))

    # -- running

    def _expected(self, kind: Hashable) -> float | None:
        if kind in self._durations:
            return self._durations[kind]
        return sum(self._durations.values()) / len(self._durations) if self._durations else None

    def _work(self) -> None:
        while True:
            with self._lock:
                while not (self._waiting or self._later or self._closed):
                    self._lock.wait()
                if self._closed:
                    return
                job = (self._waiting or self._later).popleft()
                job.started = time.monotonic()
                self._running[job.key] = job
            try:
                value = job.work()
            except BaseException as error:  # noqa: BLE001 - the asker gets it, this worker goes on
                with self._lock:
                    del self._running[job.key]
                    self.counts.failed += 1
                job.future.set_exception(error)
                continue
            with self._lock:
                seconds = time.monotonic() - job.started
                old = self._durations.get(job.kind)
                self._durations[job.kind] = seconds if old is None else SMOOTHING * seconds + (1 - SMOOTHING) * old
                del self._running[job.key]
                self.counts.computed += 1
                self._keep(job.key, value, job.pinned)
            job.future.set_result(value)
            if seconds > TRIM_AFTER or not self._waiting:
                TRIM()

    def _keep(self, key: Hashable, value: Any, pinned: bool) -> None:
        if pinned:
            self._pinned[key] = value
            return
        size = self._size_of(value)
        if size > self.keep_bytes:
            return
        self._kept[key] = (value, size)
        self._kept_bytes += size
        while self._kept_bytes > self.keep_bytes or len(self._kept) > self.keep_results:
            _, (_, dropped) = self._kept.popitem(last=False)
            self._kept_bytes -= dropped


def _resolved(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future
