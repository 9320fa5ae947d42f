"""Key press to new overlay: how long the explorer takes to redraw when the layer slider moves, in chromium.

    PYTHONPATH=. python benchmarks/layer_latency.py [--root DIR] [--presses 10]

Serves the app (`streamlit run app.py` from --root, this checkout by default, so an older checkout can be
measured the same way), opens it in Debian's headless chromium, waits for the first overlay, then presses
ArrowRight / ArrowLeft on the layer slider `--presses` times. Each time is from the key press (a keydown
listener in the page) to the moment the overlay's new image has loaded, polled every animation frame.
Prints the median and the spread for each setting: the demo model at its 112 px, and ViT-S at 224 px.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from tests.browser import CHROMIUM_ARGS, IMAGE_LOADED, ROOT, TIMEOUT_MS, App, Server, find_chromium

SETTINGS = {
    "demo model, 112 px": {"reducer": "tome", "style": "clusters"},
    "ViT-S, 224 px": {"model_size": "small", "size": "224", "reducer": "tome", "style": "clusters"},
}
STAMP_KEYDOWN = "document.addEventListener('keydown', () => { window.__pressed = performance.now(); }, true)"
# the first overlay image whose src differs from the one before the press has loaded: when did that happen?
NEW_IMAGE = """(before) => {
  const img = document.querySelector('[data-testid="stMain"] [data-testid="stImage"] img');
  if (!img || img.src === before || !img.complete || img.naturalWidth === 0) return false;
  return performance.now() - window.__pressed;
}"""


def press_times(app: App, presses: int) -> list[float]:
    """Milliseconds from each key press on the layer slider to its new overlay."""
    thumb = app.widget("layer").locator('input[type="range"]')
    times = []
    for i in range(presses):
        before = app.image.get_attribute("src")
        thumb.focus()
        thumb.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
        handle = app.page.wait_for_function(NEW_IMAGE, arg=before, polling="raf", timeout=TIMEOUT_MS)
        times.append(float(handle.json_value()))
        app.wait_idle()
    return times


def measure(server: Server, browser, query: dict[str, str], presses: int) -> list[float]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    app = App(page)
    page.goto(f"{server.url}/?{urlencode(query)}")
    page.wait_for_function(IMAGE_LOADED, timeout=TIMEOUT_MS)
    app.wait_idle()
    page.evaluate(STAMP_KEYDOWN)
    press_times(app, 2)  # warm-up: the first redraws fill the caches
    times = press_times(app, presses)
    app.assert_clean("while moving the layer")
    page.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app.py is served")
    parser.add_argument("--presses", type=int, default=10)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    server = Server(Path(tempfile.mkdtemp()) / "streamlit.log", root=args.root)
    try:
        server.wait_ready()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
            print(f"app: {args.root}; {args.presses} presses each; key press to new overlay, ms")
            for name, query in SETTINGS.items():
                times = measure(server, browser, query, args.presses)
                print(
                    f"{name:20s} median {statistics.median(times):6.0f}  min {min(times):6.0f}  max {max(times):6.0f}"
                )
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
