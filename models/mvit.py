"""MViT (Fan et al., ICCV 2021, "Multiscale Vision Transformers") for video, traceable block by block.

Multi-head pooling attention: after the qkv projection, Q, K and V are each pooled on their
(t, h, w) grid by a depthwise Conv3d (kernel 3x3x3, padding 1, a LayerNorm after it). The
query stride shrinks the sequence (the block's output grid); the K/V stride only makes
attention cheaper. A class token rides along unpooled. Where the query is pooled, the
residual is max-pooled to the same grid (kernel stride+1) and the heads double; the width
doubles one block earlier, in that block's MLP (with a linear projection on the residual).

Configuration and the details above follow facebookresearch/SlowFast
(configs/Kinetics/MVIT_B_16x4_CONV.yaml, slowfast/models/video_model_builder.py `MViT`,
slowfast/models/attention.py); parameter names are SlowFast's, except its head.projection,
here `head`. Departures: no dropout before the head (0.5 in training there); weights are random.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_
from torch import nn

Grid = tuple[int, int, int]  # (t, h, w); also used for kernels and strides
NO_STRIDE: Grid = (1, 1, 1)


@dataclass(frozen=True)
class MViTConfig:
    """Everything that decides the network's shape; per-block tuples are indexed by block.

    dims: output width of each block (its attention runs at the previous block's width).
    heads: heads of each block. q_strides: query (and output) stride of each block, (1, 1, 1)
    for none. kv_strides: K/V stride of each block; K/V are conv-pooled in every block
    whose kernel or stride is not all ones, as in SlowFast.
    """

    dims: tuple[int, ...]
    heads: tuple[int, ...]
    q_strides: tuple[Grid, ...]
    kv_strides: tuple[Grid, ...]
    embed_dim: int = 96
    pool_kernel: Grid = (3, 3, 3)
    patch_kernel: Grid = (3, 7, 7)
    patch_stride: Grid = (2, 4, 4)
    patch_padding: Grid = (1, 3, 3)
    num_frames: int = 16
    img_size: int = 224
    num_classes: int = 400
    mlp_ratio: float = 4.0
    cls_token: bool = True
    qkv_bias: bool = True
    drop_path_rate: float = 0.0
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if not len(self.dims) == len(self.heads) == len(self.q_strides) == len(self.kv_strides):
            raise ValueError("dims, heads, q_strides and kv_strides need one entry per block")
        for i, (dim, heads) in enumerate(zip(self.dims_in, self.heads)):
            if dim % heads:
                raise ValueError(f"block {i}: width {dim} does not split into {heads} heads")
        if any(s not in (1, 2) for stride in self.q_strides for s in stride):
            raise ValueError(
                "query strides must be 1 or 2 per axis (the residual max pool, kernel stride+1, "
                "keeps the query's grid only for these)"
            )
        if any(k % 2 == 0 for k in self.pool_kernel):
            raise ValueError(f"pool kernel {self.pool_kernel} must be odd (padding k//2 keeps the grid)")
        for k, s, p in zip(self.patch_kernel, self.patch_stride, self.patch_padding):
            if not -s <= 2 * p - k <= -1:  # then a size n = m*s gives exactly m cells
                raise ValueError(
                    f"patch kernel {self.patch_kernel}, stride {self.patch_stride} and padding "
                    f"{self.patch_padding} do not tile the clip exactly"
                )

    @classmethod
    def from_stages(
        cls,
        depth: int,
        embed_dim: int,
        num_heads: int,
        stage_starts: Sequence[int],
        q_stride: Grid = (1, 2, 2),
        kv_stride: Grid = (1, 8, 8),
        **kwargs,
    ) -> MViTConfig:
        """The schedule as SlowFast writes it (DIM_MUL, HEAD_MUL, POOL_Q_STRIDE, POOL_KV_STRIDE_ADAPTIVE).

        At each stage start the query is pooled by q_stride and the heads double; the width
        doubles in the block before (its MLP widens). The K/V stride starts at kv_stride and is
        divided by every query stride (at least 1), so K/V grids stay about the same size.
        """
        dims, heads, q_strides, kv_strides = [], [], [], []
        dim, head, kv = embed_dim, num_heads, kv_stride
        for i in range(depth):
            q = q_stride if i in stage_starts else NO_STRIDE
            if i in stage_starts:
                head *= 2
                kv = tuple(max(k // s, 1) for k, s in zip(kv, q))
            dim = dim * 2 if i + 1 in stage_starts else dim
            dims.append(dim)
            heads.append(head)
            q_strides.append(q)
            kv_strides.append(kv)
        return cls(tuple(dims), tuple(heads), tuple(q_strides), tuple(kv_strides), embed_dim=embed_dim, **kwargs)

    @property
    def depth(self) -> int:
        return len(self.dims)

    @property
    def dims_in(self) -> tuple[int, ...]:
        return (self.embed_dim, *self.dims[:-1])

    @property
    def patch_grid(self) -> Grid:
        """The token grid after the patch embedding, for this config's clip size."""
        return _conv_grid(
            (self.num_frames, self.img_size, self.img_size), self.patch_kernel, self.patch_stride, self.patch_padding
        )

    @property
    def total_stride(self) -> Grid:
        """Input frames / pixels per cell of the last grid: the patch stride times every query stride."""
        return tuple(s * math.prod(q[a] for q in self.q_strides) for a, s in enumerate(self.patch_stride))

    def with_input(self, num_frames: int, img_size: int) -> MViTConfig:
        return replace(self, num_frames=num_frames, img_size=img_size)


MVIT_CONFIGS: dict[str, MViTConfig] = {
    # MViT-B 16x4 (SlowFast configs/Kinetics/MVIT_B_16x4_CONV.yaml): 78.4 top-1 on Kinetics-400.
    "B": MViTConfig.from_stages(depth=16, embed_dim=96, num_heads=1, stage_starts=(1, 3, 14), drop_path_rate=0.2),
    # Not a published model: a narrow 6-block, 3-stage MViT (48 -> 96 -> 192 wide, 1 -> 2 -> 4 heads,
    # queries pooled at blocks 1 and 3) with MViT-B's patch embedding and pooling, so the same
    # 16 x 224 clip gives MViT-B's first three grids (8x56x56 -> 28x28 -> 14x14) in a fraction of a
    # second on a CPU; with two query poolings it also takes clips of multiples of 16 px (e.g. 112).
    "small": MViTConfig.from_stages(depth=6, embed_dim=48, num_heads=1, stage_starts=(1, 3)),
}


@dataclass(frozen=True)
class BlockInfo:
    """What one block did. Grids are (t, h, w); token counts include the class token, if any."""

    index: int
    in_grid: Grid
    q_grid: Grid  # the block's output grid: its pooled queries
    kv_grid: Grid
    dim: int  # width of its attention and the MLP's input
    dim_out: int  # width of the tokens it hands on (twice dim in the block before a stage)
    heads: int
    cls_token: bool

    def _count(self, grid: Grid) -> int:
        return math.prod(grid) + int(self.cls_token)

    @property
    def in_tokens(self) -> int:
        return self._count(self.in_grid)

    @property
    def q_tokens(self) -> int:
        return self._count(self.q_grid)

    @property
    def kv_tokens(self) -> int:
        return self._count(self.kv_grid)


def _conv_grid(size: Iterable[int], kernel: Grid, stride: Grid, padding: Grid) -> Grid:
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding))


