"""The views of a scan (explorer/scan/charts.py, report.py, the app's Scan page) on scan folders built here
as the scan's contract describes them (windows.parquet, errors.parquet, summary.json), and on a real small scan."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from explorer.scan import charts, load, report
from explorer.scan.report import write_report
from explorer.ui.widgets import WIDGETS
from explorer.video import SAMPLES, sample_path

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
SCAN_PAGE = "explorer/ui/scan_page.py"  # relative to app.py, as AppTest.switch_page wants it
LONG = "/videos/a long video.mp4"
EVIL = "/videos/<script>.mp4"
CLASSES = ["still", "moving left"]
DENSE_TOKENS = 392
SETTINGS = {"frames": 16, "stride": 4, "size": 112, "model": {"size": "demo", "weights": None}}
RUNS = [("none", None, "{}"), ("rlt", 0.5, '{"tau": 0.25}'), ("tome", 0.5, '{"prop_attn": false, "r": 109, '
        '"r_list": "", "schedule": "constant"}')]  # fmt: skip


def row(video: str, window: int, reducer: str, budget: float | None, params: str, **values) -> dict:
    """One row of windows.parquet, as the scan's contract has it; `values` override the defaults."""
    start = 2.56 * window
    kept = {"none": DENSE_TOKENS, "rlt": 100 + 40 * window, "tome": DENSE_TOKENS}[reducer]
    tokens = [kept] * 13 if reducer != "tome" else [DENSE_TOKENS - 25 * layer for layer in range(13)]
    base = {
        "video": video,
        "window": window,
        "label": None,
        "true_label": None,
        "start_s": start,
        "end_s": start + 2.56,
        "reducer": reducer,
        "params": params,
        "budget": budget,
        "knob": None if budget is None else {"rlt": "tau", "tome": "r"}[reducer],
        "knob_value": None if budget is None else {"rlt": 0.25, "tome": 109.0}[reducer],
        "tokens_per_layer": tokens,
        "kept_tokens": kept,
        "dense_tokens": DENSE_TOKENS,
        "kept_fraction": kept / DENSE_TOKENS,
        "avg_tokens": float(np.mean(tokens)),
        "gflops": 0.7 * kept / DENSE_TOKENS,
        "ms": 10.0,
        "top1": "still",
        "top1_index": 0,
        "top1_prob": 0.9,
        "correct": None,
        "agrees_with_dense": True,
    }
    return base | values


def predicted(label: str, truth: str | None) -> dict:
    """The values of a row that predicts `label` on a window whose class is `truth` (None: unknown)."""
    return {"top1": label, "top1_index": CLASSES.index(label), "correct": None if truth is None else label == truth}


def make_windows() -> pd.DataFrame:
    """A long unlabelled video of 5 windows (RLT changes the prediction on windows 1 and 3), two labelled clips of
    one window (ToMe changes the second's), and a clip with a hostile name and an unmatched label (RLT changes it)."""
    rows = []
    for window in range(5):
        for reducer, budget, params in RUNS:
            label = "moving left" if reducer == "rlt" and window in (1, 3) else "still"
            rows.append(row(LONG, window, reducer, budget, params, **predicted(label, None)))
    for video, truth, changed_by in (("/data/still/a.mp4", "still", None), ("/data/left/b.mp4", "moving left", "tome")):
        for reducer, budget, params in RUNS:
            label = "still" if reducer == changed_by else truth
            rows.append(
                row(video, 0, reducer, budget, params, label=truth, true_label=truth, **predicted(label, truth))
            )
    for reducer, budget, params in RUNS:
        values = predicted("moving left" if reducer == "rlt" else "still", None)
        rows.append(row(EVIL, 0, reducer, budget, params, label="<b>Jumping</b>", **values))
    frame = pd.DataFrame(rows)
    dense = frame[frame["reducer"] == "none"].set_index(["video", "window"])["top1_index"]
    frame["agrees_with_dense"] = [
        dense[(v, w)] == i for v, w, i in zip(frame["video"], frame["window"], frame["top1_index"])
    ]
    return frame


