"""A class at once: N sessions opening the app together, on a fresh server and then on a warm one.

    PYTHONPATH=. python benchmarks/classroom_load.py [--fresh 8] [--warm 30] [--model demo|small]
        [--clients browser|wire] [--app-files cold|cached] [--json FILE]

Serves the app (`streamlit run app.py`, its disconnected sessions kept 10 s instead of Streamlit's 120 s, so
that their release shows within the run), opens --fresh sessions at once on the teacher's link (the explorer's
default view) of a server that has not run anything, closes them, then opens --warm sessions at once, each with
its own setting (ToMe or RLT at a different r or tau), closes them too. Each page notes when it first says where
its run stands (its place in the run queue, its run under way, or the notice of a server still starting) and
when its first overlay has loaded. The sessions are chromium tabs on this machine (--clients browser; the marks
are tests/browser.py's MARKS), or sessions that speak Streamlit's websocket protocol as a browser elsewhere would
(--clients wire, tests/wire.py), fetching the page, the ~60 files it names (not with --app-files cached: a
browser that has them from an earlier visit) and each overlay image. Prints, per burst: the pages with an
exception or a script error, p50/p95/max of both times, the target for the overlay (sessions / runs at a time x
one run's time + 2 s; one run's time measured here in-process, the median of 7, of 3 for ViT-S) and the
server's resident memory before, at its peak during, and after the sessions have closed and been released.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

from tests import wire
from tests.browser import CHROMIUM_ARGS, Server, burst, find_chromium, resident_mb

# Tabs the browser does not show would otherwise have their timers and drawing slowed down: a class has a screen each.
EVERY_TAB_SHOWN = [
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
]

MODELS = {"demo": {}, "small": {"model_size": "small", "size": "224"}}  # the link's settings for each model
RELEASE_TTL = 10  # seconds a closed session is kept for a reconnect, for this run (server.disconnectedSessionTTL)


def one_run_seconds(model: str) -> float:
    """analyze() on the default sample with the explorer's defaults for this model, as a queued run makes it."""
    from explorer.analyze import DEMO, ModelSpec, analyze, build_model
    from explorer.models.reducers import make_reducer
    from explorer.ui import sidebar
    from explorer.video import SAMPLES, load_clip, sample_path

    size = 112 if model == "demo" else 224
    path = sample_path(next(iter(SAMPLES)))
    clip = load_clip(path, frames=sidebar.FRAMES.default, stride=sidebar.STRIDE.default, size=size)
    network, report = build_model(ModelSpec(size=DEMO if model == "demo" else model), clip.num_frames, size)
    times = []
    for _ in range(7 if model == "demo" else 3):  # the demo's 0.07 s varies by a third from one run to the next
        started = time.perf_counter()
        analyze(clip, network, make_reducer("tome", r=8), labels=report.labels if report else None, timing_runs=5)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class Memory:
    """The server's resident memory, sampled every 0.1 s while it runs; peak() since the last reset."""

    def __init__(self, pid: int) -> None:
        self.pid, self.top, self.running = pid, 0.0, True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while self.running:
            try:
                self.top = max(self.top, resident_mb(self.pid))
            except (OSError, RuntimeError):
                return
            time.sleep(0.1)

    def reset(self) -> float:
        self.top = now = resident_mb(self.pid)
        return now

    def stop(self) -> None:
        self.running = False


def percentile(values: list[float], share: float) -> float:
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, max(0, round(share * len(ranked) + 0.5) - 1))]


QUEUE_LINE = re.compile(r"run queue: .* after ([0-9.]+) s \(asked ([0-9.]+) s into")  # ui/runs.py logs each wait


