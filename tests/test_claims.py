"""The README's claims about merging, pooling, rollout and STA, each pinned by a test that fails when the code
changes: expected values are worked out by hand here, never taken from the code under test."""

import numpy as np
import torch

from explorer.analyze import analyze
from explorer.models import engine
from explorer.models.merge import bipartite_soft_matching
from explorer.models.reducers import make_reducer
from explorer.models.video_vit import VideoViT, VideoViTConfig, normalize_video
from explorer.saliency import rollout
from tests.clips import make_clip


def tiny(depth: int = 3) -> VideoViT:
    torch.manual_seed(0)
    return VideoViT(VideoViTConfig(embed_dim=64, depth=depth, num_heads=2, num_classes=5, num_frames=8, img_size=64))


def noise_video(seed: int = 0) -> torch.Tensor:
    frames = np.random.default_rng(seed).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    return normalize_video(torch.from_numpy(frames))[None]


def traced(reducer, depth: int = 3):
    model, video = tiny(depth).eval(), noise_video()
    selection = engine.prepare(reducer, video[0], model)
    with torch.inference_mode():
        return engine.run_clip(model, video, selection, reducer, trace=True)


def test_tome_orders_the_unmerged_tokens_of_a_first_most_similar_first_then_the_tokens_of_b():
    # A = positions 0, 2, 4; B = 1, 3, 5, all three along x. a0 is along x too (cos 1, the best match), a2 at
    # cos 0.6 and a4 at cos 0.8 to every b: with r = 1 only a0 merges; a4 and a2 stay, a4 first (more similar),
    # against their index order, so that an index-ordered A is caught too.
    angle = lambda cos: [cos, float(np.sqrt(1 - cos**2))]  # noqa: E731  (a unit vector at that cosine to x)
    metric = torch.tensor(
        [[[1.0, 0.0], [1.0, 0.0], angle(0.6), [1.0, 0.0], angle(0.8), [1.0, 0.0]]], dtype=torch.float32
    )
    reduction = bipartite_soft_matching(metric, r=1)
    assert reduction.keeper[0].tolist() == [4, 2, 1, 3, 5]  # unmerged A (a4 before a2), then B in order
    assert reduction.new_index[0].tolist() == [2, 2, 1, 3, 0, 4]  # a0 went into b1, now token 2


def test_proportional_attention_adds_log_size_so_a_bigger_token_gets_more_attention():
    flow = engine._Flow(
        torch.zeros(1, 3, 4),
        torch.arange(3)[None],
        torch.arange(3)[None],
        make_reducer("tome", r=1, prop_attn=True),
        (1, 1, 3),
        depth=1,
        trace=False,
        fusion=None,
    )
    flow.size, flow.merged = torch.tensor([[4.0, 1.0, 1.0]]), True
    mask = flow.asks(0)["mask"]
    attn = tiny().blocks[0].attn
    with torch.no_grad():  # queries and keys of zero: the logits are all equal, so only the bias decides
        attn.qkv.weight.zero_()
        attn.qkv.bias.zero_()
        weights = engine.attend(attn, torch.randn(1, 3, 64), mask=mask, weights=True).weights
    assert torch.allclose(weights[0, 0, 0], torch.tensor([4 / 6, 1 / 6, 1 / 6]), atol=1e-6)


def test_after_merges_the_final_pooling_weighs_each_token_by_its_size():
    logits, record = traced(make_reducer("tome", r=20))
    last = record.layers[-1]
    assert last.size.max() > 1, "tokens merged"
    assert np.allclose(record.pooling, last.size)
    x = torch.randn(1, 3, 64)
    size = torch.tensor([[3.0, 1.0, 2.0]])
    head = tiny().eval()
    by_hand = head.head(head.fc_norm((3 * x[:, 0] + x[:, 1] + 2 * x[:, 2]) / 6))
    assert torch.allclose(head.forward_head(x, size), by_hand, atol=1e-6)


def test_rollout_passes_a_merged_tokens_relevance_back_to_its_members_by_size():
    # tokens 0 and 1 (sizes 3 and 1) merge into new token 0, token 2 stays as new token 1; no attention mixing
    block = engine.BlockRecord(
        attention_tokens=3,
        mlp_tokens=2,
        fused=np.zeros((3, 3)),
        new_index=np.array([0, 0, 1]),
        merge_weight=np.array([3.0, 1.0, 1.0]),
    )
    relevance = rollout([block], pooling=np.array([1.0, 1.0]))
    assert np.allclose(relevance[0], [0.5 * 3 / 4, 0.5 * 1 / 4, 0.5])
    _, record = traced(make_reducer("tome", r=20))
    merging = [b for b, block in enumerate(record.blocks) if block.new_index is not None]
    assert len(merging) >= 2
    for b in merging:  # ToMe's merges weigh by the sizes of the tokens entering the block
        assert np.allclose(record.blocks[b].merge_weight, record.layers[b].size)
    assert record.layers[merging[1]].size.max() > 1, "the second merge combines tokens of different sizes"
    _, vtm = traced(make_reducer("vtm", gamma=2, merge_blocks=2))
    assert all(np.all(b.merge_weight == 1) for b in vtm.blocks if b.new_index is not None), "VTM: plain mean"


def test_rollout_starts_from_the_pooling_weights():
    block = engine.BlockRecord(attention_tokens=2, mlp_tokens=2, fused=np.zeros((2, 2)))
    assert np.allclose(rollout([block], pooling=np.array([3.0, 1.0]))[-1], [0.75, 0.25])
    trace = analyze(
        make_clip(np.random.default_rng(1).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)),
        tiny(),
        make_reducer("tome", r=20),
        device="cpu",
    )
    last = trace.layers
    sizes = trace.values["size"][last]
    assert sizes.max() > sizes.min(), "merged tokens of different sizes"
    # the map is relevance per cell relative to a uniform share (a token of k cells spreads its relevance over
    # them): relevance proportional to size, the pooling's weights, reads 1 everywhere at the last layer
    assert np.allclose(trace.values["rollout"][last], 1.0)


def test_sta_prunes_after_the_mlp_of_its_blocks():
    _, record = traced(make_reducer("sta", r=8), depth=3)
    pruned = [b for b, block in enumerate(record.blocks) if block.new_index is not None]
    assert pruned == [0, 1, 2]  # after blocks 0, depth // 3, 2 * depth // 3
    for b in pruned:
        block = record.blocks[b]
        assert block.mlp_tokens == block.attention_tokens, "the MLP ran on every token of the block"
        assert len(record.layers[b + 1].cells) < block.attention_tokens, "then the block's output was pruned"
