"""A VideoMAE-style video ViT built from timm blocks.

Conv3d tubelet embedding (2 x 16 x 16), a fixed 1-D sin-cos position table over the
flattened (t, h, w) token index, no class token, mean pooling, fc_norm, linear head.
The forward is split so that token reducers can act on the sequence:

    tokens = model.embed(video, keep)   # choose which tubelets enter (RLT, masking)
    x = model.forward_blocks(tokens)    # the transformer
    logits = model.forward_head(x)      # pool and classify

With `keep=None` every token enters and the model is the dense VideoMAE ViT. The blocks are
timm's own, unchanged; a reducer acting between blocks, and anything a run records of the
attention, goes through models/engine.py, which runs the same blocks in two halves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import partial

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SINCOS_SLICE = 1 << 20  # numbers of the position table computed at once


@dataclass(frozen=True)
class VideoViTConfig:
    """Everything that decides the network's shape; saved beside demo weights."""

    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    num_classes: int = 400
    num_frames: int = 16
    img_size: int = 224
    tubelet: int = 2
    patch: int = 16
    norm_eps: float = 1e-6
    fc_norm: bool = True  # mean pooling then LayerNorm (fine-tuned VideoMAE); else norm then pool
    fc_norm_eps: float | None = None  # when it differs from norm_eps (Hugging Face VideoMAE: 1e-5)
    length_embed: bool = False  # RLT's learned run-length embedding
    pooling: str = "mean"  # "first": classify the first token (VideoMAE fine-tunes without mean pooling)

    @property
    def grid(self) -> tuple[int, int, int]:
        return (self.num_frames // self.tubelet, self.img_size // self.patch, self.img_size // self.patch)

    def with_input(self, num_frames: int, img_size: int) -> VideoViTConfig:
        return replace(self, num_frames=num_frames, img_size=img_size)

    def to_dict(self) -> dict:
        return asdict(self)


SIZES: dict[str, VideoViTConfig] = {
    "tiny": VideoViTConfig(embed_dim=192, depth=12, num_heads=3),
    "small": VideoViTConfig(embed_dim=384, depth=12, num_heads=6),
    "base": VideoViTConfig(embed_dim=768, depth=12, num_heads=12),
    "large": VideoViTConfig(embed_dim=1024, depth=24, num_heads=16),
}


def sincos_table(num_positions: int, dim: int) -> torch.Tensor:
    """VideoMAE's fixed table: sin on even channels, cos on odd, over a 1-D index.

    Computed in float64 a slice of rows at a time: done at once, the float64 temporaries would
    need eight times the table's own memory (3 GB for a 0.4 GB table).
    """
    channel = torch.arange(dim, dtype=torch.float64)
    scale = torch.pow(10000.0, 2 * torch.div(channel, 2, rounding_mode="floor") / dim)
    even = channel.long() % 2 == 0
    table = torch.empty(num_positions, dim)
    rows = max(1, SINCOS_SLICE // max(dim, 1))
    for start in range(0, num_positions, rows):
        angle = torch.arange(start, min(start + rows, num_positions), dtype=torch.float64)[:, None] / scale
        table[start : start + rows] = torch.where(even, torch.sin(angle), torch.cos(angle))
    return table


class VideoViT(nn.Module):
    def __init__(self, cfg: VideoViTConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.embed_dim
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(
            3, D, kernel_size=(cfg.tubelet, cfg.patch, cfg.patch), stride=(cfg.tubelet, cfg.patch, cfg.patch)
        )
        t, h, w = cfg.grid
        self.register_buffer("pos_embed", sincos_table(t * h * w, D), persistent=False)
        self.length_embed = nn.Embedding(t, D) if cfg.length_embed else None
        self.blocks = nn.ModuleList(
            Block(
                D,
                cfg.num_heads,
                mlp_ratio=cfg.mlp_ratio,
                qkv_bias=True,
                norm_layer=partial(nn.LayerNorm, eps=cfg.norm_eps),
            )
            for _ in range(cfg.depth)
        )
        self.norm = nn.Identity() if cfg.fc_norm else nn.LayerNorm(D, eps=cfg.norm_eps)
        self.fc_norm = nn.LayerNorm(D, eps=cfg.fc_norm_eps or cfg.norm_eps) if cfg.fc_norm else nn.Identity()
        self.head = nn.Linear(D, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()

    @property
    def grid(self) -> tuple[int, int, int]:
        return self.cfg.grid

    def resize_input(self, num_frames: int, img_size: int) -> None:
        """Take clips of another length or size: the sin-cos table is rebuilt for the new grid."""
        cfg = self.cfg.with_input(num_frames, img_size)
        if num_frames % cfg.tubelet or img_size % cfg.patch or min(cfg.grid) < 1:
            raise ValueError(
                f"this model takes clips of a multiple of {cfg.tubelet} frames and a multiple of "
                f"{cfg.patch} px; got {num_frames} frames of {img_size} px"
            )
        if self.length_embed is not None and cfg.grid[0] > self.length_embed.num_embeddings:
            raise ValueError(
                f"the length embedding has {self.length_embed.num_embeddings} entries; "
                f"{num_frames} frames need {cfg.grid[0]}"
            )
        t, h, w = cfg.grid
        self.cfg = cfg
        self.pos_embed = sincos_table(t * h * w, cfg.embed_dim).to(self.pos_embed.device)

    def patchify(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, N, 3*t*p*p) in (t, h, w) token order, matching Conv3d's weight layout."""
        B, C, T, H, W = video.shape
        t, p = self.cfg.tubelet, self.cfg.patch
        if (T // t, H // p, W // p) != self.grid or T % t or H % p or W % p:
            raise ValueError(
                f"video of {T}x{H}x{W} does not fit the model's {self.cfg.num_frames}x"
                f"{self.cfg.img_size}x{self.cfg.img_size} input"
            )
        x = video.reshape(B, C, T // t, t, H // p, p, W // p, p)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # B, T', H', W', C, t, p, p
        return x.reshape(B, -1, C * t * p * p)

    def embed(
        self, video: torch.Tensor, keep: torch.Tensor | None = None, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Tokens for the given normalized video.

        keep: (B, K) flat token indices that enter the model (None: all). Only those
        tubelets are embedded; each keeps the position embedding of its own index.
        lengths: (B, K) run lengths (1..T') for the learned length embedding, if any.
        """
        patches = self.patchify(video)
        pos = self.pos_embed.to(patches.dtype).expand(patches.shape[0], -1, -1)
        if keep is not None:
            patches = torch.gather(patches, 1, keep[..., None].expand(-1, -1, patches.shape[-1]))
            pos = torch.gather(pos, 1, keep[..., None].expand(-1, -1, pos.shape[-1]))
        proj = self.patch_embed.proj
        x = F.linear(patches, proj.weight.reshape(proj.out_channels, -1), proj.bias) + pos
        if self.length_embed is not None:  # a dense input is all runs of length 1
            x = x + self.length_embed(
                lengths - 1 if lengths is not None else torch.zeros_like(x[..., 0], dtype=torch.long)
            )
        return x

    def forward_blocks(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask)
        return self.norm(x)

    def forward_head(
        self, x: torch.Tensor, size: torch.Tensor | None = None, first: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean pooling; with merged tokens, weighted by size (ToMe's MAE pooling), so each input counts once.
        A first-token model reads token `first` (B,) instead: the one standing for the first cell (default 0)."""
        if self.cfg.pooling == "first":
            index = torch.zeros(x.shape[0], dtype=torch.long, device=x.device) if first is None else first
            return self.head(self.fc_norm(x[torch.arange(x.shape[0], device=x.device), index]))
        pooled = x.mean(dim=1) if size is None else (x * size[..., None]).sum(dim=1) / size.sum(dim=1, keepdim=True)
        return self.head(self.fc_norm(pooled))

    def forward(
        self, video: torch.Tensor, keep: torch.Tensor | None = None, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.forward_head(self.forward_blocks(self.embed(video, keep, lengths)))


def normalize_video(frames_uint8: torch.Tensor) -> torch.Tensor:
    """(..., T, H, W, 3) uint8 -> (..., 3, T, H, W) float in ImageNet-normalized units."""
    x = frames_uint8.movedim(-1, -4).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    return (x - mean) / std
