"""Accuracy against token budget: every reducer on the held-out generated clips at several budgets.

    python -m explorer accuracy --out results/accuracy

For each reducer and budget (average tokens per layer as a fraction of dense) each clip gets
its own fitted knob (models/reducers/budget.py), then one forward; what is kept per row is
the accuracy, the tokens and FLOPs per clip (computed), and the forward time per clip
(measured, mean). Writes accuracy.json, a text table (accuracy.md) and a plotly chart
(accuracy.html). The app draws the same chart from the JSON; the demo model's is shipped as
assets/accuracy_budget.json (`--out assets --name accuracy_budget --no-html` writes it there).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from explorer.models.reducers import REDUCERS, ParameterError, make_reducer, parse_settings
from explorer.models.video_vit import VideoViT, normalize_video

from .analyze import model_flops
from .forward import reduced_forward
from .runtime import autocast, memory_guard, resolve_device, resolve_precision, synchronize
from .synthetic import FRAMES, LABELS, SIZE, held_out_seeds, motion_clip

SHIPPED = Path(__file__).resolve().parent / "assets" / "accuracy_budget.json"  # the demo model's table
GENERALIZATION = SHIPPED.with_name("demo_generalization.json")  # its accuracy on clips of a held-out generator


def default_specs() -> tuple[str, ...]:
    """Every registered reducer that runs on the model's tubelets and has a budget knob, and the variants each
    declares (vtm:targets=learnable)."""
    return tuple(
        spec
        for name, cls in REDUCERS.items()
        if cls.runs_on_tubelets and cls.budget_knob
        for spec in (name, *(f"{name}:{variant}" for variant in cls.variants))
    )


DEFAULT_REDUCERS = default_specs()
DEFAULT_BUDGETS = (1.0, 0.7, 0.5, 0.3)


@dataclass
class Row:
    reducer: str  # the spec as given: name, or name:key=value,...
    budget: float
    accuracy: float
    agreement: float  # share of clips where the top-1 equals the dense model's
    tokens: float  # mean over clips: tokens entering the first block
    average_tokens: float  # mean over clips: tokens per layer, averaged over the layers
    gflops: float  # mean per clip
    forward_ms: float  # mean per clip, measured
    knob: str  # the knob and its mean fitted value


def parse_spec(spec: str, budgeted: bool = True) -> tuple[str, dict[str, str]]:
    """'vtm:targets=learnable,gamma=4' -> ('vtm', {'targets': 'learnable', 'gamma': '4'}).

    The reducer must run on the model's own tubelets and, when `budgeted`, have a budget knob.
    """
    name, _, rest = spec.partition(":")
    settings = parse_settings(filter(None, rest.split(",")), where=f"reducer {spec!r}")
    if name not in REDUCERS:
        raise ParameterError(f"unknown reducer {name!r} (choose from: {', '.join(REDUCERS)})")
    cls = REDUCERS[name]
    if not cls.runs_on_tubelets or (budgeted and cls.budget_knob is None):
        raise ParameterError(
            f"{name!r} cannot be evaluated here: its tokens need a network trained for them "
            "(the demo model was trained on tubelets), or it has no token budget"
        )
    make_reducer(name, **settings)  # refuse bad settings before any work
    return name, settings


def check_model(model: VideoViT, labels: list[str] | None) -> None:
    cfg = model.cfg
    if list(labels or []) != list(LABELS) or (cfg.num_frames, cfg.img_size) != (FRAMES, SIZE):
        raise ParameterError(
            f"the held-out set is the generated motion clips ({FRAMES} frames of {SIZE} px, "
            f"labels {', '.join(LABELS)}): use a model trained on them (python -m explorer train)"
        )


def evaluate(
    model: VideoViT,
    labels: list[str] | None,
    clips: int = 500,
    reducers: tuple[str, ...] = DEFAULT_REDUCERS,
    budgets: tuple[float, ...] = DEFAULT_BUDGETS,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
    precision: str = "auto",
) -> dict:
    """Dense and every reducer at every budget on `clips` held-out clips; the rows and how they were made.

    The forwards run under autocast at `precision` (auto: bf16 on a GPU, fp32 on the CPU), after one
    untimed warm-up forward, so that the first clip does not pay the device's start-up.
    """
    check_model(model, labels)
    if not budgets or any(not 0 < b <= 1 for b in budgets):
        raise ParameterError(f"budgets must be fractions in (0, 1], got {list(budgets)}")
    specs = [(spec, *parse_spec(spec)) for spec in reducers]
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    with (
        memory_guard(f"{clips} held-out clips", dev, "use the CPU or a smaller model"),
        torch.inference_mode(),
        autocast(dev, precision),
    ):
        result = _evaluate(model.to(dev).eval(), clips, specs, budgets, dev, progress)
    return result | {"precision": precision}


def _evaluate(
    model: VideoViT,
    clips: int,
    specs: list[tuple[str, str, dict[str, str]]],
    budgets: tuple[float, ...],
    dev: torch.device,
    progress: Callable[[str], None] | None,
) -> dict:
    cfg = model.cfg
    model(normalize_video(torch.from_numpy(motion_clip(0)[0])).to(dev)[None])  # warm-up, untimed
    dense_ms, dense_pred, truth, clips_uint8 = [], [], [], []  # uint8 frames: a quarter of the memory of floats
    for seed in held_out_seeds(clips):
        frames, label = motion_clip(seed)
        video = normalize_video(torch.from_numpy(frames)).to(dev)
        synchronize(dev)
        begin = time.perf_counter()
        dense_pred.append(int(model(video[None]).argmax()))  # the host read waits for the device
        dense_ms.append((time.perf_counter() - begin) * 1e3)
        truth.append(label)
        clips_uint8.append(torch.from_numpy(frames))
    truth_arr, dense_arr = np.array(truth), np.array(dense_pred)
    dense_tokens = int(np.prod(cfg.grid))
    dense_gflops = model_flops(cfg, [dense_tokens] * (cfg.depth + 1)).sum() / 1e9
    rows = [
        Row(
            "none",
            1.0,
            float((dense_arr == truth_arr).mean()),
            1.0,
            dense_tokens,
            dense_tokens,
            float(dense_gflops),
            float(np.mean(dense_ms)),
            "-",
        )
    ]
    for index, (spec, name, settings) in enumerate(specs):
        for budget in budgets:
            if progress:
                progress(f"{spec} at budget {budget:g} ({index + 1} of {len(specs)})")
            rows.append(_evaluate_one(model, clips_uint8, truth_arr, dense_arr, spec, name, settings, budget))
    return {
        "model": {"config": cfg.to_dict()},
        "clips": clips,
        "device": dev.type,
        "labels": list(LABELS),
        "budgets": list(budgets),
        "rows": [asdict(r) for r in rows],
    }


def _evaluate_one(
    model: VideoViT,
    clips: list[torch.Tensor],
    truth: np.ndarray,
    dense: np.ndarray,
    spec: str,
    name: str,
    settings: dict[str, str],
    budget: float,
) -> Row:
    device = next(model.parameters()).device
    predictions, first, average, gflops, ms, knobs = [], [], [], [], [], []
    for frames in clips:
        run = reduced_forward(model, normalize_video(frames).to(device), make_reducer(name, **settings, budget=budget))
        predictions.append(int(run.logits.argmax()))
        ms.append(run.ms)
        first.append(run.tokens_per_layer[0])
        average.append(np.mean(run.tokens_per_layer))
        gflops.append(run.gflops)
        knobs.append(run.knob_value)
    predicted = np.array(predictions)
    knob = f"{REDUCERS[name].budget_knob}={np.mean(knobs):.3g}"
    return Row(
        spec,
        budget,
        float((predicted == truth).mean()),
        float((predicted == dense).mean()),
        float(np.mean(first)),
        float(np.mean(average)),
        float(np.mean(gflops)),
        float(np.mean(ms)),
        knob,
    )


def generalization_note(weights: str | Path | None, path: Path = GENERALIZATION) -> str | None:
    """The measured accuracy of these weights on the held-out generator and on the first generator's held-out seeds
    (benchmarks/demo_generalization.py), when its table was measured on this very file (same SHA-256)."""
    if weights is None or not path.exists() or not Path(weights).is_file():
        return None
    table = json.loads(path.read_text())
    if table.get("weights_sha256") != hashlib.sha256(Path(weights).read_bytes()).hexdigest():
        return None
    dense = table["rows"][0]
    sets = table["sets"]
    return (
        f"This model is right on {dense['heldout']['accuracy']:.1%} of {sets['heldout']['clips']} clips of a held-out "
        f"generator written apart from its training one (other shapes, textures and placements, H.264) and on "
        f"{dense['first']['accuracy']:.1%} of {sets['first']['clips']} held-out clips of the generator it first "
        "learned from."
    )


def load_shipped(path: Path = SHIPPED) -> dict | None:
    """The demo model's table, or None when it has not been made."""
    return json.loads(path.read_text()) if path.exists() else None


