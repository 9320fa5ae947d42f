"""The server's run queue (explorer/serving.py): bounded, shared, ordered, dropping what nobody waits for."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from explorer.models.reducers import ParameterError
from explorer.serving import RunQueue, freeze, nbytes, slots_setting


class Gate:
    """Work that blocks until released, recording how many run at once."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.lock = threading.Lock()
        self.now = self.most = 0
        self.order: list[str] = []

    def job(self, name: str, value: object = None):
        def work():
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
                self.order.append(name)
            self.open.wait(10)
            with self.lock:
                self.now -= 1
            return name if value is None else value

        return work


def settle(runs: RunQueue, started: int, timeout: float = 5) -> None:
    """Wait until `started` jobs have left the line."""
    deadline = time.monotonic() + timeout
    while runs.counts.computed + len(runs._running) < started and time.monotonic() < deadline:
        time.sleep(0.01)


def test_at_most_slots_run_at_once_in_the_order_asked():
    gate, runs = Gate(), RunQueue(slots=2)
    tickets = [runs.submit(f"k{i}", gate.job(f"k{i}")) for i in range(6)]
    settle(runs, 2)
    time.sleep(0.1)
    assert gate.now == 2 and runs.waiting() == 4
    gate.open.set()
    assert [runs.result(t, 5) for t in tickets] == [f"k{i}" for i in range(6)]
    assert gate.most == 2 and gate.order[:2] == ["k0", "k1"] and gate.order[2:] == ["k2", "k3", "k4", "k5"]


def test_the_same_ask_is_run_once_and_then_kept():
    gate, runs = Gate(), RunQueue(slots=1)
    first = runs.submit("same", gate.job("a"))
    second = runs.submit("same", gate.job("b"))
    gate.open.set()
    assert runs.result(first, 5) == runs.result(second, 5) == "a"
    third = runs.submit("same", gate.job("c"))
    assert third.done() and runs.result(third) == "a"
    assert (runs.counts.computed, runs.counts.shared, runs.counts.reused) == (1, 1, 1) and gate.order == ["a"]


def test_a_job_nobody_waits_for_is_dropped_before_it_starts():
    gate, runs = Gate(), RunQueue(slots=1)
    busy = runs.submit("busy", gate.job("busy"))
    settle(runs, 1)
    left = runs.submit("left", gate.job("left"))
    both = runs.submit("both", gate.job("both"))
    runs.submit("both", gate.job("both"))  # a second session on the same run
    runs.leave(left)
    runs.leave(both)  # one of its two waiters left: it stays
    gate.open.set()
    runs.result(busy, 5)
    assert runs.result(runs.submit("both", gate.job("x")), 5) == "both"
    with pytest.raises(RuntimeError, match="dropped"):
        runs.result(left, 5)
    assert runs.counts.dropped == 1 and "left" not in gate.order


def test_background_jobs_wait_for_sessions_and_one_asked_for_moves_into_the_line():
    gate, runs = Gate(), RunQueue(slots=1)
    runs.submit("busy", gate.job("busy"))
    settle(runs, 1)
    for name in ("tour1", "tour2", "tour3"):
        runs.submit(name, gate.job(name), pinned=True, background=True)
    runs.submit("session", gate.job("session"))
    asked = runs.submit("tour3", gate.job("never"))
    assert runs.place(asked).ahead == 1  # behind the session's own run, before tour1 and tour2
    gate.open.set()
    assert runs.result(asked, 5) == "tour3"
    deadline = time.monotonic() + 5
    while runs.waiting() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gate.order == ["busy", "session", "tour3", "tour1", "tour2"]


def test_kept_results_are_bounded_in_bytes_least_recently_used_out_pinned_kept():
    runs = RunQueue(slots=1, keep_bytes=3000)
    array = lambda: np.zeros(1000, np.uint8)  # noqa: E731
    runs.result(runs.submit("pinned", array, pinned=True), 5)
    for name in ("a", "b", "c"):
        runs.result(runs.submit(name, array), 5)
    runs.result(runs.submit("a", array), 5)  # a used again: b is now the oldest
    runs.result(runs.submit("d", array), 5)
    assert runs.kept_bytes() == 3000 and runs.kept() == ["c", "a", "d"]  # b out: the least recently used
    for name in ("pinned", "a", "c", "d"):
        assert runs.submit(name, array).done(), name
    runs.result(runs.submit("huge", lambda: np.zeros(5000, np.uint8)), 5)  # more than the bound: not kept
    assert runs.kept_bytes() == 3000 and "huge" not in runs.kept()
    runs.keep_results = 2
    runs.result(runs.submit("e", lambda: np.zeros(10, np.uint8)), 5)
    assert runs.kept() == ["d", "e"]  # and at most keep_results of them