def report_burst(name: str, visits, slots: int, run_seconds: float, memory: dict[str, float], log: str) -> dict:
    """Print one burst's figures; return them. `log`: the server's log during the burst."""
    logged = [(float(m.group(1)), float(m.group(2))) for m in QUEUE_LINE.finditer(log)]
    waits, into = [w for w, _ in logged], [i for _, i in logged]
    places = [v.place_ms / 1000 for v in visits if v.place_ms is not None]
    overlays = [v.overlay_ms / 1000 for v in visits if v.overlay_ms is not None]
    started = [v for v in visits if v.script_ms is not None and v.place_ms is not None]
    boots = [v.script_ms / 1000 for v in started]  # the browser loading the app and connecting
    asked = [(v.place_ms - v.script_ms) / 1000 for v in started]  # from the session's first element to its place
    failed = [v for v in visits if v.exceptions or v.script_errors or v.overlay_ms is None]
    target = len(visits) / slots * run_seconds + 2
    figures = {
        "sessions": len(visits),
        "failed": len(failed),
        "browser_p50": statistics.median(boots) if boots else None,
        "browser_max": max(boots) if boots else None,
        "place_after_start_max": max(asked) if asked else None,
        "place_p50": statistics.median(places) if places else None,
        "place_max": max(places) if places else None,
        "overlay_p50": statistics.median(overlays) if overlays else None,
        "overlay_p95": percentile(overlays, 0.95) if overlays else None,
        "overlay_max": max(overlays) if overlays else None,
        "overlay_target": target,
        "queue_waits": len(waits),
        "queue_wait_p50": statistics.median(waits) if waits else None,
        "queue_wait_max": max(waits) if waits else None,
        "asked_into_run_p50": statistics.median(into) if into else None,
        "asked_into_run_max": max(into) if into else None,
        "memory_mb": memory,
        "first_words": sorted({v.place_text.split(":")[0][:60] for v in visits if v.place_text}),
    }
    print(f"\n{name}: {len(visits)} sessions, {len(failed)} with an exception, a script error or no overlay")
    for visit in failed:
        print(f"  {visit.url}: {visit.exceptions[:1]} {visit.script_errors[:1]}")
    if boots:
        print(
            f"  the page's first element (the browser has loaded the app, its session runs): p50 "
            f"{figures['browser_p50']:.2f} s, max {figures['browser_max']:.2f} s from navigation"
        )
    if places:
        p50, top = figures["place_p50"], figures["place_max"]
        print(
            f"  where its run stands, shown: p50 {p50:.2f} s, max {top:.2f} s from navigation; at most "
            f"{figures['place_after_start_max']:.2f} s after the page's first element"
        )
    if overlays:
        print(
            f"  first overlay after: p50 {figures['overlay_p50']:.1f} s, p95 {figures['overlay_p95']:.1f} s, "
            f"max {figures['overlay_max']:.1f} s; target p95 <= {len(visits)} / {slots} x {run_seconds:.2f} s + 2 s "
            f"= {target:.1f} s"
        )
    if waits:
        print(
            f"  on the server: {len(waits)} asks waited in the run queue, p50 {figures['queue_wait_p50']:.2f} s, "
            f"max {figures['queue_wait_max']:.2f} s from asking to result; each asked (and drew its place) p50 "
            f"{figures['asked_into_run_p50']:.2f} s, max {figures['asked_into_run_max']:.2f} s into its page's run"
        )
    print("  first words: " + " | ".join(figures["first_words"]))
    print(
        "  server memory: "
        + ", ".join(f"{when} {mb:.0f} MB" for when, mb in memory.items())
        + f" (after / before: {memory['after'] / memory['before']:.2f})"
    )
    return figures


class Browsers:
    """The class as headless chromium tabs on this machine: what a person sees, but each tab's loading and drawing
    takes the server's own cores."""

    def __init__(self, playwright) -> None:
        self.browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS + EVERY_TAB_SHOWN)
        self.contexts: list = []

    def open(self, urls: list[str]) -> list:
        visits, self.contexts = burst(self.browser, urls)
        return visits

    def close(self) -> None:
        for context in self.contexts:
            context.close()

    def one_more(self, url: str) -> None:
        visit = self.browser.new_page()
        visit.goto(url)
        visit.wait_for_selector('[data-testid="stElementContainer"]', timeout=60_000)
        visit.close()


