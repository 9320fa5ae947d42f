"""A scan's figures and tables (plotly, pandas; no Streamlit calls): pure functions of its windows table
(windows.parquet) and summary (summary.json), shared by the app's Scan page and the offline report.

Each (reducer, budget) pair of a scan is a *run*, named by run_label(): "dense", "rlt" (at its own settings),
"rlt @ 50%". Links into the explorer are built from the explorer's own widget declarations (explorer/ui/sidebar.py),
so that they carry only what its widgets accept.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from explorer.charts import LAYOUT, accuracy_budget
from explorer.ui import sidebar

DENSE = "none"  # the dense run's reducer; its budget is null
KEYS = ["video", "window"]


def run_label(reducer: str, budget: float | None) -> str:
    """A run's name: "dense", the reducer spec at its own settings, or the spec @ its budget."""
    if reducer == DENSE:
        return "dense"
    if budget is None or math.isnan(budget):  # null in summary.json, NaN in windows.parquet
        return reducer
    return f"{reducer} @ {budget:.0%}"


def labelled(windows: pd.DataFrame) -> pd.DataFrame:
    """The windows with their run's name as the column "run"."""
    return windows.assign(run=[run_label(r, b) for r, b in zip(windows["reducer"], windows["budget"])])


def runs(windows: pd.DataFrame) -> list[str]:
    """The runs' names in the table's order (dense first, as a scan writes them)."""
    return list(dict.fromkeys(labelled(windows)["run"]))


def summary_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """summary.json's rows as a table: a run per row; accuracy, agreement and kept as fractions."""
    rows = summary["rows"]
    return pd.DataFrame(
        {
            "run": [run_label(r["reducer"], r["budget"]) for r in rows],
            "windows": [r["windows"] for r in rows],
            "accuracy": [r["accuracy"] for r in rows],
            "agrees with dense": [r["agreement"] for r in rows],
            "kept tokens": [r["kept_tokens"] for r in rows],
            "kept": [r["kept_fraction"] for r in rows],
            "tokens/layer": [r["avg_tokens"] for r in rows],
            "GFLOPs": [r["gflops"] for r in rows],
            "ms": [r["ms"] for r in rows],
        }
    )


def long_videos(windows: pd.DataFrame) -> list[str]:
    """The videos with more than one window, most windows first: those a timeline shows."""
    counts = windows[windows["reducer"] == DENSE].groupby("video", sort=False).size()
    return list(counts[counts > 1].sort_values(ascending=False, kind="stable").index)


def with_dense(windows: pd.DataFrame) -> pd.DataFrame:
    """The rows of every run but dense, each with its window's dense top-1 (dense_top1, dense_top1_index)."""
    dense = windows.loc[windows["reducer"] == DENSE, [*KEYS, "top1", "top1_index"]]
    dense = dense.rename(columns={"top1": "dense_top1", "top1_index": "dense_top1_index"})
    return labelled(windows[windows["reducer"] != DENSE]).merge(dense, on=KEYS, how="inner")


