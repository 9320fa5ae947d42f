"""Packed batches for pre-model reducers (RLT, random drop, masking): no padding.

As in RLT's code, the kept tokens of every clip of a batch are concatenated into one
sequence and attention is block-diagonal: a token attends only to the tokens of its own
clip. Clip i holds rows cu_seqlens[i] .. cu_seqlens[i+1] of the pack. Each kept token gets
the position embedding of its own index (and the learned run-length embedding, if the
model has one); each clip is mean-pooled over its own tokens.

The blocks run in the engine's loop (models/engine.py `forward_packed`), so that the math is
`Block.forward`'s; only the attention over the pack differs. Which attention runs is decided
in `attention_backend` alone: torch's variable-length kernel (`varlen_attn`, Flash or
cuDNN) on a CUDA GPU that can run it (Ampere or newer) in half precision, else exact
scaled-dot-product attention segment by segment (a T4 or V100, fp32, the CPU). Neither pads,
and neither builds a mask over the whole pack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .reducers.base import InputSelection
from .video_vit import VideoViT

try:
    from torch.nn.attention.varlen import varlen_attn
except ImportError:  # torch before the variable-length API
    varlen_attn = None

VARLEN = "varlen_attn"
PER_SEGMENT = "sdpa per segment"
_HALF = (torch.float16, torch.bfloat16)


@dataclass
class Packed:
    """A batch's kept tokens in one sequence.

    tokens: (total, D), clip i's at rows cu_seqlens[i]:cu_seqlens[i + 1].
    cu_seqlens: (B + 1,) int32 on the tokens' device, cumulative tokens per clip.
    lengths: tokens per clip, on the host, so that nothing waits for the device to split the pack.
    """

    tokens: torch.Tensor
    cu_seqlens: torch.Tensor
    lengths: list[int]

    @property
    def max_len(self) -> int:
        return max(self.lengths)


def pack(
    model: VideoViT, videos: torch.Tensor | Sequence[torch.Tensor], selections: Sequence[InputSelection]
) -> Packed:
    """Embed the kept tubelets of each normalized clip ((B, 3, T, H, W), or B clips (3, T, H, W)) into one pack.

    The same computation as `model.embed(video, keep, lengths)` clip by clip, done for the
    whole batch at once: gather the kept patches, project them, add their positions.
    """
    videos = videos if isinstance(videos, torch.Tensor) else torch.stack(list(videos))
    if videos.shape[0] != len(selections):
        raise ValueError(f"{videos.shape[0]} clips but {len(selections)} selections")
    device = videos.device
    patches = model.patchify(videos)  # (B, N, P)
    B, N, P = patches.shape
    keep = [torch.from_numpy(s.keep) for s in selections]
    rows = torch.cat([k + i * N for i, k in enumerate(keep)]).to(device)
    cells = torch.cat(keep).to(device)
    proj = model.patch_embed.proj
    x = F.linear(patches.reshape(B * N, P)[rows], proj.weight.reshape(proj.out_channels, -1), proj.bias)
    x = x + model.pos_embed.to(patches.dtype)[cells]
    if model.length_embed is not None:  # a selection without run lengths is all runs of length 1
        runs = [
            torch.from_numpy(s.lengths) if s.lengths is not None else torch.ones(s.keep.size, dtype=torch.long)
            for s in selections
        ]
        x = x + model.length_embed(torch.cat(runs).to(device) - 1)
    lengths = [int(s.keep.size) for s in selections]
    cu_seqlens = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int32, device=device)
    return Packed(tokens=x, cu_seqlens=cu_seqlens, lengths=lengths)


FLASH_CAPABILITY = (8, 0)  # the variable-length kernels (Flash, cuDNN) need an Ampere GPU or newer


def attention_backend(device: torch.device, dtype: torch.dtype) -> str:
    """The attention `packed_attention` runs for queries on this device in this dtype: the variable-length
    kernel where the GPU can run it (Ampere or newer, half precision), else exact attention per segment."""
    if varlen_attn is None or device.type != "cuda" or dtype not in _HALF:
        return PER_SEGMENT
    return VARLEN if torch.cuda.get_device_capability(device) >= FLASH_CAPABILITY else PER_SEGMENT


def packed_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_len: int,
    scale: float | None = None,
    lengths: Sequence[int] | None = None,
) -> torch.Tensor:
    """Block-diagonal attention over a pack: q, k, v (total, heads, head_dim) -> (total, heads, head_dim).

    lengths: tokens per clip, known on the host; without them the per-segment path reads cu_seqlens
    from the device.
    """
    if attention_backend(q.device, q.dtype) == VARLEN:  # contiguous, the layout both varlen backends take: one copy
        return varlen_attn(
            q.contiguous(), k.contiguous(), v.contiguous(), cu_seqlens, cu_seqlens, max_len, max_len, scale=scale
        )
    bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist() if lengths is not None else cu_seqlens.tolist()
    out = [
        F.scaled_dot_product_attention(
            q[a:b].transpose(0, 1), k[a:b].transpose(0, 1), v[a:b].transpose(0, 1), scale=scale
        ).transpose(0, 1)
        for a, b in zip(bounds[:-1], bounds[1:])
    ]
    return torch.cat(out)
