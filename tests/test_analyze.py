import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from explorer.analyze import ModelSpec, analyze, build_model
from explorer.models.flops import vit_flops
from explorer.models.reducers import ParameterError, make_reducer
from explorer.models.video_vit import SIZES, VideoViT, normalize_video
from explorer.trace import Trace
from tests.clips import make_clip, moving_square_frames, still_frames

TINY = replace(SIZES["tiny"], depth=2, num_classes=5)


def tiny_model(**changes) -> VideoViT:
    torch.manual_seed(0)
    return VideoViT(replace(TINY, **changes)).eval()


def test_a_reducer_with_nothing_to_drop_gives_exactly_the_dense_output():
    clip = make_clip(np.random.default_rng(0).integers(0, 256, (16, 224, 224, 3), dtype=np.uint8))
    model = tiny_model()
    with torch.inference_mode():
        dense = model(normalize_video(torch.from_numpy(clip.frames))[None])[0].numpy()
    for reducer in (make_reducer("none"), make_reducer("rlt", tau=0.0)):  # noise: every tubelet changes
        trace = analyze(clip, model, reducer, device="cpu")
        assert trace.tokens_per_layer[0] == 1568
        assert np.array_equal(trace.logits, dense)


def test_rlt_feeds_only_kept_tokens_with_their_own_positions():
    clip = make_clip(still_frames())
    model = tiny_model()
    trace = analyze(clip, model, make_reducer("rlt"), device="cpu")
    video = normalize_video(torch.from_numpy(clip.frames))[None]
    with torch.inference_mode():  # independent path: the Conv3d over the whole clip, then the first tubelet
        tokens = model.patch_embed.proj(video).flatten(2).transpose(1, 2) + model.pos_embed
        expected = model.forward_head(model.forward_blocks(tokens[:, :196]))[0].numpy()
    assert trace.tokens_per_layer == [196] * 3
    np.testing.assert_allclose(trace.logits, expected, rtol=1e-4, atol=1e-5)


def test_the_learned_length_embedding_gets_each_tokens_own_run_length():
    clip = make_clip(moving_square_frames())
    model = tiny_model(length_embed=True)
    torch.nn.init.normal_(model.length_embed.weight)
    trace = analyze(clip, model, make_reducer("rlt"), device="cpu")
    keep = torch.from_numpy(trace.values["cell"][0])[None]
    lengths = torch.from_numpy(trace.values["run_length"][0])[None]
    video = normalize_video(torch.from_numpy(clip.frames))[None]
    with torch.inference_mode():
        tokens = model.embed(video, keep, lengths)
        by_hand = (
            model.embed(video, keep, torch.ones_like(lengths))
            - model.length_embed.weight[0]
            + model.length_embed.weight[lengths[0] - 1]
        )
        assert torch.allclose(tokens, by_hand, atol=1e-5)
        assert np.allclose(trace.logits, model.forward_head(model.forward_blocks(tokens))[0].numpy(), atol=1e-5)
    assert "length embedding" not in " ".join(trace.meta["notes"])


def test_trace_of_rlt_is_consistent_and_round_trips(tmp_path):
    clip = make_clip(moving_square_frames())
    trace = analyze(clip, tiny_model(), make_reducer("rlt"), device="cpu")
    assert trace.owner.shape == (3, 8, 14, 14)
    assert (trace.owner >= 0).all()  # RLT runs cover every cell
    assert trace.home(0).sum() == trace.tokens_per_layer[0] == 210
    assert trace.values["run_length"][0].sum() == 1568  # the runs tile the grid exactly
    assert trace.seconds["forward"] > 0 and trace.flops.sum() < trace.dense_flops.sum()
    timed = analyze(clip, tiny_model(), make_reducer("rlt"), device="cpu", timing_runs=3).seconds
    assert 0 < timed["forward_min"] <= timed["forward"] <= timed["forward_max"]

    trace.save(tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("grid", "input_tokens", "tokens_per_layer", "reducer", "params", "seconds"):
        assert key in summary
    assert summary["grid"] == [8, 14, 14] and summary["input_tokens"] == 1568
    assert summary["reducer"] == "rlt" and summary["params"] == {"tau": 0.1, "budget": 0.0}
    with np.load(tmp_path / "trace.npz") as npz:
        assert npz["owner"].shape == (3, 8, 14, 14)
        run_length = npz["run_length"]
        assert run_length.shape == (8, 14, 14)
        assert (run_length[trace.home(0)] > 0).all() and (run_length[~trace.home(0)] == 0).all()
        assert run_length[3, 5, 3] == 1 and run_length[4, 5, 3] == 4
    back = Trace.load(tmp_path)
    assert np.array_equal(back.owner, trace.owner) and back.tokens_per_layer == trace.tokens_per_layer
    assert np.array_equal(back.values["run_length"][2], trace.values["run_length"][2])
    assert back.top_k(3) == trace.top_k(3)


def test_random_drop_leaves_cells_without_tokens():
    clip = make_clip(moving_square_frames())
    trace = analyze(clip, tiny_model(), make_reducer("random"), device="cpu")
    assert trace.tokens_per_layer[0] == 210
    assert (trace.owner[0] < 0).sum() == 1568 - 210
    assert np.isnan(trace.cell_values("cell", 0)).sum() == 1568 - 210


def test_flops_match_the_videomae_paper_for_vit_b():
    cfg = SIZES["base"]
    flops = vit_flops([1568] * 13, cfg.embed_dim, cfg.mlp_ratio, 3 * 2 * 16 * 16, 400)
    # VideoMAE quotes 180 G multiply-adds for ViT-B on 16 x 224 x 224; we count a multiply-add as 2 FLOPs
    assert flops.sum() / 2 == pytest.approx(180e9, rel=0.02)


def test_build_model_and_bad_requests():
    model, report = build_model(ModelSpec(size="tiny"), 8, 112)
    assert report is None and model.grid == (4, 7, 7)
    with pytest.raises(ParameterError, match="unknown model size"):
        build_model(ModelSpec(size="huge"), 16, 224)
    clip = make_clip(still_frames(frames=8, size=112))
    with pytest.raises(ParameterError, match="expects 16 frames"):
        analyze(clip, tiny_model(), make_reducer("none"), device="cpu")
    with pytest.raises(ParameterError, match="cuda"):
        analyze(
            make_clip(still_frames()),
            tiny_model(),
            make_reducer("none"),
            device="cuda" if not torch.cuda.is_available() else "tpu",
        )
