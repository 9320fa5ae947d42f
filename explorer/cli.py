"""Command line: python -m explorer (or token-explorer, installed) analyze | bench | train | accuracy | scan |
download | reducers | samples | app."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from explorer.models.reducers import REDUCERS, ParameterError, make_reducer, parse_settings
from explorer.models.reducers.base import check_number
from explorer.models.video_vit import SIZES
from explorer.models.weights import download_videomae

from . import accuracy
from .accuracy import DEFAULT_BUDGETS, DEFAULT_REDUCERS
from .analyze import DEMO, ModelSpec, analyze, build_model, check_work, fit_input, resolve_device
from .bench import bench, format_table, write_json
from .deployment import SHARED_ENV
from .errors import USER_ERRORS
from .outputs import writable_file, writable_folder
from .runtime import PRECISIONS
from .saliency import FUSIONS, SaliencySpec
from .serving import SLOTS_ENV, slots_setting
from .train import GENERATORS, TrainSettings
from .video import SAMPLES, check_params, load_clip, sample_path

MAX_TRAIN_CLIPS = 10_000  # the training pool stays in memory: 0.6 MB a clip at the demo size
MAX_STEPS = 1_000_000  # training steps: the demo model takes 1,200; a million is days on a CPU
MAX_EVAL_CLIPS = 100_000  # held-out clips generated and run one by one
MAX_TRAIN_BATCH = 1024  # clips a training step holds, with their activations and gradients
MAX_LR = 10.0  # AdamW's peak rate: past this every run diverges
MAX_THREADS = 256  # PyTorch's CPU threads (as bench): each takes memory at start, and OpenMP aborts past what it can
SERVER = Path(__file__).resolve().parent / "ui" / "server.py"  # the app's server (an st.App), inside the package
# .streamlit/config.toml's settings as flags: an installed package is not run from the repository's root, where
# Streamlit finds that file (tests/test_install.py checks that the two agree).
STREAMLIT_OPTIONS = {
    "browser.gatherUsageStats": "false",
    "server.maxUploadSize": "200",
    "client.toolbarMode": "minimal",
    "global.disableWidgetStateDuplicationWarning": "true",
}

PRECISION_HELP = "autocast precision: auto (bf16 on a GPU, fp32 on the CPU), fp32, bf16 or fp16"


def resolve_video(video: str) -> Path:
    """A path, or sample:NAME for a bundled sample (NAME is its file name without .mp4)."""
    if video.startswith("sample:"):
        stem = video[len("sample:") :]
        for name, file in SAMPLES.items():
            if Path(file).stem == stem:
                return sample_path(name)
        stems = ", ".join(Path(f).stem for f in SAMPLES.values())
        raise ParameterError(f"no bundled sample {stem!r} (samples: {stems})")
    return Path(video)


def run_analyze(args: argparse.Namespace) -> None:
    writable_folder(args.out, "the trace")
    reducer = make_reducer(args.reducer, **parse_settings(args.set))
    source = resolve_video(args.video)
    spec = ModelSpec(size=args.model, weights=args.weights)
    model, report = build_model(spec)  # first, so that its own input size is the default
    frames = model.cfg.num_frames if args.frames is None else args.frames
    size = model.cfg.img_size if args.size is None else args.size
    check_params(frames, args.stride, size, args.start)
    fit_input(model, frames, size)
    check_work(reducer, model)  # before decoding: analyze checks it again, for every caller
    clip = load_clip(source, frames=frames, stride=args.stride, start=args.start, size=size)
    fit_input(model, clip.num_frames, size)
    if report:
        print(report.summary(), file=sys.stderr)
    saliency = None if args.saliency == "off" else SaliencySpec(args.saliency, args.discard)
    trace = analyze(
        clip,
        model,
        reducer,
        device=args.device,
        precision=args.precision,
        labels=report.labels if report else None,
        model_name=spec.describe(),
        timing_runs=args.runs,
        saliency=saliency,
        window=args.window,
    )
    out = trace.save(args.out)
    kept, total = trace.tokens_per_layer[0], trace.input_tokens
    saved = 1 - trace.flops.sum() / trace.dense_flops.sum()
    if "budget" in trace.meta:
        fit = trace.meta["budget"]
        print(
            f"budget {fit['fraction']:g}: {fit['knob']}={fit['value']:g} gives {fit['average_tokens']:.0f} tokens "
            f"per layer on average"
        )
    print(f"tokens per layer: {' '.join(str(n) for n in trace.tokens_per_layer)}")
    print(
        f"{clip.source}: {reducer} kept {kept} of {total} tokens ({kept / total:.0%}), "
        f"{trace.flops.sum() / 1e9:.1f} GFLOPs ({saved:.0%} saved), forward {trace.seconds['forward'] * 1e3:.0f} ms "
        f"on {trace.meta['device']} at {trace.meta['precision']}"
    )
    for row in trace.top_k(5):
        print(f"  {row['probability']:6.1%}  {row['label']}")
    print(f"wrote {out / 'summary.json'} and {out / 'trace.npz'}")


def run_bench(args: argparse.Namespace) -> None:
    for name in args.reducers:
        make_reducer(name)  # refuse an unknown name before any work
    if args.generated and args.video:
        raise ParameterError("give a VIDEO or --generated, not both")
    video = None if args.generated else resolve_video(args.video or "sample:still_and_moving")
    if args.json:
        writable_file(args.json, "the numbers")
    result = bench(
        video,
        args.models,
        args.reducers,
        batch=args.batch,
        frames=args.frames,
        stride=args.stride,
        start=args.start,
        size=args.size,
        device=args.device,
        runs=args.runs,
        budget=args.budget,
        threads=args.threads,
        precision=args.precision,
    )
    print(format_table(result))
    if args.json:
        write_json(result, args.json)


def run_train(args: argparse.Namespace) -> None:
    from .train import save_demo, train

    settings = TrainSettings(
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        saliency_steps=args.saliency_steps,
        eval_clips=args.eval_clips,
        train_clips=args.clips,
        seed=args.seed,
        threads=args.threads,
        precision=args.precision,
        init=args.init,
        warmup=args.warmup,
        generator=args.generator,
    )
    too_few = min(settings.steps, settings.batch, settings.eval_clips, settings.train_clips) < 1
    if too_few or settings.saliency_steps < 0:
        raise ParameterError(
            "--steps, --batch, --clips and --eval-clips must be at least 1, --saliency-steps at least 0"
        )
    if settings.train_clips > MAX_TRAIN_CLIPS:
        raise ParameterError(f"--clips must be at most {MAX_TRAIN_CLIPS}: the pool stays in memory, 0.6 MB a clip")
    if max(settings.steps, settings.saliency_steps) > MAX_STEPS or settings.eval_clips > MAX_EVAL_CLIPS:
        raise ParameterError(
            f"--steps and --saliency-steps must be at most {MAX_STEPS:,} (the demo model takes 1,200), "
            f"--eval-clips at most {MAX_EVAL_CLIPS:,}"
        )
    check_number("--lr", settings.lr, 1e-8, MAX_LR)
    check_number("--warmup", settings.warmup, 0, 1)
    check_number("--batch", settings.batch, 1, MAX_TRAIN_BATCH, whole=True)
    if settings.threads is not None:
        check_number("--threads", settings.threads, 1, MAX_THREADS, whole=True)
    writable_file(args.out, "the weights")
    model, saliency, result = train(settings, device=str(resolve_device(args.device)))
    path = save_demo(model, saliency, result, args.out)
    print(
        f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): held-out accuracy {result.accuracy:.1%}, "
        f"trained in {result.seconds / 60:.1f} min on {result.device}"
    )


def run_accuracy(args: argparse.Namespace) -> None:
    for spec in args.reducers:
        accuracy.parse_spec(spec)  # refuse a bad reducer before any work
    if not 1 <= args.clips <= MAX_EVAL_CLIPS:
        raise ParameterError(f"--clips must be between 1 and {MAX_EVAL_CLIPS:,}, got {args.clips}")
    accuracy.check_name(args.name)
    writable_folder(args.out, "the accuracy table")
    model, report = build_model(ModelSpec(size=DEMO, weights=args.weights))
    result = accuracy.evaluate(
        model,
        report.labels if report else None,
        clips=args.clips,
        reducers=tuple(args.reducers),
        budgets=tuple(args.budgets),
        device=str(resolve_device(args.device)),
        precision=args.precision,
        progress=lambda text: print(text, file=sys.stderr, flush=True),
    )
    result["model"]["source"] = report.source if report else None
    paths = accuracy.write(result, args.out, args.name, html=args.html)
    print(accuracy.format_table(result))
    print(f"wrote {', '.join(str(p) for p in paths)}")


def run_scan(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from .scan import ScanSettings, scan

    settings = ScanSettings(
        model=ModelSpec(size=args.model, weights=args.weights),
        reducers=tuple(args.reducers),
        budgets=tuple(args.budgets) if args.budgets else None,
        frames=args.frames,
        stride=args.stride,
        size=args.size,
        hop=args.hop,
        windows=args.windows,
        device=args.device,
        precision=args.precision,
        engine=args.engine,
        address=args.address,
        workers=args.workers,
    )
    bars: list[tqdm] = []  # opened at the first progress report: a scan refused before it shows no bar

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="windows", unit="window", disable=args.quiet, dynamic_ncols=True))
        bars[0].total = total
        bars[0].update(done - bars[0].n)

    try:
        result = scan([resolve_video(path) for path in args.paths], args.out, settings, progress)
    finally:
        for bar in bars:
            bar.close()
    print((result.folder / "summary.md").read_text())
    print(f"wrote {result.folder}: windows.parquet, errors.parquet, summary.json, summary.md, report.html")


def run_download(args: argparse.Namespace) -> None:
    writable_folder(args.dest, "the weights")
    folder = download_videomae(args.repo, args.dest)
    print(f"downloaded {args.repo} to {folder}; use it with --weights {folder}")


def run_reducers(args: argparse.Namespace) -> None:
    for name, cls in REDUCERS.items():
        print(f"{name}: {cls.title}")
        for p in cls.params:
            bounds = (
                f" [{p.kind(p.low)}, {p.kind(p.high)}]"
                if p.low is not None
                else f" [{' | '.join(p.choices)}]"
                if p.choices
                else ""
            )
            default = p.default.replace("\n", "; ") if isinstance(p.default, str) else p.default
            print(f"    {p.name}={default}{bounds}  {p.help}")


def run_samples(args: argparse.Namespace) -> None:
    for name, file in SAMPLES.items():
        print(f"sample:{Path(file).stem}  {name}  ({sample_path(name)})")


def streamlit_command(port: int | None = None, address: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    """The `streamlit run` command line that serves the app (ui/server.py: its pages, loaded before the first session)
    with the repository's settings."""
    options = dict(STREAMLIT_OPTIONS)
    if port is not None:
        options["server.port"] = str(port)
    if address is not None:
        options["server.address"] = address
    flags = [part for key, value in options.items() for part in (f"--{key}", value)]
    return [sys.executable, "-m", "streamlit", "run", str(SERVER), *flags, *extra]


