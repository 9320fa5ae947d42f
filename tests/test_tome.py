"""ToMe inside the video ViT: matching, merging, source tracking and proportional attention."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from timm.layers import Attention

from explorer.analyze import analyze
from explorer.models.engine import attend
from explorer.models.merge import bipartite_soft_matching, match_to_targets, merge_tokens
from explorer.models.reducers import ParameterError, make_reducer
from explorer.models.reducers.tome import parse_r
from explorer.models.video_vit import SIZES, VideoViT, normalize_video
from tests.clips import make_clip, moving_square_frames

TINY = replace(SIZES["tiny"], depth=4, num_classes=5, num_frames=8, img_size=112)


def tiny_model() -> VideoViT:
    torch.manual_seed(0)
    return VideoViT(TINY).eval()


def brute_force_matching(metric: np.ndarray, r: int) -> dict[int, int]:
    """ToMe by loops: even tokens pick their most similar odd token; the r best pairs merge."""
    unit = metric / np.linalg.norm(metric, axis=1, keepdims=True)
    best = {}
    for a in range(0, len(unit), 2):
        scores = {b: float(unit[a] @ unit[b]) for b in range(1, len(unit), 2)}
        partner = max(scores, key=scores.get)
        best[a] = (scores[partner], partner)
    chosen = sorted(best, key=lambda a: -best[a][0])[:r]
    return {a: best[a][1] for a in chosen}


@pytest.mark.parametrize("seed", range(5))
def test_bipartite_matching_equals_a_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    n, r = int(rng.integers(6, 40)), int(rng.integers(1, 10))
    metric = rng.normal(size=(n, 8))
    reduction = bipartite_soft_matching(torch.from_numpy(metric)[None], r)
    new_index, keeper = reduction.new_index[0].numpy(), reduction.keeper[0].numpy()
    merged = brute_force_matching(metric, min(r, n // 2))
    for a, b in merged.items():  # a merged A token goes where its B partner goes, and B keeps its place
        assert new_index[a] == new_index[b] and keeper[new_index[b]] == b
    survivors = [i for i in range(n) if i not in merged]
    assert sorted(keeper) == survivors and len(set(new_index[survivors])) == len(survivors)


def test_merging_is_a_size_weighted_average_and_sizes_add():
    x = torch.tensor([[[1.0], [10.0], [4.0], [7.0]]])
    size = torch.tensor([[1.0, 3.0, 1.0, 1.0]])
    is_target = torch.tensor([[False, True, False, True]])
    metric = torch.tensor([[[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]]])
    reduction = match_to_targets(metric, is_target, r=1)
    merged, new_size = merge_tokens(reduction, x, size)
    assert new_size.sum() == size.sum() and merged.shape == (1, 3, 1)
    token = int(reduction.new_index[0, 1])
    assert new_size[0, token] == 4.0 and merged[0, token, 0] == pytest.approx((1.0 + 3 * 10.0) / 4)


def test_r_schedules_follow_tome():
    assert parse_r(8, "constant", "", 4) == [8, 8, 8, 8]
    assert parse_r(8, "decreasing", "", 5) == [16, 12, 8, 4, 0]
    assert parse_r(8, "increasing", "", 5) == [0, 4, 8, 12, 16]
    assert parse_r(8, "constant", "3, 2", 4) == [3, 2, 0, 0]
    with pytest.raises(ParameterError, match="r_list"):
        make_reducer("tome", r_list="3,x")


@pytest.fixture(scope="module")
def merged_trace():
    clip = make_clip(moving_square_frames(frames=8, size=112, row=3))
    return analyze(clip, tiny_model(), make_reducer("tome", r=40), device="cpu")


def test_exactly_r_tokens_leave_per_block_and_the_cap_is_half():
    clip = make_clip(moving_square_frames(frames=8, size=112, row=3))
    trace = analyze(clip, tiny_model(), make_reducer("tome", r_list="40,90,30,30"), device="cpu", saliency=None)
    assert trace.tokens_per_layer == [196, 156, 78, 48, 24]  # 90 asked of 156: capped at 78
    assert make_reducer("tome", r_list="40,90,30,30").token_counts(196, (4, 7, 7), 4) == trace.tokens_per_layer


def test_the_owner_map_is_a_partition_that_only_coarsens(merged_trace):
    trace = merged_trace
    for layer in range(trace.layers + 1):
        owner = trace.owner[layer].ravel()
        assert np.array_equal(np.unique(owner), np.arange(trace.tokens_per_layer[layer]))  # every cell, every token
        assert trace.values["size"][layer].sum() == trace.input_tokens
        home = trace.values["cell"][layer]
        assert np.array_equal(owner[home], np.arange(len(home)))  # each token sits on one of its own cells
    for layer in range(trace.layers):
        before, after = trace.owner[layer].ravel(), trace.owner[layer + 1].ravel()
        for token in range(trace.tokens_per_layer[layer]):  # cells together stay together
            assert len(np.unique(after[before == token])) == 1
    assert trace.values["size"][-1].max() > 2 and (trace.owner[-1] >= 0).all()


def test_merged_groups_span_frames_on_a_clip_with_still_background(merged_trace):
    owner = merged_trace.owner[-1]
    slots = [len(np.unique(np.nonzero(owner == token)[0])) for token in range(merged_trace.tokens_per_layer[-1])]
    assert max(slots) > 1


def test_flops_count_the_mlp_after_the_merge(merged_trace):
    from explorer.models.flops import block_flops

    trace, cfg = merged_trace, TINY
    for block in range(1, trace.layers + 1):
        before, after = trace.tokens_per_layer[block - 1], trace.tokens_per_layer[block]
        assert trace.flops[block] == block_flops(before, cfg.embed_dim, cfg.mlp_ratio, mlp_tokens=after)
        assert block_flops(before, cfg.embed_dim) > trace.flops[block]


def test_proportional_attention_of_a_merged_token_equals_attention_over_its_copies():
    torch.manual_seed(0)
    attn = Attention(16, num_heads=2, qkv_bias=True).eval()
    a, b, c = torch.randn(3, 16)
    copies = torch.stack([a, b, c, c, c])[None]
    merged = torch.stack([a, b, c])[None]
    bias = torch.log(torch.tensor([1.0, 1.0, 3.0]))[None, None, None, :]
    with torch.inference_mode():
        plain = attn(copies)
        # the path the model takes with a reducer (keys asked for): the same output as timm's
        proportional = attend(attn, merged, mask=bias, keys=True).out
    torch.testing.assert_close(proportional, plain[:, :3], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(plain[:, 3], plain[:, 2])


def test_tome_with_nothing_to_merge_gives_exactly_the_dense_output():
    clip = make_clip(moving_square_frames(frames=8, size=112, row=3))
    model = tiny_model()
    with torch.inference_mode():
        dense = model(normalize_video(torch.from_numpy(clip.frames))[None])[0].numpy()
    for reducer in (make_reducer("tome", r=0), make_reducer("tome", r=0, prop_attn=True)):
        trace = analyze(clip, model, reducer, device="cpu")
        assert trace.tokens_per_layer == [196] * 5 and np.array_equal(trace.logits, dense)


def test_proportional_attention_changes_the_output_once_tokens_merge():
    clip = make_clip(moving_square_frames(frames=8, size=112, row=3))
    model = tiny_model()
    off = analyze(clip, model, make_reducer("tome", r=40), device="cpu", saliency=None)
    on = analyze(clip, model, make_reducer("tome", r=40, prop_attn=True), device="cpu", saliency=None)
    assert not np.allclose(off.logits, on.logits)


def test_a_merged_trace_with_saliency_round_trips(merged_trace, tmp_path):
    from explorer.trace import Trace

    loaded = Trace.load(merged_trace.save(tmp_path))
    assert loaded.tokens_per_layer == merged_trace.tokens_per_layer
    assert np.array_equal(loaded.owner, merged_trace.owner)
    for name in ("cell", "size", "rollout", "attention"):
        for a, b in zip(loaded.values[name], merged_trace.values[name]):
            np.testing.assert_array_equal(a, b)
    assert loaded.meta["saliency"] == {"fusion": "mean", "discard": 0.0}
