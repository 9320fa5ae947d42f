"""The GPU check a session runs in one go when a GPU is at hand (`make gpu-check`), printing one report.

    PYTHONPATH=. python benchmarks/gpu_check.py --out gpu_check   # sized for 8 min on an H100/H200; never run on one

1. the tests that have a CUDA variant (packed kernels, precision, host syncs);
2. every reducer through analyze at bf16 and fp16 on the bundled sample (ViT-B, 16 x 224),
   with the host syncs torch.cuda.set_sync_debug_mode reports inside the timed forwards;
3. bench: ViT-B, batch 32, 16 x 224, every reducer (measured / FLOP-ideal speedup);
4. accuracy against budget on the demo model's held-out clips;
5. scan throughput on the bundled long sample (ViT-B, dense, RLT and ToMe): the local engine, and Ray with one
   GPU actor where Ray is installed.

Without a GPU, `--device cpu --quick` runs the same steps small, to check the script itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

from benchmarks.scan_throughput import throughput
from explorer.accuracy import evaluate
from explorer.accuracy import format_table as accuracy_table
from explorer.analyze import ModelSpec, analyze, build_model
from explorer.bench import bench
from explorer.bench import format_table as bench_table
from explorer.models.reducers import REDUCERS, make_reducer
from explorer.scan import ScanSettings
from explorer.video import SAMPLES, load_clip, sample_path

ROOT = Path(__file__).resolve().parent.parent
CUDA_TESTS = ["tests/test_packed.py", "tests/test_precision.py", "tests/test_host_syncs.py", "tests/test_engine.py"]


def section(title: str) -> None:
    print(f"\n## {title}", flush=True)


def run_tests() -> None:
    section("tests with a CUDA variant")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CUDA_TESTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    print("\n".join(result.stdout.strip().splitlines()[-3:]))


def every_reducer(device: str, size: str, frames: int, img: int) -> None:
    section(f"every reducer through analyze ({size}, {frames} x {img}, {device})")
    clip = load_clip(sample_path(next(n for n in SAMPLES if "Bunny" in n)), frames=frames, stride=4, size=img)
    model, _ = build_model(ModelSpec(size=size), frames, img)
    precisions = ("bf16", "fp16") if device == "cuda" else ("bf16",)
    print(f"{'reducer':<8}{'precision':<10}{'tokens':>7}{'GFLOPs':>8}{'forward ms':>11}{'syncs':>7}  top-1 agrees")
    for name in REDUCERS:
        reference = analyze(clip, model, make_reducer(name), device=device, precision="fp32", saliency=None)
        for precision in precisions:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if device == "cuda":
                    torch.cuda.set_sync_debug_mode("warn")
                try:
                    trace = analyze(
                        clip,
                        model,
                        make_reducer(name),
                        device=device,
                        precision=precision,
                        timing_runs=5,
                        saliency=None,
                    )
                finally:
                    if device == "cuda":
                        torch.cuda.set_sync_debug_mode("default")
            syncs = sum("synchroniz" in str(w.message) for w in caught)
            agrees = trace.logits.argmax() == reference.logits.argmax()
            print(
                f"{name:<8}{precision:<10}{trace.tokens_per_layer[0]:>7}{trace.flops.sum() / 1e9:>8.1f}"
                f"{trace.seconds['forward'] * 1e3:>11.1f}{syncs:>7}  {'yes' if agrees else 'no'}",
                flush=True,
            )


def scan_engines(device: str, size: str, windows: int, out: Path) -> None:
    video = sample_path(next(name for name in SAMPLES if name.startswith("Long")))
    section(f"scan: ViT-{size}, {windows} windows of the long sample, dense + rlt + tome")
    settings = ScanSettings(model=ModelSpec(size=size), reducers=("rlt", "tome"), windows=windows, device=device)
    has_ray = importlib.util.find_spec("ray") is not None
    figures = throughput([str(video)], settings, [1] if has_ray else [])  # one Ray actor: a GPU of its own
    if not has_ray:
        print("(Ray is not installed: pip install -r requirements-ray.txt for its row)")
    (out / "scan.json").write_text(json.dumps(figures, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the script, measures nothing")
    parser.add_argument("--out", default="gpu_check", help="folder for the JSON of each step")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    size, frames, img, batch, clips = ("tiny", 4, 64, 2, 4) if args.quick else ("base", 16, 224, 32, 200)
    began = time.perf_counter()
    print(
        f"# GPU check: torch {torch.__version__}, "
        + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")
    )
    if not args.quick:
        run_tests()
    every_reducer(args.device, size, frames, img)
    section(f"bench: ViT-{size}, batch {batch}, {frames} x {img}")
    result = bench(
        None,
        [size],
        [n for n in REDUCERS if n != "none"],
        batch=batch,
        frames=frames,
        size=img,
        device=args.device,
        runs=3 if not args.quick else 1,
    )
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    print(bench_table(result), flush=True)
    section(f"accuracy against budget: the demo model, {clips} held-out clips")
    model, report = build_model(ModelSpec())
    table = evaluate(model, report.labels, clips=clips, device=args.device)
    (out / "accuracy.json").write_text(json.dumps(table, indent=2))
    print(accuracy_table(table))
    scan_engines(args.device, size, 4 if args.quick else 24, out)
    print(f"\n(gpu check took {time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
