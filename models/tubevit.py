"""TubeViT's sparse tubes (Piergiovanni et al., CVPR 2023) as a tokenizer for the video ViT's blocks.

Each tube is a Conv3d with a large stride, applied from an offset: its tokens are boxes of the
video, [t0, t1) x [y0, y1) x [x0, x1) in frames and pixels. Boxes of different tubes overlap and
leave gaps. Tokens per axis = floor((size - offset - kernel) / stride) + 1, so the default tubes
give 98 + 147 + 98 + 196 = 539 tokens for 32 x 224 x 224 (the paper quotes 559).
Each token's position is a fixed sin-cos of its box's centre, index * stride + offset + kernel / 2.

    tubes = parse_tubes("8x8x8 stride 16,32,32; 1x16x16 stride 32,16,16")
    tokenizer = TubeTokenizer(tubes, embed_dim=384)
    x = model.forward_blocks(tokenizer(video))   # video: (B, 3, T, H, W), normalized
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

Triple = tuple[int, int, int]


MAX_TUBE_VALUE = 10_000  # frames or px: far past any clip the explorer takes, and small enough for C longs
MAX_TUBES = 64  # a Conv3d each: the paper uses 4


@dataclass(frozen=True)
class Tube:
    """One sparse tube: a 3-D kernel (t, h, w) moved by `stride`, starting at `offset` (frames, px, px)."""

    kernel: Triple
    stride: Triple
    offset: Triple = (0, 0, 0)

    def __post_init__(self) -> None:
        for name in ("kernel", "stride", "offset"):
            value = tuple(getattr(self, name))
            if len(value) != 3 or not all(isinstance(v, (int, np.integer)) for v in value):
                raise ValueError(f"{name} must be 3 integers (t, h, w), got {value}")
            object.__setattr__(self, name, tuple(int(v) for v in value))
        if min(self.kernel) < 1:
            raise ValueError(f"kernel must be positive, got {_join(self.kernel, 'x')}")
        if min(self.stride) < 1:
            raise ValueError(f"stride must be positive, got {_join(self.stride, ',')}")
        if min(self.offset) < 0:
            raise ValueError(f"offset must not be negative, got {_join(self.offset, ',')}")
        if max(*self.kernel, *self.stride, *self.offset) > MAX_TUBE_VALUE:
            raise ValueError(f"kernel, stride and offset must be at most {MAX_TUBE_VALUE} (frames or px)")


DEFAULT_TUBES: tuple[Tube, ...] = (
    Tube((8, 8, 8), (16, 32, 32), (0, 0, 0)),
    Tube((16, 4, 4), (6, 32, 32), (4, 8, 8)),
    Tube((4, 12, 12), (16, 32, 32), (0, 16, 16)),
    Tube((1, 16, 16), (32, 16, 16), (0, 0, 0)),
)

_TRIPLE = r"(-?\d+)\s*[x,]\s*(-?\d+)\s*[x,]\s*(-?\d+)"
_TUBE = re.compile(rf"{_TRIPLE}\s+stride\s+{_TRIPLE}(?:\s+offset\s+{_TRIPLE})?", re.IGNORECASE)
TUBE_FORMAT = "KTxKHxKW stride ST,SH,SW [offset OT,OH,OW]; one tube per line or separated by ';'"


def _join(values: Sequence[int], sep: str) -> str:
    return sep.join(str(v) for v in values)


def format_tube(tube: Tube) -> str:
    """e.g. '16x4x4 stride 6,32,32 offset 4,8,8'."""
    return f"{_join(tube.kernel, 'x')} stride {_join(tube.stride, ',')} offset {_join(tube.offset, ',')}"


def format_tubes(tubes: Sequence[Tube]) -> str:
    """One tube per line; `parse_tubes` reads it back exactly."""
    return "\n".join(format_tube(tube) for tube in tubes)


def parse_tubes(text: str) -> tuple[Tube, ...]:
    """Tubes from text in TUBE_FORMAT. Numbers in a triple may be joined by 'x' or ','; the offset
    defaults to 0,0,0; blank items are skipped. Bad text raises ValueError naming the tube."""
    items = [item.strip() for item in re.split(r"[;\n]", text)]
    tubes = []
    for number, item in enumerate((item for item in items if item), start=1):
        match = _TUBE.fullmatch(item)
        if match is None:
            raise ValueError(f"tube {number} ({item!r}) is not of the form {TUBE_FORMAT!r}")
        try:
            if any(v is not None and len(v.lstrip("-")) > len(str(MAX_TUBE_VALUE)) for v in match.groups()):
                raise ValueError(f"kernel, stride and offset must be at most {MAX_TUBE_VALUE} (frames or px)")
            values = [int(v) if v is not None else 0 for v in match.groups()]  # short: int() takes them at once
            tubes.append(Tube(tuple(values[0:3]), tuple(values[3:6]), tuple(values[6:9])))
        except ValueError as error:
            raise ValueError(f"tube {number} ({item!r}): {error}") from None
    if not tubes:
        raise ValueError(f"no tube given; write e.g. {format_tube(DEFAULT_TUBES[0])!r}")
    if len(tubes) > MAX_TUBES:
        raise ValueError(f"at most {MAX_TUBES} tubes (each is a Conv3d of its own), got {len(tubes)}")
    return tuple(tubes)


def tube_grid(tube: Tube, size: Sequence[int]) -> Triple:
    """Tokens of `tube` along (t, h, w) for a video of `size` (T, H, W); 0 where the kernel does not fit."""
    return tuple(
        (n - o - k) // s + 1 if n - o >= k else 0 for n, k, s, o in zip(size, tube.kernel, tube.stride, tube.offset)
    )


def tube_boxes(tubes: Sequence[Tube], size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Every token's box and tube: boxes (N, 6) int64 [t0, t1, y0, y1, x0, x1), half-open in frames
    and pixels, and tube_index (N,). Tubes in order, each tube's tokens in (t, h, w) order, as the
    Conv3d output flattens."""
    boxes, index = [], []
    for i, tube in enumerate(tubes):
        axes = [np.arange(n) * s + o for n, s, o in zip(tube_grid(tube, size), tube.stride, tube.offset)]
        starts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        ends = starts + np.array(tube.kernel)
        boxes.append(np.stack([starts, ends], axis=-1).reshape(-1, 6))
        index.append(np.full(len(starts), i))
    if not boxes:
        return np.zeros((0, 6), np.int64), np.zeros(0, np.int64)
    return np.concatenate(boxes).astype(np.int64), np.concatenate(index).astype(np.int64)


