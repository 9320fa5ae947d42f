"""Side by side: several reducers on the same clip at the same token budget, against dense.

compare_ui() is a sidebar section, compare_traces() runs (or reads from the cache) one trace
per reducer, compare_view() draws them with one shared layer, frame and overlay. The numbers
come from the traces only; cost() and prediction_change() compute them without Streamlit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import streamlit as st

from explorer.models.reducers import REDUCERS

from .. import charts, values
from ..errors import USER_ERRORS
from ..overlays import draw_frame, heat_legend
from ..trace import Trace
from ..video import Clip
from . import runs
from .views import HEAT_VALUES, STYLE_HELP, STYLE_NAMES, heat_bar_view, overlay_styles
from .widgets import widget

DEFAULT_REDUCERS = ("rlt", "tome", "vtm")
MAX_REDUCERS = 4

COMPARE_ON = widget(
    "compare_on",
    "Compare side by side",
    False,
    kind="toggle",
    help="Run several reducers on this clip at the same token budget and show them next to each other, "
    "with dense as the reference.",
)
WHILE_ON = (COMPARE_ON.key, True)  # the comparison's other widgets show only while it is on
REDUCERS_COMPARED = widget(
    "compare_reducers",
    f"Reducers (2 to {MAX_REDUCERS})",
    DEFAULT_REDUCERS,
    choices=[n for n in REDUCERS if n != "none"],
    low=0,
    high=MAX_REDUCERS,
    format_func=lambda n: REDUCERS[n].title,
    only_if=WHILE_ON,
)
BUDGET = widget(
    "compare_budget",
    "Token budget",
    0.5,
    low=0.1,
    high=1.0,
    step=0.05,
    only_if=WHILE_ON,
    help="The average number of tokens over the layers, as a fraction of dense; each reducer's own knob is "
    "fitted to it.",
)
# the shared view's widgets; the traces decide their range (layers, frames, overlays, heat values) when drawn
LAYER = widget(
    "compare_layer",
    "Layer (every column)",
    0,
    low=0,
    kind="slider",
    only_if=WHILE_ON,
    help="0 is the model's input; l is the sequence after block l. A network with fewer blocks shows its last.",
)
FRAME = widget(
    "compare_frame",
    "Frame (every column)",
    1,
    low=0,
    kind="select_slider",
    only_if=WHILE_ON,
    help="One frame per tubelet, its last, as in the single view.",
)  # the first tubelet's last frame
STYLE = widget(
    "compare_style",
    "Overlay (every column)",
    next(iter(STYLE_NAMES)),
    choices=STYLE_NAMES,
    kind="radio",
    format_func=STYLE_NAMES.get,
    extra={"horizontal": True},
    only_if=WHILE_ON,
    help="Only overlays every compared trace can show.",
)  # the first overlay they share
HEAT_VALUE = widget(
    "compare_heat_value", "Heat value", "rollout", choices=HEAT_VALUES, only_if=("compare_style", "heat")
)

Result = Trace | str  # a trace, or the message of the user error that stopped the reducer

WHY_BUDGET = (
    "**Why one budget.** Each reducer's own knob (RLT's tau, ToMe's r, VTM's merge fraction, …) is fitted so that "
    "the average number of tokens over the layers is the same fraction of dense, so the columns differ in *which* "
    "tokens they keep and *when*, not in how many. At the same average, a reducer acting before the first block "
    "runs every block on the short sequence (a flat line), while one acting inside the model starts from every "
    "token and ends with fewer (a falling line): it sees the whole clip first but pays for it early, and "
    "attention's cost grows with the square of the count, so FLOPs and time can still differ."
)


@dataclass(frozen=True)
class CompareChoice:
    """Reducers to compare and the token budget they share (average tokens per layer, fraction of dense)."""

    reducers: tuple[str, ...]
    budget: float

    def params(self, reducer: str) -> tuple[tuple[str, object], ...]:
        """The reducer's parameters for runs.trace: the budget when it has a knob for it, else its defaults."""
        return (("budget", self.budget),) if REDUCERS[reducer].budget_knob else ()


