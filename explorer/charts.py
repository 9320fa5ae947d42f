"""Plotly figures built from traces (no Streamlit)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .trace import Trace

LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=300, legend=dict(orientation="h", y=-0.25))


def tokens_per_layer(traces: dict[str, Trace], layer: int | None = None) -> go.Figure:
    """Tokens in the sequence after each block (0 = model input), one line per trace."""
    fig = go.Figure()
    for name, trace in traces.items():
        fig.add_trace(go.Scatter(x=list(range(trace.layers + 1)), y=trace.tokens_per_layer, name=name,
                                 mode="lines+markers", line_shape="hv"))
    if layer is not None:
        fig.add_vline(x=layer, line_dash="dot", line_color="grey")
    fig.update_layout(title="Tokens per layer", xaxis_title="layer (0 = input, l = after block l)",
                      yaxis_title="tokens", yaxis_rangemode="tozero", **LAYOUT)
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
