"""TubeViT's sparse tubes (Piergiovanni et al., CVPR 2023) as the tokenizer of the video ViT."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from explorer.trace import ValueInfo

from ..tubevit import (
    DEFAULT_TUBES,
    TUBE_FORMAT,
    Tube,
    TubeTokenizer,
    format_tube,
    format_tubes,
    parse_tubes,
    token_boxes,
    tube_grid,
)
from .base import BUDGET, Param, ParameterError, TokenizerReducer

LARGEST_SCALE = 4.0  # the fewest tokens a token budget's search can reach

STRIDE_SCALE = Param(
    "stride_scale",
    1.0,
    "Multiplies every stride (rounded, at least 1): more or fewer tokens.",
    low=0.25,
    high=LARGEST_SCALE,
    step=0.05,
)


def _scaled(tubes: tuple[Tube, ...], scale: float) -> tuple[Tube, ...]:
    """The tubes with every stride multiplied by `scale`, rounded, at least 1."""
    return tuple(
        replace(t, stride=(_times(t.stride[0], scale), _times(t.stride[1], scale), _times(t.stride[2], scale)))
        for t in tubes
    )


def _times(stride: int, scale: float) -> int:
    return max(1, round(stride * scale))


class SparseTubes(TokenizerReducer):
    name = "tubes"
    title = "TubeViT: sparse tubes"
    paper = "Piergiovanni et al., CVPR 2023"
    acts = "replaces the tubelet embedding"
    shows = (
        "every token's box on the frames it covers, coloured by tube; a 3-D view; tokens per tube; the volume no "
        "token sees"
    )
    explanation = (
        "TubeViT does not cut the clip into a dense grid of tubelets. A few 3-D kernels (**tubes**) "
        "of different shapes slide over the video with large strides and their own offsets: a long thin "
        "tube (16 frames x 4 x 4 px) follows motion, a flat one (1 frame x 16 x 16 px) sees one frame in "
        "detail, cubes sit between. Each position gives one token, so tokens are **boxes** of the video: "
        "boxes of different tubes overlap, and much of the video lies in no box at all. Far fewer tokens "
        "than tubelets (539 instead of 3136 for 32 x 224 x 224) still see every part of the clip at some "
        "scale. Each token gets a fixed sin-cos position of its box's centre in (t, y, x), then the tokens "
        "go through the ViT's blocks. Edit the tubes to see the counts and boxes change."
    )
    departures = (
        "The tube kernels are untrained here (drawn from the seed), and the ViT's blocks were not trained "
        "with them: counts, boxes, FLOPs and times are real, predictions are not. Positions use the true "
        "box centre (kernel / 2); widths not divisible by 6 leave their last channels without position. "
        "stride_scale (not in the paper) scales every stride, to fit a token budget."
    )
    params = (
        Param(
            "tubes",
            format_tubes(DEFAULT_TUBES),
            f"The tubes, one per line: {TUBE_FORMAT}. Kernel, stride and "
            "offset are (frames, px, px). Default: the paper's four.",
        ),
        STRIDE_SCALE,
        Param("seed", 0, "Seed of the untrained tube kernels.", low=0, high=2**31 - 1, step=1),
        BUDGET,
    )
    token_values = {
        "tube": ValueInfo(
            "tube",
            "Which tube made the token: 0 for the first line of the tubes table, 1 for the second, and so on.",
            "count",
        )
    }
    budget_knob = "stride_scale"

    def __init__(self, **values: Any):
        super().__init__(**values)
        try:
            tubes = parse_tubes(self.values["tubes"])
        except ValueError as error:
            raise ParameterError(f"tubes: {error}") from None
        self._written = tubes
        self.tubes: tuple[Tube, ...] = _scaled(tubes, self.values["stride_scale"])
        self._tokenizer: TubeTokenizer | None = None

    def token_source(self) -> str:
        return "sparse tubes " + "; ".join(format_tube(tube).removesuffix(" offset 0,0,0") for tube in self.tubes)

    def shape_cost(self, clip: tuple[int, int, int], grid: tuple[int, int, int]) -> tuple[int, int]:
        """Tokens from the tube grids alone (no box is made); with a budget, the fewest its search can reach (at
        the largest stride_scale): more than that, and no stride fits."""
        tubes = _scaled(self._written, LARGEST_SCALE) if self.values["budget"] else self.tubes
        tokens = sum(math.prod(tube_grid(tube, clip)) for tube in tubes)
        return tokens, tokens * tokens

    def boxes(self, size: tuple[int, int, int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        try:
            boxes, tube = token_boxes(self.tubes, size)
        except ValueError as error:
            raise ParameterError(str(error)) from None
        return boxes, {"tube": tube}

    def tokenize(self, video: torch.Tensor, embed_dim: int) -> torch.Tensor:
        if self._tokenizer is None or self._tokenizer.embed_dim != embed_dim:
            with torch.random.fork_rng(devices=[]):  # seeded kernels without touching the global generator
                torch.random.default_generator.manual_seed(self.values["seed"])  # not CUDA's
                self._tokenizer = TubeTokenizer(self.tubes, embed_dim).eval()
        self._tokenizer.to(video.device)
        return self._tokenizer(video)
