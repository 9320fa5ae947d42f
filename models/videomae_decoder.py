"""The VideoMAE pre-training decoder: it paints the hidden patches back from the visible tokens.

As in the official modeling_pretrain.py (and transformers' VideoMAEForPreTraining): the
encoder's output (after its final LayerNorm) is projected to the decoder width without
bias; the sequence is the visible tokens then one shared mask token per hidden place, each
plus the fixed 1-D sin-cos position of its own index (the decoder's own table, over all
tokens); a few timm blocks, then LayerNorm and a linear head on the last N - K tokens only.
Each prediction is one patch of tubelet x patch x patch pixels in channel-last order
(p0 p1 p2 c), normalized by the patch's own mean and std (VideoMAE's target; transformers'
norm_pix_loss = false would make it raw pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn

from .video_vit import sincos_table

OFFICIAL_NORM_EPS = 1e-6


@dataclass(frozen=True)
class DecoderConfig:
    encoder_dim: int = 768
    embed_dim: int = 384  # ViT-B pre-training: 384 wide, 4 blocks, 6 heads
    depth: int = 4
    num_heads: int = 6
    mlp_ratio: float = 4.0
    out_dim: int = 1536  # 3 * tubelet * patch * patch
    norm_eps: float = OFFICIAL_NORM_EPS
    head_norm_eps: float = OFFICIAL_NORM_EPS  # transformers builds the last norm with LayerNorm's default 1e-5
    normalized_target: bool = True  # predicts per-patch normalized pixels (else raw pixels in [0, 1])

    def summary(self) -> str:
        return (
            f"decoder {self.embed_dim} wide, {self.depth} blocks, {self.num_heads} heads, "
            f"{self.out_dim} values per patch"
        )


class VideoMAEDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.embed_dim
        self.encoder_to_decoder = nn.Linear(cfg.encoder_dim, D, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, D))
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
        self.norm = nn.LayerNorm(D, eps=cfg.head_norm_eps)
        self.head = nn.Linear(D, cfg.out_dim)

    def forward(self, encoded: torch.Tensor, keep: torch.Tensor, num_tokens: int) -> torch.Tensor:
        """Predictions (B, N - K, out_dim) for the hidden tokens, in ascending index order.

        encoded: (B, K) tokens from the encoder, after its final norm; keep: (B, K) their flat
        indices; num_tokens: N, all tokens of the clip.
        """
        B, K, _ = encoded.shape
        x = self.encoder_to_decoder(encoded)
        pos = sincos_table(num_tokens, self.cfg.embed_dim).to(x).expand(B, -1, -1)
        visible = torch.zeros(B, num_tokens, dtype=torch.bool, device=x.device).scatter_(1, keep, True)
        hidden = (~visible).nonzero()[:, 1].reshape(B, num_tokens - K)  # row-major: ascending per clip
        pos_visible = pos.gather(1, keep[..., None].expand(-1, -1, x.shape[-1]))
        pos_hidden = pos.gather(1, hidden[..., None].expand(-1, -1, x.shape[-1]))
        x = torch.cat([x + pos_visible, self.mask_token.to(x) + pos_hidden], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, K:]))
