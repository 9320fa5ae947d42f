"""Helpers for the browser tests: the app served by `streamlit run`, and a page driven like a user.

Playwright drives Debian's chromium (never a downloaded browser). Nothing here touches the
network beyond 127.0.0.1.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 120_000  # the first run imports torch and runs two models on a slow CPU


def find_chromium() -> str | None:
    """Debian's chromium: /usr/bin/chromium, or whatever `chromium` is on the PATH."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`streamlit run app.py` on a free port of 127.0.0.1, its output in a log file."""

    def __init__(self, log_path: Path, env: dict[str, str] | None = None, root: Path = ROOT, extra: Sequence[str] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.headless",
                "true",
                "--server.port",
                str(self.port),
                "--server.address",
                "127.0.0.1",
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
                *extra,
            ],
            cwd=root,
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an http_proxy
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with status {self.process.returncode}:\n{self.log()}")
            try:
                with direct.open(f"{self.url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"streamlit did not answer on {self.url} within {timeout:.0f} s:\n{self.log()}")

    def log(self, start: int = 0) -> str:
        self._log.flush()
        return self.log_path.read_bytes()[start:].decode(errors="replace")

    def log_size(self) -> int:
        self._log.flush()
        return self.log_path.stat().st_size

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


# The script has finished its run, the connection is up, and no element is left over from an earlier run.
IDLE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
      && app.getAttribute('data-test-connection-state') === 'CONNECTED'
      && !document.querySelector('[data-stale="true"]')
      && !document.querySelector('[data-testid="stStatusWidget"]');
}"""

IMAGE_LOADED = """() => {
  const img = document.querySelector('[data-testid="stMain"] [data-testid="stImage"] img');
  return !!img && img.complete && img.naturalWidth > 0 && img.naturalHeight > 0;
}"""


class App:
    """One browser tab on the app. Widgets are found by their Streamlit key (class st-key-<key>)."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []  # uncaught JavaScript errors
        self.console: list[str] = []
        self.retries: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))

    # -- finding things
    def widget(self, key: str):
        return self.page.locator(f".st-key-{key.replace('.', '-')}")

    @property
    def main(self):
        return self.page.locator('[data-testid="stMain"]')

    @property
    def image(self):
        """The token overlay: the first image of the main area."""
        return self.main.locator('[data-testid="stImage"] img').first

    def image_caption(self) -> str:
        return self.main.locator('[data-testid="stImageCaption"]').first.inner_text()

    def metric(self, label: str) -> str:
        box = self.main.locator('[data-testid="stMetric"]', has_text=label).first
        return box.locator('[data-testid="stMetricValue"]').inner_text()

    def exceptions(self) -> list[str]:
        return self.page.locator('[data-testid="stException"]').all_inner_texts()

    def error_messages(self) -> list[str]:
        return self.page.locator('[data-testid="stAlertContentError"]').all_inner_texts()

    # -- waiting
    def wait_idle(self, timeout: float = TIMEOUT_MS) -> None:
        """Wait for the current run to end. Call it after waiting for something only the new run draws:
        right after an interaction the old page is still idle."""
        self.page.wait_for_function(IDLE, timeout=timeout)

    # -- acting like a user. A page in the background gets no focus events, and a select box then does
    # not open: each action brings its tab to the front first.
    def radio(self, key: str, label: str) -> None:
        self.page.bring_to_front()
        self.widget(key).locator('[data-testid="stRadioOption"]', has_text=label).click()

    def select(self, key: str, option: str) -> None:
        self.page.bring_to_front()
        box = self.widget(key).get_by_role("combobox")
        choice = self.page.get_by_role("option", name=option, exact=True)
        for attempt in range(3):
            # The keyboard, not a click: under Playwright a click opens the list, which often closes again
            # at once when the page has just finished a run.
            box.focus()
            box.press("ArrowDown")
            try:
                choice.wait_for(timeout=3_000)
                break
            except Exception:  # a Playwright TimeoutError
                self.retries.append(f"select {key}: the list did not open (attempt {attempt + 1})")
                self.page.keyboard.press("Escape")
        choice.click()

    def slider_keys(self, key: str, *keys: str) -> str:
        """Press keys on a slider (Home, End, ArrowRight, …); returns the value it shows."""
        self.page.bring_to_front()
        thumb = self.widget(key).locator('input[type="range"]')
        thumb.focus()
        for name in keys:
            thumb.press(name)
        return thumb.get_attribute("aria-valuetext")

    def open_expander(self, label: str) -> None:
        expander = self.page.locator('[data-testid="stExpander"]', has_text=label).first
        if expander.locator("details").get_attribute("open") is None:
            expander.locator("summary").click()

    # -- looking
    def image_pixels(self) -> np.ndarray:
        """The overlay as it shows on screen, (H, W, 3) uint8."""
        from PIL import Image

        self.image.scroll_into_view_if_needed()
        return np.asarray(Image.open(io.BytesIO(self.image.screenshot())).convert("RGB"))

    def assert_image_drawn(self, what: str = "") -> np.ndarray:
        """The overlay loaded and is a picture, not a blank (or broken) box; returns its pixels."""
        try:
            self.page.wait_for_function(IMAGE_LOADED, timeout=30_000)
        except Exception as error:  # a Playwright TimeoutError
            raise AssertionError(
                f"the overlay image did not load {what}: "
                f"{self.image.get_attribute('src')}; console: {self.console[-5:]}"
            ) from error
        pixels = self.image_pixels()
        assert pixels.shape[0] > 50 and pixels.shape[1] > 100, f"the overlay is tiny {pixels.shape} {what}"
        spread = float(pixels.std())
        assert spread > 10, f"the overlay looks blank (pixel std {spread:.1f}) {what}"
        return pixels

    def assert_clean(self, what: str = "") -> None:
        assert not self.exceptions(), f"Streamlit shows an exception {what}: {self.exceptions()}"
        assert not self.errors, f"JavaScript errors {what}: {self.errors}"


