"""Screenshots of the Learn page, as a browser draws it, for the docs (and of the explorer's default view).

    PYTHONPATH=. python benchmarks/learn_screenshots.py [--out docs] [--steps 1 3 5] [--explorer assets/screenshot.png]

Serves app.py with `streamlit run` on 127.0.0.1 (tests/browser.py's Server), opens /learn?step=N for each step in
Debian's chromium (headless, nothing fetched) and saves the page's main area to OUT/learn_step_N.png.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.browser import CHROMIUM_ARGS, IDLE, IMAGE_LOADED, TIMEOUT_MS, Server, find_chromium

WIDTH, HEIGHT = 1400, 1500  # px: tall enough for a whole step, as the main area scrolls inside the page


def screenshots(url: str, steps: list[int], out: Path, explorer: Path | None = None) -> list[Path]:
    """Each step's page, once its run has finished and its view has loaded; then, with `explorer`, the explorer's
    default view as a 1500 x 1100 window shows it (the README's first picture)."""
    from playwright.sync_api import sync_playwright

    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        page.set_default_timeout(TIMEOUT_MS)
        for number in steps:
            page.goto(f"{url}/learn?step={number}")
            page.get_by_role("heading", name=f"{number}. ").first.wait_for()
            page.wait_for_function(IMAGE_LOADED)
            page.wait_for_function(IDLE)
            path = out / f"learn_step_{number}.png"
            page.locator('[data-testid="stMainBlockContainer"]').screenshot(path=str(path))
            saved.append(path)
        if explorer is not None:
            page.set_viewport_size({"width": 1500, "height": 1100})
            page.goto(url)
            page.wait_for_function(IMAGE_LOADED)
            page.wait_for_function(IDLE)
            page.screenshot(path=str(explorer))
            saved.append(explorer)
        browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the PNGs (default: docs)")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 3, 5], help="steps to shoot (default: 1 3 5)")
    parser.add_argument("--explorer", type=Path, help="also save the explorer's default view here")
    args = parser.parse_args()
    if find_chromium() is None:
        raise SystemExit("no chromium found: apt-get install chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "streamlit.log")
        try:
            server.wait_ready()
            for path in screenshots(server.url, args.steps, args.out, args.explorer):
                print(path)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