def summarize(windows: pd.DataFrame) -> dict:
    """summary.json as the contract has it."""
    rows = []
    for (reducer, budget), group in windows.groupby(["reducer", windows["budget"].fillna(-1)], sort=False):
        scored = group["correct"].dropna()
        rows.append(
            {
                "reducer": reducer,
                "budget": None if budget < 0 else budget,
                "windows": len(group),
                "accuracy": float(scored.astype(bool).mean()) if len(scored) else None,
                "agreement": float(group["agrees_with_dense"].mean()),
                **{k: float(group[k].mean()) for k in ("kept_tokens", "kept_fraction", "avg_tokens", "gflops", "ms")},
            }
        )
    return {
        "schema_version": 1,
        "inputs": ["/videos", "/data"],
        "model": {"name": "demo model", "weights": None, "size": "demo", "labels": CLASSES},
        "settings": {
            "frames": 16,
            "stride": 4,
            "size": 112,
            "hop": None,
            "windows": None,
            "reducers": ["rlt", "tome"],
            "budgets": [0.5],
            "engine": "local",
            "workers": 1,
            "device": "auto",
            "precision": "auto",
        },
        "videos": int(windows["video"].nunique()),
        "windows": int((windows["reducer"] == "none").sum()),
        "errors": 1,
        "seconds": 1.5,
        "windows_per_second": 6.0,
        "labels": {"matched": ["still", "moving left"], "unmatched": ["<b>Jumping</b>"]},
        "rows": rows,
    }


def write_scan(folder: Path, windows: pd.DataFrame) -> Path:
    """A scan folder holding these windows, one error and their summary."""
    folder.mkdir(parents=True, exist_ok=True)
    windows.to_parquet(folder / "windows.parquet")
    errors = pd.DataFrame(
        {"video": ["/data/<img src=x onerror=alert(2)>.mp4"], "window": [None], "start_s": [None], "reason": ["bad"]}
    )
    errors.astype({"window": "Int64", "start_s": float}).to_parquet(folder / "errors.parquet")
    (folder / "summary.json").write_text(json.dumps(summarize(windows)))
    (folder / "summary.md").write_text("# Scan\n")
    return folder


@pytest.fixture
def windows() -> pd.DataFrame:
    return make_windows()


@pytest.fixture
def folder(tmp_path, windows) -> Path:
    return write_scan(tmp_path / "scan", windows)


def line_names(figure) -> list[str]:
    return [trace.name for trace in figure.data if trace.type == "scatter" and trace.mode == "lines+markers"]


def test_a_timeline_has_a_line_per_reducer_and_budget_and_marks_the_changed_windows(windows):
    figure = charts.timeline(windows, LONG)
    assert line_names(figure) == ["rlt @ 50%", "tome @ 50%"]
    rlt = next(t for t in figure.data if t.name == "rlt @ 50%")
    assert list(rlt.x) == pytest.approx([0, 2.56, 5.12, 7.68, 10.24])
    assert list(rlt.y) == pytest.approx([100 * (100 + 40 * w) / DENSE_TOKENS for w in range(5)])
    crosses = next(t for t in figure.data if t.name == "top-1 differs from dense")
    assert [c[0] for c in crosses.customdata] == [1, 3]
    bands = [t for t in figure.data if t.type == "bar"]
    assert [t.name for t in bands] == ["dense: still"] and len(bands[0].x) == 5
    assert list(bands[0].width) == pytest.approx([2.56] * 5)


def test_changed_windows_finds_exactly_the_rows_whose_top1_differs_from_dense(windows):
    changed = charts.changed_windows(windows, SETTINGS)
    found = set(zip(changed["video"], changed["window"], changed["run"]))
    assert found == {
        (LONG, 1, "rlt @ 50%"),
        (LONG, 3, "rlt @ 50%"),
        ("/data/left/b.mp4", 0, "tome @ 50%"),
        (EVIL, 0, "rlt @ 50%"),
    }
    b = changed[changed["video"] == "/data/left/b.mp4"].iloc[0]
    assert (b["dense top-1"], b["top-1"], b["class"]) == ("moving left", "still", "moving left")


def test_per_class_counts_windows_and_accuracy_per_run(windows):
    table = charts.per_class(windows).set_index("class")
    assert list(table.columns) == ["windows", "dense", "rlt @ 50%", "tome @ 50%"]
    assert table.loc["still", "windows"] == 1 and table.loc["moving left", "windows"] == 1
    assert table.loc["moving left", "dense"] == 1 and table.loc["moving left", "tome @ 50%"] == 0
    assert table.loc["still"].drop("windows").tolist() == [1, 1, 1]
    assert charts.per_class(windows[windows["true_label"].isna()]).empty


def test_accuracy_vs_tokens_draws_a_line_per_reducer_and_agreement_without_labels(windows):
    summary = summarize(windows)
    figure = charts.accuracy_vs_tokens(summary)
    names = {t.name for t in figure.data if t.showlegend is not False}
    assert names == {"rlt", "tome", "dense"}
    assert figure.layout.annotations[0].text == "Accuracy"
    unlabelled = summarize(windows.assign(correct=None, true_label=None))
    assert "Agreement" in charts.accuracy_vs_tokens(unlabelled).layout.annotations[0].text