class WireClients:
    """The class as sessions that speak Streamlit's websocket protocol (tests/wire.py): what the server does for
    browsers on other machines, with almost none of this machine's cores spent on the clients. Each session ends
    once every one has its overlay."""

    def __init__(self, app_files: bool) -> None:
        self.app_files = app_files

    def open(self, urls: list[str]) -> list:
        return wire.burst(urls, app_files=self.app_files)

    def close(self) -> None:
        pass

    def one_more(self, url: str) -> None:
        wire.visit(url, timeout=60, app_files=False)


def close_and_release(clients, server: Server) -> float:
    """Close the sessions; wait past the reconnect TTL, then open and close one more: Streamlit drops expired
    sessions when its session store next changes (a disconnect); the server's memory after that."""
    clients.close()
    time.sleep(RELEASE_TTL + 5)
    clients.one_more(server.url)
    time.sleep(5)
    return resident_mb(server.process.pid)


def run_bursts(clients, server: Server, args, slots: int, run_seconds: float) -> dict:
    memory = Memory(server.process.pid)
    link = f"{server.url}/?{urlencode(MODELS[args.model])}"
    settings = [
        {**MODELS[args.model], "reducer": "tome", "param.tome.r": str(4 + 4 * i)}
        if i % 2 == 0
        else {**MODELS[args.model], "reducer": "rlt", "param.rlt.tau": f"{0.02 + 0.02 * i:.2f}"}
        for i in range(args.warm)
    ]
    bursts = {
        "fresh": (f"fresh server, {args.fresh} on one link", [link] * args.fresh),
        "warm": (
            f"warm server, {args.warm} each with its own setting",
            [f"{server.url}/?{urlencode(s)}" for s in settings],
        ),
    }
    results = {}
    for name, (title, urls) in bursts.items():
        if not urls:
            continue
        before, logged = memory.reset(), server.log_size()
        visits = clients.open(urls)
        during = memory.top
        after = close_and_release(clients, server)
        figures = {"before": before, "peak": during, "after": after}
        results[name] = report_burst(title, visits, slots, run_seconds, figures, server.log(logged))
    memory.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", type=int, default=8, help="sessions at once on a fresh server")
    parser.add_argument("--warm", type=int, default=30, help="sessions at once on the warm server")
    parser.add_argument("--model", choices=list(MODELS), default="demo")
    parser.add_argument(
        "--clients",
        choices=["browser", "wire"],
        default="browser",
        help="chromium tabs on this machine, or sessions speaking Streamlit's protocol (browsers elsewhere)",
    )
    parser.add_argument(
        "--app-files",
        choices=["cold", "cached"],
        default="cold",
        help="wire clients: fetch the page and the ~60 files it names (a browser's first visit), or the page alone",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from explorer.serving import slots_setting

    slots = slots_setting()
    run_seconds = one_run_seconds(args.model)
    print(
        f"{os.cpu_count()} CPU cores, {slots} run(s) at a time; one run ({args.model}, ToMe, 5 timed runs): "
        f"{run_seconds:.2f} s; clients: {args.clients}"
        + (f", app files {args.app_files}" if args.clients == "wire" else "")
    )
    server = Server(
        Path(tempfile.mkdtemp()) / "streamlit.log", extra=["--server.disconnectedSessionTTL", str(RELEASE_TTL)]
    )
    results: dict = {"cores": os.cpu_count(), "slots": slots, "model": args.model, "one_run_s": run_seconds}
    results |= {"clients": args.clients, "app_files": args.app_files if args.clients == "wire" else None}
    try:
        server.wait_ready()
        if args.clients == "wire":
            results |= run_bursts(WireClients(args.app_files == "cold"), server, args, slots, run_seconds)
        else:
            with sync_playwright() as playwright:
                browsers = Browsers(playwright)
                results |= run_bursts(browsers, server, args, slots, run_seconds)
                browsers.browser.close()
    finally:
        server.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
