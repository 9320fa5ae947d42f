"""MViT: the official MViT-B 16x4 schedule, traced grids, footprints, FLOPs, input checks.

MViT-B runs once, whole, on a 16 x 224 x 224 clip (1.3 to 5 s on two CPU cores) under PyTorch's
FlopCounterMode: that one run checks its grids, widths and total FLOPs. The analytic FLOPs are
checked block by block on the small variant (the same kinds of block, cheaper) at 8 x 112 x 112.
"""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from explorer.models.mvit import (
    MVIT_CONFIGS,
    MultiScaleBlock,
    MViT,
    MViTConfig,
    block_infos,
    footprint,
    mvit_flops,
    receptive_fields,
)

B_CFG, SMALL = MVIT_CONFIGS["B"], MVIT_CONFIGS["small"]


def traced_run(model: MViT, video: torch.Tensor) -> tuple[torch.Tensor, list, float]:
    """Logits, block infos and PyTorch's own FLOP count (matmuls and convs, 2 per multiply-add) of one run."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        logits, infos = model.forward_trace(video)
    return logits, infos, float(counter.get_total_flops())


def flops_per_block(model: MViT, video: torch.Tensor) -> np.ndarray:
    """PyTorch's FLOP count laid out as mvit_flops: [0] patch embedding and head, [1 + i] block i."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(video)
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    per_block = [counts[f"MViT.blocks.{i}"] for i in range(len(model.blocks))]
    return np.asarray([counts["MViT.patch_embed.proj"] + counts["MViT.head"], *per_block], dtype=np.float64)


@pytest.fixture(scope="module")
def mvit_b():
    torch.manual_seed(0)
    model = MViT(B_CFG).eval()
    return model, *traced_run(model, torch.randn(1, 3, 16, 224, 224))


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return MViT(SMALL).eval()


def test_b_schedule_is_slowfasts_mvit_b_16x4():
    # heads double where the query is pooled; the width doubles one block earlier (in the MLP)
    assert [i for i, q in enumerate(B_CFG.q_strides) if q != (1, 1, 1)] == [1, 3, 14]
    assert set(B_CFG.q_strides) == {(1, 1, 1), (1, 2, 2)}
    assert B_CFG.heads == (1, 2, 2) + (4,) * 11 + (8, 8)
    assert B_CFG.dims == (192, 192) + (384,) * 11 + (768,) * 3
    # adaptive K/V stride: (1, 8, 8), divided by each query stride
    assert B_CFG.kv_strides == ((1, 8, 8),) + ((1, 4, 4),) * 2 + ((1, 2, 2),) * 11 + ((1, 1, 1),) * 2
    assert (B_CFG.patch_kernel, B_CFG.patch_stride, B_CFG.patch_padding) == ((3, 7, 7), (2, 4, 4), (1, 3, 3))


@pytest.mark.slow
def test_b_has_the_published_parameter_count(mvit_b):
    model = mvit_b[0]
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(36.61, abs=0.005)  # PyTorchVideo zoo


def test_b_grids_widths_and_heads_per_block(mvit_b):
    _, logits, infos, _ = mvit_b
    assert logits.shape == (1, 400)
    assert infos == block_infos(B_CFG)  # the traced tensors agree with shape arithmetic
    q_grids = [b.q_grid for b in infos]
    assert q_grids == [(8, 56, 56)] + [(8, 28, 28)] * 2 + [(8, 14, 14)] * 11 + [(8, 7, 7)] * 2
    assert [b.in_grid for b in infos] == [(8, 56, 56)] + q_grids[:-1]
    # K/V at 8x7x7 except in the three blocks that pool the query (their input is twice as fine)
    assert [i for i, b in enumerate(infos) if b.kv_grid != (8, 7, 7)] == [1, 3, 14]
    assert {b.kv_grid for i, b in enumerate(infos) if i in (1, 3, 14)} == {(8, 14, 14)}
    stages = {(b.q_grid, b.dim, b.heads) for b in infos}  # the width a block's attention runs at
    assert stages == {((8, 56, 56), 96, 1), ((8, 28, 28), 192, 2), ((8, 14, 14), 384, 4), ((8, 7, 7), 768, 8)}
    assert [(b.index, b.dim, b.dim_out) for b in infos if b.dim != b.dim_out] == [
        (0, 96, 192),
        (2, 192, 384),
        (13, 384, 768),
    ]
    assert (infos[0].in_tokens, infos[0].kv_tokens, infos[-1].q_tokens) == (8 * 56 * 56 + 1, 8 * 49 + 1, 8 * 49 + 1)


def test_footprints_grow_4_8_16_32_px(mvit_b):
    grids = [(8, 56, 56), (8, 28, 28), (8, 14, 14), (8, 7, 7)]
    assert [footprint(B_CFG, g) for g in grids] == [(2, 4, 4), (2, 8, 8), (2, 16, 16), (2, 32, 32)]
    assert footprint(B_CFG, mvit_b[2][-1].q_grid) == (2, 32, 32)
    assert footprint(SMALL.with_input(8, 112), (4, 7, 7)) == (2, 16, 16)
    with pytest.raises(ValueError, match="does not tile"):
        footprint(B_CFG, (8, 5, 5))


