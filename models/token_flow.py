"""The forward of the video ViT with a token reducer, tracking where every cell's token goes.

Pre-model reducers (RLT, random drop, masking) choose the tubelets that enter, tokenizer
reducers (sparse tubes) make tokens of their own, and in-model reducers (ToMe, VTM, STA)
shorten the sequence inside blocks. Both run through `run_tokens`,
which keeps, for the current sequence:
  size   how many input tokens each token stands for (merges add sizes up),
  cells  the grid cell each token keeps (its own, or its merge target's),
  owner  for every grid cell, the current token that stands for it (-1: none),
and, when asked, a `FlowRecord` of every layer for the trace and the saliency maps.

A block is timm's Block.forward split in two halves so that a reducer can act between
attention and MLP, as ToMe does; with nothing to reduce it is exactly Block.forward.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from timm.models.vision_transformer import Block

from .merge import merge_tokens
from .reducers.base import BlockContext, InModelReducer, InputSelection, Reducer, Reduction, TokenizerReducer
from .video_vit import VideoViT

HeadFusion = Callable[[torch.Tensor], torch.Tensor]  # (B, heads, N, N) weights -> (N, N) fused


@dataclass
class LayerRecord:
    """The sequence at one layer of the trace (0 = input, l = after block l)."""

    owner: np.ndarray  # (cells,) int32: token standing for each grid cell, -1 where none
    cells: np.ndarray  # (N,) int64: the cell each token keeps
    size: np.ndarray  # (N,) float: input tokens merged into each token
    values: dict[str, np.ndarray] = field(default_factory=dict)  # per-token values found in the next block


@dataclass
class BlockRecord:
    """What block b did: the tokens its attention and MLP ran on, its attention, its reduction."""

    attention_tokens: int
    mlp_tokens: int
    fused: np.ndarray | None = None  # (N, N) attention with heads fused, rows summing to one
    received: np.ndarray | None = None  # (N,) attention each token receives, averaged over heads and queries
    new_index: np.ndarray | None = None  # (N,) the reduction after this block's attention (or after the block)
    merge_weight: np.ndarray | None = None  # (N,) weights the reduction combined tokens with


@dataclass
class FlowRecord:
    layers: list[LayerRecord]
    blocks: list[BlockRecord]
    boxes: np.ndarray | None = None  # (N, 6) boxes of a tokenizer's tokens (the same at every layer)


@dataclass
class _State:
    x: torch.Tensor
    size: torch.Tensor
    cells: torch.Tensor
    owner: torch.Tensor
    merged: bool = False  # any token stands for more than one input token

    def reduce(self, reduction: Reduction) -> None:
        self.x, self.size = merge_tokens(reduction, self.x, self.size)
        self.cells = self.cells.gather(1, reduction.keeper)
        has = self.owner >= 0
        self.owner = torch.where(has, reduction.new_index.gather(1, self.owner.clamp(min=0)), -1)
        self.merged = True  # set without looking at the sizes, which would wait for the GPU


def run_tokens(model: VideoViT, video: torch.Tensor, selection: InputSelection, reducer: Reducer,
               trace: bool = False, fusion: HeadFusion | None = None) -> tuple[torch.Tensor, FlowRecord | None]:
    """Logits (1, classes) for one normalized clip (1, 3, T, H, W), and with `trace` what happened to its tokens.

    With `fusion` (and trace), every block's attention weights are computed too (slower) and fused.
    Without trace nothing is copied off the device, so timed runs measure the model alone.
    """
    if video.shape[0] != 1:
        raise ValueError(f"run_tokens takes one clip, got a batch of {video.shape[0]} (models/packed.py runs batches "
                         "of pre-model reducers)")
    device = video.device
    keep = torch.from_numpy(selection.keep).to(device)[None]
    lengths = torch.from_numpy(selection.lengths).to(device)[None] if selection.lengths is not None else None
    tokenizer = reducer if isinstance(reducer, TokenizerReducer) else None
    x = tokenizer.tokenize(video, model.cfg.embed_dim) if tokenizer else model.embed(video, keep, lengths)
    owner = torch.from_numpy(selection.owner.reshape(1, -1)).to(device=device, dtype=torch.long)
    state = _State(x=x, size=torch.ones(x.shape[:2], device=device), cells=keep, owner=owner)
    in_model = reducer if isinstance(reducer, InModelReducer) else None
    fusion = fusion if trace else None
    layers, blocks = ([_layer(state)] if trace else []), []
    for index, block in enumerate(model.blocks):
        block.attn.keep_keys = in_model is not None
        block.attn.record = fusion is not None
        record = BlockRecord(attention_tokens=state.x.shape[1], mlp_tokens=0)
        mask = torch.log(state.size)[:, None, None, :].to(x.dtype) if (
            state.merged and in_model is not None and in_model.proportional_attention) else None
        state.x = _attention_half(block, state.x, mask)
        if fusion is not None:
            weights = block.attn.last_weights
            record.fused = fusion(weights)[0].cpu().numpy()
            record.received = weights.mean(dim=(1, 2))[0].cpu().numpy()
        if in_model is not None and in_model.stage == "mid":
            _step(in_model, block, index, len(model.blocks), model.grid, state, record, layers)
        record.mlp_tokens = state.x.shape[1]
        state.x = _mlp_half(block, state.x)
        if in_model is not None and in_model.stage == "end":
            _step(in_model, block, index, len(model.blocks), model.grid, state, record, layers)
        if trace:
            blocks.append(record)
            layers.append(_layer(state))
    x = model.norm(state.x)
    logits = model.forward_head(x, state.size if state.merged else None)
    if not trace:
        return logits, None
    boxes = tokenizer.boxes(tuple(video.shape[2:]))[0] if tokenizer else None
    return logits, FlowRecord(layers=layers, blocks=blocks, boxes=boxes)


def _attention_half(block: Block, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x + block.drop_path1(block.ls1(block.attn(block.norm1(x), attn_mask=mask)))


def _mlp_half(block: Block, x: torch.Tensor) -> torch.Tensor:
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))


def _step(reducer: InModelReducer, block: Block, index: int, depth: int, grid: tuple[int, int, int],
          state: _State, record: BlockRecord, layers: list[LayerRecord]) -> None:
    """One reducer step; with a trace (layers), its values go to the layer whose tokens it saw."""
    ctx = BlockContext(block=index, depth=depth, grid=grid, x=state.x, keys=block.attn.last_keys,
                       size=state.size, cells=state.cells)
    reduction, values = reducer.step(ctx)
    if layers:
        layers[-1].values.update({name: v[0].float().cpu().numpy() for name, v in values.items()})
    if reduction is None:
        return
    if layers:
        weight = state.size if reduction.mode == "weighted" else torch.ones_like(state.size)
        record.new_index = reduction.new_index[0].cpu().numpy()
        record.merge_weight = weight[0].float().cpu().numpy()
    state.reduce(reduction)


def _layer(state: _State) -> LayerRecord:
    return LayerRecord(owner=state.owner[0].to(torch.int32).cpu().numpy(), cells=state.cells[0].cpu().numpy(),
                       size=state.size[0].float().cpu().numpy())
