"""EViT attentive pruning: added as one file, found everywhere by the registry."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from explorer.accuracy import default_specs
from explorer.analyze import analyze
from explorer.cli import main
from explorer.models.merge import merge_tokens
from explorer.models.reducers import REDUCERS, make_reducer
from explorer.models.reducers.base import BlockContext
from explorer.models.reducers.evit import prune_blocks
from explorer.models.video_vit import SIZES, VideoViT, normalize_video
from tests.clips import make_clip, moving_square_frames

TINY = replace(SIZES["tiny"], embed_dim=64, depth=4, num_heads=2, num_classes=5, num_frames=8, img_size=112)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VideoViT(TINY).eval()


@pytest.fixture(scope="module")
def clip():
    return make_clip(moving_square_frames(frames=8, size=112, row=3))


def test_pruning_blocks_and_counts_follow_the_paper():
    assert prune_blocks(12) == [3, 6, 9]  # the official code's 4th, 7th and 10th blocks
    counts = make_reducer("evit").token_counts(1568, (8, 14, 14), 12)
    assert counts == [1568] * 4 + [1099] * 3 + [771] * 3 + [541] * 3  # ceil(0.7 N) kept, plus the fused token
    assert make_reducer("evit", fuse=False).token_counts(1568, (8, 14, 14), 12)[-1] == 539


def test_the_most_attended_tokens_stay_and_the_rest_fuse_into_their_attention_weighted_sum():
    torch.manual_seed(1)
    x = torch.randn(2, 10, 4)
    received = torch.rand(2, 10).softmax(dim=1)
    ctx = BlockContext(
        block=1,
        depth=4,
        grid=(1, 2, 5),
        x=x,
        keys=None,
        size=torch.ones(2, 10),
        cells=torch.arange(10).expand(2, -1),
        received=received,
    )
    reduction, values = make_reducer("evit", keep_rate=0.6).step(ctx)
    merged, size = merge_tokens(reduction, x, torch.ones(2, 10))
    for b in range(2):
        top = set(torch.topk(received[b], 6).indices.tolist())
        kept = sorted(top)
        rest = [i for i in range(10) if i not in top]
        torch.testing.assert_close(merged[b, :6], x[b, kept])  # in their order, unchanged
        fused = (x[b, rest] * received[b, rest, None]).sum(dim=0)
        torch.testing.assert_close(merged[b, 6], fused)
        assert size[b].tolist() == [1.0] * 6 + [4.0]
    torch.testing.assert_close(values["evit_attention"], received * 10)


def test_a_run_prunes_what_its_attention_says_and_matches_its_counts(model, clip):
    trace = analyze(clip, model, make_reducer("evit"), device="cpu")
    grid = model.cfg.grid
    assert trace.tokens_per_layer == make_reducer("evit").token_counts(int(np.prod(grid)), grid, TINY.depth)
    assert trace.tokens_per_layer == [196, 196, 139, 99, 71]  # blocks 1, 2, 3 of 4 prune
    # the fused token stands for every cell its pruned tokens stood for: the owner map stays a partition
    assert (trace.owner[2] >= 0).all() and trace.values["size"][2].sum() == 196
    kept_attention = trace.values["evit_attention"][1]
    assert np.isfinite(kept_attention).all() and kept_attention.mean() == pytest.approx(1.0)
    assert trace.meta["values"]["evit_attention"]["kind"] == "heat"


def test_the_kept_tokens_are_those_a_plain_timm_forward_attends_to_most(model, clip):
    """Brute force: run timm's own blocks up to the first pruning block and compute its attention by hand."""
    video = normalize_video(torch.from_numpy(clip.frames))[None]
    with torch.inference_mode():
        x = model.embed(video)
        x = model.blocks[0](x)
        attn = model.blocks[1].attn
        h = model.blocks[1].norm1(x)
        qkv = attn.qkv(h).reshape(1, 196, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        q, k, _ = qkv.unbind(0)
        received = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1).mean(dim=(1, 2))[0]
    expected = set(torch.topk(received, math.ceil(0.7 * 196)).indices.tolist())
    trace = analyze(clip, model, make_reducer("evit"), device="cpu", saliency=None)
    # after the first pruning block, each kept token is alone at its own cell; the fused token holds the rest
    sizes = trace.values["size"][2]
    alone = {int(c) for c, s in zip(trace.values["cell"][2], sizes) if s == 1}
    assert alone == expected


def test_keeping_everything_is_exactly_the_dense_model(model, clip):
    with torch.inference_mode():
        dense = model(normalize_video(torch.from_numpy(clip.frames))[None])[0].numpy()
    trace = analyze(clip, model, make_reducer("evit", keep_rate=1.0), device="cpu")
    assert trace.tokens_per_layer == [196] * 5 and np.array_equal(trace.logits, dense)


def test_a_budget_fits_keep_rate(model, clip):
    trace = analyze(clip, model, make_reducer("evit", budget=0.8), device="cpu", saliency=None)
    assert abs(np.mean(trace.tokens_per_layer) / 196 - 0.8) < 0.02
    assert trace.meta["budget"]["knob"] == "keep_rate"


@pytest.mark.slow
def test_it_is_found_by_every_surface_with_no_edit_elsewhere(tmp_path, capsys):
    assert "evit" in REDUCERS and REDUCERS["evit"].title.startswith("EViT")
    assert "evit" in default_specs()  # accuracy against budget
    assert main(["reducers"]) == 0 and "keep_rate=0.7" in capsys.readouterr().out  # the CLI's listing
    assert (
        main(
            [
                "analyze",
                "sample:still_and_moving",
                "--model",
                "tiny",
                "--reducer",
                "evit",
                "--set",
                "keep_rate=0.5",
                "--frames",
                "4",
                "--size",
                "64",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "bench",
                "sample:still_and_moving",
                "--models",
                "tiny",
                "--frames",
                "4",
                "--size",
                "64",
                "--batch",
                "2",
                "--runs",
                "1",
                "--json",
                str(tmp_path / "bench.json"),
            ]
        )
        == 0
    )
    rows = {row["reducer"]: row for row in json.loads((tmp_path / "bench.json").read_text())["rows"]}
    assert rows["evit"]["run"] == "batched" and rows["evit"]["gflops"] < rows["none"]["gflops"]


def test_under_bf16_autocast_the_cuda_path_runs(model, clip):
    """The GPU runs the forward under bf16 autocast; the same on the CPU reproduces its dtype mismatches."""
    video = normalize_video(torch.from_numpy(clip.frames))[None]
    reducer = make_reducer("evit")
    from explorer.models import engine

    selection = engine.prepare(reducer, video[0], model)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits, record = engine.run_clip(model, video, selection, reducer, trace=True)
    assert logits.shape == (1, 5) and [layer.cells.size for layer in record.layers] == [196, 196, 139, 99, 71]


def test_the_fused_token_counts_once_in_the_final_pooling(model, clip):
    """EViT's class token sees the fused token as one token: the mean pooling does not weigh it by its cells."""
    trace = analyze(clip, model, make_reducer("evit"), device="cpu")
    last = trace.layers
    sizes = trace.values["size"][last]
    relevance = trace.values["rollout"][last] * sizes / trace.owner[0].size  # back to each token's share
    assert sizes.max() > 1 and np.allclose(relevance, 1 / len(sizes))
    merged = analyze(clip, model, make_reducer("tome", r=20), device="cpu")  # ToMe pools by size
    shares = merged.values["rollout"][last] * merged.values["size"][last] / merged.owner[0].size
    assert np.allclose(shares, merged.values["size"][last] / merged.values["size"][last].sum())