def test_kept_distribution_has_a_box_per_run_at_block_1_and_over_the_layers(windows):
    figure = charts.kept_distribution(windows)
    assert [t.name for t in figure.data] == ["entering block 1", "average over layers"]
    assert set(figure.data[0].x) == {"rlt @ 50%", "tome @ 50%"}


def test_an_explorer_link_carries_the_window_the_run_and_the_model(windows):
    rlt = windows[(windows["reducer"] == "rlt") & (windows["window"] == 3)].iloc[0]
    query = parse_qs(urlparse(charts.explorer_link(rlt, SETTINGS)).query)
    assert {k: v[0] for k, v in query.items()} == {
        "source": "Local path",
        "path": LONG,
        "start": "7.68",
        "frames": "16",
        "stride": "4",
        "size": "112",
        "model_size": "demo",
        "reducer": "rlt",
        "param.rlt.tau": "0.25",
    }
    tome = windows[windows["reducer"] == "tome"].iloc[0]
    query = parse_qs(urlparse(charts.explorer_link(tome, SETTINGS | {"size": 100})).query)
    assert "size" not in query  # the explorer offers no 100 px: left out rather than refused when opened
    assert query["param.tome.r"] == ["109"]  # the fitted knob; the parameters at their defaults are left out
    assert not {"param.tome.schedule", "param.tome.r_list", "param.tome.prop_attn"} & set(query)
    assert set(query) <= set(WIDGETS)


def test_following_a_link_opens_the_explorer_at_that_video_start_and_reducer():
    st.cache_data.clear()
    st.cache_resource.clear()
    video = str(sample_path(next(iter(SAMPLES))))
    scanned = row(video, 1, "tome", 0.5, '{"r": 20, "schedule": "constant"}', start_s=2.0)
    link = charts.explorer_link(scanned, {"frames": 8, "stride": 4, "size": 112, "model": {"size": "tiny"}})
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({k: v[0] for k, v in parse_qs(link.removeprefix("?")).items()})
    at.run()
    assert not at.exception and at.text_input(key="path").value == "", "nothing opens before the user says so"
    at.button(key="link_paths_open").click().run()
    assert not at.exception and not at.error
    assert not any("ignored" in w.value for w in at.warning)
    assert at.text_input(key="path").value == video and at.number_input(key="start").value == 2.0
    assert at.selectbox(key="reducer").value == "tome" and at.number_input(key="param.tome.r").value == 20
    summary = next(e.label for e in at.expander if "frames sampled" in e.label)
    assert "8 frames sampled" in summary and "from 2.00-" in summary, summary


def test_the_report_is_one_offline_page_with_every_data_string_escaped(folder, monkeypatch):
    monkeypatch.setattr(report, "MAX_ROWS", 3)
    path = write_report(load(folder))
    assert path == folder / "report.html"
    page = path.read_text()
    assert page.count("window.PlotlyConfig") == 1, "plotly.js goes in once"
    assert page.count("Plotly.newPlot(") == 3  # accuracy against tokens, kept tokens, the long video's timeline
    for hostile in ("<script>.mp4", "<img src=x", "<b>Jumping"):
        assert hostile not in page, hostile
    assert "&lt;script&gt;.mp4" in page and "&lt;b&gt;Jumping&lt;/b&gt;" in page and "&lt;img src=x" in page
    assert "The first 3 of 4." in page  # changed windows, capped
    assert 'href="http://localhost:8501/?source=Local+path&amp;path=%2Fvideos%2Fa+long+video.mp4' in page
    assert "Timelines of the video" in page and "Accuracy per class" in page


def test_a_scan_without_long_videos_or_labels_gets_a_report_without_those_parts(tmp_path, windows):
    clips = windows[windows["video"] != LONG].assign(true_label=None, correct=None)
    page = write_report(load(write_scan(tmp_path / "clips", clips))).read_text()
    assert page.count("window.PlotlyConfig") == 1 and page.count("Plotly.newPlot(") == 2
    assert "Along the video" not in page and "Accuracy per class" not in page
    assert "Agreement with dense" in page


def scan_page() -> AppTest:
    """The app, switched to the Scan page. The explorer's first run waits for an upload, so it runs no model."""
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["source"] = "Upload"
    at.run()
    return at.switch_page(SCAN_PAGE).run()


