"""MViT's multi-head pooling attention (Fan et al., ICCV 2021): a network of its own."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..mvit import (
    FIELD_CENTRE,
    MVIT_CONFIGS,
    MViT,
    block_infos,
    check_input,
    footprint,
    mvit_flops,
    receptive_fields,
)
from .base import NetworkRecord, NetworkReducer, Param, ParameterError


class MViTPooling(NetworkReducer):
    name = "mvit"
    title = "MViT: pooling attention"
    paper = "Fan et al., ICCV 2021; B 16x4 or a small variant"
    acts = "a network of its own"
    shows = (
        "the pooled query grid per layer (a token's footprint grows 4 → 32 px), key/value grids, tokens and FLOPs "
        "per block"
    )
    explanation = (
        "MViT is not a reducer added to a ViT but a network of its own, built to shrink its sequence. A small "
        "Conv3d (3 x 7 x 7, stride 2 x 4 x 4) first cuts the clip into many fine tokens (8 x 56 x 56 for "
        "16 x 224 x 224). In **pooling attention** the queries, keys and values are each pooled by a strided "
        "3-D convolution before attention: pooling the **queries** with stride (1, 2, 2) makes the block output "
        "a grid half as wide and high (a new stage, with twice the channels and heads), so a token's "
        "**footprint** grows from 4 to 8, 16 and 32 px; pooling the **keys and values** harder (to 8 x 7 x 7 in "
        "most blocks) makes each query compare itself with few tokens, so attention stays cheap on the fine "
        "grid. There is also a class token, which the head reads; counts here leave it out. Follow a cell to "
        "see its token's footprint at each layer; the table gives both grids per block."
    )
    departures = (
        "Untrained (seeded) weights, and this replaces the chosen ViT, whose dense run is kept for "
        "comparison. 'small' is the explorer's own quick variant (6 blocks, 48 to 192 wide), not a "
        "published model. Clip sizes other than 16 x 224 take resized positions; the head has no dropout. "
        "A token owns the cells its stride covers (Clusters, Follow a cell, the 3-D boxes and the table's "
        "footprint show this tiling), but its receptive field is centred on the tile's first frame and pixel, "
        "as the convolutions pad symmetrically: at 8 x 7 x 7 on 224 px, 15.5 px left of and above the tile's "
        "centre and half a frame earlier. The Boxes overlay draws each box one stride wide, centred on its "
        "token's field (that of the patch embedding and the query and residual pools; attention reaches every "
        "token); the table gives the field's size and its centre, in frames and px from the tile's first. So "
        "the outlines lie midway between neighbouring centres, the first boxes reach past the top and left "
        "edges and the last stop about half a stride short of the bottom and right ones. In time a box stays on its "
        "token's two frames: no whole frames centre a two-frame box on one frame."
    )
    params = (
        Param(
            "variant",
            "small",
            "MViT-B 16x4 (16 blocks, 36.6 M parameters, about 141 GFLOPs) or a small, quick "
            "variant with the same pooling.",
            choices=tuple(MVIT_CONFIGS),
        ),
        Param("seed", 0, "Seed of the untrained weights.", low=0, high=2**31 - 1, step=1),
    )

    def shape_cost(self, clip: tuple[int, int, int], grid: tuple[int, int, int]) -> tuple[int, int]:
        """Its finest grid's tokens and its widest attention (pooled queries by pooled keys), from the shapes."""
        cfg = MVIT_CONFIGS[self.values["variant"]].with_input(clip[0], clip[1])
        try:
            blocks = block_infos(cfg, *clip)
        except ValueError as error:
            raise ParameterError(str(error)) from None
        return blocks[0].in_tokens, max(block.q_tokens * block.kv_tokens for block in blocks)

    def flops(self, clip: tuple[int, int, int]) -> float:
        cfg = MVIT_CONFIGS[self.values["variant"]].with_input(clip[0], clip[1])
        return float(mvit_flops(cfg, *clip).sum())

    def build(self, num_frames: int, img_size: int, num_classes: int) -> MViT:
        cfg = replace(MVIT_CONFIGS[self.values["variant"]].with_input(num_frames, img_size), num_classes=num_classes)
        try:
            check_input(cfg, num_frames, img_size, img_size)
        except ValueError as error:
            raise ParameterError(str(error)) from None
        with torch.random.fork_rng(devices=[]):  # seeded weights without touching the global generator
            torch.random.default_generator.manual_seed(self.values["seed"])  # not CUDA's
            return MViT(cfg).eval()

    def run(self, network: nn.Module, video: torch.Tensor) -> tuple[torch.Tensor, NetworkRecord]:
        if not isinstance(network, MViT):
            raise TypeError(f"MViT pooling runs an MViT, got {type(network).__name__}")
        cfg = network.cfg
        logits, blocks = network.forward_trace(video)
        grids: list[tuple[int, int, int]] = [cfg.patch_grid] + [_grid(block.q_grid) for block in blocks]
        info: list[dict[str, Any]] = [{"width": cfg.embed_dim, "heads": None}]
        info += [{"width": b.dim_out, "heads": b.heads} for b in blocks]
        for layer, field in zip(info, receptive_fields(cfg)):  # the field of token n is centred at n * stride + centre
            layer["receptive field"] = "x".join(map(str, field.size))  # frames x px x px, as the footprint
            layer[FIELD_CENTRE] = [int(c) if c == int(c) else c for c in field.centre]
        return logits, NetworkRecord(
            grids=grids,
            cell=footprint(cfg, cfg.patch_grid),
            kv_grids=[_grid(block.kv_grid) for block in blocks],
            flops=mvit_flops(cfg),
            info=info,
        )


def _grid(size: tuple[int, ...] | list[int]) -> tuple[int, int, int]:
    t, h, w = size
    return (int(t), int(h), int(w))
