"""report.html: a scan folder's views as one page that opens offline (plotly.js inside, once).

Every string that comes from the data (file names, labels, predictions) is HTML-escaped; plotly escapes what it
puts in its figures' JSON itself.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from . import charts

if TYPE_CHECKING:  # the scan package's result; only its fields are read here
    from . import ScanResult

APP_URL = "http://localhost:8501/"  # where `token-explorer app` serves the explorer by default
MAX_TIMELINES = 6  # videos drawn along time: those with the most windows
MAX_ROWS = 200  # rows of the changed-windows and errors tables
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; }
"""


def write_report(result: ScanResult, app_url: str = APP_URL) -> Path:
    """Write DIR/report.html for a scan and return its path. Links open each changed window in the explorer served
    at `app_url`."""
    summary, windows = result.summary, result.windows
    settings = charts.link_settings(summary)
    parts: list[str | go.Figure] = [_head(result)]
    parts += ["<h2>Per reducer and budget</h2>", _table(_formatted_summary(summary))]
    if summary.get("rows"):
        parts.append(charts.accuracy_vs_tokens(summary))
    if (windows["reducer"] != charts.DENSE).any():
        parts.append(charts.kept_distribution(windows))
    parts += _timelines(windows)
    classes = charts.per_class(windows)
    if len(classes):
        parts += ["<h2>Accuracy per class</h2>", _table(_percent(classes, classes.columns[2:]))]
    parts += _changed(windows, settings, app_url)
    parts += _errors(result.errors)
    body, included = [], False
    for part in parts:  # plotly.js goes in once, with the first figure
        body.append(part if isinstance(part, str) else _figure(part, with_plotly=not included))
        included = included or not isinstance(part, str)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Scan report: {html.escape(result.folder.name)}</title><style>{STYLE}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    path = Path(result.folder) / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _head(result: ScanResult) -> str:
    summary = result.summary
    model = summary.get("model", {})
    settings = summary.get("settings", {})
    unmatched = summary.get("labels", {}).get("unmatched", [])
    lines = [
        f"<h1>Scan: {summary.get('videos', 0)} videos, {summary.get('windows', 0)} windows, "
        f"{summary.get('errors', 0)} errors</h1>",
        f"<p>Folder <code>{html.escape(str(result.folder))}</code>; inputs: "
        + ", ".join(f"<code>{html.escape(str(p))}</code>" for p in summary.get("inputs", []))
        + "</p>",
        f"<p>Model: {html.escape(str(model.get('name', '?')))}; {settings.get('frames', '?')} frames at stride "
        f"{settings.get('stride', '?')}, {settings.get('size', '?')} px; "
        f"{summary.get('seconds', 0):.1f} s ({summary.get('windows_per_second', 0):.2f} windows/s).</p>",
    ]
    if unmatched:
        lines.append(
            '<p class="note">Labels that match no class of the model (not scored): '
            + html.escape(", ".join(map(str, unmatched)))
            + "</p>"
        )
    return "\n".join(lines)


def _timelines(windows: pd.DataFrame) -> list[str | go.Figure]:
    """Timelines of the videos with more than one window, most windows first, MAX_TIMELINES at most."""
    long = charts.long_videos(windows)
    if not long:
        return []
    drawn = long[:MAX_TIMELINES]
    said = (
        "the video"
        if len(long) == 1
        else f"the {len(drawn)} videos with the most windows (of {len(long)} with more than one)"
    )
    return [
        "<h2>Along the video</h2>",
        f'<p class="note">Timelines of {said}: kept tokens per window for each reducer, a cross where its top-1 '
        "differs from dense, and dense's prediction as a band below.</p>",
        *(charts.timeline(windows, video) for video in drawn),
    ]


def _changed(windows: pd.DataFrame, settings: dict, app_url: str) -> list[str | go.Figure]:
    changed = charts.changed_windows(windows, settings)
    if changed.empty:
        return ["<h2>Changed windows</h2>", "<p>Every reducer's top-1 agrees with dense on every window.</p>"]
    shown = changed.head(MAX_ROWS)
    table = _percent(shown.drop(columns=["video", "reducer", "budget", "link"]), ["probability", "kept"])
    table["start_s"] = shown["start_s"].map("{:.2f}".format)
    table["end_s"] = shown["end_s"].map("{:.2f}".format)
    note = f"The first {MAX_ROWS} of {len(changed)}." if len(changed) > MAX_ROWS else f"{len(changed)} in all."
    return [
        "<h2>Changed windows</h2>",
        f"<p class=\"note\">Windows where a reducer's top-1 differs from dense's. {note} Each link opens the window "
        f"in the explorer served at {html.escape(app_url)} (<code>token-explorer app</code>).</p>",
        _table(table, links=[app_url + link for link in shown["link"]]),
    ]


def _errors(errors: pd.DataFrame) -> list[str | go.Figure]:
    if errors.empty:
        return []
    shown = errors.head(MAX_ROWS)
    note = f"The first {MAX_ROWS} of {len(errors)}." if len(errors) > MAX_ROWS else f"{len(errors)} in all."
    return ["<h2>Errors</h2>", f'<p class="note">Videos and windows that could not be read. {note}</p>', _table(shown)]


def _formatted_summary(summary: dict) -> pd.DataFrame:
    table = _percent(charts.summary_table(summary), ["accuracy", "agrees with dense", "kept"])
    for column, digits in (("kept tokens", 0), ("tokens/layer", 0), ("GFLOPs", 2), ("ms", 1)):
        table[column] = table[column].map(f"{{:.{digits}f}}".format)
    return table


def _percent(table: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """The table with these columns (fractions) written as percentages; a missing value as a dash."""
    table = table.copy()
    for column in columns:
        table[column] = table[column].map(lambda v: "–" if pd.isna(v) else f"{v:.1%}").astype(object)
    return table


def _table(frame: pd.DataFrame, links: list[str] | None = None) -> str:
    """An HTML table, every cell escaped; `links`: one URL per row, in a last column."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns) + ("<th>explorer</th>" if links else "")
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = "".join(_cell(value) for value in row)
        if links:
            cells += f'<td><a href="{html.escape(links[i])}">open</a></td>'
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell(value: object) -> str:
    if pd.api.types.is_scalar(value) and pd.isna(value):  # None, NaN, pandas' NA
        return "<td>–</td>"
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f"<td{' class=n' if number else ''}>{html.escape(str(value))}</td>"


def _figure(figure: go.Figure, with_plotly: bool) -> str:
    """The figure as an HTML piece, in plotly's own look: importing Streamlit makes its theme plotly's default, and
    that theme is drawn by Streamlit's frontend, not by plotly.js alone."""
    figure.update_layout(template="plotly_white")
    return pio.to_html(figure, include_plotlyjs=with_plotly, full_html=False, config={"displaylogo": False})
