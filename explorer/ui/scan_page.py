"""The Scan page (/scan): open a scan folder (`python -m explorer scan PATH... --out DIR`) or run a small scan here,
then look at it: a long video along time, a dataset per reducer and per class, and any window in the explorer.

st.navigation runs this file as a script (explorer/ui/page.py). Its widgets are plain Streamlit widgets keyed
scan_*, outside the explorer's link (widgets.py); the open folder is in this page's own link as ?folder=DIR, which
opens only once the user says so. A shared server (explorer/deployment.py) offers no scans: they read and write
its folders.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from explorer.accuracy import DEFAULT_BUDGETS, DEFAULT_REDUCERS
from explorer.analyze import ModelSpec
from explorer.deployment import shared
from explorer.errors import USER_ERRORS
from explorer.scan import ScanResult, ScanSettings, charts, load, scan
from explorer.ui.sidebar import MODEL_SIZE, NETWORKS

EXPLORER_URL = "./"  # the explorer is the app's default page: from /scan, "./?source=…" opens it
FOLDER = "scan_folder"  # the folder field's key
OPENED = "scan_opened"  # the folder last opened: plain state, kept while another page shows
LINKED = "scan_linked"  # a folder the page's link names, waiting for the user to open it
PICKED = "scan_picked"  # the timeline point last applied to the window and run pickers
LONG_SCAN = 3  # a scan of this many videos or fewer, each with several windows, shows them along time first
LISTED = 20  # files of a folder listed
PERCENT = st.column_config.NumberColumn(format="percent")
LINK = st.column_config.LinkColumn("explorer", display_text="Open in explorer")
SUMMARY_COLUMNS = {
    **dict.fromkeys(["accuracy", "agrees with dense", "kept"], PERCENT),
    **dict.fromkeys(["kept tokens", "tokens/layer"], st.column_config.NumberColumn(format="%.0f")),
    "GFLOPs": st.column_config.NumberColumn(format="%.2f"),
    "ms": st.column_config.NumberColumn(format="%.1f"),
}


def main() -> None:
    st.set_page_config(page_title="Scan · Token Reduction Explorer", page_icon="📊", layout="wide")
    st.title("Scan: long videos and datasets")
    st.caption(
        "A scan runs every window of every video through the dense model and each reducer. Open one, or run a "
        "small one here; then follow a long video along time, compare reducers over a dataset, and open any "
        "window in the explorer."
    )
    if shared():
        st.info(
            "Scans read videos from this server's folders and write their results there, so a shared server "
            "does not offer them. Run `python -m explorer scan PATH... --out DIR` on your own machine and open "
            "DIR/report.html, or this page in your own copy of the explorer."
        )
        return
    state = st.session_state
    if FOLDER not in state:  # the page's first run in this session, or back from another page
        state[FOLDER] = state.get(OPENED) or ""
        if not state[FOLDER] and st.query_params.get("folder"):
            state[LINKED] = st.query_params["folder"]
    if state.get(LINKED):
        ask_to_open(state[LINKED])
    opener = st.container()  # drawn after the scan below, so that a scan just finished opens at once
    with st.expander("Run a small scan here", expanded=not state[FOLDER]):
        finished = scan_ui()
    if finished:
        st.session_state[FOLDER] = finished
    with opener:
        result = open_ui()
    if result is not None:
        scan_views(result)


# -- opening a scan


def ask_to_open(folder: str) -> None:
    """A link names a folder: nothing reads it (or says whether it exists) until the user opens it."""
    box = st.container(border=True)
    box.warning("This link asks to open a scan folder on this machine. Nothing is read until you say so:")
    box.code(folder, language=None, wrap_lines=True)
    left, right = box.columns(2)
    left.button("Open it", key="scan_link_open", type="primary", on_click=settle_link, args=(True,))
    right.button("Ignore it", key="scan_link_ignore", on_click=settle_link, args=(False,))


def settle_link(accept: bool) -> None:
    """A button's callback: runs before the folder field is drawn, so it shows the folder at once."""
    folder = st.session_state.pop(LINKED, "")
    if accept:
        st.session_state[FOLDER] = folder


def open_ui() -> ScanResult | None:
    """The folder field; the scan in it, or None after saying why there is none."""
    text = st.text_input(
        "Scan folder",
        key=FOLDER,
        placeholder="scans/kinetics",
        help="A folder written by `python -m explorer scan PATH... --out DIR`, or by a scan run here.",
    ).strip()
    st.session_state[OPENED] = text
    if st.query_params.get("folder", "") != text and not st.session_state.get(LINKED):
        st.query_params.from_dict({"folder": text} if text else {})
    if not text:
        st.info("Enter a scan folder above, or run a small scan below.")
        return None
    folder = Path(text).expanduser()
    if not folder.is_dir():
        st.error(f"No folder at {folder}.")
        return None
    files_view(folder)
    try:
        return read_scan(str(folder.resolve()), stamp(folder))
    except USER_ERRORS as error:
        st.error(f"Not a scan: {error}")
        return None


