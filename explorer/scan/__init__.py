"""Scan long videos and whole datasets: every window through dense and each reducer, into a folder of tables.

    python -m explorer scan VIDEO_OR_FOLDER_OR_CSV ... --out DIR [--engine ray]

`scan()` writes DIR (windows.parquet, errors.parquet, summary.json, summary.md, report.html, and journal.jsonl,
from which a rerun goes on); `load()` reads it back. Engines: local (one process, decoding overlapping the
model) and ray (Ray Data: decode tasks streaming into a pool of model actors).
"""

from .driver import scan
from .settings import ScanSettings
from .summary import ScanResult, load

__all__ = ["ScanResult", "ScanSettings", "load", "scan"]
