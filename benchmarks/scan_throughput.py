"""Scan throughput, and memory over a long video.

    PYTHONPATH=. python benchmarks/scan_throughput.py                     # the long sample, a window a second
    PYTHONPATH=. python benchmarks/scan_throughput.py PATH ... --hop 0    # your videos, windows back to back
    PYTHONPATH=. python benchmarks/scan_throughput.py --long-minutes 120  # memory over a generated 2-hour video

Throughput: the same inputs scanned by the local engine, then by Ray with each --workers count (a local Ray
with every core, started once and timed apart), each into a fresh folder; windows per second over the engine's
part of the scan (model actors' start included for Ray), and the ratio to local. The rows of every run are
checked equal to local's (times aside).

Long video: a generated video of that many minutes (a square moving, then resting, over texture; 128 px, so
that it is quick to make) scanned by the local engine with dense and RLT; the process's resident memory at
points along the scan and its peak.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import av
import numpy as np

from benchmarks.saliency_memory import rss_mb
from explorer.analyze import ModelSpec
from explorer.scan import ScanSettings, scan
from explorer.video import SAMPLES, sample_path


def throughput(paths: list[str], settings: ScanSettings, workers: list[int]) -> dict[str, float]:
    """Print, and return, windows per second of the local engine and of Ray with each count of workers."""
    with tempfile.TemporaryDirectory() as tmp:
        local = scan(paths, Path(tmp) / "local", settings)
        rate, run = local.summary["windows_per_second"], local.summary["run"]
        figures = {"local": rate}
        runs = ", ".join(settings.reducers)
        model = local.summary["model"]["name"]
        print(
            f"{local.summary['windows']} windows, each run dense and {runs}; {model}; {run['device']}, "
            f"{run['precision']}; {os.cpu_count()} cores"
        )
        print(f"{'engine':<16}{'windows/s':>10}{'ratio':>8}{'seconds':>9}")
        print(f"{'local':<16}{rate:>10.2f}{1.0:>8.2f}{local.summary['seconds']:>9.1f}", flush=True)
        if not workers:
            return figures
        import ray

        begin = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        print(f"(Ray started in {time.perf_counter() - begin:.1f} s, not counted)")
        for count in workers:
            result = scan(paths, Path(tmp) / f"ray{count}", replace(settings, engine="ray", workers=count))
            same = result.windows.drop(columns="ms").equals(local.windows.drop(columns="ms"))
            name = f"ray, {count} worker" + "s" * (count > 1)
            figures[name] = rate_ray = result.summary["windows_per_second"]
            print(
                f"{name:<16}{rate_ray:>10.2f}{rate_ray / rate:>8.2f}"
                f"{result.summary['seconds']:>9.1f}  rows equal to local: {same}",
                flush=True,
            )
        ray.shutdown()
    return figures


def write_long_video(path: Path, minutes: float, fps: int = 25, size: int = 128) -> None:
    """Texture with a square that moves for 10 s, then rests for 10 s, over and over."""
    rng = np.random.default_rng(0)
    texture = rng.integers(40, 216, (size // 8, size // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "28"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(int(minutes * 60 * fps)):
            phase = (i / fps) % 20
            x = int(8 + (size - 40) * min(phase, 10) / 10)
            image = texture.copy()
            image[44:68, x : x + 24] = (250, 40, 40)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


def long_memory(minutes: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "long.mp4"
        begin = time.perf_counter()
        write_long_video(video, minutes)
        print(
            f"generated {minutes:g} min ({video.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - begin:.0f} s"
        )
        marks: dict[int, float] = {}
        peak = [rss_mb()]
        done_event = threading.Event()

        def watch() -> None:  # the peak between progress calls too
            while not done_event.wait(0.05):
                peak[0] = max(peak[0], rss_mb())

        def progress(done: int, total: int) -> None:
            for percent in (1, 10, 25, 50, 75, 100):
                if done == max(1, total * percent // 100) and percent not in marks:
                    marks[percent] = rss_mb()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        before = rss_mb()
        result = scan([video], Path(tmp) / "out", ScanSettings(reducers=("rlt",)), progress)
        done_event.set()
        print(
            f"{result.summary['windows']} windows in {result.summary['seconds']:.0f} s "
            f"({result.summary['windows_per_second']:.1f} windows/s); resident memory before the scan {before:.0f} MB"
        )
        print("  ".join(f"{p}%: {mb:.0f} MB" for p, mb in sorted(marks.items())) + f"  peak: {peak[0]:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="videos, folders or CSVs (default: the bundled long sample)")
    parser.add_argument("--hop", type=float, default=1.0, help="seconds between windows; 0: back to back")
    parser.add_argument("--reducers", nargs="+", default=["rlt", "tome"])
    parser.add_argument("--model", default="demo", help="demo, tiny, small, base or large (random weights but demo)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="Ray worker counts (none: local only)")
    parser.add_argument("--long-minutes", type=float, help="instead: memory over a generated video this long")
    args = parser.parse_args()
    if args.long_minutes:
        long_memory(args.long_minutes)
        return
    long_sample = next(name for name in SAMPLES if name.startswith("Long"))
    paths = args.paths or [str(sample_path(long_sample))]
    settings = ScanSettings(model=ModelSpec(size=args.model), reducers=tuple(args.reducers), hop=args.hop or None)
    throughput(paths, settings, args.workers)


if __name__ == "__main__":
    main()
