"""A scan folder's tables and summary, rebuilt from its journal: windows.parquet, errors.parquet, summary.json
and summary.md; and load(), which reads them back."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from explorer.models.reducers import ParameterError

from . import journal

SCHEMA_VERSION = 1
WINDOWS = pa.schema(
    [
        ("video", pa.string()),
        ("window", pa.int64()),
        ("label", pa.string()),
        ("true_label", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("reducer", pa.string()),
        ("params", pa.string()),
        ("budget", pa.float64()),
        ("knob", pa.string()),
        ("knob_value", pa.float64()),
        ("tokens_per_layer", pa.list_(pa.int64())),
        ("kept_tokens", pa.int64()),
        ("dense_tokens", pa.int64()),
        ("kept_fraction", pa.float64()),
        ("avg_tokens", pa.float64()),
        ("gflops", pa.float64()),
        ("ms", pa.float64()),
        ("top1", pa.string()),
        ("top1_index", pa.int64()),
        ("top1_prob", pa.float64()),
        ("correct", pa.bool_()),
        ("agrees_with_dense", pa.bool_()),
    ]
)
ERRORS = pa.schema([("video", pa.string()), ("window", pa.int64()), ("start_s", pa.float64()), ("reason", pa.string())])
FILES = ("windows.parquet", "errors.parquet", "summary.json")


@dataclass(frozen=True)
class ScanResult:
    """A scan folder, read back."""

    folder: Path
    windows: pd.DataFrame  # one row per (video, window, reducer, budget); columns as WINDOWS
    errors: pd.DataFrame  # columns as ERRORS
    summary: dict


def write(folder: Path, order: Sequence[str], extra: dict) -> ScanResult:
    """Rebuild the folder's tables from its journal and summarize them; `order`: reducer specs in the order
    rows are sorted in (dense first); `extra`: what the summary says of the run (inputs, model, settings...)."""
    _, rows, errors = journal.read(folder)
    rows = _latest(rows, lambda r: (r["video"], r["window"], r["reducer"], r["budget"]))
    rank = {spec: i for i, spec in enumerate(order)}
    rows.sort(key=lambda r: (r["video"], r["window"], rank.get(r["reducer"], len(rank)), r["reducer"], _b(r)))
    done = {(r["video"], r["window"]) for r in rows}
    errors = _latest(errors, lambda e: (e["video"], e["window"]))
    videos = {video for video, _ in done}
    errors = [  # a window or video read at a later try is no longer an error
        e
        for e in errors
        if (e["video"], e["window"]) not in done and not (e["window"] is None and e["video"] in videos)
    ]
    errors.sort(key=lambda e: (e["video"], -1 if e["window"] is None else e["window"]))
    pq.write_table(pa.Table.from_pylist(rows, schema=WINDOWS), folder / "windows.parquet")
    pq.write_table(
        pa.Table.from_pylist([{k: e[k] for k in ERRORS.names} for e in errors], schema=ERRORS),
        folder / "errors.parquet",
    )
    windows = pa.Table.from_pylist(rows, schema=WINDOWS).to_pandas()
    summary = summarize(windows, len(errors), extra)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (folder / "summary.md").write_text(format_summary(summary) + "\n")
    return load(folder)


def summarize(windows: pd.DataFrame, errors: int, extra: dict) -> dict:
    """Per reducer and budget: windows, accuracy (over windows whose label matched), agreement with dense, mean
    tokens, GFLOPs and forward time."""
    rows = []
    groups = windows.groupby(["reducer", windows["budget"].fillna(-1.0)], sort=False)
    for (reducer, budget), group in groups:
        scored = group["correct"].dropna()
        rows.append(
            {
                "reducer": reducer,
                "budget": None if budget < 0 else float(budget),
                "windows": len(group),
                "accuracy": float(scored.astype(bool).mean()) if len(scored) else None,
                "agreement": float(group["agrees_with_dense"].mean()),
                "kept_tokens": float(group["kept_tokens"].mean()),
                "kept_fraction": float(group["kept_fraction"].mean()),
                "avg_tokens": float(group["avg_tokens"].mean()),
                "gflops": float(group["gflops"].mean()),
                "ms": float(group["ms"].mean()),
            }
        )
    dense = windows[windows["reducer"] == "none"]
    return {
        "schema_version": SCHEMA_VERSION,
        **extra,
        "videos": int(windows["video"].nunique()),
        "windows": len(dense),
        "scored_windows": int(dense["true_label"].notna().sum()),
        "errors": errors,
        "rows": rows,
    }


def format_summary(summary: dict) -> str:
    """Markdown: what was scanned, then a table per reducer and budget."""
    run = summary.get("run", {})
    lines = [
        f"# Scan: {summary['videos']} videos, {summary['windows']} windows, {summary['errors']} errors",
        "",
        f"Model: {summary.get('model', {}).get('name', '?')}; device {run.get('device', '?')}, "
        f"{run.get('precision', '?')}; this run: {run.get('windows', 0)} windows in {summary.get('seconds', 0):.1f} s "
        f"({summary.get('windows_per_second', 0):.2f} windows/s, engine {run.get('engine', '?')}, "
        f"{run.get('workers', 1)} worker(s)).",
    ]
    unmatched = summary.get("labels", {}).get("unmatched", [])
    if unmatched:
        lines += ["", f"Labels matching no class of the model (not scored): {', '.join(unmatched)}"]
    lines += [
        "",
        "| reducer | budget | windows | accuracy | agrees with dense | kept tokens | kept "
        "| tokens/layer | GFLOPs | ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        budget = "-" if r["budget"] is None else f"{r['budget']:g}"
        accuracy = "-" if r["accuracy"] is None else f"{r['accuracy']:.1%}"
        lines.append(
            f"| {r['reducer']} | {budget} | {r['windows']} | {accuracy} | {r['agreement']:.1%} "
            f"| {r['kept_tokens']:.0f} | {r['kept_fraction']:.0%} | {r['avg_tokens']:.0f} | {r['gflops']:.2f} "
            f"| {r['ms']:.1f} |"
        )
    return "\n".join(lines)


def load(folder: str | Path) -> ScanResult:
    """Read a scan folder; ParameterError naming what is missing or unreadable."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ParameterError(f"not a folder: {folder}")
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise ParameterError(f"{folder} is not a finished scan: {', '.join(missing)} missing")
    try:
        summary = json.loads((folder / "summary.json").read_text())
        windows = pq.read_table(folder / "windows.parquet").to_pandas()
        errors = pq.read_table(folder / "errors.parquet").to_pandas()
    except (OSError, ValueError, pa.ArrowException) as error:
        raise ParameterError(f"{folder}: the scan's files cannot be read ({error})") from None
    if not isinstance(summary, dict) or summary.get("schema_version") != SCHEMA_VERSION:
        found = summary.get("schema_version") if isinstance(summary, dict) else None
        raise ParameterError(f"{folder}: summary.json is scan format {found!r}; this version reads {SCHEMA_VERSION}")
    missing = [name for name in WINDOWS.names if name not in windows.columns]
    if missing:
        raise ParameterError(f"{folder}: windows.parquet lacks the columns {', '.join(missing)}")
    return ScanResult(folder, windows, errors, summary)


def _latest(entries: list[dict], key: Callable[[dict], tuple]) -> list[dict]:
    """Each key's last entry (a window written twice by a resumed scan counts once)."""
    return list({key(e): e for e in entries}.values())


def _b(row: dict) -> float:
    return -1.0 if row["budget"] is None else row["budget"]