def files_view(folder: Path) -> None:
    entries = sorted(folder.iterdir())
    listed = ", ".join(
        f"{entry.name} ({entry.stat().st_size / 1e3:,.0f} kB)" if entry.is_file() else f"{entry.name}/"
        for entry in entries[:LISTED]
    )
    more = f", and {len(entries) - LISTED} more" if len(entries) > LISTED else ""
    st.caption(f"In {folder}: {listed or 'nothing'}{more}.")


def stamp(folder: Path) -> tuple:
    """The scan's files' names, times and sizes: a scan written again is read again."""
    return tuple(
        (path.name, path.stat().st_mtime_ns, path.stat().st_size) for path in sorted(folder.glob("*")) if path.is_file()
    )


@st.cache_data(max_entries=4, show_spinner="Reading the scan…")
def read_scan(folder: str, files: tuple) -> ScanResult:
    """The scan in the folder; `files` (stamp()) is there for the cache's key."""
    return load(folder)


# -- running a scan


def scan_ui() -> str | None:
    """A small scan's settings and its start button; the scan's folder once it has run."""
    st.caption(
        "It runs in this session, window after window, on this machine. A large dataset is better scanned with "
        "`python -m explorer scan PATH... --out DIR` (`--engine ray` for several workers), then opened here."
    )
    source = st.text_input(
        "Video, folder or CSV to scan",
        key="scan_input",
        placeholder="/videos/match.mp4",
        help="A video, a folder of videos, a folder of class folders (their names are the labels), or a CSV of "
        "path,label rows.",
    ).strip()
    out = st.text_input(
        "Write the scan to",
        value="scans/latest",
        key="scan_out",
        help="A folder. A scan already there goes on: windows it has are not run again.",
    ).strip()
    model_col, weights_col = st.columns(2)
    network = model_col.selectbox("Network", NETWORKS, format_func=MODEL_SIZE.format_func, key="scan_model")
    weights = weights_col.text_input("Weights (optional)", key="scan_weights", help=MODEL_SIZE.help).strip()
    reducers = st.multiselect(
        "Reducers (dense always runs)", DEFAULT_REDUCERS, default=["rlt", "tome"], key="scan_reducers"
    )
    budgets_col, windows_col, stride_col = st.columns(3)
    budgets = budgets_col.multiselect(
        "Token budgets",
        DEFAULT_BUDGETS,
        format_func="{:.0%}".format,
        key="scan_budgets",
        help="Average tokens per layer, as a fraction of dense, each reducer's knob fitted per window. None: each "
        "reducer at its own settings.",
    )
    cap = windows_col.number_input("Windows per video, at most", 1, 100_000, 8, key="scan_windows")
    stride = stride_col.number_input("Temporal stride", 1, 64, 4, key="scan_stride")
    if not st.button("Start the scan", key="scan_start", type="primary", disabled=not (source and out)):
        return None
    settings = ScanSettings(
        model=ModelSpec(size=network, weights=weights or None),
        reducers=tuple(reducers),
        budgets=tuple(budgets) or None,
        stride=int(stride),
        windows=int(cap),
    )
    bar = st.progress(0.0, text="Reading the videos' headers…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"{done} of {total} windows")

    try:
        result = scan([Path(source).expanduser()], Path(out).expanduser(), settings, progress)
    except USER_ERRORS as error:
        st.error(str(error))
        return None
    summary = result.summary
    st.success(
        f"Scanned {summary['videos']} videos, {summary['windows']} windows ({summary['errors']} errors) in "
        f"{summary['seconds']:.1f} s into {result.folder}."
    )
    return str(result.folder)


# -- looking at a scan


def scan_views(result: ScanResult) -> None:
    summary, windows = result.summary, result.windows
    settings = charts.link_settings(summary)
    model = summary.get("model", {}).get("name", "?")
    report = result.folder / "report.html"
    st.caption(
        f"{summary['videos']} videos, {summary['windows']} windows, {summary['errors']} errors; {model}, "
        f"{settings.get('frames', '?')} frames at stride {settings.get('stride', '?')}, "
        f"{settings.get('size', '?')} px." + (f" The same views offline: {report}" if report.is_file() else "")
    )
    if windows.empty:
        st.warning("This scan has no window: no video could be read (the errors below say why).")
    else:
        st.dataframe(charts.summary_table(summary), hide_index=True, column_config=SUMMARY_COLUMNS)
        long = charts.long_videos(windows)
        along_first = bool(long) and len(long) == summary["videos"] <= LONG_SCAN  # a few long videos: no dataset
        if along_first:
            timeline_view(windows, long, settings)
        dataset_views(result, settings)
        if long and not along_first:
            timeline_view(windows, long, settings)
    if len(result.errors):
        with st.expander(f"Errors: {len(result.errors)} videos or windows could not be read"):
            st.dataframe(result.errors, hide_index=True)


def dataset_views(result: ScanResult, settings: dict) -> None:
    windows = result.windows
    st.subheader("Reducers over the scan")
    st.plotly_chart(charts.accuracy_vs_tokens(result.summary), key="scan_accuracy")
    st.plotly_chart(charts.kept_distribution(windows), key="scan_kept")
    classes = charts.per_class(windows)
    if len(classes):
        st.subheader("Accuracy per class")
        st.dataframe(classes, hide_index=True, column_config=dict.fromkeys(classes.columns[2:], PERCENT))
    st.subheader("Changed windows")
    changed = charts.changed_windows(windows, settings)
    if changed.empty:
        st.caption("Every reducer's top-1 agrees with dense on every window.")
        return
    st.caption(f"{len(changed)} rows where a reducer's top-1 differs from dense's on the same window.")
    st.dataframe(
        changed.drop(columns=["video", "reducer", "budget"]).assign(link=EXPLORER_URL + changed["link"]),
        hide_index=True,
        column_config={"link": LINK, "probability": PERCENT, "kept": PERCENT},
        key="scan_changed",
    )


def timeline_view(windows: pd.DataFrame, long: list[str], settings: dict) -> None:
    """A video along time; a window and run picked on the chart (or below) open in the explorer."""
    st.subheader("Along the video")
    counts = windows[windows["reducer"] == charts.DENSE].groupby("video").size()
    video = choose("Video", long, "scan_video", format_func=lambda v: f"{Path(v).name} ({counts[v]} windows)")
    event = st.plotly_chart(
        charts.timeline(windows, video), key="scan_timeline", on_select="rerun", selection_mode="points"
    )
    rows = charts.labelled(windows[windows["video"] == video])
    points = event.selection.points if event else []
    picked = (video, *points[0]["customdata"][:2]) if points and "customdata" in points[0] else None
    if picked and picked != st.session_state.get(PICKED):  # a new click on the chart: show that window and run
        st.session_state[PICKED] = picked
        st.session_state["scan_window"], st.session_state["scan_run"] = int(picked[1]), picked[2]
    window_col, run_col = st.columns(2)
    dense = rows[rows["reducer"] == charts.DENSE].set_index("window")
    window = choose(
        "Window",
        [int(w) for w in dense.index],
        "scan_window",
        window_col,
        format_func=lambda w: (
            f"{w}: {dense.at[w, 'start_s']:.1f}–{dense.at[w, 'end_s']:.1f} s, dense: {dense.at[w, 'top1']}"
        ),
    )
    run = choose("Run", charts.runs(rows), "scan_run", run_col, default=1)
    chosen = rows[rows["window"] == window]
    row = chosen[chosen["run"] == run].iloc[0]
    start, end = row["start_s"], row["end_s"]
    st.link_button(
        f"Open window {window} ({start:.1f}–{end:.1f} s) with {run} in the explorer",
        EXPLORER_URL + charts.explorer_link(row, settings),
    )
    st.dataframe(
        pd.DataFrame(
            {
                "run": chosen["run"],
                "kept": chosen["kept_fraction"],
                "tokens/layer": chosen["avg_tokens"].round(),
                "top-1": chosen["top1"],
                "probability": chosen["top1_prob"],
                "as dense": chosen["agrees_with_dense"],
                "link": [EXPLORER_URL + charts.explorer_link(r, settings) for r in chosen.to_dict("records")],
            }
        ),
        hide_index=True,
        column_config={"link": LINK, "probability": PERCENT, "kept": PERCENT},
    )


def choose(label: str, options: Sequence, key: str, where: Any = st, default: int = 0, **kwargs: Any) -> Any:
    """A selectbox whose kept choice goes back to `default` (an index, bounded) when this run does not offer it."""
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)
    return where.selectbox(label, options, index=min(default, len(options) - 1), key=key, **kwargs)


if __name__ == "__main__":
    main()