def box_centres(boxes: np.ndarray) -> np.ndarray:
    """(N, 3) float (t, y, x) centres of (N, 6) boxes: index * stride + offset + kernel / 2."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return (boxes[:, 0::2] + boxes[:, 1::2]) / 2


def coverage(boxes: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """(T, H, W) int32: how many boxes cover each frame pixel. Boxes are clipped to the video.

    Vectorised as a 3-D difference array: +-1 at each box's 8 corners, then a cumulative sum per axis.
    """
    T, H, W = size
    boxes = np.clip(np.asarray(boxes, dtype=np.int64).reshape(-1, 6), 0, np.repeat([T, H, W], 2))
    diff = np.zeros((T + 1, H + 1, W + 1), np.int32)
    for ct in (0, 1):
        for cy in (0, 1):
            for cx in (0, 1):
                sign = (-1) ** (ct + cy + cx)
                np.add.at(diff, (boxes[:, ct], boxes[:, 2 + cy], boxes[:, 4 + cx]), sign)
    return diff.cumsum(0).cumsum(1).cumsum(2)[:T, :H, :W]


def uncovered_fraction(boxes: np.ndarray, size: Sequence[int]) -> float:
    """Share of the video's volume (frames x pixels) inside no box."""
    return float((coverage(boxes, size) == 0).mean())


def sincos_3d(centres: np.ndarray | torch.Tensor, dim: int) -> torch.Tensor:
    """(N, dim) float32 fixed positions of (N, 3) (t, y, x) centres, as in the paper.

    Channels: [sin t, cos t, sin y, cos y, sin x, cos x], each block dim // 6 wide, frequency
    j in the block 1 / 10000 ** (j / (dim // 6)). When dim is not a multiple of 6 (ViT-L's 1024),
    the last dim % 6 channels are zero: they carry no position (a departure from the paper,
    which takes dim divisible by 6).
    """
    if dim < 6:
        raise ValueError(f"the 3-D sin-cos position needs at least 6 channels (sin and cos per axis), got {dim}")
    centres = torch.as_tensor(centres, dtype=torch.float64).reshape(-1, 3)
    width = dim // 6
    omega = 1.0 / 10000.0 ** (torch.arange(width, dtype=torch.float64) / width)
    angle = centres[:, :, None] * omega  # N, 3, width
    table = torch.cat([angle.sin(), angle.cos()], dim=-1).reshape(len(centres), 6 * width)
    return nn.functional.pad(table, (0, dim - 6 * width)).float()


def token_boxes(tubes: Sequence[Tube], size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """tube_boxes for a (T, H, W) video; raises ValueError when no tube fits it."""
    boxes, index = tube_boxes(tubes, size)
    if len(boxes) == 0:
        needs = ", ".join(_join([o + k for o, k in zip(t.offset, t.kernel)], "x") for t in tubes)
        raise ValueError(
            f"no tube gives a token for a {_join(size, 'x')} video (frames x px x px); the tubes need at least {needs}"
        )
    return boxes, index


class TubeTokenizer(nn.Module):
    """Sparse tube tokens: one Conv3d per tube, outputs concatenated in tube order, plus sincos_3d
    of each token's box centre. forward((B, C, T, H, W)) -> (B, N, embed_dim), N from tube_boxes."""

    def __init__(self, tubes: Sequence[Tube], embed_dim: int, channels: int = 3):
        super().__init__()
        if not tubes:
            raise ValueError("TubeTokenizer needs at least one tube")
        sincos_3d(np.zeros((0, 3)), embed_dim)  # fail early on a width the positions cannot take
        self.tubes = tuple(tubes)
        self.embed_dim = embed_dim
        self.convs = nn.ModuleList(
            nn.Conv3d(channels, embed_dim, kernel_size=tube.kernel, stride=tube.stride) for tube in self.tubes
        )

    def boxes(self, size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        return token_boxes(self.tubes, size)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        size = tuple(video.shape[2:])
        boxes, _ = self.boxes(size)
        tokens = []
        for tube, conv in zip(self.tubes, self.convs):
            if 0 in tube_grid(tube, size):
                continue
            ot, oh, ow = tube.offset
            tokens.append(conv(video[:, :, ot:, oh:, ow:]).flatten(2).transpose(1, 2))
        pos = sincos_3d(box_centres(boxes), self.embed_dim).to(video.device, tokens[0].dtype)
        return torch.cat(tokens, dim=1) + pos