@dataclass(frozen=True)
class Cost:
    average_tokens: float  # over the layers, the quantity a budget fixes
    token_fraction: float  # of dense's average
    gflops: float
    flops_fraction: float  # of dense's FLOPs
    milliseconds: float  # measured forward
    speedup: float  # dense's forward time / this one


@dataclass(frozen=True)
class PredictionChange:
    """How a reducer's prediction differs from dense's."""

    dense_top1: int
    top1: int
    dense_top1_probability: float  # dense's top-1 class under dense
    kept_probability: float  # dense's top-1 class under the reducer
    total_variation: float  # half the L1 distance of the two distributions: 0 identical, 1 disjoint
    kl: float  # KL(dense || reducer) in nats

    @property
    def same_top1(self) -> bool:
        return self.top1 == self.dense_top1


def cost(trace: Trace, dense: Trace) -> Cost:
    average, dense_average = float(np.mean(trace.tokens_per_layer)), float(np.mean(dense.tokens_per_layer))
    flops, dense_flops = float(trace.flops.sum()), float(dense.flops.sum())
    seconds, dense_seconds = trace.seconds["forward"], dense.seconds["forward"]
    return Cost(
        average, average / dense_average, flops / 1e9, flops / dense_flops, seconds * 1e3, dense_seconds / seconds
    )


def prediction_change(dense_logits: np.ndarray, logits: np.ndarray) -> PredictionChange:
    """Compare two logit vectors over the same classes (softmax in float64, KL from log-probabilities)."""
    log_p, log_q = _log_softmax(dense_logits), _log_softmax(logits)
    p, q = np.exp(log_p), np.exp(log_q)
    dense_top1 = int(np.argmax(p))
    return PredictionChange(
        dense_top1=dense_top1,
        top1=int(np.argmax(q)),
        dense_top1_probability=float(p[dense_top1]),
        kept_probability=float(q[dense_top1]),
        total_variation=float(0.5 * np.abs(p - q).sum()),
        kl=float(np.sum(p * (log_p - log_q))),
    )


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def change_text(change: PredictionChange, dense: Trace, trace: Trace) -> str:
    """The difference from dense in words (markdown)."""
    dense_label = dense.label(change.dense_top1)
    top = (
        f"**Top-1 same as dense**: {dense_label}."
        if change.same_top1
        else f"**Top-1 changed**: {trace.label(change.top1)} (dense: {dense_label})."
    )
    return (
        f"{top}  \nDense's top-1 here: {change.kept_probability:.1%} (dense: {change.dense_top1_probability:.1%}).  "
        f"\nTotal variation {change.total_variation:.3f}, KL(dense ‖ this) {change.kl:.3f} nats."
    )


def knob_text(name: str, trace: Trace) -> str:
    """What was fitted to the budget, or that the reducer has no knob for one."""
    fit = trace.meta.get("budget")
    if fit:
        return (
            f"Budget {fit['fraction']:g}: {fit['knob']} = {fit['value']:.3g} fitted, giving "
            f"{fit['average_tokens']:.0f} tokens per layer on average."
        )
    network = REDUCERS[name].replaces_network
    return f"No budget knob: {name} runs at its defaults, so its token count is its own, not the budget's." + (
        " It is a network of its own: its pooling is its architecture." if network else ""
    )


def shared_heat_values(traces: list[Trace]) -> list[str]:
    """Heat values every trace has, in the first trace's order."""
    common = set.intersection(*(set(values.heat_values(t)) for t in traces))
    return [name for name in values.heat_values(traces[0]) if name in common]


def shared_styles(traces: list[Trace]) -> list[str]:
    """Overlays every trace can show; heat only when the traces share a heat value."""
    common = set.intersection(*(set(overlay_styles(t)) for t in traces))
    if not shared_heat_values(traces):
        common.discard("heat")
    return [s for s in STYLE_NAMES if s in common]