def test_b_flops_match_pytorchs_count_and_the_paper(mvit_b):
    flops = mvit_flops(B_CFG)
    assert flops.sum() == pytest.approx(mvit_b[3], rel=1e-12)  # torch.utils.flop_counter on the run
    # A multiply-add is 2 FLOPs here; the paper (70.5 G) and PyTorchVideo's zoo (70.8 G) count it once.
    assert flops.sum() / 2 / 1e9 == pytest.approx(70.6, abs=0.1)
    assert flops.sum() / 2 == pytest.approx(70.8e9, rel=0.01)


def test_flops_drop_after_each_query_pooling():
    flops = mvit_flops(B_CFG)[1:]  # flops[1 + i] is block i
    for i in (1, 3, 14):  # the pooling block still projects the finer grid; the next one runs on 4x fewer tokens
        assert flops[i + 1] < 0.8 * flops[i]
    assert flops[4] > flops[15]  # a 768-wide block on 8x7x7 is cheaper than a 384-wide one on 8x14x14


def test_small_runs_on_two_clip_sizes_and_its_grids_shrink(small):
    for frames, size, first in ((16, 224, (8, 56, 56)), (8, 112, (4, 28, 28))):
        torch.manual_seed(1)
        video = torch.randn(1, 3, frames, size, size)
        with torch.inference_mode():
            logits, infos = small.forward_trace(video)
            assert torch.equal(small(video), logits)  # tracing changes nothing
        assert logits.shape == (1, SMALL.num_classes) and torch.isfinite(logits).all()
        assert infos == block_infos(SMALL, frames, size, size)
        t, h, _ = first
        assert [b.q_grid for b in infos] == ([(t, h, h)] + [(t, h // 2, h // 2)] * 2 + [(t, h // 4, h // 4)] * 3)
    # per block, against PyTorch's own count (torch.utils.flop_counter), on the cheaper clip
    measured = flops_per_block(small, torch.randn(1, 3, 8, 112, 112))
    np.testing.assert_allclose(mvit_flops(SMALL, 8, 112, 112), measured, rtol=1e-12)


def test_other_sizes_resize_the_positions_like_slowfasts_trilinear(small):
    t, h, w = SMALL.patch_grid
    full = (small.pos_embed_temporal[:, :, None] + small.pos_embed_spatial[:, None]).reshape(1, t, h, w, -1)
    trilinear = F.interpolate(full.permute(0, 4, 1, 2, 3), size=(4, 28, 28), mode="trilinear")
    torch.testing.assert_close(small.pos_embed((4, 28, 28)), trilinear.flatten(2).transpose(1, 2))
    assert torch.equal(small.pos_embed((t, h, w)), full.reshape(1, t * h * w, -1))


def test_clips_that_do_not_fit_are_refused_clearly(small):
    with pytest.raises(ValueError, match="frame count to be a multiple of 2 "):
        small(torch.randn(1, 3, 7, 112, 112))
    with pytest.raises(ValueError, match="height to be a multiple of 16 px"):
        small(torch.randn(1, 3, 8, 120, 112))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        small(torch.randn(1, 8, 112, 112))
    with pytest.raises(ValueError, match="width to be a multiple of 32 px"):
        block_infos(B_CFG, 16, 224, 112)  # MViT-B pools the query three times: 4 * 8 px
    with pytest.raises(ValueError, match="one entry per block"):
        replace(SMALL, heads=SMALL.heads[:-1])
    with pytest.raises(ValueError, match="does not split into 5 heads"):
        replace(SMALL, heads=(5,) + SMALL.heads[1:])


def test_without_a_class_token_counts_only_grid_tokens_and_pools_the_mean():
    cfg = replace(SMALL, cls_token=False, num_classes=5)
    torch.manual_seed(0)
    model = MViT(cfg).eval()
    video = torch.randn(1, 3, 4, 64, 64)
    with torch.inference_mode():
        logits, infos = model.forward_trace(video)
        x, grid = model.embed(video)
        for block in model.blocks:
            x, grid, _ = block(x, grid)
        torch.testing.assert_close(logits, model.head(model.norm(x).mean(dim=1)))
    assert (infos[0].in_tokens, infos[0].kv_tokens, infos[-1].q_tokens) == (2 * 16 * 16, 2 * 2 * 2, 2 * 4 * 4)
    assert not hasattr(model, "cls_token")


def reference_block(block: MultiScaleBlock, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """A pooling block written out head by head: unpooled class token, depthwise conv pooling of q, k
    and v shared by the heads, LayerNorm after pooling, max-pooled residual, widening MLP."""
    attn = block.attn
    heads, (B, _, C) = attn.heads, x.shape
    d = C // heads
    q, k, v = attn.qkv(block.norm1(x)).split(C, dim=-1)

    def pool(tokens, conv, norm):
        if conv is None:
            return tokens
        cells = tokens[:, 1:].reshape(B, *grid, d).permute(0, 4, 1, 2, 3)
        pooled = F.conv3d(cells, conv.weight, stride=conv.stride, padding=conv.padding, groups=d)
        return norm(torch.cat([tokens[:, :1], pooled.flatten(2).transpose(1, 2)], dim=1))

    outs = []
    for h in range(heads):
        part = slice(h * d, (h + 1) * d)
        qh = pool(q[..., part], attn.pool_q, attn.norm_q)
        kh = pool(k[..., part], attn.pool_k, attn.norm_k)
        vh = pool(v[..., part], attn.pool_v, attn.norm_v)
        outs.append(torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d), dim=-1) @ vh)
    attended = attn.proj(torch.cat(outs, dim=-1))
    cells = x[:, 1:].reshape(B, *grid, C).permute(0, 4, 1, 2, 3)
    skip = F.max_pool3d(cells, (1, 3, 3), (1, 2, 2), (0, 1, 1)).flatten(2).transpose(1, 2)
    x = torch.cat([x[:, :1], skip], dim=1) + attended
    x_norm = block.norm2(x)
    return block.proj(x_norm) + block.mlp(x_norm)


def test_a_pooling_block_equals_a_head_by_head_reference():
    cfg = MViTConfig(
        dims=(64,), heads=(2,), q_strides=((1, 2, 2),), kv_strides=((1, 4, 4),), embed_dim=32, num_frames=4, img_size=32
    )
    torch.manual_seed(0)
    block = MViT(cfg).blocks[0].eval()
    grid = (2, 8, 8)
    x = torch.randn(2, 1 + math.prod(grid), 32)
    with torch.inference_mode():
        out, q_grid, kv_grid = block(x, grid)
        torch.testing.assert_close(out, reference_block(block, x, grid), rtol=1e-5, atol=1e-5)
    assert (q_grid, kv_grid, out.shape) == ((2, 4, 4), (2, 2, 2), (2, 1 + 32, 64))


def test_receptive_fields_at_8x7x7_are_centred_on_the_first_frame_and_pixel_of_each_tile():
    # By hand, per axis: the patch conv (kernel 7, stride 4, padding 3) gives token n the pixels 4n-3 .. 4n+3;
    # each query pool (kernel 3, stride 2, padding 1) spans tokens 2n-1 .. 2n+1 of the grid before it, so
    # 8n-7 .. 8n+7, 16n-15 .. 16n+15 and, at 8 x 7 x 7, 32n-31 .. 32n+31: 63 px centred on pixel 32n, the first
    # pixel of the token's 32 px tile (whose middle is 32n + 15.5). In time the patch conv (3, stride 2,
    # padding 1) gives frames 2n-1 .. 2n+1 and each of the three query pools (3, stride 1, padding 1) widens
    # it by a token (2 frames) each side: 2n-7 .. 2n+7, 15 frames centred on frame 2n, the tile's first.
    fields = receptive_fields(B_CFG)
    assert len(fields) == B_CFG.depth + 1
    last = fields[-1]
    assert (last.jump, last.size, last.start) == ((2, 32, 32), (15, 63, 63), (-7, -31, -31))
    assert last.centre == (0.0, 0.0, 0.0)
    assert [fields[layer].size for layer in (0, 2, 4)] == [(3, 7, 7), (7, 15, 15), (11, 31, 31)]
    # checked against PyTorch's own geometry: the input pixels a token's path reads are where the gradient of
    # that token reaches, through convs and max pools with the network's kernels, strides and padding
    model = MViT(B_CFG)
    path = [nn.Conv3d(1, 1, *_geometry(model.patch_embed.proj), bias=False)]
    for block in model.blocks:
        if block.attn.pool_q is not None:
            path.append(
                (nn.Conv3d(1, 1, *_geometry(block.attn.pool_q), bias=False), nn.MaxPool3d(*_geometry(block.pool_skip)))
            )
    for layer in path[:1] + [p[0] for p in path[1:]]:
        nn.init.ones_(layer.weight)
    video = torch.ones(1, 1, 16, 224, 224, requires_grad=True)
    x = path[0](video)
    for conv, skip in path[1:]:
        x = conv(x) + skip(x)
    assert x.shape[2:] == (8, 7, 7)
    x[0, 0, 4, 3, 2].backward()  # a token inside the clip: frame 8, pixels (96, 64)
    t, y, x_ = (np.flatnonzero(video.grad[0, 0].abs().sum(dim=other).numpy()) for other in ((1, 2), (0, 2), (0, 1)))
    assert (t.min(), t.max(), y.min(), y.max(), x_.min(), x_.max()) == (1, 15, 65, 127, 33, 95)


def _geometry(module: nn.Module) -> tuple:
    return module.kernel_size, module.stride, module.padding