def _pools_q(stride: Grid) -> bool:
    return math.prod(stride) > 1


def _pools_kv(kernel: Grid, stride: Grid) -> bool:
    return math.prod(kernel) > 1 or math.prod(stride) > 1


def check_input(cfg: MViTConfig, frames: int, height: int, width: int) -> None:
    """Raise a ValueError unless every grid of the network tiles a clip of this size exactly.

    SlowFast takes only its configured size; here any size does whose grids halve exactly,
    so that each token stands for a whole block of frames and pixels.
    """
    step = cfg.total_stride
    for what, n, s, unit in (
        ("frame count", frames, step[0], ""),
        ("height", height, step[1], " px"),
        ("width", width, step[2], " px"),
    ):
        if n < s or n % s:
            raise ValueError(
                f"this MViT needs a clip's {what} to be a multiple of {s}{unit} (patch stride "
                f"{cfg.patch_stride} times its query strides); got {frames} x {height} x {width}"
            )


def block_infos(
    cfg: MViTConfig, frames: int | None = None, height: int | None = None, width: int | None = None
) -> list[BlockInfo]:
    """Each block's grids and widths by shape arithmetic alone (the config's clip size by default)."""
    size = (frames or cfg.num_frames, height or cfg.img_size, width or cfg.img_size)
    check_input(cfg, *size)
    grid = _conv_grid(size, cfg.patch_kernel, cfg.patch_stride, cfg.patch_padding)
    pad = tuple(k // 2 for k in cfg.pool_kernel)
    infos = []
    for i, (q, kv) in enumerate(zip(cfg.q_strides, cfg.kv_strides)):
        q_grid = _conv_grid(grid, cfg.pool_kernel, q, pad) if _pools_q(q) else grid
        kv_grid = _conv_grid(grid, cfg.pool_kernel, kv, pad) if _pools_kv(cfg.pool_kernel, kv) else grid
        infos.append(BlockInfo(i, grid, q_grid, kv_grid, cfg.dims_in[i], cfg.dims[i], cfg.heads[i], cfg.cls_token))
        grid = q_grid
    return infos


def footprint(cfg: MViTConfig, grid: Grid) -> Grid:
    """Frames and pixels (t, h, w) of the config's clip that one cell of `grid` stands for.

    This is the grid's stride in the input (2 x 4 x 4 at 8x56x56 for 16 x 224 x 224); the
    receptive field of a pooled token is larger, as the pooling kernels overlap.
    """
    size = (cfg.num_frames, cfg.img_size, cfg.img_size)
    if any(g < 1 or n % g for n, g in zip(size, grid)):
        raise ValueError(f"grid {grid} does not tile a {size[0]} x {size[1]} x {size[2]} clip")
    return tuple(n // g for n, g in zip(size, grid))


# The key of a trace's layer_info that gives where each token's receptive field is centred: (t, y, x) frames and
# pixels from its box's first frame and pixel (the Boxes overlay centres the boxes there).
FIELD_CENTRE = "field centre"


@dataclass(frozen=True)
class Field:
    """The receptive field of the tokens of one layer, per axis (t, h, w), in input frames and pixels.

    Token n along an axis sees the input indices [n * jump + start, n * jump + start + size - 1] (the
    padding lets start be negative), so its centre is n * jump + centre, in frame or pixel indices
    (x.5: between two). This is the field of a token's own path: the patch embedding, then in each
    block that pools its queries the query's pooling conv and the residual's max pool (their union;
    both are centred). Attention itself reaches every token, so it is left out.
    """

    jump: tuple[int, int, int]
    size: tuple[int, int, int]
    start: tuple[int, int, int]

    @property
    def centre(self) -> tuple[float, float, float]:
        """Where token (0, 0, 0)'s field is centred: frame and pixel indices from the clip's first."""
        return tuple(a + (s - 1) / 2 for a, s in zip(self.start, self.size))


def receptive_fields(cfg: MViTConfig) -> list[Field]:
    """Per layer (0: after the patch embedding, l: after the l-th block), its tokens' receptive field."""

    def conv(field: Field, kernel: Grid, stride: Grid, padding: Grid) -> Field:
        return Field(
            jump=tuple(j * s for j, s in zip(field.jump, stride)),
            size=tuple(n + (k - 1) * j for n, k, j in zip(field.size, kernel, field.jump)),
            start=tuple(a - p * j for a, p, j in zip(field.start, padding, field.jump)),
        )

    field = conv(Field((1, 1, 1), (1, 1, 1), (0, 0, 0)), cfg.patch_kernel, cfg.patch_stride, cfg.patch_padding)
    fields = [field]
    for q in cfg.q_strides:
        if _pools_q(q):  # as MultiScaleBlock: the query's conv, and the residual's max pool (kernel stride + 1)
            query = conv(field, cfg.pool_kernel, q, tuple(k // 2 for k in cfg.pool_kernel))
            skip_kernel = tuple(s + 1 if s > 1 else s for s in q)
            skip = conv(field, skip_kernel, q, tuple(k // 2 for k in skip_kernel))
            assert query.centre == skip.centre, "odd kernels with padding k // 2: both paths centred alike"
            field = Field(
                query.jump,
                tuple(max(a, b) for a, b in zip(query.size, skip.size)),
                tuple(min(a, b) for a, b in zip(query.start, skip.start)),
            )
        fields.append(field)
    return fields


def _pool(
    x: torch.Tensor, pool: nn.Module | None, grid: Grid, cls_token: bool, norm: nn.Module | None = None
) -> tuple[torch.Tensor, Grid]:
    """Pool tokens (B, heads, N, C) on their (t, h, w) grid; a class token passes through unpooled."""
    if pool is None:
        return x, grid
    cls, x = (x[:, :, :1], x[:, :, 1:]) if cls_token else (None, x)
    B, H, _, C = x.shape
    x = pool(x.reshape(B * H, *grid, C).permute(0, 4, 1, 2, 3))
    grid = tuple(x.shape[2:])
    x = x.reshape(B, H, C, -1).transpose(2, 3)
    if cls is not None:
        x = torch.cat((cls, x), dim=2)
    return (x if norm is None else norm(x)), grid


class PoolingAttention(nn.Module):
    """Multi-head pooling attention ("conv" mode): depthwise Conv3d pooling shared by the heads."""

    def __init__(
        self,
        dim: int,
        heads: int,
        q_stride: Grid,
        kv_stride: Grid,
        kernel: Grid,
        cls_token: bool,
        qkv_bias: bool,
        norm_layer: type[nn.Module],
    ):
        super().__init__()
        self.heads, self.cls_token = heads, cls_token
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        head_dim = dim // heads

        def pool(stride: Grid) -> nn.Conv3d:
            return nn.Conv3d(
                head_dim, head_dim, kernel, stride, padding=tuple(k // 2 for k in kernel), groups=head_dim, bias=False
            )

        pools_q, pools_kv = _pools_q(q_stride), _pools_kv(kernel, kv_stride)
        self.pool_q = pool(q_stride) if pools_q else None
        self.norm_q = norm_layer(head_dim) if pools_q else None
        self.pool_k = pool(kv_stride) if pools_kv else None
        self.norm_k = norm_layer(head_dim) if pools_kv else None
        self.pool_v = pool(kv_stride) if pools_kv else None
        self.norm_v = norm_layer(head_dim) if pools_kv else None

    def forward(self, x: torch.Tensor, grid: Grid) -> tuple[torch.Tensor, Grid, Grid]:
        """Tokens on `grid` -> (output tokens, their (pooled query) grid, the pooled K/V grid)."""
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        q, q_grid = _pool(q, self.pool_q, grid, self.cls_token, self.norm_q)
        k, kv_grid = _pool(k, self.pool_k, grid, self.cls_token, self.norm_k)
        v, _ = _pool(v, self.pool_v, grid, self.cls_token, self.norm_v)
        x = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(head_dim)) v
        return self.proj(x.transpose(1, 2).reshape(B, -1, C)), q_grid, kv_grid


class MultiScaleBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        dim_out: int,
        heads: int,
        q_stride: Grid,
        kv_stride: Grid,
        kernel: Grid,
        cls_token: bool,
        qkv_bias: bool,
        mlp_ratio: float,
        drop_path: float,
        norm_layer: type[nn.Module],
    ):
        super().__init__()
        self.cls_token = cls_token
        self.norm1 = norm_layer(dim)
        self.attn = PoolingAttention(dim, heads, q_stride, kv_stride, kernel, cls_token, qkv_bias, norm_layer)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dim_out)
        self.proj = nn.Linear(dim, dim_out) if dim != dim_out else None  # the residual follows the MLP's widening
        skip = tuple(s + 1 if s > 1 else s for s in q_stride)
        self.pool_skip = nn.MaxPool3d(skip, q_stride, tuple(k // 2 for k in skip)) if _pools_q(q_stride) else None

    def forward(self, x: torch.Tensor, grid: Grid) -> tuple[torch.Tensor, Grid, Grid]:
        attn, q_grid, kv_grid = self.attn(self.norm1(x), grid)
        skip, _ = _pool(x[:, None], self.pool_skip, grid, self.cls_token)  # the residual on the query's grid
        x = skip[:, 0] + self.drop_path(attn)
        x_norm = self.norm2(x)
        x = (x if self.proj is None else self.proj(x_norm)) + self.drop_path(self.mlp(x_norm))
        return x, q_grid, kv_grid


class MViT(nn.Module):
    """Patch embedding Conv3d, separable learned positions (space + time, as MViT-B), pooling blocks,
    final norm, linear head on the class token (norm then mean over tokens without one)."""

    def __init__(self, cfg: MViTConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.embed_dim
        norm_layer = partial(nn.LayerNorm, eps=cfg.norm_eps)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(3, D, cfg.patch_kernel, cfg.patch_stride, cfg.patch_padding)
        t, h, w = cfg.patch_grid
        self.pos_embed_spatial = nn.Parameter(torch.zeros(1, h * w, D))
        self.pos_embed_temporal = nn.Parameter(torch.zeros(1, t, D))
        if cfg.cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
            self.pos_embed_class = nn.Parameter(torch.zeros(1, 1, D))
        drop_path = np.linspace(0, cfg.drop_path_rate, cfg.depth)  # stochastic depth grows with depth
        self.blocks = nn.ModuleList(
            MultiScaleBlock(
                d,
                d_out,
                heads,
                q,
                kv,
                cfg.pool_kernel,
                cfg.cls_token,
                cfg.qkv_bias,
                cfg.mlp_ratio,
                float(p),
                norm_layer,
            )
            for d, d_out, heads, q, kv, p in zip(
                cfg.dims_in, cfg.dims, cfg.heads, cfg.q_strides, cfg.kv_strides, drop_path
            )
        )
        self.norm = norm_layer(cfg.dims[-1])
        self.head = nn.Linear(cfg.dims[-1], cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        for name in ("pos_embed_spatial", "pos_embed_temporal", "pos_embed_class", "cls_token"):
            if hasattr(self, name):  # truncated normal, as SlowFast
                trunc_normal_(getattr(self, name), std=0.02)
        self.apply(_init_weights)

    def pos_embed(self, grid: Grid) -> torch.Tensor:
        """(1, t*h*w, D) positions for a grid, resized when it is not the config's.

        SlowFast resizes the sum space + time trilinearly; resizing each part on its own
        axes gives the same table, since the interpolation weights on the other axes sum to 1.
        """
        t, h, w = grid
        t0, h0, w0 = self.cfg.patch_grid
        spatial, temporal = self.pos_embed_spatial, self.pos_embed_temporal
        if (h, w) != (h0, w0):
            spatial = spatial.reshape(1, h0, w0, -1).permute(0, 3, 1, 2)
            spatial = F.interpolate(spatial, size=(h, w), mode="bilinear").flatten(2).transpose(1, 2)
        if t != t0:
            temporal = F.interpolate(temporal.transpose(1, 2), size=t, mode="linear").transpose(1, 2)
        return (temporal[:, :, None] + spatial[:, None]).reshape(1, t * h * w, -1)

    def embed(self, video: torch.Tensor) -> tuple[torch.Tensor, Grid]:
        """Normalized video (B, 3, T, H, W) -> tokens (B, [cls +] t*h*w, D) in (t, h, w) order, and the grid."""
        if video.dim() != 5 or video.shape[1] != 3:
            raise ValueError(f"expected a video of shape (B, 3, T, H, W); got {tuple(video.shape)}")
        check_input(self.cfg, *video.shape[2:])
        x = self.patch_embed.proj(video)
        grid = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2) + self.pos_embed(grid)
        if self.cfg.cls_token:
            cls = (self.cls_token + self.pos_embed_class).expand(x.shape[0], -1, -1)
            x = torch.cat((cls, x), dim=1)
        return x, grid

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return self.head(x[:, 0] if self.cfg.cls_token else x.mean(dim=1))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x, grid = self.embed(video)
        for block in self.blocks:
            x, grid, _ = block(x, grid)
        return self.forward_head(x)

    def forward_trace(self, video: torch.Tensor) -> tuple[torch.Tensor, list[BlockInfo]]:
        """The forward, also returning each block's grids and widths as its tensors had them."""
        x, grid = self.embed(video)
        infos = []
        for i, block in enumerate(self.blocks):
            dim = x.shape[-1]
            x_out, q_grid, kv_grid = block(x, grid)
            infos.append(
                BlockInfo(i, grid, q_grid, kv_grid, dim, x_out.shape[-1], block.attn.heads, self.cfg.cls_token)
            )
            x, grid = x_out, q_grid
        return self.forward_head(x), infos


def _init_weights(m: nn.Module) -> None:
    """SlowFast's init: truncated normal weights, biases of linear layers and norms at 0.02."""
    if isinstance(m, (nn.Linear, nn.Conv3d)):
        trunc_normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.constant_(m.bias, 0.02)
    elif isinstance(m, nn.LayerNorm):
        nn.init.constant_(m.weight, 1.0)
        nn.init.constant_(m.bias, 0.02)


def mvit_flops(
    cfg: MViTConfig, frames: int | None = None, height: int | None = None, width: int | None = None
) -> np.ndarray:
    """(depth+1,) FLOPs with a multiply-add as 2 FLOPs: [0] patch embedding and head, [1 + i] block i
    (blocks numbered from 0, as BlockInfo.index and SlowFast number them).

    A block: qkv on its input tokens; depthwise pooling convs (kernel volume per output cell and
    channel); q k^T and attention times V on the pooled counts; proj, MLP (widening in the block
    before a stage) and the residual's projection there, on the pooled queries. Norms, softmax,
    GELU and the residual max pool (comparisons only) are left out, as in models/flops.py.
    MViT-B 16x4 on 16 x 224 x 224: 141.2 G, i.e. 70.6 G multiply-adds; the paper quotes 70.5
    GFLOPs and PyTorchVideo's model zoo 70.8, both counting a multiply-add as one.
    """
    infos = block_infos(cfg, frames, height, width)
    kernel = math.prod(cfg.pool_kernel)
    patch_values = 3 * math.prod(cfg.patch_kernel)
    macs = [math.prod(infos[0].in_grid) * patch_values * cfg.embed_dim + cfg.dims[-1] * cfg.num_classes]
    for b, q, kv in zip(infos, cfg.q_strides, cfg.kv_strides):
        d, d_out, hidden = b.dim, b.dim_out, int(b.dim * cfg.mlp_ratio)
        pool = _pools_q(q) * math.prod(b.q_grid) + _pools_kv(cfg.pool_kernel, kv) * 2 * math.prod(b.kv_grid)
        macs.append(
            b.in_tokens * 3 * d * d
            + pool * d * kernel
            + 2 * b.q_tokens * b.kv_tokens * d
            + b.q_tokens * (d * d + d * hidden + hidden * d_out + (d * d_out if d != d_out else 0))
        )
    return 2.0 * np.asarray(macs, dtype=np.float64)
