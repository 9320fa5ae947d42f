"""The Learn page's steps (learn_page.py draws them): what each one teaches, its one control, its live view, the
question a student answers by looking, the answer (computed from the run) and the explorer's settings that open
the same view there.

Every step runs on a Lab: one bundled sample, decoded at the explorer's default sampling, and the demo model, both
through the explorer's caches (cached.py) and its run queue (runs.py). Every run the steps can ask for (each
control stops at a few values, STOPS) is asked once when the server starts (warmup.py) and kept, so a class
following the tour runs no model. The views are drawn with overlays.py and the explorer's legends (views.py); the
controls are this page's own widgets (keys "learn.*"), declared from the reducer registry's parameters, so they
never change the explorer's settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from explorer.analyze import DEMO, DEMO_WEIGHTS
from explorer.models.reducers import REDUCERS, Param
from explorer.models.tubevit import uncovered_fraction
from explorer.models.video_vit import VideoViT
from explorer.models.weights import native_img_size

from .. import charts, values
from ..overlays import draw_clip, draw_frame, heat_legend
from ..saliency import SaliencySpec
from ..trace import Trace
from ..video import SAMPLES, Clip, sample_path
from . import cached, compare, runs, sidebar, views
from .widgets import Widget

TIMING_RUNS = 1  # the page shows no times: one timed run (the fewest analyze takes) keeps every step light
TOP_SHARE = 0.1  # the rollout answer: how much relevance the brightest tenth of the cells holds
# The values a step's number control stops at (the default among them): few enough that the server runs every
# step at every stop once, when it starts (tour_runs), so a class following the tour runs no model at all.
STOPS: dict[tuple[str, str], tuple[Any, ...]] = {
    ("rlt", "tau"): (0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8),
    ("tome", "r"): (0, 8, 16, 32, 48, 64, 96),
    ("tubes", "stride_scale"): (0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
}
SAMPLE = next(iter(SAMPLES))  # the generated sample: a still background, a ball and a square that move
BUDGETS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # the side-by-side's token budgets


@dataclass(frozen=True)
class Lab:
    """The prepared clip and model every step runs on."""

    clip: Clip
    clip_key: str
    model: VideoViT
    model_key: tuple
    labels: list[str] | None
    sample: str  # the bundled sample's name (a key of video.SAMPLES)

    def trace(self, reducer: str, params: Mapping[str, Any] | None = None, saliency: bool = False) -> Trace:
        """One run, made once for the server and kept (runs.py), with attention recorded only when `saliency`."""
        return runs.trace(reducer, **self.run(params, saliency))

    def ask(self, reducer: str, params: Mapping[str, Any] | None = None, saliency: bool = False) -> None:
        """Ask for that run in the background, without waiting for it (the server's warm-up)."""
        runs.ask(reducer=reducer, background=True, **self.run(params, saliency))

    def run(self, params: Mapping[str, Any] | None, saliency: bool) -> dict[str, Any]:
        """The arguments of one of the tour's runs but its reducer: every one pinned for the server's life."""
        return dict(
            clip_key=self.clip_key,
            _clip=self.clip,
            model_key=self.model_key,
            _model=self.model,
            labels=self.labels,
            params=tuple(sorted((params or {}).items())),
            device="auto",
            timing_runs=TIMING_RUNS,
            saliency=SaliencySpec() if saliency else None,
            pinned=True,
        )


Setting = tuple[Widget, Any]  # an explorer widget and the value a link gives it


@dataclass(frozen=True)
class Lesson:
    """What a step's view leaves for the rest of the page: the answer (markdown, numbers from the run) and the
    explorer's settings that open the same view there."""

    answer: str
    settings: list[Setting]


@dataclass(frozen=True)
class Step:
    title: str
    text: str  # markdown: what the step teaches, 2-5 sentences
    departure: str  # where the explorer departs from the paper, or ""
    question: str  # answered by looking at the view
    show: Callable[[Lab], Lesson]  # draws the control and the view


# -- controls: this page's own widgets, each kept for the session (a step left and come back to keeps its value)


def param(reducer: str, name: str) -> Param:
    return next(p for p in REDUCERS[reducer].params if p.name == name)


def param_control(reducer: str, name: str) -> Any:
    """A widget for one parameter of a reducer, with the registry's label and help: its choices, or a slider over
    the tour's stops (STOPS) for a number."""
    declared, key = param(reducer, name), f"learn.{reducer}.{name}"
    if declared.choices:
        options = list(declared.choices)
        index = options.index(str(declared.default))
        return st.radio(
            name, options, index=index, key=key, help=declared.help, horizontal=True, persist_state="session"
        )
    return st.select_slider(
        name, STOPS[reducer, name], value=declared.default, key=key, help=declared.help, persist_state="session"
    )


def layer_control(step: str, trace: Trace, start: int = 0) -> int:
    """The layer slider of the explorer (its label and help), over this trace's layers, first at `start`."""
    return int(
        st.slider(
            views.LAYER.label,
            min_value=0,
            max_value=trace.layers,
            value=start,
            key=f"learn.{step}.layer",
            help=views.LAYER.help,
            persist_state="session",
        )
    )


# -- drawing: the explorer's overlays and legends


def overlay_view(
    lab: Lab, trace: Trace, layer: int, style: str, value: str | None = None, every_frame: bool = False
) -> None:
    """The clip with the tokens of one layer drawn over it, its legend, what the overlay shows and the run's notes."""
    image = draw_clip(
        lab.clip.frames, trace, layer, style, value, every_frame=every_frame, columns=8 if every_frame else 4
    )
    frames = "Every frame; a tubelet is 2 frames." if every_frame else "One frame per tubelet (its last)."
    st.image(
        image,
        width="stretch",
        output_format="PNG",
        caption=f"{trace.tokens_per_layer[layer]} tokens at layer {layer}. {frames}",
    )
    if style == "value" and value:
        views.legend_view(trace, value)
    if style == "heat" and value:
        views.heat_bar_view(heat_legend(trace, value, layer), values.describe(value, trace=trace))
    else:
        st.caption(views.STYLE_HELP[style])
    for note in trace.meta.get("notes", []):
        st.caption(f"Note: {note}")


def explorer_settings(lab: Lab, reducer: str, params: Mapping[str, Any] | None = None) -> list[Setting]:
    """The explorer's settings for this clip and reducer with these parameters (the model and sampling are the
    explorer's defaults, as here)."""
    fields = sidebar.PARAMS.get(reducer, {})
    return [
        (sidebar.SOURCE, "Sample"),
        (sidebar.SAMPLE, lab.sample),
        (sidebar.REDUCER, reducer),
        *((fields[name], value) for name, value in (params or {}).items()),
    ]


def listed(numbers: Iterable[Any]) -> str:
    return ", ".join(str(int(n)) for n in numbers)


def per_slot(cells: np.ndarray) -> np.ndarray:
    """(T', H', W') bool -> how many are set in each time slot."""
    return cells.sum(axis=(1, 2))


def slots_spanned(trace: Trace, layer: int) -> np.ndarray:
    """(tokens,) int: in how many time slots each token of the layer stands for cells."""
    owner = trace.owner[layer]
    present = [np.unique(owner[t][owner[t] >= 0]) for t in range(owner.shape[0])]
    return np.bincount(np.concatenate(present), minlength=trace.tokens_per_layer[layer])


def tour_lab() -> Lab:
    """The bundled sample at the explorer's default sampling and the demo model at its own input size, cached."""
    frames, stride, start = sidebar.FRAMES.default, sidebar.STRIDE.default, sidebar.START.default
    size = native_img_size(DEMO_WEIGHTS) if DEMO_WEIGHTS.exists() else None
    path = sample_path(SAMPLE)
    # the explorer's own cache entry for this sample and sampling (its default view): warming the tour warms it
    clip = cached.clip(f"sample:{path}", str(path), SAMPLE, frames, stride, start, size or 224)
    model, report = cached.model(DEMO, None, clip.num_frames, clip.frames.shape[1], "auto")
    clip_key = f"learn:{path}:{frames}:{stride}:{start}:{clip.frames.shape[1]}"
    model_key = (report.source if report else DEMO, None, clip.num_frames, clip.frames.shape[1])
    return Lab(clip, clip_key, model, model_key, report.labels if report else None, SAMPLE)


# -- the steps


def tokens_step(lab: Lab) -> Lesson:
    both = st.toggle(
        "Both frames of each tubelet",
        key="learn.tokens.every_frame",
        help="Show every frame instead of one per tubelet.",
        persist_state="session",
    )
    trace = lab.trace("none")
    overlay_view(lab, trace, 0, "kept", every_frame=both)
    (tp, hp, wp), (tf, ph, pw) = trace.grid, trace.cell
    frames, height, width = lab.clip.frames.shape[:3]
    answer = (
        f"Each token is one tubelet of {tf} frames x {ph} x {pw} px. The clip's {frames} frames of {height} x {width} "
        f"px give T' = {frames} / {tf} = {tp} time slots and H' x W' = {height} / {ph} x {width} / {pw} = {hp} x {wp} "
        f"places: {tp} x {hp} x {wp} = **{trace.input_tokens} tokens**. The picture shows one frame per tubelet (its "
        f"last), so {tp} pictures; *Both frames* shows all {frames}. Every block's attention compares each of the "
        f"{trace.input_tokens} tokens with every other: {trace.input_tokens**2:,} pairs."
    )
    return Lesson(answer, explorer_settings(lab, "none") + [(views.STYLE, "kept"), (views.EVERY_FRAME, both)])


def rollout_step(lab: Lab) -> Lesson:
    trace = lab.trace("none", saliency=True)
    layer = layer_control("rollout", trace)
    overlay_view(lab, trace, layer, "heat", "rollout")
    first, last = trace.cell_values("rollout", 0), trace.cell_values("rollout", trace.layers)
    t, h, w = np.unravel_index(int(np.argmax(first)), first.shape)
    ranked = np.sort(first.ravel())[::-1]
    top = max(1, round(TOP_SHARE * ranked.size))
    answer = (
        f"Not evenly. At layer 0 the brightest cell (t' = {t}, row {h}, column {w}) carries {first.max():.1f} times "
        f"a uniform share and the dimmest {first.min():.2f}; the brightest {top} of {ranked.size} cells hold "
        f"{ranked[:top].sum() / ranked.sum():.0%} of the relevance. Going up, each layer has fewer blocks left to "
        f"trace back through, so the map flattens; at layer {trace.layers} every cell is "
        f"{np.nanmin(last):.2f}-{np.nanmax(last):.2f}: the walk starts from the mean pooling, where every token counts "
        "the same."
    )
    settings = [(views.STYLE, "heat"), (views.HEAT_VALUE, "rollout"), (views.LAYER, layer)]
    return Lesson(answer, explorer_settings(lab, "none") + settings)


def rlt_step(lab: Lab) -> Lesson:
    tau = float(param_control("rlt", "tau"))
    trace = lab.trace("rlt", {"tau": tau})
    overlay_view(lab, trace, 0, "value", "run_length")
    kept = per_slot(trace.home(0))
    runs = np.asarray(trace.values["run_length"][0])
    whole = int((runs == trace.grid[0]).sum())
    answer = (
        f"At tau = {tau:g}, RLT keeps **{trace.tokens_per_layer[0]} of {trace.input_tokens}** tubelets: all "
        f"{kept[0]} of the first time slot, then {listed(kept[1:])} in the later ones: the places whose content "
        f"changed by more than tau since the tubelet before, where something moves. {whole} places never changed: "
        f"their first token stands for all {trace.grid[0]} tubelets. Raise tau and small changes stop counting, so "
        "the faint ones go first."
    )
    return Lesson(answer, explorer_settings(lab, "rlt", {"tau": tau}) + [(views.STYLE, "value")])


def mask_step(lab: Lab) -> Lesson:
    pattern = param_control("mask", "pattern")
    trace = lab.trace("mask", {"pattern": pattern})
    overlay_view(lab, trace, 0, "kept")
    visible = trace.owner[0] >= 0
    places = visible.shape[1] * visible.shape[2]
    leaking = int((visible.any(axis=0) & ~visible.all(axis=0)).sum())
    ratio = trace.meta["params"]["mask_ratio"]
    answer = (
        f"With **{pattern}** masking at ratio {ratio:g}, {trace.tokens_per_layer[0]} of {trace.input_tokens} tokens "
        f"are visible: {listed(per_slot(visible))} per time slot. {leaking} of the {places} places are hidden in one "
        "slot but visible in another. Tube masking makes that 0 by construction; random masking leaves such places, "
        "and since neighbouring frames are nearly the same, a hidden patch there could be copied from its neighbour "
        "in time instead of being understood."
    )
    return Lesson(answer, explorer_settings(lab, "mask", {"pattern": pattern}) + [(views.STYLE, "kept")])


def tome_step(lab: Lab) -> Lesson:
    r = int(param_control("tome", "r"))
    trace = lab.trace("tome", {"r": r})
    layer = trace.layers
    overlay_view(lab, trace, layer, "clusters")
    sizes, spans = values.token_sizes(trace, layer), slots_spanned(trace, layer)
    biggest = int(np.argmax(sizes))
    answer = (
        f"With r = {r}, the tokens go {' → '.join(map(str, trace.tokens_per_layer))} through the blocks. At layer "
        f"{layer}, {int((spans > 1).sum())} of the {len(sizes)} tokens stand for cells in more than one time slot: "
        f"the biggest stands for {sizes[biggest]} cells over {spans[biggest]} slots. The pairs merged first are the "
        f"most similar ones, wherever they lie in space or time; {int((sizes == 1).sum())} tokens are still single "
        "cells, never picked for a merge."
    )
    settings = [(views.STYLE, "clusters"), (views.LAYER, layer)]
    return Lesson(answer, explorer_settings(lab, "tome", {"r": r}) + settings)


VTM_SHOWS = {"vtm_saliency": "learned saliency", "vtm_target": "targets", "clusters": "clusters (last layer)"}


def vtm_step(lab: Lab) -> Lesson:
    shown = st.radio(
        "Show",
        list(VTM_SHOWS),
        format_func=VTM_SHOWS.get,
        key="learn.vtm.show",
        horizontal=True,
        help="The saliency and the targets at the first merging block; the clusters after the last block.",
        persist_state="session",
    )
    trace = lab.trace("vtm", {"targets": "learnable"})
    merging = next(at for at in range(trace.layers + 1) if np.isfinite(trace.values["vtm_saliency"][at]).any())
    layer = trace.layers if shown == "clusters" else merging
    if shown == "clusters":
        overlay_view(lab, trace, layer, "clusters")
    else:
        overlay_view(lab, trace, layer, "heat", shown)
    saliency = np.asarray(trace.values["vtm_saliency"][merging])
    targets = np.asarray(trace.values["vtm_target"][merging]) == 1
    low = saliency < 0
    answer = (
        f"At its first merging block (layer {merging}), VTM drew {int(targets.sum())} targets from "
        f"{trace.tokens_per_layer[merging]} tokens. The learned saliency runs from {saliency.min():.2f} to "
        f"{saliency.max():.2f}, with {int(low.sum())} tokens below 0. softmax(S) makes the most salient token at most "
        f"e^(S max - S min) = {np.exp(saliency.max() - saliency.min()):.1f} times as likely a target as the least, so "
        f"targets lean to salient tokens without keeping off the rest: {int((targets & low).sum())} of them have S "
        f"below 0 (a blind draw would give about {targets.sum() * low.mean():.1f}). After merging, "
        f"{trace.tokens_per_layer[-1]} tokens are left: the targets keep their own detail, and the big clusters are "
        "the sources averaged into them."
    )
    settings: list[Setting] = [(views.LAYER, layer), (views.STYLE, "clusters" if shown == "clusters" else "heat")]
    if shown != "clusters":
        settings.append((views.HEAT_VALUE, shown))
    return Lesson(answer, explorer_settings(lab, "vtm", {"targets": "learnable"}) + settings)


def sta_step(lab: Lab) -> Lesson:
    trace = lab.trace("sta")
    layer = layer_control("sta", trace)
    overlay_view(lab, trace, layer, "kept")
    counts = trace.tokens_per_layer
    pruned = [at for at in range(1, len(counts)) if counts[at] < counts[at - 1]]
    answer = (
        f"Tokens go {' → '.join(map(str, counts))}: they disappear after blocks {listed(np.array(pruned) - 1)} "
        f"(layers {listed(pruned)}). At layer {trace.layers} the time slots keep "
        f"{listed(per_slot(trace.owner[-1] >= 0))} tokens. Each group of slots drops the same number, so no part of "
        "the clip is emptied, but inside a group the scores decide, so its slots may keep different numbers."
    )
    return Lesson(answer, explorer_settings(lab, "sta") + [(views.STYLE, "kept"), (views.LAYER, layer)])


def tubes_step(lab: Lab) -> Lesson:
    scale = float(param_control("tubes", "stride_scale"))
    trace = lab.trace("tubes", {"stride_scale": scale})
    overlay_view(lab, trace, 0, "boxes", "tube", every_frame=True)
    tubes = [line for line in str(param("tubes", "tubes").default).splitlines() if line.strip()]
    counts = np.bincount(np.asarray(trace.values["tube"][0], dtype=int), minlength=len(tubes))
    boxes = trace.boxes[0] if trace.boxes else np.zeros((0, 6))
    unseen = uncovered_fraction(boxes, lab.clip.frames.shape[:3])
    rows = "\n".join(f"- tube {i + 1} (`{tube}`): {count} tokens" for i, (tube, count) in enumerate(zip(tubes, counts)))
    empty = [str(i + 1) for i, count in enumerate(counts) if count == 0]
    none = (
        f" Tube {', '.join(empty)} gives none: along some axis its kernel, from its offset, is longer than the clip."
        if empty
        else ""
    )
    answer = (
        f"At stride_scale {scale:g}, {int((counts > 0).sum())} of the {len(tubes)} tubes give tokens, "
        f"{trace.tokens_per_layer[0]} in all (a dense grid has {trace.input_tokens} tubelets):\n\n{rows}\n\n{none} "
        f"**{unseen:.0%}** of the clip (frames x pixels) lies in no box at all."
    )
    settings = [(views.STYLE, "boxes"), (views.EVERY_FRAME, True)]
    return Lesson(answer, explorer_settings(lab, "tubes", {"stride_scale": scale}) + settings)


def mvit_step(lab: Lab) -> Lesson:
    trace = lab.trace("mvit")
    layer = layer_control("mvit", trace, start=trace.layers)  # the coarse grid first: the fine one is 4 px cells
    overlay_view(lab, trace, layer, "clusters")
    grids = [info["q_grid"] for info in trace.meta["layer_info"]]
    boxes = trace.boxes or []
    coarser = [at for at in range(1, len(grids)) if grids[at] != grids[at - 1]]
    pooled = sorted({tuple(info["kv_grid"]) for info in trace.meta["layer_info"] if info.get("kv_grid")})

    def footprint(at: int) -> str:
        t0, t1, y0, y1, x0, x1 = boxes[at][0]
        return f"{t1 - t0} frames x {y1 - y0} x {x1 - x0} px"

    answer = (
        f"The query grid goes {' → '.join('x'.join(map(str, g)) for g in dict.fromkeys(map(tuple, grids)))}: it gets "
        f"coarser at layers {listed(coarser)}, where a block pools its queries. A token's footprint grows from "
        f"{footprint(0)} at layer 0 to {footprint(trace.layers)} at layer {trace.layers}, and the tokens from "
        f"{trace.tokens_per_layer[0]} to {trace.tokens_per_layer[-1]}. Keys and values are pooled to "
        f"{' or '.join('x'.join(map(str, g)) for g in pooled)} before attention, so even the fine early grid "
        "compares each query with few tokens."
    )
    return Lesson(answer, explorer_settings(lab, "mvit") + [(views.STYLE, "clusters"), (views.LAYER, layer)])


def compare_step(lab: Lab) -> Lesson:
    declared = compare.BUDGET
    budget = st.select_slider(
        declared.label,
        BUDGETS,
        value=declared.default,
        key="learn.compare.budget",
        help=declared.help,
        persist_state="session",
    )
    choice = compare.CompareChoice(compare.DEFAULT_REDUCERS, float(budget))
    dense = lab.trace("none")
    traces = {name: lab.trace(name, dict(choice.params(name))) for name in choice.reducers}
    layer = min(trace.layers for trace in traces.values())
    frame = lab.clip.num_frames - 1  # the last tubelet's last frame: the furthest from the first, always kept
    for column, (name, trace) in zip(st.columns(len(traces)), traces.items()):
        with column:
            compare_column(name, trace, layer, frame, lab)
    st.plotly_chart(charts.tokens_per_layer({"dense": dense, **traces}), key="learn_compare_tokens")
    st.caption(views.STYLE_HELP["kept"])
    return Lesson(compare_answer(dense, traces), compare_settings(lab, choice, layer, frame))


def compare_column(name: str, trace: Trace, layer: int, frame: int, lab: Lab) -> None:
    st.markdown(f"**{REDUCERS[name].title}**")
    image = draw_frame(lab.clip.frames[frame], trace, layer, frame // trace.cell[0], "kept")
    st.image(
        image,
        width="stretch",
        output_format="PNG",
        caption=f"{trace.tokens_per_layer[layer]} tokens at layer {layer}, frame {frame}.",
    )
    st.caption(compare.knob_text(name, trace))


def compare_answer(dense: Trace, traces: dict[str, Trace]) -> str:
    costs = {name: compare.cost(trace, dense) for name, trace in traces.items()}
    cheapest = min(costs, key=lambda name: costs[name].gflops)
    rows = "\n".join(
        f"- {name}: {trace.tokens_per_layer[0]} tokens into the first block, {costs[name].average_tokens:.0f} per "
        f"layer on average, {costs[name].gflops:.3f} GFLOPs; top-1 "
        + ("same as dense" if compare.prediction_change(dense.logits, trace.logits).same_top1 else "changed")
        for name, trace in traces.items()
        if trace.logits is not None and dense.logits is not None
    )
    return (
        f"Dense: {dense.tokens_per_layer[0]} tokens in every layer, {dense.flops.sum() / 1e9:.3f} GFLOPs.\n\n{rows}\n\n"
        f"The cheapest is **{cheapest}**, which acts {REDUCERS[cheapest].acts}. At one average, a reducer that acts "
        "before the first block runs every block on the short sequence; one that acts inside the model runs its "
        "first blocks on every token, and attention's cost grows with the square of the count."
    )


def compare_settings(lab: Lab, choice: compare.CompareChoice, layer: int, frame: int) -> list[Setting]:
    return [
        (sidebar.SOURCE, "Sample"),
        (sidebar.SAMPLE, lab.sample),
        (compare.COMPARE_ON, True),
        (compare.REDUCERS_COMPARED, list(choice.reducers)),
        (compare.BUDGET, choice.budget),
        (compare.LAYER, layer),
        (compare.FRAME, frame),
        (compare.STYLE, "kept"),
    ]


STEPS: tuple[Step, ...] = (
    Step(
        "From video to tubelet tokens",
        "A video transformer does not read pixels one by one. It cuts the clip into **tubelets** of 2 frames x 16 x "
        "16 px and embeds each as one token (a 3-D convolution whose kernel and stride are both 2 x 16 x 16). A clip "
        "of T frames at H x W px gives a grid of T' x H' x W' = T/2 x H/16 x W/16 tokens, flattened in (t, h, w) "
        "order: 16 frames at 224 px give 8 x 14 x 14 = 1568. Every block's attention compares every token with "
        "every other, so its cost grows with the square of the count: that is what token reduction cuts.",
        "",
        "Why does the picture show only half of the clip's frames? How many tokens does the model get, and how "
        "would you work that number out from the clip's size?",
        tokens_step,
    ),
    Step(
        "Attention and rollout saliency",
        "In each block every token reads from the others with **attention** weights. **Attention rollout** (Abnar "
        "and Zuidema, 2020) follows them back through the blocks: fuse the heads (their mean here), add the identity "
        "for the residual path, renormalize each row and multiply through the layers. This model has no class token, "
        "so the walk starts from the mean pooling, where every token counts the same, and at layer 0 it says how "
        "much of the prediction each tubelet carries, as a multiple of a uniform share (1 = average).",
        "Rollout was made for plain ViTs. Under merging and pruning the explorer passes relevance back through each "
        "merge in the proportions it averaged (by size for ToMe, equally for VTM) and none through a pruned token: "
        "its own extension, so that every layer's relevance still sums to one.",
        "At layer 0, is the relevance spread evenly over the clip? Where is it highest? Move the layer up to the "
        "last one: what happens to the map, and why?",
        rollout_step,
    ),
    Step(
        "RLT: repeated patches dropped before the model",
        "RLT (Choudhury et al., NeurIPS 2024) decides, before the first block, which tubelets to feed. Each tubelet "
        "is compared with the one before it at the same place (its last frame against the other's first frame, mean "
        "absolute difference over the 16 x 16 patch and 3 channels after ImageNet normalization) and kept only when "
        "the difference exceeds **tau** (0.1, about 6 grey levels of 255, by default); the first time slot is always "
        "kept. A kept token carries its **run length**, the tubelets it stands for up to the next kept one at that "
        "place, and only kept tokens enter the transformer, so every layer holds the same shorter sequence.",
        "The paper packs a batch's kept tokens into one sequence; the views here run one clip. The demo model was "
        "trained without RLT and has no learned run-length embedding, so the run lengths are shown but not used.",
        "Which places keep a token after the first time slot, and what do they have in common? Raise tau: which "
        "tokens go first?",
        rlt_step,
    ),
    Step(
        "Tube masking (VideoMAE)",
        "VideoMAE (Tong et al., NeurIPS 2022) pre-trains a video transformer by hiding most of the clip and asking a "
        "small decoder to paint it back; the encoder sees only the visible tokens. **Tube** masking hides one random "
        "set of places and keeps them hidden in every time slot (ratio 0.9: 176 of 196 places at 224 px). Neighbouring "
        "frames are nearly the same, so a place hidden in one slot but visible in the next could simply be copied "
        "across time; a tube leaves nothing to copy. The **random** pattern, hiding as many cells anywhere, is the "
        "baseline that leaks.",
        "A seed fixes the mask so that runs compare (pre-training draws a new one for every clip), and the demo "
        "model is a classifier, not pre-trained with masking: here the mask simply drops tokens.",
        "Follow the grey (hidden) cells from one time slot to the next: are the same places hidden in every slot? "
        "Switch to random: what could the model copy across time?",
        mask_step,
    ),
    Step(
        "ToMe: merging similar tokens",
        "ToMe (Bolya et al., ICLR 2023) merges tokens inside every block, between attention and the MLP. The tokens "
        "are split alternately into sets A and B; each A token finds its most similar B token (cosine similarity of "
        "the attention keys, averaged over heads), and the **r** most similar pairs are averaged, weighted by how "
        "many input patches each already stands for. Nothing is learned, so it works on a trained model as it is, "
        "and in video nothing stops a merge across time.",
        "Proportional attention (log size added to the attention logits) is off by default here, as ToMe advises "
        "for models without a class token.",
        "At the last layer, do the clusters stay within one time slot? Which parts of the clip end up in the "
        "biggest clusters, and which stay single cells?",
        tome_step,
    ),
    Step(
        "VTM: merging into chosen targets, with a learned saliency",
        "VTM (Lee et al., NeurIPS 2024) merges, in a few blocks, most tokens into a small set of **targets**: one "
        "token in gamma (6) is a target, and the other tokens most similar to a target are averaged into it. Its "
        "point is that the choice of targets matters, since only targets keep their own detail. The **learnable** "
        "strategy scores every token with a saliency S = tanh(K u), from its key K and a learned vector u, and draws "
        "targets with probability softmax(S); in training an extra attention path adds S to the logits so that u "
        "learns, and that path is dropped at inference.",
        "The paper has no public code: this is the explorer's own implementation. A few blocks merge (merge_blocks, "
        "spread over the depth) with attention over the whole clip (the paper attends within windows of frames), "
        "and the demo model's u was trained after the transformer, which stayed frozen.",
        "Compare the learned saliency with the targets: do the targets fall where the saliency is high, and only "
        "there? Then look at the clusters: which tokens keep their own detail?",
        vtm_step,
    ),
    Step(
        "STA: pruning along time",
        "STA (Ding et al., ICCV 2023) prunes tokens, without training, after blocks 0, depth/3 and 2 x depth/3. At "
        "each point the clip is cut in time into groups (single time slots, then pairs, then fours) and every group "
        "drops the same number of tokens. A token's score is the redundancy it accumulates from similar tokens (cosine "
        "similarity of keys) in the groups visited before it, walking along time, times one minus its activation; the "
        "highest scores are dropped. On a 16 x 224 x 224 clip: 1568 → 1056 → 800 → 672 tokens.",
        "r is given for a 14 x 14 grid and scaled to this one (by H'W' / 196), and no group drops more than half "
        "its tokens. Tokens keep their order (the official code reorders them within a frame).",
        "Step through the layers: after which blocks do tokens disappear? Does every time slot lose the same number?",
        sta_step,
    ),
    Step(
        "TubeViT: sparse tubes",
        "TubeViT (Piergiovanni et al., CVPR 2023) replaces the dense grid of tubelets with a few 3-D kernels, "
        "**tubes** of different shapes, that slide over the clip with large strides and their own offsets: cubes of "
        "8 x 8 x 8, long thin tubes of 16 frames x 4 x 4 px, boxes of 4 x 12 x 12 and single frames of 16 x 16 px. "
        "Each position gives one token, a **box** of the video: boxes of different tubes overlap, and much of the "
        "clip lies in no box. Tokens per axis = floor((size - offset - kernel) / stride) + 1: 539 for 32 x 224 x "
        "224, instead of 3136 tubelets.",
        "The tube kernels are untrained (seeded) and the demo model never saw such tokens, so its prediction here "
        "means nothing. stride_scale, which multiplies every stride, is the explorer's own knob.",
        "Count the colours: how many of the tubes give tokens on this clip? How much of the clip lies in no box at "
        "all?",
        tubes_step,
    ),
    Step(
        "MViT: pooling attention",
        "MViT (Fan et al., ICCV 2021) is a network built to shrink its own sequence. A small 3-D convolution (3 x 7 x "
        "7, stride 2 x 4 x 4) first cuts the clip into many fine tokens. In **pooling attention** the queries are "
        "pooled with stride (1, 2, 2) at a few blocks, so the grid halves in height and width and a token's "
        "footprint grows from 4 to 8, 16 and 32 px, while keys and values are pooled harder so that attention stays "
        "cheap on the fine grid.",
        "This is the explorer's own small variant, with untrained, seeded weights, a network of its own "
        "rather than the demo model. The footprints here are the stride tiling; the Boxes overlay centres each "
        "on its token's receptive field.",
        "Move the layer: where does the grid get coarser? How big is a token's footprint at the last layer, "
        "compared with the first?",
        mvit_step,
    ),
    Step(
        "Side by side at one token budget",
        "A **token budget** fixes the average number of tokens over the layers, as a fraction of dense; each "
        "reducer's own knob (RLT's tau, ToMe's r, VTM's merge fraction) is then found by bisection on this clip. So "
        "the columns differ in *which* tokens they keep and *when*, not in how many. A reducer acting before the "
        "first block runs every block on a short sequence; one acting inside the model sees every token first and "
        "pays for it early.",
        "The budget is the explorer's way to compare methods; the papers each report their own settings. A knob "
        "that cannot reach the budget exactly stays as near as it can.",
        "Every line in the chart has the same average height. Which reducer costs the fewest FLOPs, and why? Which "
        "ones keep dense's top-1?",
        compare_step,
    ),
)


def tour_runs() -> list[tuple[str, dict[str, Any], bool]]:
    """Every run the steps ask for at every stop of their controls: (reducer, parameters, saliency)."""
    asked: list[tuple[str, dict[str, Any], bool]] = [("none", {}, False), ("none", {}, True)]
    for (reducer, name), stops in STOPS.items():
        asked += [(reducer, {name: stop}, False) for stop in stops]
    asked += [("mask", {"pattern": pattern}, False) for pattern in param("mask", "pattern").choices or ()]
    asked += [("vtm", {"targets": "learnable"}, False), ("sta", {}, False), ("mvit", {}, False)]
    for budget in BUDGETS:
        choice = compare.CompareChoice(compare.DEFAULT_REDUCERS, budget)
        asked += [(name, dict(choice.params(name)), False) for name in choice.reducers]
    return asked