def format_table(result: dict) -> str:
    """A markdown table, one row per reducer and budget."""
    dense = result["rows"][0]["average_tokens"]
    precision = f", {result['precision']}" if "precision" in result else ""  # older tables did not record it
    lines = [
        f"{result['clips']} held-out generated clips, device {result['device']}{precision}",
        "",
        "| reducer | budget | tokens/layer | accuracy | agrees with dense | GFLOPs | ms/clip | knob |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['reducer']} | {r['budget']:g} | {r['average_tokens']:.0f} ({r['average_tokens'] / dense:.0%}) "
            f"| {r['accuracy']:.1%} | {r['agreement']:.1%} | {r['gflops']:.2f} | {r['forward_ms']:.1f} "
            f"| {r['knob']} |"
        )
    return "\n".join(lines)


def check_name(name: str) -> None:
    """Refuse a file stem that is not a plain name: one with a folder in it would write outside --out."""
    if not name or name in (".", "..") or any(sep in name for sep in ("/", "\\", "\0")) or len(name) > 200:
        raise ParameterError(f"--name must be a plain file name (no folder, at most 200 characters), got {name!r}")


def write(result: dict, out: str | Path, name: str = "accuracy", html: bool = True) -> list[Path]:
    """NAME.json, NAME.md and NAME.html (the chart, with plotly.js inside so that it opens offline)."""
    from .charts import accuracy_budget

    check_name(name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.json", out / f"{name}.md"]
    paths[0].write_text(json.dumps(result, indent=2) + "\n")
    paths[1].write_text(format_table(result) + "\n")
    if html:
        paths.append(out / f"{name}.html")
        accuracy_budget(result).write_html(paths[-1], include_plotlyjs=True)
    return paths
