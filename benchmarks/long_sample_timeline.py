"""RLT's kept tokens along the bundled long sample, per stretch, and the README's figure of it.

    PYTHONPATH=. python benchmarks/long_sample_timeline.py [--png assets/scan_timeline.png]

Scans the long sample (windows back to back, the demo model, dense, RLT and ToMe), prints each window's kept
fraction with the stretch it lies in (from assets/make_samples.py's LONG_STRETCHES), and the range per
stretch. With --png, opens the scan's report.html in Debian's chromium (headless, nothing fetched) and saves
a screenshot of its timeline chart.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from explorer.scan import ScanSettings, charts, scan
from explorer.video import SAMPLES, sample_path
from tests.browser import CHROMIUM_ARGS, find_chromium
from tests.test_video import load_make_samples


def stretch_of(start: float, end: float, stretches: tuple[tuple[str, int, int], ...]) -> str:
    inside = [kind for kind, a, b in stretches if a <= start and end <= b]
    return inside[0] if inside else "across"


def screenshot(report: Path, png: Path) -> None:
    """The timeline chart of the scan's report.html, as drawn by chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(report.as_uri())
        chart = page.locator(".plotly-graph-div", has_text="Along")
        chart.locator(".scatterlayer .trace").first.wait_for(state="attached")
        page.wait_for_timeout(500)  # plotly draws the bars and the legend after the first traces
        chart.screenshot(path=str(png))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", type=Path, help="also save the timeline chart here")
    args = parser.parse_args()
    video = sample_path(next(name for name in SAMPLES if name.startswith("Long")))
    tmp = tempfile.TemporaryDirectory()
    result = scan([video], Path(tmp.name) / "scan", ScanSettings(reducers=("rlt", "tome")))
    windows = charts.labelled(result.windows)
    rlt = windows[windows["reducer"] == "rlt"].sort_values("start_s")
    print(f"{'window':>6} {'start-end s':>13} {'stretch':>8} {'RLT kept':>9}  dense top-1")
    dense = windows[windows["reducer"] == charts.DENSE].set_index("window")["top1"]
    by_stretch: dict[str, list[float]] = {}
    stretches = load_make_samples().LONG_STRETCHES
    for row in rlt.itertuples():
        kind = stretch_of(row.start_s, row.end_s, stretches)
        by_stretch.setdefault(kind, []).append(row.kept_fraction)
        span = f"{row.start_s:.2f}-{row.end_s:.2f}"
        print(f"{row.window:>6} {span:>13} {kind:>8} {row.kept_fraction:>9.1%}  {dense[row.window]}")
    for kind, fractions in by_stretch.items():
        print(f"{kind:>8}: {len(fractions)} windows, RLT keeps {min(fractions):.1%} to {max(fractions):.1%}")
    if args.png:
        screenshot(result.folder / "report.html", args.png)
        print(f"wrote {args.png}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
