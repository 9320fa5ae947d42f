"""Long clips through the model: dense, RLT and VTM at 128 and 256 frames, global attention or windows.

    PYTHONPATH=. python benchmarks/long_clips.py [--frames 128 256] [--window 16] [--png assets/long_clip_timeline.png]

The bundled long sample (still, moving, still, panning, still), sampled every 4th frame from its start, on the
demo model at its 112 px. Each setting runs in a fresh process, so that its peak resident memory is its own:
the clip and the model are loaded, then the resident memory is read, then the run (one traced pass, then 3
timed ones; saliency off); printed are the tokens per layer on average, GFLOPs, the median forward time and
how much the peak resident memory rose during the run. With --png, the timeline of the last VTM run (tokens
per time slot and layer, the windows dashed) is drawn by Debian's chromium from plotly's HTML.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

RUNS = [  # (label, reducer, parameters, windowed)
    ("dense, global", "none", {}, False),
    ("dense, windows", "none", {}, True),
    ("RLT, global", "rlt", {}, False),
    ("RLT, windows", "rlt", {}, True),
    ("VTM, global", "vtm", {}, False),
    ("VTM, windows", "vtm", {}, True),
]


def peak_mb() -> float:
    """This process's own peak resident memory (VmHWM; ru_maxrss would count the parent's size at the fork)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024


def one_run(frames: int, reducer: str, params: dict, window: int | None, figure: str | None) -> dict:
    """Runs in its own process (see main): one setting, measured."""
    import numpy as np

    from explorer.analyze import DEMO, ModelSpec, analyze, build_model
    from explorer.models.reducers import make_reducer
    from explorer.video import load_clip, sample_path

    clip = load_clip(sample_path("Long: still, moving, panning (generated, 64 s)"), frames=frames, stride=4, size=112)
    model, report = build_model(ModelSpec(size=DEMO), frames, 112)
    before = peak_mb()
    trace = analyze(
        clip,
        model,
        make_reducer(reducer, **params),
        device="cpu",
        labels=report.labels if report else None,
        timing_runs=3,
        saliency=None,
        window=window,
    )
    peak = peak_mb()
    if figure:
        from explorer import charts

        charts.token_timeline(trace).write_html(figure, include_plotlyjs=True)
    return {
        "tokens": float(np.mean(trace.tokens_per_layer)),
        "input_tokens": trace.input_tokens,
        "gflops": float(trace.flops.sum() / 1e9),
        "ms": trace.seconds["forward"] * 1e3,
        "rise_mb": peak - before,
        "peak_mb": peak,
        "top1": trace.top_k(1)[0]["label"],
    }


def screenshot(html: Path, png: Path) -> None:
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM_ARGS, find_chromium

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 400})
        page.goto(html.as_uri())
        chart = page.locator(".plotly-graph-div")
        chart.locator(".heatmaplayer").first.wait_for(state="attached")
        page.wait_for_timeout(500)
        chart.screenshot(path=str(png))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--window", type=int, default=16, help="frames per attention window (default 16)")
    parser.add_argument("--png", type=Path, help="save the timeline of the last VTM run with windows here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one setting, as JSON, in this process
    args = parser.parse_args()
    if args.one:
        setting = json.loads(args.one)
        print(json.dumps(one_run(**setting)))
        return
    figure = Path(tempfile.mkdtemp()) / "timeline.html"
    print(f"long sample, demo model, 112 px, stride 4; windows of {args.window} frames; CPU, fp32, median of 3")
    print("| frames | run | tokens/layer (of input) | GFLOPs | forward ms | peak memory rise MB | top-1 |")
    print("|---|---|---|---|---|---|---|")
    for frames in args.frames:
        for label, reducer, params, windowed in RUNS:
            setting = {
                "frames": frames,
                "reducer": reducer,
                "params": params,
                "window": args.window if windowed else None,
                "figure": str(figure) if (reducer == "vtm" and windowed) else None,
            }
            done = subprocess.run(
                [sys.executable, __file__, "--one", json.dumps(setting)], capture_output=True, text=True, check=True
            )
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"| {frames} | {label} | {r['tokens']:.0f} ({r['input_tokens']}) | {r['gflops']:.1f} | "
                f"{r['ms']:.0f} | {r['rise_mb']:.0f} | {r['top1']} |",
                flush=True,
            )
    if args.png:
        screenshot(figure, args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