def test_the_scan_page_opens_a_scan_folder_and_shows_its_views(folder):
    at = scan_page()
    assert not at.exception and any("scan folder" in i.value for i in at.info)
    at.text_input(key="scan_folder").input(str(folder)).run()
    assert not at.exception and not at.error
    assert at.query_params["folder"] in (str(folder), [str(folder)])
    assert len(at.get("plotly_chart")) == 3  # accuracy against tokens, kept tokens, the long video along time
    tables = {tuple(table.value.columns): table.value for table in at.dataframe}
    changed = next(table for columns, table in tables.items() if "dense top-1" in columns)
    assert len(changed) == 4 and all(link.startswith("./?source=Local+path&path=") for link in changed["link"])
    assert any(columns[:2] == ("class", "windows") for columns in tables)
    at.selectbox(key="scan_window").set_value(3).run()
    at.selectbox(key="scan_run").set_value("rlt @ 50%").run()
    assert not at.exception
    button = at.link_button[0]
    assert button.value.startswith("Open window 3 (7.7–10.2 s) with rlt @ 50%"), button.value
    query = parse_qs(urlparse(button.proto.url).query)
    assert query["path"] == [LONG] and query["start"] == ["7.68"] and query["reducer"] == ["rlt"]


def test_the_scan_page_names_a_missing_or_foreign_folder(tmp_path):
    at = scan_page()
    at.text_input(key="scan_folder").input(str(tmp_path / "gone")).run()
    assert not at.exception and "No folder at" in at.error[0].value
    (tmp_path / "notes.txt").write_text("not a scan")
    at.text_input(key="scan_folder").input(str(tmp_path)).run()
    assert not at.exception and "Not a scan" in at.error[0].value and "summary.json" in at.error[0].value
    assert any("notes.txt" in c.value for c in at.caption)  # what is there instead
    for name in ("summary.json", "windows.parquet", "errors.parquet"):
        (tmp_path / name).write_text("{not a table")
    at.text_input(key="scan_folder").input(str(tmp_path) + "/").run()
    assert not at.exception and "cannot be read" in at.error[0].value


def test_a_small_scan_runs_from_the_page_with_progress_and_opens(tmp_path):
    from tests.conftest import write_video

    frames = np.zeros((130, 112, 112, 3), dtype=np.uint8)
    for i in range(130):  # a square crossing the frame: two windows of the demo model (16 frames at stride 4)
        frames[i, 40:70, i % 80 : i % 80 + 30] = 255
    write_video(tmp_path / "clip.mp4", frames, fps=25)
    at = scan_page()
    at.text_input(key="scan_input").input(str(tmp_path / "clip.mp4"))
    at.text_input(key="scan_out").input(str(tmp_path / "scan"))
    at.multiselect(key="scan_reducers").set_value(["rlt"])
    at.number_input(key="scan_windows").set_value(2).run()  # the button waits for a video to scan
    at.button(key="scan_start").click().run()
    assert not at.exception and not at.error
    assert at.progress[0].value == 100 and at.progress[0].text == "2 of 2 windows"
    assert "Scanned 1 videos, 2 windows" in at.success[0].value
    assert at.text_input(key="scan_folder").value == str(tmp_path / "scan")
    assert len(at.get("plotly_chart")) == 3  # the video along time first, then accuracy and kept tokens
    assert (tmp_path / "scan" / "report.html").is_file()


def test_a_scan_where_every_video_failed_says_so(tmp_path, windows):
    folder = write_scan(tmp_path / "failed", windows.iloc[:0])
    page = write_report(load(folder)).read_text()
    assert "Plotly.newPlot(" not in page and "&lt;img src=x" in page  # no chart; the error, escaped
    at = scan_page()
    at.text_input(key="scan_folder").input(str(folder)).run()
    assert not at.exception and not at.error and "no window" in at.warning[0].value
    assert any("Errors: 1" in e.label for e in at.expander)


def test_a_link_to_a_scan_folder_opens_it_only_when_asked(folder):
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["source"] = "Upload"
    at.run()
    at.query_params["folder"] = str(folder)
    at.switch_page(SCAN_PAGE).run()
    assert not at.exception and not at.get("plotly_chart")
    assert at.text_input(key="scan_folder").value == "" and str(folder) in [c.value for c in at.code]
    at.button(key="scan_link_open").click().run()
    assert not at.exception and not at.error
    assert at.text_input(key="scan_folder").value == str(folder) and len(at.get("plotly_chart")) == 3


def test_a_shared_server_offers_no_scans(folder, monkeypatch):
    monkeypatch.setenv("TOKEN_EXPLORER_SHARED", "1")
    at = scan_page()
    assert not at.exception and not at.text_input and not at.button
    assert "shared server does not offer them" in at.info[0].value
