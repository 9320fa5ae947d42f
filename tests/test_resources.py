"""Running out of memory ends in a message or a CPU run, never a traceback."""

import importlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from explorer.analyze import analyze
from explorer.models.reducers import ParameterError, make_reducer
from explorer.models.video_vit import SIZES, VideoViT
from tests.clips import make_clip, moving_square_frames

analysis = importlib.import_module("explorer.analyze")  # the module; `explorer.analyze` is also the function
TINY = replace(SIZES["tiny"], depth=2, num_classes=5, num_frames=8, img_size=112)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    return make_clip(moving_square_frames(frames=8, size=112, row=3)), VideoViT(TINY).eval()


@pytest.mark.parametrize(
    "message, expected, match",
    [
        (
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory",
            ParameterError,
            "out of memory on the CPU for 8 frames of 112 px",
        ),
        ("shape mismatch", RuntimeError, "shape mismatch"),  # other errors are not mistaken for memory
    ],
)
def test_out_of_memory_on_the_cpu_is_a_clear_message(setup, monkeypatch, message, expected, match):
    def failing(*args, **kwargs):
        raise RuntimeError(message)

    monkeypatch.setattr(analysis.engine, "run_clip", failing)
    with pytest.raises(expected, match=match):
        analyze(*setup, make_reducer("rlt"), device="cpu")


def test_out_of_memory_on_the_gpu_runs_on_the_cpu_and_says_so(setup, monkeypatch):
    real = analysis._analyze_on
    devices = []

    def gpu_runs_out(dev, *args, **kwargs):
        devices.append(dev.type)
        if dev.type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(dev, *args, **kwargs)

    monkeypatch.setattr(analysis, "resolve_device", lambda device: torch.device("cuda"))
    monkeypatch.setattr(analysis, "_analyze_on", gpu_runs_out)
    trace = analyze(*setup, make_reducer("tome", r=10), device="cuda")
    assert devices == ["cuda", "cpu"] and trace.meta["device"] == "cpu"
    assert any("GPU ran out of memory" in note for note in trace.meta["notes"])
    assert trace.tokens_per_layer == [196, 186, 176]


def test_saliency_is_skipped_with_a_note_when_its_maps_would_not_fit(setup, monkeypatch):
    monkeypatch.setattr(analysis, "SALIENCY_BYTES", 1024)
    trace = analyze(*setup, make_reducer("none"), device="cpu")
    assert "rollout" not in trace.values and any("saliency was not computed" in n for n in trace.meta["notes"])
    assert np.isfinite(trace.logits).all()


def test_runs_on_one_shared_model_from_several_threads_do_not_mix(setup):
    """App sessions share cached models; a run records nothing on the model, so runs need not take turns."""
    from concurrent.futures import ThreadPoolExecutor

    clip, model = setup
    jobs = [("none", {}), ("tome", {"r": 20}), ("rlt", {}), ("tome", {"r": 40})]
    alone = [analyze(clip, model, make_reducer(name, **params), device="cpu") for name, params in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(
            pool.map(lambda job: analyze(clip, model, make_reducer(job[0], **job[1]), device="cpu"), jobs * 2)
        )
    for a, b in zip(alone * 2, together):
        assert a.tokens_per_layer == b.tokens_per_layer and np.array_equal(a.logits, b.logits)
        for x, y in zip(a.values["rollout"], b.values["rollout"]):
            np.testing.assert_array_equal(x, y)


def _gpu_out_of_memory(*args, **kwargs):
    raise RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")


def test_out_of_memory_in_bench_is_one_message(monkeypatch):
    from explorer.bench import bench
    from explorer.models import engine

    monkeypatch.setattr(engine, "batch_run", _gpu_out_of_memory)
    with pytest.raises(ParameterError, match="out of memory on the CPU for batches of 2 clips of 4 x 64 px: use a"):
        bench(None, ["tiny"], ["rlt"], batch=2, frames=4, size=64, device="cpu", runs=1)


def test_out_of_memory_in_accuracy_is_one_message_and_the_model_stays_where_it_was(monkeypatch):
    from explorer import accuracy
    from explorer.models import engine
    from explorer.synthetic import FRAMES, LABELS, SIZE

    model = VideoViT(replace(TINY, num_frames=FRAMES, img_size=SIZE, num_classes=len(LABELS))).eval()
    monkeypatch.setattr(engine, "run_clip", _gpu_out_of_memory)
    with pytest.raises(ParameterError, match="out of memory on the CPU for 2 held-out clips"):
        accuracy.evaluate(model, list(LABELS), clips=2, reducers=("rlt",), budgets=(0.5,), device="cpu")
    assert next(model.parameters()).device.type == "cpu"
