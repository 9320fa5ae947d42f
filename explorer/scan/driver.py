"""scan(): plan the windows, skip what the folder already has, hand the rest to an engine, write the folder."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from explorer.accuracy import parse_spec
from explorer.analyze import build_model, check_work, fit_input
from explorer.models.reducers import Reducer, make_reducer
from explorer.outputs import writable_folder
from explorer.runtime import resolve_device, resolve_precision
from explorer.video import VideoError, check_params

from . import local, summary
from .compute import WindowRunner
from .inputs import Item, expand, match_labels
from .journal import Journal
from .report import write_report
from .settings import MAX_WINDOWS, ScanSettings
from .tasks import Outcome, Task
from .windows import Window, plan

PROBE_THREADS = 8  # headers read at once while planning (I/O bound: a dataset on a network disk)

Progress = Callable[[int, int], None]  # (windows done, windows to do) in this run


def scan(
    inputs: Sequence[str | Path],
    out: str | Path,
    settings: ScanSettings | None = None,
    progress: Progress | None = None,
) -> summary.ScanResult:
    """Scan videos, folders or CSVs into the folder `out`; run again, it goes on where it stopped."""
    settings = settings or ScanSettings()
    settings.check()
    folder = writable_folder(out, "the scan")
    items = expand(inputs)
    model, report = build_model(settings.model)
    frames = model.cfg.num_frames if settings.frames is None else settings.frames
    size = model.cfg.img_size if settings.size is None else settings.size
    check_params(frames, settings.stride, size)
    fit_input(model, frames, size)
    for spec, budget in settings.specs():
        check_work(_reducer(spec, budget), model)
    settings = replace(settings, frames=frames, size=size)
    labels = report.labels if report else None
    label_names = match_labels({item.label for item in items}, labels)
    device = resolve_device(settings.device)
    precision = resolve_precision(settings.precision, device)

    with Journal(folder, settings.to_dict()) as log:
        work, failed = _tasks(items, settings, log)
        for item, reason in failed:
            log.add_error(item.video, None, None, reason)
        done = 0

        def emit(outcome: Outcome) -> None:
            nonlocal done
            if outcome.rows is not None:
                log.add_rows(outcome.rows)
            else:
                window = outcome.window
                log.add_error(window.video, window.index, window.start, outcome.error or "")
            done += 1
            if progress:
                progress(done, len(work))

        if progress:
            progress(0, len(work))
        begin = time.perf_counter()
        if settings.engine == "ray":
            from . import distributed  # Ray is imported only when asked for

            distributed.run(work, settings, label_names, emit)
        elif work:
            runner = WindowRunner(model, labels, settings.device, settings.precision, label_names)
            local.run(work, runner, frames, settings.stride, size, emit)
        seconds = time.perf_counter() - begin

    extra = {
        "inputs": [str(p) for p in inputs],
        "model": {
            "name": settings.model.describe(),
            "size": settings.model.size,
            "weights": settings.model.weights,
            "labels": labels,
        },
        "settings": settings.to_dict(),
        "seconds": seconds,
        "windows_per_second": done / seconds if seconds > 0 else 0.0,
        "run": {
            "engine": settings.engine,
            "workers": settings.workers,
            "device": device.type,
            "precision": precision,
            "windows": done,
        },
        "labels": {
            "matched": sorted(label for label, name in label_names.items() if name is not None),
            "unmatched": sorted(label for label, name in label_names.items() if name is None),
        },
    }
    result = summary.write(folder, [spec for spec, _ in settings.specs()], extra)
    write_report(result)
    return result


def _reducer(spec: str, budget: float | None) -> Reducer:
    name, values = parse_spec(spec, budgeted=budget is not None)
    return make_reducer(name, **values, **({"budget": budget} if budget is not None else {}))


def _tasks(items: list[Item], settings: ScanSettings, log: Journal) -> tuple[list[Task], list[tuple[Item, str]]]:
    """Each window with the rows it still needs (windows with all their rows are left out); and each video whose
    windows could not be planned, with the reason."""
    assert settings.frames and settings.size

    cap = settings.windows or MAX_WINDOWS + 1  # one past the most: a video that has more is refused, not cut

    def windows(item: Item) -> list[Window] | str:
        try:
            planned = plan(item.video, item.label, settings.frames, settings.stride, settings.hop, cap)
        except VideoError as error:
            return str(error)
        if len(planned) > MAX_WINDOWS:
            return f"more than {MAX_WINDOWS:,} windows: use a longer --hop or --windows"
        return planned

    with ThreadPoolExecutor(PROBE_THREADS) as pool:
        plans = list(pool.map(windows, items))
    wanted = settings.specs()
    tasks, failed = [], []
    for item, planned in zip(items, plans, strict=True):
        if isinstance(planned, str):
            failed.append((item, planned))
            continue
        for window in planned:
            key = (window.video, window.index)
            missing = tuple(k for k in wanted if k not in log.done.get(key, ()))
            if missing:
                tasks.append(Task(window, missing, log.dense_top1.get(key)))
    return tasks, failed