def timeline(windows: pd.DataFrame, video: str) -> go.Figure:
    """One video along time: the kept fraction of each window (x: its start) for every run but dense, one line
    each (dotted: its mean tokens per layer, as a fraction of dense's), a cross where the run's top-1 differs
    from dense's; below, dense's top-1 as a band coloured by class.

    Every point and band carries its window's index and its run's name as customdata[0] and [1]: the Scan page
    picks a window and run by them."""
    rows = labelled(windows[windows["video"] == video])
    dense = rows[rows["reducer"] == DENSE].sort_values("start_s")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.82, 0.18], vertical_spacing=0.04)
    colors = qualitative.Plotly
    for i, (name, run) in enumerate(rows[rows["reducer"] != DENSE].groupby("run", sort=False)):
        run = run.sort_values("start_s")
        color = colors[i % len(colors)]
        per_layer = 100 * run["avg_tokens"] / run["dense_tokens"]
        fig.add_trace(
            go.Scatter(
                x=run["start_s"],
                y=100 * run["kept_fraction"],
                name=name,
                legendgroup=name,
                mode="lines+markers",
                line_color=color,
                customdata=run[["window", "run", "top1", "top1_prob"]].assign(avg=per_layer),
                hovertemplate="window %{customdata[0]} at %{x:.1f} s: %{y:.0f}% kept, %{customdata[4]:.0f}% per layer"
                "<br>top-1 %{customdata[2]} (%{customdata[3]:.0%})<extra>%{customdata[1]}</extra>",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(  # merging reducers keep every token at block 1: their saving shows per layer
            go.Scatter(
                x=run["start_s"],
                y=per_layer,
                name=f"{name}, mean per layer",
                legendgroup=name,
                mode="lines",
                line=dict(color=color, dash="dot"),
                hovertemplate="%{y:.0f}% of dense's tokens per layer<extra>" + name + "</extra>",
            ),
            row=1,
            col=1,
        )
    changed = with_dense(rows)
    changed = changed[changed["top1_index"] != changed["dense_top1_index"]]
    if len(changed):
        fig.add_trace(
            go.Scatter(
                x=changed["start_s"],
                y=100 * changed["kept_fraction"],
                name="top-1 differs from dense",
                mode="markers",
                marker=dict(symbol="x", size=11, color="black"),
                customdata=changed[["window", "run", "top1", "dense_top1"]],
                hovertemplate="window %{customdata[0]}, %{customdata[1]}: %{customdata[2]} "
                "(dense: %{customdata[3]})<extra></extra>",
            ),
            row=1,
            col=1,
        )
    # Each window's band reaches the next window's start (its own end for the last, or when windows leave gaps).
    ends = dense["start_s"].shift(-1).fillna(dense["end_s"]).clip(upper=dense["end_s"])
    widths = (ends - dense["start_s"]).clip(lower=1e-3)
    palette = qualitative.Pastel
    for i, (name, group) in enumerate(dense.assign(width=widths).groupby("top1", sort=False)):
        fig.add_trace(
            go.Bar(
                x=group["start_s"] + group["width"] / 2,
                y=[1] * len(group),
                width=group["width"],
                name=f"dense: {name}",
                legendgroup="dense",
                marker=dict(color=palette[i % len(palette)], line_width=0),
                customdata=group[["window", "run", "top1", "top1_prob", "start_s", "end_s"]],
                hovertemplate="window %{customdata[0]}, %{customdata[4]:.1f}–%{customdata[5]:.1f} s: "
                "dense top-1 %{customdata[2]} (%{customdata[3]:.0%})<extra></extra>",
            ),
            row=2,
            col=1,
        )
    fig.update_yaxes(title_text="tokens (% of dense)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(showticklabels=False, title_text="dense", row=2, col=1)
    fig.update_xaxes(title_text="window start (s)", row=2, col=1)
    fig.update_layout(
        **{**LAYOUT, "height": 420, "legend": dict(orientation="h", y=-0.2)},
        title=f"Along {os.path.basename(video)}: tokens entering block 1 (dotted: per layer), dense's top-1",
        bargap=0,
    )
    return fig


def accuracy_vs_tokens(summary: Mapping[str, Any]) -> go.Figure:
    """From summary.json: each reducer's accuracy (agreement with dense when no label matched) and forward time
    against the tokens it kept (per layer, % of dense), one line through its budgets (explorer.charts'
    accuracy_budget)."""
    rows = sorted(summary["rows"], key=lambda r: r["reducer"] != DENSE)  # dense first, as accuracy_budget wants
    scored = rows[0]["accuracy"] is not None
    measure = "accuracy" if scored else "agreement"
    fig = accuracy_budget(
        {
            "rows": [
                {
                    "reducer": r["reducer"],
                    "average_tokens": r["avg_tokens"],
                    "accuracy": r[measure],
                    "forward_ms": r["ms"],
                }
                for r in rows
            ]
        }
    )
    if not scored:
        fig.layout.annotations[0].text = "Agreement with dense (no label matched the model's classes)"
        fig.update_yaxes(title_text="top-1 as dense's (%)", row=1, col=1)
    fig.update_xaxes(title_text="tokens per layer (% of dense, mean over windows)")
    return fig


def kept_distribution(windows: pd.DataFrame) -> go.Figure:
    """How the tokens kept vary over windows, per run: at block 1 (content-adaptive reducers such as RLT vary most)
    and averaged over the layers (merging reducers keep every token at block 1, then merge)."""
    rows = labelled(windows[windows["reducer"] != DENSE])
    fig = go.Figure()
    for name, values in (
        ("entering block 1", rows["kept_fraction"]),
        ("average over layers", rows["avg_tokens"] / rows["dense_tokens"]),
    ):
        fig.add_trace(go.Box(x=rows["run"], y=100 * values, name=name, boxpoints="outliers"))
    fig.update_layout(
        title="Tokens kept per window (% of dense)",
        yaxis_title="% of dense",
        yaxis_rangemode="tozero",
        boxmode="group",
        **LAYOUT,
    )
    return fig


def per_class(windows: pd.DataFrame) -> pd.DataFrame:
    """Per class (the model's label a window's label matched): its windows, then each run's accuracy (0-1) as a
    column, in the runs' order. Empty when no label matched."""
    scored = labelled(windows[windows["true_label"].notna()])
    if scored.empty:
        return pd.DataFrame(columns=["class", "windows"])
    counts = scored[scored["reducer"] == DENSE].groupby("true_label").size().rename("windows")
    accuracy = scored.assign(correct=scored["correct"].astype(float)).pivot_table(
        index="true_label", columns="run", values="correct", aggfunc="mean"
    )
    table = pd.concat([counts, accuracy[[run for run in runs(scored) if run in accuracy.columns]]], axis=1)
    return table.rename_axis("class").reset_index().fillna({"windows": 0}).astype({"windows": int})


def changed_windows(windows: pd.DataFrame, settings: Mapping[str, Any]) -> pd.DataFrame:
    """Every row where a run's top-1 differs from dense's on the same window, with the explorer link that opens that
    window with that run (explorer_link; `settings` as link_settings gives them)."""
    rows = with_dense(windows)
    rows = rows[rows["top1_index"] != rows["dense_top1_index"]].sort_values(KEYS, kind="stable")
    return pd.DataFrame(
        {
            "file": rows["video"].map(os.path.basename),
            "window": rows["window"],
            "start_s": rows["start_s"],
            "end_s": rows["end_s"],
            "run": rows["run"],
            "class": rows["true_label"],
            "dense top-1": rows["dense_top1"],
            "top-1": rows["top1"],
            "probability": rows["top1_prob"],
            "kept": rows["kept_fraction"],
            "link": [explorer_link(row, settings) for row in rows.to_dict("records")],
            "video": rows["video"],
            "reducer": rows["reducer"],
            "budget": rows["budget"],
        }
    ).reset_index(drop=True)


def link_settings(summary: Mapping[str, Any]) -> dict[str, Any]:
    """What explorer_link needs of a scan: its settings (frames, stride, size) and its model (size, weights)."""
    return {**summary.get("settings", {}), "model": summary.get("model", {})}


def explorer_link(row: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """The query that opens the explorer on one row of a scan: the row's video as a local path from its window's
    start, at the scan's frames, stride and size, on the scan's model, with the row's reducer at the settings it
    ran with (a budget's fitted knob included, so the explorer runs it without fitting again; those at the
    reducer's defaults left out, as the explorer's own links leave them).

    Relative ("?source=Local+path&path=..."): put the explorer's address in front. Built from the explorer's widget
    declarations, and only what those widgets accept: a value they would refuse (a size the explorer does not
    offer, a reducer parameter without a widget) is left out rather than warned about when the link is opened."""
    name = str(row["reducer"]).partition(":")[0]
    model = settings.get("model") or {}
    wanted = [
        (sidebar.SOURCE, "Local path"),
        (sidebar.PATH, row["video"]),
        (sidebar.START, float(row["start_s"])),
        (sidebar.FRAMES, settings.get("frames")),
        (sidebar.STRIDE, settings.get("stride")),
        (sidebar.SIZE, settings.get("size")),
        (sidebar.MODEL_SIZE, model.get("size")),
        (sidebar.WEIGHTS, model.get("weights")),
        (sidebar.REDUCER, name),
    ]
    params = sidebar.PARAMS.get(name, {})
    ran = json.loads(row["params"] or "{}").items()
    wanted += [(params[key], value) for key, value in ran if key in params and value != params[key].default]
    query = {}
    for declared, value in wanted:
        if value is None:
            continue
        text = declared.text(value)
        try:
            declared.parse(text)
        except ValueError:
            continue
        query[declared.key] = text
    return "?" + urlencode(query)