def test_a_failed_run_reaches_every_waiter_and_is_not_kept():
    gate, runs = Gate(), RunQueue(slots=1)
    calls = []

    def failing():
        calls.append(1)
        gate.open.wait(5)
        raise ParameterError("bad budget")

    first, second = runs.submit("bad", failing), runs.submit("bad", failing)
    gate.open.set()
    for ticket in (first, second):
        with pytest.raises(ParameterError, match="bad budget"):
            runs.result(ticket, 5)
    with pytest.raises(ParameterError):
        runs.result(runs.submit("bad", failing), 5)
    assert len(calls) == 2 and runs.counts.failed == 2


def test_the_place_and_the_estimated_wait_follow_the_runs_before():
    gate, runs = Gate(), RunQueue(slots=1)
    runs.result(runs.submit("timed", lambda: time.sleep(0.2), kind="k"), 5)  # one 0.2 s run of kind k
    first = runs.submit("first", gate.job("first"), kind="k")
    settle(runs, 2)
    queued = [runs.submit(f"q{i}", gate.job(f"q{i}"), kind="k") for i in range(3)]
    places = [runs.place(t) for t in queued]
    assert [p.ahead for p in places] == [0, 1, 2] and not any(p.running for p in places)
    waits = [p.wait for p in places]
    assert all(w is not None for w in waits) and waits[0] < waits[1] < waits[2]
    assert waits[2] == pytest.approx(0.2 * 4, abs=0.15)  # the running one's rest, two ahead, its own
    running = runs.place(first)
    assert running.running and running.ahead == 0
    gate.open.set()
    runs.result(queued[-1], 5)
    assert runs.place(queued[-1]).wait == 0


def test_no_estimate_before_any_run_has_finished():
    gate, runs = Gate(), RunQueue(slots=1)
    runs.submit("first", gate.job("first"))
    settle(runs, 1)
    place = runs.place(runs.submit("second", gate.job("second")))
    gate.open.set()
    assert place.ahead == 0 and place.wait is None


def test_slots_come_from_the_setting_and_a_bad_one_is_named(monkeypatch):
    monkeypatch.setenv("TOKEN_EXPLORER_RUNS", "3")
    assert slots_setting() == 3
    for bad in ("0", "many", "-1", "1e9", "65"):
        with pytest.raises(ParameterError, match="TOKEN_EXPLORER_RUNS must be a whole number"):
            slots_setting(bad)
    monkeypatch.delenv("TOKEN_EXPLORER_RUNS")
    assert slots_setting() >= 1


def test_shared_results_are_read_only_and_their_bytes_counted():
    from explorer.trace import Trace

    owner = np.zeros((2, 1, 2, 2), np.int64)
    trace = Trace(
        grid=(1, 2, 2),
        cell=(2, 16, 16),
        owner=owner,
        tokens_per_layer=[1, 1],
        values={"cell": [np.zeros(1, np.int64), np.zeros(1, np.int64)]},
        flops=np.zeros(2),
        dense_flops=np.zeros(2),
        seconds={},
        meta={"extra": [np.ones(4, np.float32)]},
    )
    assert nbytes(trace) == owner.nbytes + 2 * 8 + 2 * 16 + 16
    freeze(trace)
    with pytest.raises(ValueError, match="read-only"):
        trace.owner[0] = 1
    with pytest.raises(ValueError, match="read-only"):
        trace.meta["extra"][0][0] = 2


def test_closing_drops_what_waits_lets_the_running_job_finish_and_stops_the_workers():
    gate, runs = Gate(), RunQueue(slots=1)
    running = runs.submit("running", gate.job("running"))
    settle(runs, 1)
    waiting = runs.submit("waiting", gate.job("waiting"))
    closer = threading.Thread(target=runs.close)
    closer.start()
    time.sleep(0.1)
    gate.open.set()  # the running job finishes; nothing else starts
    closer.join(5)
    assert runs.result(running, 5) == "running" and waiting.future.cancelled()
    assert not any(worker.is_alive() for worker in runs._workers) and gate.order == ["running"]
    with pytest.raises(RuntimeError, match="closed"):
        runs.submit("late", gate.job("late"))
