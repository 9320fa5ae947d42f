"""Does the demo model know motion, or only its generator? Accuracy on clips of a generator it never saw.

    PYTHONPATH=. python benchmarks/demo_generalization.py [--weights FILE] [--out assets/demo_generalization]

Two fixed sets: the held-out generator's clips (explorer/heldout.py: written apart from the training
generator, PIL-drawn, H.264 mp4 files read back through load_clip with the app's defaults; written once
into --clips-folder) and the first generator's held-out seeds (synthetic.motion_clip, the set
`python -m explorer accuracy` uses). Each through the dense model and through every reducer that
`accuracy` evaluates, its knob fitted per clip to --budget (average tokens per layer / dense), as
`accuracy` does it (accuracy.parse_spec, forward.reduced_forward). Prints a markdown table; with
--out, writes OUT.md and OUT.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from explorer import heldout
from explorer.accuracy import DEFAULT_REDUCERS, check_model, parse_spec
from explorer.analyze import DEMO_WEIGHTS
from explorer.forward import reduced_forward
from explorer.models.reducers import make_reducer
from explorer.models.video_vit import VideoViT, normalize_video
from explorer.models.weights import load_model, training_chain
from explorer.synthetic import LABELS, held_out_seeds, motion_clip


def predict(model: VideoViT, clips: np.ndarray, spec: str, budget: float) -> tuple[np.ndarray, float]:
    """Top-1 of every clip, and the tokens per layer on average (mean over clips)."""
    predictions, tokens = [], []
    for frames in clips:
        video = normalize_video(torch.from_numpy(frames))
        if spec == "none":
            predictions.append(int(model(video[None]).argmax()))
            tokens.append(float(np.prod(model.cfg.grid)))
            continue
        name, settings = parse_spec(spec)
        run = reduced_forward(model, video, make_reducer(name, **settings, budget=budget))
        predictions.append(int(run.logits.argmax()))
        tokens.append(float(np.mean(run.tokens_per_layer)))
    return np.array(predictions), float(np.mean(tokens))


def measure(model: VideoViT, sets: dict[str, tuple[np.ndarray, np.ndarray]], specs: list[str], budget: float) -> dict:
    rows, dense = [], {}
    for spec in ["none", *specs]:
        row: dict = {"reducer": spec, "budget": 1.0 if spec == "none" else budget}
        for key, (clips, labels) in sets.items():
            begin = time.perf_counter()
            predicted, tokens = predict(model, clips, spec, budget)
            if spec == "none":
                dense[key] = predicted
            row[key] = {
                "accuracy": float((predicted == labels).mean()),
                "agreement": float((predicted == dense[key]).mean()),
                "tokens": tokens,
                "per_label": {
                    LABELS[k]: f"{int(((predicted == labels) & (labels == k)).sum())}/{int((labels == k).sum())}"
                    for k in range(len(LABELS))
                },
            }
            print(f"  {spec} on {key}: {row[key]['accuracy']:.1%} ({time.perf_counter() - begin:.0f} s)", flush=True)
        rows.append(row)
    return {"rows": rows}


def table(result: dict) -> str:
    keys = list(result["sets"])
    names = {k: f"{result['sets'][k]['name']} ({result['sets'][k]['clips']})" for k in keys}
    dense_tokens = result["rows"][0][keys[0]]["tokens"]
    lines = [
        f"Demo model `{result['weights']}` ({result['trained']}); every reducer at budget {result['budget']:g}, "
        f"its knob fitted per clip; CPU, float32",
        "",
        "| reducer | budget | tokens/layer | "
        + " | ".join(f"{names[k]}: accuracy (agrees with dense)" for k in keys)
        + " |",
        "|---|---|---|" + "---|" * len(keys),
    ]
    for row in result["rows"]:
        tokens = row[keys[0]]["tokens"]
        cells = [f"{row[k]['accuracy']:.1%} ({row[k]['agreement']:.1%})" for k in keys]
        lines.append(
            f"| {row['reducer']} | {row['budget']:g} | {tokens:.0f} ({tokens / dense_tokens:.0%}) | "
            + " | ".join(cells)
            + " |"
        )
    dense = result["rows"][0]
    lines += ["", "Dense, right per label:", ""]
    lines += [f"- {names[k]}: " + ", ".join(f"{label} {n}" for label, n in dense[k]["per_label"].items()) for k in keys]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(DEMO_WEIGHTS))
    parser.add_argument("--clips-folder", default="results/heldout_clips", help="where the held-out mp4s are kept")
    parser.add_argument("--heldout-clips", type=int, default=heldout.CLIPS)
    parser.add_argument("--first-clips", type=int, default=500, help="the first generator's held-out seeds")
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--reducers", nargs="+", default=list(DEFAULT_REDUCERS))
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", help="write OUT.md and OUT.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for spec in args.reducers:
        parse_spec(spec)  # a bad reducer is refused before any work
    model, report = load_model(args.weights)
    check_model(model, report.labels)
    model.eval()
    print(f"writing or reading {args.heldout_clips} held-out clips in {args.clips_folder}", flush=True)
    first = [motion_clip(s) for s in held_out_seeds(args.first_clips)]
    sets = {
        "heldout": heldout.load(args.clips_folder, args.heldout_clips),
        "first": (np.stack([clip for clip, _ in first]), np.array([label for _, label in first])),
    }
    training = report.training or {}
    seconds = sum(run.get("train_seconds", 0.0) for run in training_chain(training))  # every run of the chain
    trained = f"trained in {seconds / 60:.0f} min on {training.get('device', '?')}" if seconds else "no training record"
    with torch.inference_mode():
        result = measure(model, sets, args.reducers, args.budget)
    result |= {
        "weights": Path(args.weights).name,
        "weights_sha256": hashlib.sha256(Path(args.weights).read_bytes()).hexdigest(),  # the app shows it for these
        "trained": trained,
        "budget": args.budget,
        "sets": {
            "heldout": {"name": "held-out generator, H.264", "clips": args.heldout_clips},
            "first": {"name": "first generator's held-out seeds", "clips": args.first_clips},
        },
    }
    text = table(result)
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(text + "\n")
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
