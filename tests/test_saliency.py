"""Attention rollout: row-stochastic steps, a direct computation to agree with, and merges accounted for."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from explorer.analyze import analyze
from explorer.models.reducers import make_reducer
from explorer.models.video_vit import SIZES, VideoViT, normalize_video
from explorer.saliency import SaliencySpec, attention_step, reduction_step
from tests.clips import make_clip, moving_square_frames

TINY = replace(SIZES["tiny"], depth=3, num_classes=5, num_frames=8, img_size=112)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    return make_clip(moving_square_frames(frames=8, size=112, row=3)), VideoViT(TINY).eval()


def direct_rollout(model: VideoViT, clip) -> np.ndarray:
    """Rollout by hand: each block's attention from its own q and k, heads averaged, I added, rows normalized."""
    x = model.embed(normalize_video(torch.from_numpy(clip.frames))[None])
    product = np.eye(x.shape[1])
    with torch.inference_mode():
        for block in model.blocks:
            attn = block.attn
            q, k, _ = attn.qkv(block.norm1(x)).reshape(1, x.shape[1], 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
            weights = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(-1).mean(1)[0].double().numpy()
            step = weights + np.eye(len(weights))
            product = (step / step.sum(1, keepdims=True)) @ product
            x = block(x)
    return product.mean(axis=0)


def test_rollout_without_reduction_matches_a_direct_computation(setup):
    clip, model = setup
    trace = analyze(clip, model, make_reducer("none"), device="cpu")
    expected = direct_rollout(model, clip)
    np.testing.assert_allclose(trace.values["rollout"][0] / trace.input_tokens, expected, rtol=1e-4, atol=1e-7)


def test_rollout_steps_are_row_stochastic_and_every_layer_sums_to_one(setup):
    clip, model = setup
    trace = analyze(clip, model, make_reducer("tome", r=30), device="cpu")
    for layer in range(trace.layers + 1):  # per-cell shares times the cells of each token give the token shares
        shares = trace.values["rollout"][layer] * trace.values["size"][layer] / trace.input_tokens
        assert shares.sum() == pytest.approx(1.0) and (shares >= 0).all()
    rng = np.random.default_rng(0)
    fused = rng.random((6, 6))
    np.testing.assert_allclose(attention_step(fused).sum(1), 1.0)
    merge = reduction_step(np.array([0, 1, 1, -1, 2, 2]), np.array([1.0, 2.0, 1.0, 1.0, 1.0, 3.0]), 3)
    np.testing.assert_allclose(merge.sum(1), 1.0)
    np.testing.assert_allclose(merge[1], [0, 2 / 3, 1 / 3, 0, 0, 0])
    assert merge[:, 3].sum() == 0  # a pruned token passes nothing on
    chain = attention_step(rng.random((3, 3))) @ merge @ attention_step(fused)
    np.testing.assert_allclose(chain.sum(1), 1.0)


def test_attention_received_sums_to_one_per_layer_and_is_blank_after_the_last_block(setup):
    clip, model = setup
    trace = analyze(clip, model, make_reducer("tome", r=30), device="cpu")
    for layer in range(trace.layers):
        received = trace.values["attention"][layer] * trace.values["size"][layer] / trace.input_tokens
        assert received.sum() == pytest.approx(1.0, rel=1e-5)
    assert np.isnan(trace.values["attention"][-1]).all()


def test_head_fusion_and_discard_change_the_map(setup):
    clip, model = setup
    maps = {
        spec: analyze(clip, model, make_reducer("none"), device="cpu", saliency=spec).values["rollout"][0]
        for spec in (SaliencySpec("mean"), SaliencySpec("max"), SaliencySpec("min"), SaliencySpec("mean", 0.9))
    }
    values = list(maps.values())
    assert all(not np.allclose(values[0], other) for other in values[1:])
    with pytest.raises(ValueError, match="head fusion"):
        SaliencySpec("median")


def test_saliency_can_be_left_out(setup):
    clip, model = setup
    trace = analyze(clip, model, make_reducer("rlt"), device="cpu", saliency=None)
    assert "rollout" not in trace.values and trace.meta["saliency"] is None