def compare_ui() -> CompareChoice | None:
    """Sidebar: a switch, 2 to 4 reducers and one budget; None while off or with fewer than two."""
    st.subheader("Compare reducers")
    if not COMPARE_ON.draw():
        return None
    names, budget = REDUCERS_COMPARED.draw(), BUDGET.draw()
    fixed = [n for n in names if not REDUCERS[n].budget_knob]
    if fixed:
        st.caption(f"No budget knob, so run at their defaults: {', '.join(fixed)}.")
    if len(names) < 2:
        st.caption("Pick at least two reducers to compare.")
        return None
    return CompareChoice(tuple(names), round(float(budget), 2))


def compare_traces(choice: CompareChoice, run: dict) -> dict[str, Result]:
    """One trace per reducer through runs.trace (`run`: its other arguments, as app.py builds them).

    A reducer stopped by a user error gives its message instead, for its column to show.
    """
    results: dict[str, Result] = {}
    bar = st.progress(0.0)
    count = len(choice.reducers)
    for i, name in enumerate(choice.reducers):
        how = f"at budget {choice.budget:g}" if REDUCERS[name].budget_knob else "at its defaults (no budget knob)"
        bar.progress(i / count, text=f"Running {name} {how} ({i + 1} of {count})…")
        try:
            results[name] = runs.trace(reducer=name, params=choice.params(name), **run)
        except USER_ERRORS as error:
            results[name] = str(error)
    bar.empty()
    return results


def compare_view(clip: Clip, dense: Trace, traces: dict[str, Result]) -> None:
    """One column per reducer at a shared layer, frame and overlay; then tokens per layer and a table."""
    ready = {name: t for name, t in traces.items() if isinstance(t, Trace)}
    st.caption(WHY_BUDGET)
    view = _controls(clip, dense, list(ready.values())) if ready else None
    for column, (name, result) in zip(st.columns(len(traces)), traces.items()):
        with column:
            st.markdown(f"**{REDUCERS[name].title}**")
            if isinstance(result, str):
                st.error(result)
            else:
                _column(name, result, clip, dense, view)
    if not ready:
        return
    layer = view.layer
    left, right = st.columns([3, 2])
    left.plotly_chart(charts.tokens_per_layer({"dense": dense, **ready}, layer), key="compare_chart_tokens")
    right.caption(
        "The length of the sequence after each block (0 = what enters the first block), for every "
        "reducer and dense. At one budget every line has the same average height; where it drops tells "
        "when the reducer acts. The dotted line is the layer shown above."
    )
    st.dataframe(comparison_rows(dense, ready), hide_index=True, width="stretch")
    st.caption(
        "All numbers come from the traces: tokens and FLOPs computed, forward times measured (median of the "
        "timed runs; on a shared CPU they vary by tens of percent from run to run). KL is KL(dense ‖ reducer)."
    )


@dataclass(frozen=True)
class _View:
    layer: int
    frame: int
    style: str
    heat: str | None
    vmin: float | None
    vmax: float | None


def _controls(clip: Clip, dense: Trace, traces: list[Trace]) -> _View:
    """The shared layer, frame and overlay, within what the traces allow."""
    frames = list(range(dense.cell[0] - 1, clip.num_frames, dense.cell[0]))  # each tubelet's last, as draw_frame
    c1, c2, c3 = st.columns([2, 2, 3])
    layer = LAYER.draw(c1, high=max(t.layers for t in traces))
    frame = FRAME.draw(c2, choices=frames, format_func=lambda f: f"{f} (t'={f // dense.cell[0]})")
    style = STYLE.draw(c3, choices=shared_styles(traces))
    heat = vmin = vmax = None
    if style == "heat":
        heat = HEAT_VALUE.draw(
            choices=shared_heat_values(traces), format_func=lambda n: values.describe(n, trace=traces[0]).label
        )
        legends = [heat_legend(t, heat, min(layer, t.layers)) for t in traces]
        vmin, vmax = min(g.vmin for g in legends), max(g.vmax for g in legends)
        heat_bar_view(dataclasses.replace(legends[0], vmin=vmin, vmax=vmax), values.describe(heat, trace=traces[0]))
        st.caption("One colour scale for every column, so equal colours mean equal values.")
    else:
        st.caption(STYLE_HELP[style])
    return _View(layer, frame, style, heat, vmin, vmax)


