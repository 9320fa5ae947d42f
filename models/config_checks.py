"""Checks on what a checkpoint says about its network, before anything is allocated.

A checkpoint's config comes from a file someone else wrote: any field may have the wrong type, be zero,
negative, absurdly large, or disagree with another. `check_config` names the first such field with the
value and the limit; `check_memory` refuses a network whose parameters would not fit in memory; and
`read_small_file` reads a config without ever reading forever (/dev/zero), blocking (a FIFO) or reading
something that is not a regular file. The errors are ValueErrors; weights.py turns them into CheckpointErrors.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import fields
from pathlib import Path
from typing import Any

MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few kB
LIMITS = {  # field: (low, high); everything the ViT's shape depends on
    "embed_dim": (1, 16_384),
    "depth": (1, 256),
    "num_heads": (1, 1024),
    "num_classes": (0, 1_000_000),
    "num_frames": (1, 1024),
    "img_size": (1, 4096),
    "tubelet": (1, 64),
    "patch": (1, 512),
    "mlp_ratio": (1e-3, 64.0),
    "norm_eps": (1e-12, 1.0),
    "fc_norm_eps": (1e-12, 1.0),
    "head_norm_eps": (1e-12, 1.0),
    "encoder_dim": (1, 16_384),
    "out_dim": (1, 1 << 20),
}
CHOICES = {"pooling": ("mean", "first")}


def check_config(cfg: Any) -> None:
    """A dataclass config (VideoViTConfig, DecoderConfig): every field of the declared type and in range, the
    heads dividing the width and the patch and tubelet tiling the input. ValueError naming the field."""
    for f in fields(cfg):
        value, kind = getattr(cfg, f.name), str(f.type)
        if kind.startswith("bool"):
            if not isinstance(value, bool):
                raise ValueError(f"{f.name} must be true or false, got {value!r}")
            continue
        if value is None and "None" in kind:
            continue
        if kind.startswith("str"):
            if value not in CHOICES.get(f.name, (value,)):
                raise ValueError(f"{f.name} must be one of {', '.join(CHOICES[f.name])}, got {value!r}")
            continue
        if kind.startswith("int") and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{f.name} must be a whole number, got {value!r}")
        if kind.startswith("float") and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{f.name} must be a number, got {value!r}")
        low, high = LIMITS.get(f.name, (-math.inf, math.inf))
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"{f.name} must be between {_number(low)} and {_number(high)}, got {value!r}")
    width, heads = cfg.embed_dim, cfg.num_heads
    if width % heads:
        raise ValueError(f"{heads} heads do not divide the width {width}")
    for size, step, what in (("img_size", "patch", "patch"), ("num_frames", "tubelet", "tubelet")):
        if hasattr(cfg, size) and getattr(cfg, size) % getattr(cfg, step):
            raise ValueError(f"the {what} ({getattr(cfg, step)}) does not tile {size} {getattr(cfg, size)}")


def parameter_count(cfg: Any) -> int:
    """About how many numbers the network holds: blocks, embeddings, position table, head."""
    width, depth = cfg.embed_dim, cfg.depth
    hidden = int(width * cfg.mlp_ratio)
    blocks = depth * (4 * width * width + 2 * width * hidden + 9 * width + hidden)
    inputs = getattr(cfg, "encoder_dim", 3 * getattr(cfg, "tubelet", 1) * getattr(cfg, "patch", 1) ** 2)
    positions = math.prod(getattr(cfg, "grid", (1,)))
    outputs = getattr(cfg, "num_classes", getattr(cfg, "out_dim", 0))
    return blocks + (inputs + positions + outputs + 4) * width


def check_memory(cfg: Any, available: int) -> None:
    """ValueError when the network's float32 parameters (held twice while loading) pass half of `available`."""
    needed = 2 * 4 * parameter_count(cfg)
    if needed > available // 2:
        raise ValueError(
            f"the config asks for a network of about {parameter_count(cfg):,} parameters ({needed / 2**30:.1f} GiB "
            f"while loading), more than half the {available / 2**30:.1f} GiB free here"
        )


def regular_file(path: Path, what: str) -> None:
    """ValueError unless `path` is a regular file: a FIFO, a device or a socket would block or never end."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise ValueError(f"{what} cannot be read ({error.strerror or error})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise ValueError(f"{what} is {kind}: give a file")


def read_small_file(path: Path, what: str, limit: int = MAX_CONFIG_BYTES) -> str:
    """The text of a regular file of at most `limit` bytes; ValueError otherwise (nothing past the limit is read)."""
    regular_file(path, what)
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{what} is larger than {limit // 1024} kB: not a config")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{what} is not text") from None


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"
