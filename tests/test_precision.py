"""Precision as a setting: every reducer runs under bf16 autocast on the CPU, the GPU's code path.

Token decisions that precision cannot change (RLT, masking, tubes, MViT grids) equal fp32 exactly;
the demo model's predictions agree with fp32.
"""

import numpy as np
import pytest
import torch

from explorer.analyze import ModelSpec, analyze, build_model
from explorer.models.reducers import REDUCERS, ParameterError, make_reducer
from explorer.runtime import autocast, out_of_memory, resolve_precision
from explorer.synthetic import held_out_seeds, motion_clip
from explorer.video import SAMPLES, load_clip, sample_path
from tests.clips import make_clip

DECIDED_BEFORE_THE_MODEL = ("none", "rlt", "random", "mask", "tubes", "mvit")


@pytest.fixture(scope="module")
def demo():
    model, report = build_model(ModelSpec())
    return model, report


@pytest.fixture(scope="module")
def sample(demo):
    cfg = demo[0].cfg
    name = next(n for n in SAMPLES if "Bunny" in n)
    return load_clip(sample_path(name), frames=cfg.num_frames, stride=4, size=cfg.img_size)


@pytest.mark.parametrize("name", list(REDUCERS))
def test_every_reducer_runs_at_bf16_with_saliency_and_records_it(demo, sample, name):
    model, report = demo
    full = analyze(sample, model, make_reducer(name), device="cpu", precision="fp32", labels=report.labels)
    half = analyze(sample, model, make_reducer(name), device="cpu", precision="bf16", labels=report.labels)
    assert (half.meta["precision"], half.meta["dtype"], full.meta["precision"]) == ("bf16", "bfloat16", "fp32")
    assert np.isfinite(half.logits).all()
    if name in DECIDED_BEFORE_THE_MODEL:
        assert half.tokens_per_layer == full.tokens_per_layer and np.array_equal(half.owner, full.owner)
    if "rollout" in full.values:
        assert "rollout" in half.values and all(np.isfinite(v).all() for v in half.values["rollout"][:-1])


@pytest.mark.slow
def test_the_demo_model_predicts_at_bf16_as_at_fp32(demo):
    model, report = demo
    agree = 0
    for seed in held_out_seeds(10):
        clip = make_clip(motion_clip(seed)[0])
        full, half = (
            analyze(clip, model, make_reducer("none"), device="cpu", precision=p, saliency=None)
            for p in ("fp32", "bf16")
        )
        agree += int(full.logits.argmax() == half.logits.argmax())
    assert agree >= 9


def test_auto_is_fp32_on_the_cpu_and_unknown_precisions_are_refused():
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    with pytest.raises(ParameterError, match="precision must be one of"):
        resolve_precision("fp8", torch.device("cpu"))
    with autocast(torch.device("cpu"), "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


@pytest.mark.parametrize(
    "message",
    [
        "CUDA out of memory. Tried to allocate 2.00 GiB",
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
        "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
        "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory",
    ],
)
def test_every_kind_of_allocation_failure_is_recognised(message):
    assert out_of_memory(RuntimeError(message)) and out_of_memory(torch.OutOfMemoryError(message))
    assert not out_of_memory(RuntimeError("shape mismatch"))


def test_training_runs_at_bf16_and_its_token_loss_reads_nothing_back():
    from explorer.train import TrainSettings, token_loss, train
    from tests.host_syncs import count_host_syncs

    settings = TrainSettings(steps=3, batch=4, train_clips=8, eval_clips=4, saliency_steps=1, precision="bf16")
    _, _, result = train(settings, log=lambda line: None)
    assert len(result.losses) == 3 and all(np.isfinite(result.losses))
    logits, targets = torch.randn(2, 6, 5), torch.tensor([[0, 0, 3, 0, 3, 0], [0, 1, 0, 0, 0, 0]])
    with count_host_syncs() as counts:
        loss = token_loss(logits, targets)
    per_token = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    moving = targets.flatten() > 0
    torch.testing.assert_close(loss, 0.5 * (per_token[moving].mean() + per_token[~moving].mean()))
    assert sum(counts.values()) == 0
    torch.testing.assert_close(
        token_loss(logits, torch.zeros_like(targets)),
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten() * 0),
    )


def test_the_app_runs_at_the_chosen_precision_and_says_so():
    from pathlib import Path

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=180)
    at.session_state["model_size"], at.session_state["frames"], at.session_state["size"] = "tiny", 8, 112
    at.session_state["reducer"] = "sta"  # the reducer that crashed under bf16
    at.session_state["precision"] = "bf16"
    at.run()
    assert not at.exception and not at.error
    label = next(m.label for m in at.metric if m.label.startswith("Forward time"))
    assert label == "Forward time (cpu, bf16)"


def test_the_cli_takes_a_precision_and_prints_it(tmp_path, capsys):
    import json

    from explorer.cli import main

    assert (
        main(
            [
                "analyze",
                "sample:still_and_moving",
                "--model",
                "tiny",
                "--reducer",
                "sta",
                "--frames",
                "4",
                "--size",
                "64",
                "--device",
                "cpu",
                "--precision",
                "bf16",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert "on cpu at bf16" in capsys.readouterr().out
    assert json.loads((tmp_path / "summary.json").read_text())["meta"]["precision"] == "bf16"