def run_app(args: argparse.Namespace) -> None:
    if args.port is not None:
        check_number("--port", args.port, 1, 65_535, whole=True)
    extra = args.streamlit[1:] if args.streamlit[:1] == ["--"] else args.streamlit
    command = streamlit_command(args.port, args.address, extra)
    env = {SHARED_ENV: "1"} if args.shared else {}
    if args.runs is not None:
        env[SLOTS_ENV] = str(slots_setting(args.runs))  # a bad number is named here, before the server starts
    if args.dry_run:
        print("".join(f"{key}={value} " for key, value in env.items()) + shlex.join(command))
        return
    os.environ.update(env)  # inherited by Streamlit, which replaces this process
    sys.stdout.flush()
    os.execv(command[0], command)  # Streamlit takes over this process (and its Ctrl-C)


def build_parser(prog: str = "python -m explorer") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="See what token reduction does inside video transformers.")
    commands = parser.add_subparsers(dest="command", required=True)
    a = commands.add_parser("analyze", help="run one clip through a model and reducer; write the trace")
    a.add_argument("video", help="a video file, or sample:NAME for a bundled sample (see `samples`)")
    a.add_argument(
        "--model",
        default=DEMO,
        choices=[DEMO, *SIZES],
        help="when no weights are given: the trained demo model, or a size with random weights",
    )
    a.add_argument("--weights", help="checkpoint file or Hugging Face folder (VideoMAE or explorer safetensors)")
    a.add_argument("--reducer", default="rlt", help="reducer name (see `reducers`)")
    a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="reducer parameter, repeatable")
    a.add_argument("--frames", type=int, help="frames fed to the model (default: what the model was made for, 16)")
    a.add_argument("--stride", type=int, default=4, help="take every S-th source frame")
    a.add_argument("--start", type=float, default=0.0, help="start time in seconds")
    a.add_argument(
        "--size",
        type=int,
        help="shorter side resized to this, then centre-cropped "
        "(default: the model's input size, 112 for the demo model, else 224)",
    )
    a.add_argument("--device", default="auto", help="auto, cpu or cuda")
    a.add_argument("--precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    a.add_argument("--runs", type=int, default=5, help="timed forward passes after a warm-up (median reported)")
    a.add_argument(
        "--window",
        type=int,
        help="attention within windows of this many consecutive frames, as VTM's (default: the whole clip)",
    )
    a.add_argument(
        "--saliency",
        default="mean",
        choices=[*FUSIONS, "off"],
        help="attention rollout head fusion, or off to skip recording attention",
    )
    a.add_argument("--discard", type=float, default=0.0, help="fraction of the weakest attention zeroed in rollout")
    a.add_argument("--out", required=True, help="directory for summary.json and trace.npz")
    a.set_defaults(run=run_analyze)
    b = commands.add_parser(
        "bench", help="measure batches (clips/s, FLOPs, peak memory, speedup) per reducer, decode and redraw times"
    )
    b.add_argument(
        "video",
        nargs="?",
        help="a video file or sample:NAME, repeated to fill the batch (default: sample:still_and_moving)",
    )
    b.add_argument(
        "--generated",
        action="store_true",
        help="a batch of different generated still-camera clips (a square moving over a still background) "
        "instead of a video",
    )
    b.add_argument("--batch", type=int, help="clips per batch (default: 32 on a GPU, 8 on the CPU)")
    b.add_argument("--start", type=float, default=0.0, help="start time in seconds")
    b.add_argument(
        "--models",
        nargs="*",
        default=["small", "base"],
        choices=list(SIZES),
        help="model sizes to run (none: decoding only)",
    )
    b.add_argument("--reducers", nargs="+", default=[name for name in REDUCERS if name != "none"])
    b.add_argument(
        "--budget",
        type=float,
        default=0.0,
        help="run every reducer at this token budget (average tokens per layer / dense); 0: defaults",
    )
    b.add_argument("--frames", type=int, default=16)
    b.add_argument("--stride", type=int, default=4)
    b.add_argument("--size", type=int, default=224)
    b.add_argument("--device", default="auto")
    b.add_argument("--precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    b.add_argument("--runs", type=int, default=3, help="timed batches (median reported)")
    b.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice)")
    b.add_argument("--json", help="also write the numbers to this JSON file")
    b.set_defaults(run=run_bench)
    t = commands.add_parser("train", help="train the demo model on generated motion clips (explorer/synthetic.py)")
    t.add_argument("--out", default="assets/demo_model.safetensors", help="where to write the weights")
    t.add_argument("--steps", type=int, default=TrainSettings.steps, help="training steps of the ViT")
    t.add_argument("--batch", type=int, default=TrainSettings.batch)
    t.add_argument("--lr", type=float, default=TrainSettings.lr, help="peak learning rate (AdamW, cosine)")
    t.add_argument(
        "--clips",
        type=int,
        default=TrainSettings.train_clips,
        help="generated clips in the training pool (0.6 MB each), drawn under random symmetries",
    )
    t.add_argument(
        "--saliency-steps",
        type=int,
        default=TrainSettings.saliency_steps,
        help="steps training VTM's learnable saliency through its auxiliary path (ViT frozen)",
    )
    t.add_argument("--eval-clips", type=int, default=TrainSettings.eval_clips, help="held-out clips to measure")
    t.add_argument("--seed", type=int, default=0, help="the run's seed: its pool's clips and its batches")
    t.add_argument("--init", help="go on from these weights (a model of the demo's config) instead of from scratch")
    t.add_argument(
        "--generator",
        choices=list(GENERATORS),
        default=TrainSettings.generator,
        help="the pool's clips: broad (many textures, shapes, lights, codecs) or first (one shape, plain textures)",
    )
    t.add_argument(
        "--warmup", type=float, default=TrainSettings.warmup, help="share of the steps spent warming up the rate"
    )
    t.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice)")
    t.add_argument("--device", default="auto", help="auto, cpu or cuda")
    t.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="autocast precision of training: fp32 (as the shipped model), bf16 or fp16",
    )
    t.set_defaults(run=run_train)
    c = commands.add_parser("accuracy", help="accuracy and time against token budget, every reducer, held-out clips")
    c.add_argument("--weights", help="a model trained on the generated clips (default: the shipped demo model)")
    c.add_argument("--clips", type=int, default=500, help="held-out generated clips (a fixed set)")
    c.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        default=list(DEFAULT_BUDGETS),
        help="token budgets: average tokens per layer as a fraction of dense",
    )
    c.add_argument(
        "--reducers",
        nargs="+",
        default=list(DEFAULT_REDUCERS),
        help="reducers, optionally with settings: vtm:targets=learnable,gamma=4",
    )
    c.add_argument("--device", default="auto", help="auto, cpu or cuda")
    c.add_argument("--precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    c.add_argument("--out", default="results", help="folder for NAME.json, NAME.md and NAME.html")
    c.add_argument("--name", default="accuracy", help="file name stem")
    c.add_argument(
        "--html",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also write the chart as HTML (about 5 MB: plotly.js is inside, so it opens offline)",
    )
    c.set_defaults(run=run_accuracy)
    n = commands.add_parser(
        "scan", help="every window of long videos or datasets through dense and each reducer; tables and a report"
    )
    n.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="a video, a folder of videos, a folder of class folders (the folder name is the label), "
        "a CSV of path,label rows, or sample:NAME",
    )
    n.add_argument("--out", required=True, help="folder for the tables and report; a rerun goes on where it stopped")
    n.add_argument("--model", default=DEMO, choices=[DEMO, *SIZES], help="as in analyze")
    n.add_argument("--weights", help="as in analyze: a checkpoint file or Hugging Face folder")
    n.add_argument(
        "--reducers",
        nargs="+",
        default=list(DEFAULT_REDUCERS),
        help="reducers, optionally with settings (vtm:targets=learnable,gamma=4); dense always runs",
    )
    n.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        help="token budgets (average tokens per layer / dense); without: each reducer at its own settings",
    )
    n.add_argument("--frames", type=int, help="frames per window (default: what the model was made for)")
    n.add_argument("--stride", type=int, default=4, help="take every S-th source frame")
    n.add_argument("--size", type=int, help="as in analyze (default: the model's input size)")
    n.add_argument("--hop", type=float, help="seconds from one window's start to the next (default: back to back)")
    n.add_argument("--windows", type=int, help="at most N windows per video (default: all)")
    n.add_argument("--engine", default="local", choices=["local", "ray"], help="local (default) or ray")
    n.add_argument("--address", help="a Ray cluster's address (default: start Ray on this machine)")
    n.add_argument("--workers", type=int, default=1, help="model replicas (Ray actors; a GPU each where there are)")
    n.add_argument("--device", default="auto", help="auto, cpu or cuda")
    n.add_argument("--precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    n.add_argument("--quiet", action="store_true", help="no progress bar")
    n.set_defaults(run=run_scan)
    d = commands.add_parser("download", help="fetch VideoMAE weights from the Hugging Face hub (needs internet)")
    d.add_argument("repo", help="e.g. MCG-NJU/videomae-base-finetuned-kinetics")
    d.add_argument("--dest", default="weights", help="folder to put config.json and model.safetensors in")
    d.set_defaults(run=run_download)
    commands.add_parser("reducers", help="list reducers and their parameters").set_defaults(run=run_reducers)
    commands.add_parser("samples", help="list bundled sample videos").set_defaults(run=run_samples)
    s = commands.add_parser("app", help="serve the app with Streamlit (http://localhost:8501 unless --port is given)")
    s.add_argument("--port", type=int, help="port to serve on (Streamlit's default: 8501)")
    s.add_argument("--address", help="address to listen on (Streamlit's default: every interface)")
    s.add_argument("--dry-run", action="store_true", help="print the streamlit command instead of running it")
    s.add_argument(
        "--shared",
        action="store_true",
        help=f"serve others: no paths on this machine from the page or a link ({SHARED_ENV}=1; see the README)",
    )
    s.add_argument(
        "--runs",
        help=f"model runs at a time, shared by every session ({SLOTS_ENV}; default: 1 per GPU, else 1 per 8 CPU cores, "
        "up to 4); the others wait in line and see their place",
    )
    s.add_argument(
        "streamlit",
        nargs=argparse.REMAINDER,
        metavar="-- STREAMLIT_OPTION ...",
        help="further options for `streamlit run`, after --, e.g. -- --server.headless true",
    )
    s.set_defaults(run=run_app)
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m explorer") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        args.run(args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def console() -> int:
    """The installed console script, token-explorer."""
    return main(prog="token-explorer")
