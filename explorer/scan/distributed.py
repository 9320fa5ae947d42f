"""The Ray engine: Ray Data batch inference. Decode tasks stream windows into a pool of model actors (a GPU each
where the cluster has GPUs); the driver writes each window's rows to the journal as they arrive.

Ray is optional: `pip install -r requirements-ray.txt` (or the package's `ray` extra). Without --address a Ray
is started on this machine with every core; with one, the cluster at that address is joined (its workers must
see the videos and the weights at the same paths).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from explorer.analyze import ModelSpec
from explorer.models.reducers import ParameterError

from .compute import WindowRunner
from .settings import ScanSettings
from .tasks import Outcome, Task, decode_tasks
from .windows import Window, chunks

INSTALL = "pip install -r requirements-ray.txt (Ray Data 2.60)"


def run(
    tasks: Sequence[Task],
    settings: ScanSettings,
    label_names: dict[str, str | None],
    emit: Callable[[Outcome], None],
) -> None:
    """Run every task on Ray, handing each window's outcome to `emit` as it arrives (in no fixed order)."""
    try:
        import ray
    except ImportError:
        raise ParameterError(f"--engine ray needs Ray, which is not installed: {INSTALL}") from None
    if not tasks:
        return
    if not ray.is_initialized():
        try:
            ray.init(address=settings.address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ParameterError(f"cannot reach a Ray cluster at {settings.address!r} ({error})") from None
    ray.data.DataContext.get_current().enable_progress_bars = False  # the scan's own progress bar says it
    cpus, gpus = _actor_resources(ray.cluster_resources(), settings)
    by_window = {(t.window.video, t.window.index): t for t in tasks}
    items = [
        {"tasks": json.dumps([_task_dict(by_window[w.video, w.index]) for w in c])}
        for c in chunks([t.window for t in tasks])
    ]
    sampling = {"frames": settings.frames, "stride": settings.stride, "size": settings.size}
    decoded = ray.data.from_items(items, override_num_blocks=len(items)).flat_map(_decode, fn_kwargs=sampling)
    results = decoded.map_batches(
        _Model,
        fn_constructor_kwargs={
            "spec": asdict(settings.model),
            "frames": settings.frames,
            "size": settings.size,
            "device": "cuda" if gpus else "cpu",
            "precision": settings.precision,
            "label_names": label_names,
            "threads": max(1, int(cpus)),
        },
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=settings.workers),
        num_cpus=cpus,
        num_gpus=gpus,
    )
    for row in results.iter_rows():
        emit(Outcome(Window(**json.loads(row["window"])), rows=json.loads(row["rows"]), error=row["error"] or None))


def _actor_resources(resources: dict[str, float], settings: ScanSettings) -> tuple[float, float]:
    """CPUs and GPUs per model actor: a GPU each where the cluster has enough and the device allows; otherwise the
    CPUs shared among the actors, one left for the decode tasks (actors that take every CPU starve them)."""
    gpus = resources.get("GPU", 0.0)
    if settings.device in ("auto", "cuda") and gpus >= settings.workers:
        return 1.0, 1.0
    if settings.device == "cuda":
        raise ParameterError(f"--device cuda with {settings.workers} workers, but the Ray cluster has {gpus:g} GPUs")
    total = resources.get("CPU", 1.0)
    return max(total - 1, total / 2) / settings.workers, 0.0


def _task_dict(task: Task) -> dict[str, Any]:
    return {"window": asdict(task.window), "keys": task.keys, "dense_top1": task.dense_top1}


def _task(entry: dict[str, Any]) -> Task:
    return Task(Window(**entry["window"]), tuple((spec, budget) for spec, budget in entry["keys"]), entry["dense_top1"])


def _decode(item: dict[str, Any], frames: int, stride: int, size: int) -> list[dict[str, Any]]:
    """A decode task: a chunk of windows of one video in, one record per window out (frames as raw bytes)."""
    tasks = [_task(entry) for entry in json.loads(item["tasks"])]
    out = []
    for task, got in decode_tasks(tasks, frames, stride, size):
        ok = not isinstance(got, str)
        out.append(
            {
                "task": json.dumps(_task_dict(task)),
                "frames": got.tobytes() if ok else b"",
                "shape": json.dumps(list(got.shape) if ok else []),
                "error": "" if ok else got,
            }
        )
    return out


class _Model:
    """A model actor: builds its own model once, then runs the windows it is given."""

    def __init__(
        self,
        spec: dict,
        frames: int,
        size: int,
        device: str,
        precision: str,
        label_names: dict[str, str | None],
        threads: int,
    ) -> None:
        import torch

        torch.set_num_threads(threads)
        self.runner = WindowRunner.build(
            ModelSpec(**spec), frames, size, device=device, precision=precision, label_names=label_names
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"window": [], "rows": [], "error": []}
        for task_json, frames, shape, error in zip(
            batch["task"], batch["frames"], batch["shape"], batch["error"], strict=True
        ):
            task = _task(json.loads(task_json))
            got = np.frombuffer(frames, np.uint8).reshape(json.loads(shape)).copy() if not error else str(error)
            outcome = task.outcome(self.runner, got)
            out["window"].append(json.dumps(asdict(outcome.window)))
            out["rows"].append(json.dumps(outcome.rows))
            out["error"].append(outcome.error or "")
        return out
