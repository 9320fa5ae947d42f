"""Attention within windows of consecutive frames (VTM's setting): exact, contained, and merging stays inside."""

import numpy as np
import pytest
import torch

from explorer.analyze import analyze
from explorer.models import engine
from explorer.models.reducers import ParameterError, make_reducer
from explorer.models.video_vit import VideoViT, VideoViTConfig, normalize_video
from explorer.saliency import SaliencySpec
from tests.clips import make_clip

FRAMES, SIZE = 16, 64  # 8 time slots of 4 x 4 cells


def model(**changes) -> VideoViT:
    torch.manual_seed(0)
    cfg = VideoViTConfig(embed_dim=64, depth=3, num_heads=2, num_classes=5, num_frames=FRAMES, img_size=SIZE)
    return VideoViT(cfg).eval()


def noise_clip(seed: int = 0):
    return make_clip(np.random.default_rng(seed).integers(0, 256, (FRAMES, SIZE, SIZE, 3), dtype=np.uint8))


@pytest.mark.parametrize("reducer", ["none", "rlt", "tome", "vtm"])
def test_one_window_of_the_whole_clip_is_exactly_global_attention(reducer):
    clip, network = noise_clip(), model()
    made = make_reducer(reducer, **({"tau": 0.0} if reducer == "rlt" else {}))
    one = analyze(clip, network, made, device="cpu", window=FRAMES, saliency=None)
    whole = analyze(clip, network, made, device="cpu", saliency=None)
    assert one.meta["window"] == FRAMES and whole.meta["window"] is None
    assert one.tokens_per_layer == whole.tokens_per_layer
    assert np.array_equal(one.owner, whole.owner)
    assert np.allclose(one.logits, whole.logits, atol=1e-5)
    assert np.allclose(one.flops, whole.flops)


def test_windowed_blocks_equal_each_window_run_alone():
    network, clip = model(), noise_clip()
    video = normalize_video(torch.from_numpy(clip.frames))[None]
    x = network.embed(video)
    per_window = 2 * 16  # 4 frames = 2 time slots of 16 cells
    windows = (torch.arange(x.shape[1]) // per_window)[None]
    with torch.inference_mode():
        together = engine.run_blocks(network.blocks, x, _Windows(windows))
        alone = torch.cat([engine.run_blocks(network.blocks, part) for part in x.split(per_window, dim=1)], dim=1)
    assert torch.allclose(together, alone, atol=1e-5)
    with torch.inference_mode():
        mixed = engine.run_blocks(network.blocks, x)
    assert not torch.allclose(together, mixed, atol=1e-3), "global attention differs: the test can tell"


class _Windows(engine.BlockHooks):
    def __init__(self, windows):
        self.windows = windows

    def asks(self, index):
        return {"windows": self.windows}


def test_no_attention_weight_crosses_a_window_and_both_paths_agree():
    clip, network = noise_clip(1), model()
    traced = analyze(clip, network, make_reducer("none"), device="cpu", window=4, saliency=SaliencySpec())
    slot = np.arange(8 * 16) // 16 // 2  # the window of each cell, 2 slots per window
    crossing = slot[:, None] != slot[None, :]
    record = _record(network, clip, window_slots=2)
    for block in record.blocks:
        assert block.fused is not None and np.all(block.fused[crossing] == 0) and block.fused[~crossing].sum() > 0
        assert block.attention_pairs == 4 * 32**2  # 4 windows of 32 tokens
    packed = analyze(clip, network, make_reducer("none"), device="cpu", window=4, saliency=None)
    assert np.allclose(packed.logits, traced.logits, atol=1e-5), "the mask path and the packed path agree"
    assert packed.flops[1] < analyze(clip, network, make_reducer("none"), device="cpu", saliency=None).flops[1]


def _record(network, clip, window_slots):
    video = normalize_video(torch.from_numpy(clip.frames))[None]
    selection = engine.prepare(make_reducer("none"), video, network)
    with torch.inference_mode():
        _, record = engine.run_clip(
            network,
            video,
            selection,
            make_reducer("none"),
            trace=True,
            fusion=lambda w: w.mean(dim=1),
            window_slots=window_slots,
        )
    return record


@pytest.mark.parametrize(("reducer", "params"), [("tome", {"r": 20}), ("vtm", {"gamma": 4})])
def test_merging_stays_inside_the_windows(reducer, params):
    trace = analyze(noise_clip(2), model(), make_reducer(reducer, **params), device="cpu", window=4, saliency=None)
    assert trace.tokens_per_layer[-1] < trace.tokens_per_layer[0], "it merged"
    window = (np.arange(8) // 2)[:, None, None]  # per time slot
    for owner in trace.owner[1:]:
        has = owner >= 0
        tokens, windows = owner[has], np.broadcast_to(window, owner.shape)[has]
        for token in np.unique(tokens):
            assert len(np.unique(windows[tokens == token])) == 1, f"token {token} spans windows"


def test_a_bad_window_is_named():
    with pytest.raises(ParameterError, match="whole number of tubelets"):
        analyze(noise_clip(), model(), make_reducer("none"), device="cpu", window=3)
    with pytest.raises(ParameterError, match="whole number of tubelets"):
        analyze(noise_clip(), model(), make_reducer("none"), device="cpu", window=0)


LONG_RUN = """
import re
from explorer.analyze import DEMO, ModelSpec, analyze, build_model
from explorer.models.reducers import make_reducer
from explorer.video import load_clip, sample_path
clip = load_clip(sample_path("Long: still, moving, panning (generated, 64 s)"), frames=256, stride=4, size=112)
model, _ = build_model(ModelSpec(size=DEMO), 256, 112)
for reducer, window in (("none", 16), ("rlt", None), ("vtm", 16)):
    trace = analyze(clip, model, make_reducer(reducer), device="cpu", window=window)  # saliency asked for
    assert trace.input_tokens == 6272, trace.input_tokens
    notes = " ".join(trace.meta["notes"])
    assert trace.meta["saliency"] is not None or "saliency was not computed" in notes, notes
# VmHWM, this process's own peak: ru_maxrss would also count the parent's size at the fork
print(int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024)
"""
LONG_CLIP_MB = 1500  # the README states it


def test_a_256_frame_clip_analyses_within_the_stated_memory():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", LONG_RUN], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    peak = int(done.stdout.split()[-1])
    assert peak < LONG_CLIP_MB, f"peak resident memory {peak} MB"


def test_a_long_clip_whose_attention_scores_would_not_fit_is_refused_with_the_numbers():
    torch.manual_seed(0)
    cfg = VideoViTConfig(embed_dim=64, depth=1, num_heads=16, num_classes=5, num_frames=256, img_size=112)
    clip = make_clip(np.zeros((256, 112, 112, 3), dtype=np.uint8))
    with pytest.raises(ParameterError, match=r"evit needs each block's attention scores: 6272 tokens x 16 heads"):
        analyze(clip, VideoViT(cfg).eval(), make_reducer("evit"), device="cpu", saliency=None)