def _column(name: str, trace: Trace, clip: Clip, dense: Trace, view: _View) -> None:
    st.caption(knob_text(name, trace))
    layer = min(view.layer, trace.layers)
    # no "value": run length is RLT's alone, so never a shared overlay
    value = {"heat": view.heat, "boxes": "tube" if "tube" in trace.values else None}
    image = draw_frame(
        clip.frames[view.frame],
        trace,
        layer,
        view.frame // trace.cell[0],
        view.style,
        value.get(view.style),
        frames=clip.frames,
        vmin=view.vmin,
        vmax=view.vmax,
    )
    last = f" (its last; {view.layer} asked)" if layer < view.layer else ""
    st.image(
        image,
        width="stretch",
        output_format="PNG",
        caption=f"{trace.tokens_per_layer[layer]} tokens at layer {layer}{last}, frame {view.frame}.",
    )
    numbers = cost(trace, dense)
    st.metric(
        "Tokens per layer (average)",
        f"{numbers.average_tokens:.0f}",
        f"{numbers.token_fraction - 1:+.0%} vs dense",
        delta_color="inverse",
        help=f"Dense: {np.mean(dense.tokens_per_layer):.0f}. The average over the layers is what the budget fixes.",
    )
    st.metric(
        "GFLOPs",
        f"{numbers.gflops:.1f}",
        f"{numbers.flops_fraction - 1:+.0%} vs dense",
        delta_color="inverse",
        help=f"Computed; a multiply-add counts 2. Dense: {dense.flops.sum() / 1e9:.1f} G.",
    )
    st.metric(
        f"Forward ({trace.meta['device']})",
        f"{numbers.milliseconds:.0f} ms",
        f"{numbers.speedup:.2f}× speedup vs dense",
        delta_color="off",
        delta_arrow="off",
        help=f"Measured: median of {trace.meta['timing_runs']} run(s). Dense: {dense.seconds['forward'] * 1e3:.0f} ms.",
    )
    if trace.logits is None or dense.logits is None:
        st.caption("No classifier head: there is no prediction to compare.")
        return
    st.markdown(
        "**Top-5**  \n"
        + "  \n".join(f"{i + 1}. {row['label']}: {row['probability']:.1%}" for i, row in enumerate(trace.top_k(5)))
    )
    st.markdown(change_text(prediction_change(dense.logits, trace.logits), dense, trace))


def comparison_rows(dense: Trace, traces: dict[str, Trace]) -> list[dict[str, object]]:
    """One row per trace, dense first: the numbers of the columns, for the table."""
    rows = []
    for name, trace in {"dense": dense, **traces}.items():
        numbers = cost(trace, dense)
        fit = trace.meta.get("budget")
        row: dict[str, object] = {
            "reducer": name,
            "knob": f"{fit['knob']} = {fit['value']:.3g}" if fit else "",
            "tokens/layer": round(numbers.average_tokens, 1),
            "of dense": f"{numbers.token_fraction:.0%}",
            "GFLOPs": round(numbers.gflops, 2),
            "FLOPs saved": f"{1 - numbers.flops_fraction:.0%}",
            "forward ms": round(numbers.milliseconds, 1),
            "speedup": f"{numbers.speedup:.2f}×",
        }
        if trace.logits is not None and dense.logits is not None:
            change = prediction_change(dense.logits, trace.logits)
            row |= {
                "top-1": trace.label(change.top1),
                "same top-1": change.same_top1,
                "P(dense top-1)": f"{change.kept_probability:.1%}",
                "total variation": round(change.total_variation, 4),
                "KL": round(change.kl, 4),
            }
        rows.append(row)
    return rows