def new_context(browser, timeout_ms: int = TIMEOUT_MS, **options):
    """A browser context (its own cookies, so its own Streamlit sessions) at the tests' window size and timeout."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, **options)
    context.set_default_timeout(timeout_ms)
    return context


def configure_small_run(app: App, url: str) -> None:
    """Open the app and make it run the tiny model on 8 frames of 112 px, like a user would.

    The sidebar is set while the source is "Upload" with nothing uploaded, so that none of the
    intermediate settings runs a model; then back to the bundled sample.
    """
    page = app.page
    page.goto(url)
    upload = app.widget("source").locator('[data-testid="stRadioOption"]', has_text="Upload")
    upload.wait_for(timeout=TIMEOUT_MS)  # the sidebar draws after the imports (torch)
    upload.click()
    page.get_by_text("Choose a video in the sidebar").wait_for(timeout=TIMEOUT_MS)
    app.wait_idle()
    app.select("model_size", "ViT-tiny, untrained (192-d, 12 blocks)")
    app.open_expander("Sampling")
    assert app.slider_keys("frames", "Home", "ArrowRight", "ArrowRight", "ArrowRight") == "8"
    assert app.slider_keys("size", "Home", "ArrowRight") == "112"  # Home is the model's own size
    app.radio("source", "Sample")
    page.get_by_text("ViT-tiny has random weights").wait_for(timeout=TIMEOUT_MS)
    app.image.wait_for(timeout=TIMEOUT_MS)
    app.wait_idle()
    summary = app.main.locator('[data-testid="stExpander"] summary').first.inner_text()
    assert "8 frames sampled" in summary and "shown at 112 px" in summary, summary


# -- many sessions at once (a class opening the teacher's link): tests/test_browser.py and benchmarks/classroom_load.py

# Installed in every page before it loads: the page itself notes (performance.now(), ms from the start of its
# navigation) when the first element of its script's run shows (the browser has loaded the app and the server runs
# its session), when it first shows where its run stands (a queue place, a run under way, or the notice of a server
# still starting) and when its first overlay has loaded, so that many pages can be timed without polling each one.
# The words of a page that says where its run stands: its place in the run queue, its run under way (ui/runs.py
# place_text), or the notice of a server still starting (ui/page.py STARTING). A pattern for JavaScript and Python.
PLACED = "Waiting for the model|Running .*…|This server has just started"
MARKS = r"""(() => {
  const marks = {};
  window.__marks = marks;
  const placed = /__PLACED__/;
  const check = () => {
    const now = performance.now();
    if (marks.script === undefined && document.querySelector('[data-testid="stElementContainer"]')) marks.script = now;
    if (marks.place === undefined) {
      for (const box of document.querySelectorAll('[data-testid="stAlertContentInfo"]')) {
        if (placed.test(box.innerText)) { marks.place = now; marks.placeText = box.innerText; break; }
      }
    }
    if (marks.overlay === undefined) {
      const img = document.querySelector('[data-testid="stMain"] [data-testid="stImage"] img');
      if (img && img.complete && img.naturalWidth > 0) {
        marks.overlay = now;
        if (marks.place === undefined) marks.place = now;
        if (marks.script === undefined) marks.script = now;
      }
    }
  };
  const start = () => {
    new MutationObserver(check).observe(document, {subtree: true, childList: true, characterData: true});
    document.addEventListener('load', check, true);
    setInterval(check, 50);
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})()""".replace("__PLACED__", PLACED)


@dataclass
class Visit:
    """One session of a burst: ms from its navigation to the first element its script drew, to its first word on
    where its run stands and to its first overlay (None if it never came), and what went wrong on its page."""

    url: str
    script_ms: float | None
    place_ms: float | None
    overlay_ms: float | None
    place_text: str
    exceptions: list[str]
    script_errors: list[str]


def burst(browser, urls: list[str], timeout_ms: int = TIMEOUT_MS) -> tuple[list[Visit], list]:
    """Open every url in its own tab (its own Streamlit session: one per websocket), one right after the other, and
    wait until each page has drawn its overlay and finished its run. The tabs share one browser context, so its
    cache: on a 2-core machine the browser's own work for 30 tabs would otherwise outweigh the server's (a class
    has a machine each). Returns the visits and the open context (close it to end the sessions)."""
    context = new_context(browser, timeout_ms)
    context.add_init_script(MARKS)
    apps = [App(context.new_page()) for _ in urls]
    for app, url in zip(apps, urls):
        app.page.goto(url, wait_until="commit")
    visits = []
    for app, url in zip(apps, urls):
        try:
            app.page.wait_for_function(IMAGE_LOADED, timeout=timeout_ms)
            app.wait_idle(timeout_ms)
        except Exception as error:  # a Playwright TimeoutError: the visit says what it saw
            app.errors.append(f"no overlay within {timeout_ms / 1000:.0f} s: {str(error)[:200]}")
        marks = app.page.evaluate("window.__marks || {}")
        place, overlay, text = marks.get("place"), marks.get("overlay"), marks.get("placeText", "")
        visits.append(Visit(url, marks.get("script"), place, overlay, text, app.exceptions(), app.errors))
    return visits, [context]


def resident_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
