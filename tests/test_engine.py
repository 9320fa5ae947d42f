"""The engine: nothing a run records stays on the shared model, so threads may share one model without a lock."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from threading import Barrier

import numpy as np
import pytest
import torch

from explorer.analyze import SALIENCY_BYTES, analyze
from explorer.models import engine
from explorer.models.reducers import make_reducer
from explorer.models.video_vit import SIZES, VideoViT, normalize_video
from explorer.saliency import SaliencySpec
from tests.clips import make_clip, moving_square_frames

TINY = replace(SIZES["tiny"], embed_dim=64, depth=4, num_heads=2, num_classes=5, num_frames=8, img_size=112)
REDUCERS = [("tome", {"r": 20}), ("vtm", {}), ("sta", {}), ("evit", {}), ("rlt", {})]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VideoViT(TINY).eval()


@pytest.fixture(scope="module")
def clip():
    return make_clip(moving_square_frames(frames=8, size=112, row=3))


def tensor_attributes(model: torch.nn.Module) -> dict[str, set[str]]:
    """Every tensor a module holds: parameters, buffers and plain attributes, by module."""
    held = {}
    for name, module in model.named_modules():
        plain = {key for key, value in vars(module).items() if isinstance(value, torch.Tensor)}
        held[name] = plain | set(module._parameters) | set(module._buffers)
    return held


def test_a_run_leaves_no_tensor_on_the_model(model, clip):
    before = tensor_attributes(model)
    for name, params in [("none", {}), ("tome", {"r": 20})]:
        trace = analyze(clip, model, make_reducer(name, **params), device="cpu", saliency=SaliencySpec())
        assert "rollout" in trace.values  # the attention was recorded: and returned, not kept
    assert tensor_attributes(model) == before


def same(a, b) -> bool:
    return (
        a.tokens_per_layer == b.tokens_per_layer
        and np.array_equal(a.owner, b.owner)
        and np.array_equal(a.logits, b.logits)
        and a.values.keys() == b.values.keys()
        and all(
            np.array_equal(x, y, equal_nan=True) for name in a.values for x, y in zip(a.values[name], b.values[name])
        )
    )


def test_four_threads_on_one_model_give_the_traces_of_one_run_at_a_time(model, clip):
    def run(name: str, params: dict):
        return analyze(clip, model, make_reducer(name, **params), device="cpu", saliency=SaliencySpec("max"))

    alone = [run(name, params) for name, params in REDUCERS[:4]]
    start = Barrier(4)

    def together(index: int):
        start.wait()  # all four forwards at once, on the same modules
        return run(*REDUCERS[index])

    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(together, range(4)))
    for name, a, b in zip(REDUCERS, alone, concurrent):
        assert same(a, b), name[0]


def test_the_saliency_estimate_counts_every_block_map_and_one_block_of_heads():
    # ViT-L at 16 x 224: 24 fused maps, one block's 16 heads of probabilities, logits and the kernel's own,
    # then rollout's float64 pair
    estimate = engine.saliency_bytes(24, 16, 1568)
    assert estimate == 1568**2 * (24 * 4 + 16 * 12 + 16)
    assert estimate < SALIENCY_BYTES < engine.saliency_bytes(24, 16, 3136)  # 32 frames are refused, with a note
    assert engine.saliency_bytes(12, 6, 1568) < SALIENCY_BYTES  # ViT-S fits


@pytest.mark.parametrize(
    "name, params",
    [
        ("tome", {"r": 20}),
        ("sta", {}),
        ("evit", {}),
        ("vtm", {"targets": "naive"}),
        ("vtm", {"targets": "region"}),
        ("vtm", {"targets": "motion"}),
    ],
)
def test_a_batch_with_a_reducer_between_blocks_gives_each_clip_its_own_logits(model, name, params):
    clips = [make_clip(moving_square_frames(frames=8, size=112, row=row)) for row in (1, 3, 5)]
    videos = torch.stack([normalize_video(torch.from_numpy(c.frames)) for c in clips])
    reducer = make_reducer(name, **params)
    prepared = []
    for video in videos:
        own = type(reducer)(**reducer.values)
        prepared.append((own, engine.prepare(own, video, model)))
    with torch.inference_mode():
        alone = torch.cat([engine.run_clip(model, v[None], s, own)[0] for v, (own, s) in zip(videos, prepared)])
        batch = engine.batch_run(model, reducer, videos, prepared)
        together = batch.forward()[0]  # run_clip returns (logits, record)
    assert batch.how == "batched"
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
