"""Packed batches (models/packed.py): one sequence, block-diagonal attention, the same logits as clip by clip."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explorer.models.engine import forward_packed, run_clip
from explorer.models.packed import PER_SEGMENT, VARLEN, attention_backend, pack, packed_attention
from explorer.models.reducers import make_reducer
from explorer.models.reducers.base import selection_from_mask
from explorer.models.video_vit import VideoViT, VideoViTConfig


def tiny_model(length_embed: bool = False) -> VideoViT:
    torch.manual_seed(0)
    cfg = VideoViTConfig(
        embed_dim=64, depth=2, num_heads=2, num_classes=5, num_frames=8, img_size=64, length_embed=length_embed
    )
    return VideoViT(cfg).eval()


def clips_with_different_motion() -> torch.Tensor:
    """(3, 3, 8, 64, 64): a still clip, one moving in its left half, one moving everywhere."""
    generator = torch.Generator().manual_seed(1)
    clips = torch.randn(3, 3, 8, 64, 64, generator=generator)
    clips[0] = clips[0, :, :1]  # one frame held: RLT keeps only the first tubelet
    clips[1, :, :, :, 32:] = clips[1, :, :1, :, 32:]  # the right half still
    return clips


@pytest.mark.parametrize("length_embed", [False, True])
@pytest.mark.parametrize("name", ["rlt", "random", "mask"])
def test_a_packed_batch_gives_each_clip_its_own_logits(name, length_embed):
    model, clips = tiny_model(length_embed), clips_with_different_motion()
    reducer = make_reducer(name, **({"mask_ratio": 0.5} if name == "mask" else {}))
    selections = [reducer.select(clip, model.grid, 2, 16) for clip in clips]
    if name != "mask":
        assert len({s.keep.size for s in selections}) == 3  # three different lengths in one pack
    with torch.inference_mode():
        alone = torch.cat([run_clip(model, clip[None], s, reducer)[0] for clip, s in zip(clips, selections)])
        packed = pack(model, list(clips), selections)
        logits = forward_packed(model, packed)
    assert packed.tokens.shape == (sum(s.keep.size for s in selections), 64)
    assert packed.cu_seqlens.tolist() == np.concatenate([[0], np.cumsum([s.keep.size for s in selections])]).tolist()
    torch.testing.assert_close(logits, alone, rtol=1e-5, atol=1e-5)


def test_rlt_run_lengths_reach_the_length_embedding():
    model, clips = tiny_model(length_embed=True), clips_with_different_motion()
    selections = [make_reducer("rlt").select(clip, model.grid, 2, 16) for clip in clips]
    with torch.inference_mode():
        with_runs = forward_packed(model, pack(model, clips, selections))
        for s in selections:
            s.lengths = None  # every run of length 1
        without = forward_packed(model, pack(model, clips, selections))
    assert not torch.allclose(with_runs[0], without[0])  # the still clip's runs are 4 long
    torch.testing.assert_close(with_runs[2], without[2])  # every token kept: all runs are 1 long


def test_packed_attention_equals_dense_attention_with_a_block_diagonal_mask():
    generator = torch.Generator().manual_seed(2)
    lengths = [3, 7, 1, 5]
    q, k, v = (torch.randn(sum(lengths), 2, 8, generator=generator) for _ in range(3))
    cu_seqlens = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int32)
    segment = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    mask = segment[:, None] == segment[None, :]
    reference = F.scaled_dot_product_attention(
        q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), attn_mask=mask
    ).transpose(0, 1)
    torch.testing.assert_close(packed_attention(q, k, v, cu_seqlens, max(lengths)), reference)
    assert attention_backend(q.device, q.dtype) == PER_SEGMENT


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the variable-length kernel needs a GPU")
def test_the_gpu_kernel_agrees_with_the_per_segment_attention():
    generator = torch.Generator().manual_seed(3)
    lengths = [300, 17, 1568, 64]
    q, k, v = (torch.randn(sum(lengths), 12, 64, generator=generator) for _ in range(3))
    cu_seqlens = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int32)
    reference = packed_attention(q, k, v, cu_seqlens, max(lengths))
    half = [t.cuda().bfloat16() for t in (q, k, v)]
    assert attention_backend(half[0].device, half[0].dtype) == VARLEN
    out = packed_attention(*half, cu_seqlens.cuda(), max(lengths))
    torch.testing.assert_close(out.float().cpu(), reference, rtol=2e-2, atol=2e-2)


def test_a_clip_with_every_token_kept_equals_the_dense_model():
    model, clips = tiny_model(), clips_with_different_motion()
    everything = selection_from_mask(np.ones(model.grid, dtype=bool))
    with torch.inference_mode():
        torch.testing.assert_close(
            forward_packed(model, pack(model, clips[1:2], [everything])), model(clips[1:2]), rtol=1e-5, atol=1e-5
        )


def test_pack_refuses_a_selection_count_that_does_not_match_the_clips():
    model, clips = tiny_model(), clips_with_different_motion()
    with pytest.raises(ValueError, match="3 clips but 2 selections"):
        pack(model, clips, [selection_from_mask(np.ones(model.grid, dtype=bool))] * 2)


def test_the_variable_length_kernel_is_chosen_by_what_the_gpu_can_run(monkeypatch):
    from explorer.models import packed

    cuda = torch.device("cuda")
    monkeypatch.setattr(packed, "varlen_attn", object())
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))  # a V100
    assert attention_backend(cuda, torch.bfloat16) == PER_SEGMENT
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # an H100
    assert attention_backend(cuda, torch.bfloat16) == VARLEN
    assert attention_backend(cuda, torch.float32) == PER_SEGMENT
    assert attention_backend(torch.device("cpu"), torch.bfloat16) == PER_SEGMENT
