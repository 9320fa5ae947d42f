"""python -m explorer scan: a labelled folder of generated clips through dense and reducers, locally and on Ray;
labels matched, bad files as error rows, resuming without duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from explorer.cli import main
from explorer.models.reducers import ParameterError
from explorer.scan import ScanSettings, load, scan
from explorer.scan.inputs import expand, match_labels, normalize
from explorer.scan.journal import NAME as JOURNAL
from explorer.scan.windows import starts
from explorer.synthetic import LABELS, held_out_seeds, motion_clip
from explorer.video import load_clip, load_windows

ROOT = Path(__file__).resolve().parents[1]
STRIDE = 4  # each generated frame is written STRIDE times, so that a window at stride 4 sees the clip as drawn
SPAN = 16 * STRIDE / 25  # seconds per window of the demo model at 25 fps


def write_video(path: Path, frames: np.ndarray, repeat: int = STRIDE, fps: int = 25) -> Path:
    """An MP4 of the frames, each shown `repeat` times (near lossless)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "12", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for image in np.repeat(frames, repeat, axis=0):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


# Folder names as people write them: case, underscores and hyphens differ from the model's labels.
FOLDER_NAMES = {0: "Still", 1: "moving_left", 2: "Moving-Right", 3: "moving up", 4: "MOVING_DOWN"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Class folders of held-out generated clips (one window each), a class the model does not know, a long
    video of three windows at the top, and a corrupt file."""
    root = tmp_path_factory.mktemp("dataset")
    for seed in held_out_seeds(6):
        frames, label = motion_clip(seed)
        write_video(root / FOLDER_NAMES[label] / f"clip{seed}.mp4", frames)
    frames, _ = motion_clip(held_out_seeds(7)[-1])
    write_video(root / "Jumping" / "jump.mp4", frames)
    write_video(root / "long.mp4", np.concatenate([motion_clip(s)[0] for s in held_out_seeds(3)]))
    (root / "Still" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    return root


SETTINGS = ScanSettings(reducers=("rlt", "tome"))
ROW_KEYS = ["video", "window", "reducer", "budget"]


def comparable(frame):  # noqa: ANN001, ANN201 - a DataFrame without the measured times, for equality
    return frame.drop(columns=["ms"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def scanned(dataset: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return scan([dataset], tmp_path_factory.mktemp("scan"), SETTINGS)


def test_a_labelled_folder_gives_a_row_per_window_and_reducer(scanned, dataset):
    windows = scanned.windows
    videos = windows["video"].unique()
    assert len(videos) == 8  # 6 clips, the unknown class, the long video; not the corrupt file
    per_video = windows[windows["reducer"] == "none"].groupby("video").size()
    assert per_video[str(dataset / "long.mp4")] == 3 and (per_video.drop(str(dataset / "long.mp4")) == 1).all()
    assert len(windows) == 10 * 3  # 10 windows x (dense, rlt, tome)
    assert not windows.duplicated(ROW_KEYS).any()
    long = windows[(windows["video"] == str(dataset / "long.mp4")) & (windows["reducer"] == "none")]
    assert np.allclose(long["start_s"], [0.0, SPAN, 2 * SPAN]) and np.allclose(long["end_s"], long["start_s"] + SPAN)
    dense = windows[windows["reducer"] == "none"]
    assert (dense["kept_tokens"] == 392).all() and dense["agrees_with_dense"].all()
    rlt = windows[windows["reducer"] == "rlt"]
    assert (rlt["kept_tokens"] < 392).all()  # generated clips have still backgrounds
    assert (rlt["kept_tokens"] == rlt["tokens_per_layer"].map(lambda t: t[0])).all()
    tome = windows[windows["reducer"] == "tome"]
    assert (tome["avg_tokens"] < 392).all() and (tome["gflops"] < dense["gflops"].to_numpy()).all()
    for _, row in windows.iterrows():  # agreement is with the same window's dense row
        same = dense[(dense["video"] == row["video"]) & (dense["window"] == row["window"])].iloc[0]
        assert row["agrees_with_dense"] == (row["top1"] == same["top1"])


def test_labels_are_matched_loosely_and_unknown_ones_are_not_scored(scanned, dataset):
    windows = scanned.windows
    clips = windows[windows["label"].isin(list(FOLDER_NAMES.values()))]
    assert clips["true_label"].isin(LABELS).all()
    assert (clips["correct"] == (clips["top1"] == clips["true_label"])).all()
    jump = windows[windows["label"] == "Jumping"]
    assert jump["true_label"].isna().all() and jump["correct"].isna().all()
    assert windows[windows["video"] == str(dataset / "long.mp4")]["label"].isna().all()
    assert scanned.summary["labels"]["unmatched"] == ["Jumping"]
    dense = next(r for r in scanned.summary["rows"] if r["reducer"] == "none")
    scored = windows[(windows["reducer"] == "none") & windows["correct"].notna()]
    assert dense["accuracy"] == pytest.approx(scored["correct"].astype(bool).mean())
    assert scanned.summary["scored_windows"] == 6


def test_a_corrupt_file_is_an_error_row(scanned, dataset):
    errors = scanned.errors
    assert list(errors["video"]) == [str(dataset / "Still" / "broken.mp4")]
    assert errors["window"].isna().all() and "broken.mp4" in errors["reason"].iloc[0]
    assert scanned.summary["errors"] == 1


def test_the_folder_holds_every_output_and_reads_back(scanned):
    for name in ("windows.parquet", "errors.parquet", "summary.json", "summary.md", "report.html", JOURNAL):
        assert (scanned.folder / name).is_file(), name
    again = load(scanned.folder)
    assert again.windows.equals(scanned.windows) and again.summary == scanned.summary
    summary = json.loads((scanned.folder / "summary.json").read_text())
    assert {r["reducer"] for r in summary["rows"]} == {"none", "rlt", "tome"}
    assert summary["windows"] == 10 and summary["windows_per_second"] > 0
    assert "| rlt | - | 10 |" in (scanned.folder / "summary.md").read_text()


def test_budgets_fit_each_window(dataset, tmp_path):
    result = scan([dataset / "long.mp4"], tmp_path, ScanSettings(reducers=("rlt", "tome"), budgets=(0.5,)))
    fitted = result.windows[result.windows["reducer"] != "none"]
    assert (fitted["budget"] == 0.5).all() and fitted["knob_value"].notna().all()
    assert set(fitted["knob"]) == {"tau", "r"}
    tome = fitted[fitted["reducer"] == "tome"]
    assert (abs(tome["avg_tokens"] / 392 - 0.5) < 0.01).all()  # RLT may not reach it: it keeps what moves


def test_resuming_after_an_interruption_writes_no_duplicates(scanned, dataset, tmp_path):
    seen = []

    def interrupt(done: int, total: int) -> None:
        seen.append(done)
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan([dataset], tmp_path, SETTINGS, progress=interrupt)
    result = scan([dataset], tmp_path, SETTINGS)
    assert result.summary["run"]["windows"] == 10 - 4  # the windows written before were skipped
    assert not result.windows.duplicated(ROW_KEYS).any()
    assert comparable(result.windows).equals(comparable(scanned.windows))
    assert scan([dataset], tmp_path, SETTINGS).summary["run"]["windows"] == 0  # nothing left to do


def test_a_killed_scan_goes_on_where_it_stopped(dataset, tmp_path):
    """SIGKILL mid-scan (a window may be cut short in the journal); the same command again completes it."""
    windows = 24  # enough that the scan cannot finish between two looks at its journal (it did with 12)
    long = write_video(tmp_path / "longer.mp4", np.concatenate([motion_clip(s)[0] for s in held_out_seeds(windows)]))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "explorer", "scan", str(long), "--out", str(out), "--reducers", "rlt", "--quiet"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / JOURNAL
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and journal.read_text().count('"kind": "rows"') >= 1:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with journal.open("a") as file:  # as if the kill came halfway through a line
        file.write('{"kind": "rows", "rows": [{"vid')
    before = journal.read_text().count('"kind": "rows"') - 1
    assert 1 <= before < windows
    assert main(command[3:]) == 0
    result = load(out)
    assert result.summary["run"]["windows"] == windows - before
    assert len(result.windows) == windows * 2 and not result.windows.duplicated(ROW_KEYS).any()


def test_a_scan_with_other_settings_is_refused_in_the_same_folder(dataset, tmp_path):
    scan([dataset / "long.mp4"], tmp_path, ScanSettings(reducers=("rlt",), windows=1))
    with pytest.raises(ParameterError, match="other settings.*stride 4 then 2"):
        scan([dataset / "long.mp4"], tmp_path, ScanSettings(reducers=("rlt",), windows=1, stride=2))
    more = scan([dataset / "long.mp4"], tmp_path, ScanSettings(reducers=("rlt", "tome"), windows=2))
    assert more.summary["run"]["windows"] == 2  # new rows for the old window, a new window
    assert len(more.windows) == 2 * 3


def test_windows_tile_the_video():
    assert starts(10.0, 25, 16, 4, None, None) == pytest.approx([0.0, 2.56, 5.12])  # 7.68 + 2.56 > 10
    assert starts(10.0, 25, 16, 4, 1.0, None) == pytest.approx([float(k) for k in range(8)])
    assert starts(10.0, 25, 16, 4, 1.0, 3) == pytest.approx([0.0, 1.0, 2.0])
    assert starts(1.0, 25, 16, 4, None, None) == [0.0]  # shorter than a window: one, padded
    assert starts(float("nan"), 25, 16, 4, None, None) == [0.0]
    assert len(starts(7200.0, 25, 16, 4, None, None)) == 2812  # two hours


def test_windows_decoded_in_one_go_equal_windows_decoded_alone(dataset):
    path = dataset / "long.mp4"
    ahead = [0.0, SPAN, 2 * SPAN, 0.5, 3.0]  # back to back, then back in time, then ahead
    for clip, start in zip(load_windows(path, ahead, frames=16, stride=4, size=112), ahead, strict=True):
        alone = load_clip(path, frames=16, stride=4, size=112, start=start)
        assert np.array_equal(clip.frames, alone.frames) and np.allclose(clip.times, alone.times)
    past = list(load_windows(path, [0.0, 100.0], frames=16, stride=4, size=112))
    assert "past the end" in str(past[1])


def test_inputs_from_a_csv_folders_and_files(dataset, tmp_path):
    table = tmp_path / "list.csv"
    table.write_text(f"path,label\n{dataset / 'long.mp4'},Moving Up\nmissing.mp4,\n")
    items = expand([table, dataset / "Still"])
    assert items[0].video == str(dataset / "long.mp4") and items[0].label == "Moving Up"
    assert items[1].video == str(tmp_path / "missing.mp4") and items[1].label is None  # an error row later
    assert all(item.label is None for item in items[2:])  # a folder of videos, not of classes
    with pytest.raises(ParameterError, match="not found"):
        expand([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="no video found"):
        expand([tmp_path / "empty"])


def test_label_matching_ignores_case_and_separators():
    assert normalize(" Playing_Guitar-solo  x") == "playing guitar solo x"
    assert match_labels(["moving_LEFT", "Moving-Up", "jumping", None], LABELS) == {
        "moving_LEFT": "moving left",
        "Moving-Up": "moving up",
        "jumping": None,
    }
    assert match_labels(["a"], None) == {"a": None}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--hop", "0"], "--hop must be a positive"),
        (["--windows", "0"], "--windows must be at least 1"),
        (["--budgets", "1.5"], "budgets must be fractions"),
        (["--reducers", "mvit"], "cannot be evaluated here"),
        (["--reducers", "tome2"], "unknown reducer"),
        (["--frames", "0"], "Frames must be"),
        (["--workers", "0"], "--workers must be from 1"),
    ],
)
def test_bad_settings_get_one_line(argv, message, dataset, tmp_path, capsys):
    assert main(["scan", str(dataset / "long.mp4"), "--out", str(tmp_path), "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_inputs_and_outputs_get_one_line_and_no_progress_bar(dataset, tmp_path, capsys):
    binary_csv = tmp_path / "list.csv"
    binary_csv.write_bytes(b"path,label\n\x00\x01\x02")
    a_file = tmp_path / "taken.txt"
    a_file.write_text("not a folder")
    video = str(dataset / "long.mp4")
    cases = [
        ([str(binary_csv), "--out", str(tmp_path / "a")], "list.csv: not a readable CSV of path,label rows"),
        ([video, "--out", str(a_file)], "taken.txt is not a folder: give a folder to write the scan to"),
        ([video, "--out", str(a_file / "sub")], "cannot write the scan to"),
        ([str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "b")], "not found:"),
    ]
    for argv, message in cases:
        assert main(["scan", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and "window/s" not in err, err


def test_the_ray_engine_without_ray_says_how_to_install_it(dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(ParameterError, match="requirements-ray.txt"):
        scan([dataset / "long.mp4"], tmp_path, ScanSettings(reducers=("rlt",), engine="ray"))


def test_the_cli_scans_and_prints_the_summary(dataset, tmp_path, capsys):
    assert main(["scan", str(dataset / "Jumping"), "--out", str(tmp_path), "--reducers", "rlt", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "# Scan: 1 videos, 1 windows, 0 errors" in out and "| rlt | - | 1 |" in out


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")  # installed with requirements-dev.txt; a user may leave it out
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_rows_of_the_local_engine(local_ray, scanned, dataset, tmp_path):
    result = scan([dataset], tmp_path, ScanSettings(reducers=("rlt", "tome"), engine="ray", workers=2))
    assert result.summary["run"] == result.summary["run"] | {"engine": "ray", "workers": 2, "windows": 10}
    assert comparable(result.windows).equals(comparable(scanned.windows))
    assert result.errors.equals(scanned.errors)
