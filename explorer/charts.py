"""Plotly figures built from traces (no Streamlit)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .trace import Trace
from .values import token_sizes

LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=300, legend=dict(orientation="h", y=-0.25))


def tokens_per_layer(traces: dict[str, Trace], layer: int | None = None) -> go.Figure:
    """Tokens in the sequence after each block (0 = model input), one line per trace."""
    fig = go.Figure()
    for name, trace in traces.items():
        fig.add_trace(
            go.Scatter(
                x=list(range(trace.layers + 1)),
                y=trace.tokens_per_layer,
                name=name,
                mode="lines+markers",
                line_shape="hv",
            )
        )
    if layer is not None:
        fig.add_vline(x=layer, line_dash="dot", line_color="grey")
    fig.update_layout(
        title="Tokens per layer",
        xaxis_title="layer (0 = input, l = after block l)",
        yaxis_title="tokens",
        yaxis_rangemode="tozero",
        **LAYOUT,
    )
    return fig


def flops_per_layer(traces: dict[str, Trace]) -> go.Figure:
    """GFLOPs of each block, grouped bars per trace."""
    fig = go.Figure()
    for name, trace in traces.items():
        fig.add_trace(go.Bar(x=list(range(1, trace.layers + 1)), y=trace.flops[1:] / 1e9, name=name))
    fig.update_layout(title="GFLOPs per block", xaxis_title="block", yaxis_title="GFLOPs", barmode="group", **LAYOUT)
    return fig


def value_histogram(trace: Trace, name: str, layer: int) -> go.Figure:
    """How many tokens carry each value of an integer per-token quantity (e.g. run length)."""
    values = np.asarray(trace.values[name][layer], dtype=int)
    top = max(int(values.max(initial=1)), trace.grid[0])
    counts = np.bincount(values, minlength=top + 1)[1:]
    fig = go.Figure(go.Bar(x=list(range(1, top + 1)), y=counts))
    label = name.replace("_", " ")
    fig.update_layout(title=f"Tokens by {label}", xaxis_title=label, yaxis_title="tokens", **LAYOUT)
    return fig


def cluster_sizes(trace: Trace, layer: int) -> go.Figure:
    """How many tokens stand for how many cells at a layer. Up to 8 cells one bar per size; past that,
    bins double in width (9-16, 17-32, ...), as merged clusters can reach hundreds of cells."""
    sizes = token_sizes(trace, layer)
    sizes = sizes[sizes > 0]  # a token with no cell of its own (none yet) is not a cluster
    labels, tokens, cells = [], [], []
    for low, high in _size_bins(int(sizes.max(initial=1))):
        inside = sizes[(sizes >= low) & (sizes <= high)]
        labels.append(str(low) if low == high else f"{low}-{high}")
        tokens.append(inside.size)
        cells.append(int(inside.sum()))
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=tokens,
            customdata=cells,
            hovertemplate="%{x} cells: %{y} tokens covering %{customdata} cells<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Tokens by cluster size at layer {layer}",
        xaxis_title="cells per token",
        yaxis_title="tokens",
        xaxis_type="category",
        **LAYOUT,
    )
    return fig


def _size_bins(top: int, single: int = 8) -> list[tuple[int, int]]:
    """(low, high) inclusive: 1..single one by one, then powers of two up to `top`."""
    bins = [(size, size) for size in range(1, min(top, single) + 1)]
    low = single + 1
    while low <= top:
        bins.append((low, 2 * low - 2))
        low = 2 * low - 1
    return bins


def accuracy_budget(result: dict) -> go.Figure:
    """Accuracy and measured time per clip against tokens kept, one line per reducer (explorer/accuracy.py)."""
    from plotly.subplots import make_subplots

    rows = result["rows"]
    dense = rows[0]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Accuracy", "Forward time per clip (measured)"))
    for name in dict.fromkeys(r["reducer"] for r in rows[1:]):
        line = sorted((r for r in rows if r["reducer"] == name), key=lambda r: r["average_tokens"])
        x = [100 * r["average_tokens"] / dense["average_tokens"] for r in line]
        group = dict(name=name, legendgroup=name, mode="lines+markers")
        fig.add_trace(go.Scatter(x=x, y=[100 * r["accuracy"] for r in line], **group), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=[r["forward_ms"] for r in line], showlegend=False, **group), row=1, col=2)
    for col, y in ((1, 100 * dense["accuracy"]), (2, dense["forward_ms"])):
        fig.add_trace(
            go.Scatter(
                x=[100],
                y=[y],
                name="dense",
                legendgroup="dense",
                mode="markers",
                marker=dict(symbol="star", size=12, color="black"),
                showlegend=col == 1,
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(title_text="tokens kept (% of dense, average over layers)", autorange="reversed")
    fig.update_yaxes(title_text="accuracy (%)", row=1, col=1)
    fig.update_yaxes(title_text="ms per clip", rangemode="tozero", row=1, col=2)
    fig.update_layout(**{**LAYOUT, "height": 380})
    return fig


def slot_spans(trace: Trace, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Per time slot t': how many tokens are homed there at `layer`, and how many slots those tokens cover
    on average (1: each stays in its own slot; more: merged or run-length tokens reaching along time)."""
    owner = trace.owner[layer].reshape(trace.grid[0], -1)
    slots = np.broadcast_to(np.arange(trace.grid[0])[:, None], owner.shape)
    has = owner >= 0
    pairs = np.unique(owner[has].astype(np.int64) * trace.grid[0] + slots[has])  # each (token, slot) once
    span = np.bincount(pairs // trace.grid[0], minlength=len(trace.values["cell"][layer]))
    home_slot = np.asarray(trace.values["cell"][layer]) // (trace.grid[1] * trace.grid[2])
    counts = np.bincount(home_slot, minlength=trace.grid[0])
    spans = np.bincount(home_slot, weights=span, minlength=trace.grid[0])
    return counts, np.divide(spans, counts, out=np.zeros(trace.grid[0]), where=counts > 0)


def token_timeline(trace: Trace, layer: int | None = None) -> go.Figure:
    """A heat row per layer over the clip's time slots: the tokens homed in each slot (colour) and how far
    they reach along time (hover). The attention windows, when the run had them, are drawn as lines."""
    rows = [slot_spans(trace, layer_) for layer_ in range(trace.layers + 1)]
    counts = np.stack([c for c, _ in rows])
    spans = np.stack([s for _, s in rows])
    fig = go.Figure(
        go.Heatmap(
            z=counts,
            x=list(range(trace.grid[0])),
            y=list(range(trace.layers + 1)),
            customdata=spans,
            colorscale="Viridis",
            colorbar=dict(title="tokens"),
            hovertemplate="t'=%{x}, layer %{y}: %{z} tokens, each covering %{customdata:.2f} slots<extra></extra>",
        )
    )
    window = trace.meta.get("window")
    if window:
        for edge in range(window // trace.cell[0], trace.grid[0], window // trace.cell[0]):
            fig.add_vline(x=edge - 0.5, line_color="white", line_dash="dash")
    if layer is not None:
        fig.add_hline(y=layer, line_color="red", line_dash="dot")
    windows = f"; windows of {window} frames (dashed)" if window else "; attention over the whole clip"
    fig.update_layout(
        title=f"Tokens per time slot, per layer{windows}",
        xaxis_title=f"time slot t' ({trace.cell[0]} frames each)",
        yaxis_title="layer",
        yaxis_autorange="reversed",
        **{**LAYOUT, "height": 120 + 24 * (trace.layers + 1)},
    )
    return fig
