"""Plotly figures of TubeViT's sparse tubes (no Streamlit): the tokens' boxes in the video, tokens per tube.

A tube keeps one colour everywhere: `tube_colours` serves the 2-D drawings as well.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, qualitative

from .charts import LAYOUT

HIGHLIGHT_COLOUR = (255, 230, 0)  # as the focused token in the overlays
# one pen stroke over a box's 12 edges (3 of them drawn twice), corner c = (t bit 2, y bit 1, x bit 0)
_PATH = np.array([0, 1, 3, 2, 0, 4, 5, 1, 5, 7, 3, 7, 6, 2, 6, 4])
_STROKE = len(_PATH) + 1  # points per box, with the gap


def tube_colours(count: int) -> np.ndarray:
    """(count, 3) uint8 RGB, one categorical colour per tube (plotly's D3 set, repeating after 10)."""
    palette = [hex_to_rgb(c) for c in qualitative.D3]
    return np.array([palette[i % len(palette)] for i in range(count)], dtype=np.uint8).reshape(count, 3)


def _rgb(colour: Sequence[int]) -> str:
    return "rgb({}, {}, {})".format(*(int(c) for c in colour))


def _corners(boxes: np.ndarray) -> np.ndarray:
    """(N, 8, 3) plot coordinates (x px, t frames, y px) of each [t0, t1, y0, y1, x0, x1) box's corners."""
    bits = (np.arange(8)[:, None] >> np.array([2, 1, 0])) & 1  # 8, (t, y, x)
    t = boxes[:, None, 0 + bits[:, 0]]
    y = boxes[:, None, 2 + bits[:, 1]]
    x = boxes[:, None, 4 + bits[:, 2]]
    return np.concatenate([x, t, y], axis=1).transpose(0, 2, 1)


def _strokes(boxes: np.ndarray) -> np.ndarray:
    """(N * _STROKE, 3) float32: each box's edges as one stroke, then a NaN row (a gap in the line)."""
    strokes = _corners(boxes)[:, _PATH]  # N, 16, 3
    gaps = np.full((len(strokes), 1, 3), np.nan)
    return np.concatenate([strokes, gaps], axis=1).reshape(-1, 3).astype(np.float32)


def boxes_3d(
    boxes: np.ndarray,
    tube_index: np.ndarray,
    size: Sequence[int],
    highlight: int | None = None,
    labels: Sequence[str] | None = None,
) -> go.Figure:
    """Every token's box as a wireframe in the video volume: x and y in pixels, t in frames (depth).

    One trace per tube (its legend entry toggles it), all its boxes one line broken by gaps, so 539
    boxes stay light. Hovering an edge names the token (its index in the tokenizer's output) and its box.
    `highlight` is a token index drawn solid in the focus colour; `labels` names the tubes (default
    'tube 1', ...). The video's own volume is outlined in grey, so gaps between boxes show.
    """
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 6)
    tube_index = np.asarray(tube_index)
    count = len(labels) if labels is not None else int(tube_index.max(initial=-1)) + 1
    labels = list(labels) if labels is not None else [f"tube {i + 1}" for i in range(count)]
    colours = tube_colours(count)
    T, H, W = size
    fig = go.Figure()
    volume = _strokes(np.array([[0, T, 0, H, 0, W]]))
    fig.add_trace(
        go.Scatter3d(
            x=volume[:, 0],
            y=volume[:, 1],
            z=volume[:, 2],
            mode="lines",
            name="video",
            line=dict(color="grey", width=1),
            hoverinfo="skip",
        )
    )
    tokens = np.arange(len(boxes))
    for i, label in enumerate(labels):
        mine = tube_index == i
        if not mine.any():
            continue
        points = _strokes(boxes[mine])
        info = np.repeat(np.column_stack([tokens[mine], boxes[mine]]), _STROKE, axis=0).astype(np.int32)
        fig.add_trace(
            go.Scatter3d(
                x=points[:, 0],
                y=points[:, 1],
                z=points[:, 2],
                mode="lines",
                name=f"{label} ({mine.sum()})",
                line=dict(color=_rgb(colours[i]), width=2),
                opacity=0.35 if highlight is not None else 1.0,
                customdata=info,
                hovertemplate="token %{customdata[0]}<br>t %{customdata[1]}-%{customdata[2]}, "
                "y %{customdata[3]}-%{customdata[4]}, x %{customdata[5]}-%{customdata[6]}<extra>" + label + "</extra>",
            )
        )
    if highlight is not None:
        corners = _corners(boxes[highlight : highlight + 1])[0]
        t0, t1, y0, y1, x0, x1 = boxes[highlight]
        fig.add_trace(
            go.Mesh3d(  # the box's 12 triangles, from its 8 corners
                x=corners[:, 0],
                y=corners[:, 1],
                z=corners[:, 2],
                alphahull=0,
                opacity=0.5,
                color=_rgb(HIGHLIGHT_COLOUR),
                name=f"token {highlight}",
                showlegend=True,
                hovertemplate=f"token {highlight}: t {t0}-{t1}, y {y0}-{y1}, x {x0}-{x1}<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"{len(boxes)} tube tokens in a {T} x {H} x {W} video",
        scene=dict(
            xaxis_title="x (px)",
            yaxis_title="t (frames)",
            zaxis_title="y (px)",
            xaxis_range=[0, W],
            yaxis_range=[0, T],
            zaxis_range=[H, 0],  # image rows run downwards
            aspectmode="manual",
            aspectratio=dict(x=1, y=1.5, z=H / W),
            camera=dict(eye=dict(x=1.4, y=-2.2, z=0.8)),
        ),  # frame 0 in front, time running away
        **{**LAYOUT, "height": 520, "legend": dict(orientation="v")},
    )
    return fig


def tube_counts(counts: Sequence[int], labels: Sequence[str]) -> go.Figure:
    """Tokens per tube as bars, in the tubes' colours."""
    colours = [_rgb(c) for c in tube_colours(len(labels))]
    fig = go.Figure(
        go.Bar(
            x=list(labels),
            y=list(counts),
            marker_color=colours,
            text=list(counts),
            hovertemplate="%{x}: %{y} tokens<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Tokens per tube ({int(sum(counts))} in all)",
        xaxis_title="tube",
        yaxis_title="tokens",
        xaxis_type="category",
        **LAYOUT,
    )
    return fig
