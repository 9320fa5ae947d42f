"""The engine: the only code that knows timm's Block and Attention internals, and the only
place that tells reducer kinds apart.

A block is timm's `Block.forward` (timm 1.0.31, vision_transformer.py) cut in two halves,

    x = x + drop_path1(ls1(attn(norm1(x), attn_mask)))      # `attention_half`
    x = x + drop_path2(ls2(mlp(norm2(x))))                   # `mlp_half`

so that a reducer can act between attention and MLP, as ToMe does; with nothing asked of it, a
block is exactly `Block.forward`, and its attention exactly timm's `Attention.forward`. One
loop over the blocks, `run_blocks`, serves single clips (`run_clip`), packed batches
(`forward_packed`) and training with an attention bias (VTM's auxiliary path,
`forward_with_key_bias`).

What a run records (the keys averaged over heads for merging, the attention weights for
saliency and attentive pruning, the sizes of merged tokens) is asked for per run and returned
with its result. Nothing is stored on a module, so threads may run one cached model at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from timm.layers import Attention
from timm.models.vision_transformer import Block
from torch import nn

from .merge import Reduction, merge_tokens
from .packed import Packed, pack, packed_attention
from .reducers.base import (
    BlockContext,
    InModelReducer,
    InputSelection,
    NetworkRecord,
    NetworkReducer,
    ParameterError,
    Reducer,
    TokenizerReducer,
)
from .video_vit import VideoViT

HeadFusion = Callable[[torch.Tensor], torch.Tensor]  # (B, heads, N, N) weights -> (B, N, N) fused
KeyBias = Callable[[int, torch.Tensor], torch.Tensor | None]  # (block, (B, N, head_dim) keys) -> logits bias


# --- attention and the two halves of a block -------------------------------------------------------------------


@dataclass
class Attended:
    """One attention's output, and what the run asked of it.

    out: the attention branch (timm's `Attention.forward` output). keys: (B, N, head_dim) keys
    averaged over heads. weights: (B, heads, N, N) float32 attention probabilities.
    """

    out: torch.Tensor
    keys: torch.Tensor | None = None
    weights: torch.Tensor | None = None


def attend(
    attn: Attention,
    x: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    keys: bool = False,
    weights: bool = False,
    key_bias: Callable[[torch.Tensor], torch.Tensor | None] | None = None,
    packed: Packed | None = None,
    windows: torch.Tensor | None = None,
) -> Attended:
    """timm's `Attention.forward` on x, also returning what it hides when asked.

    key_bias: a logits bias made from the keys averaged over heads (computed once with q and v).
    packed: x is a pack (total, D) of several clips; attention is block-diagonal per clip.
    windows: (B, N) long, each token's window: a token attends only to the tokens of its own window.
    Without weights, mask or bias asked, the windows are packed and attend one by one (memory grows
    with the largest window, not the clip); otherwise a mask over the whole clip keeps them apart.
    """
    if packed is not None:
        return Attended(_packed_attention(attn, x, packed))
    if windows is not None and not (weights or key_bias) and mask is None:
        return _windowed_attention(attn, x, windows, keys)
    if windows is not None:
        apart = windows[:, None, :, None] != windows[:, None, None, :]
        mask = torch.zeros(apart.shape, device=x.device).masked_fill(apart, -torch.inf) + (0 if mask is None else mask)
    if not (keys or weights or key_bias) and mask is None:
        return Attended(attn(x))
    B, N, _ = x.shape
    gate_layer = getattr(attn, "gate", None)  # timm 1.0.31's optional output gate
    gate = gate_layer(x).sigmoid() if gate_layer is not None else None
    qkv = attn.qkv(x).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    mean_keys = k.mean(dim=1)
    bias = key_bias(mean_keys) if key_bias is not None else None
    if bias is not None:
        mask = bias if mask is None else mask + bias
    if mask is not None and mask.is_floating_point():
        mask = mask.to(q.dtype)  # under autocast q is bf16; a float mask must match it
    probabilities = None
    if weights:
        logits = (q * attn.scale) @ k.transpose(-2, -1)
        probabilities = (logits if mask is None else logits + mask).float().softmax(dim=-1)
        del logits
    if attn.fused_attn:
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=attn.attn_drop.p if attn.training else 0.0
        )
    else:
        logits = (q * attn.scale) @ k.transpose(-2, -1)
        out = attn.attn_drop((logits if mask is None else logits + mask).softmax(dim=-1)) @ v
    out = attn.norm(out.transpose(1, 2).reshape(B, N, attn.attn_dim))
    if gate is not None:
        out = out * gate
    return Attended(attn.proj_drop(attn.proj(out)), mean_keys if keys else None, probabilities)


def _packed_attention(attn: Attention, x: torch.Tensor, packed: Packed) -> torch.Tensor:
    """timm's Attention.forward on a pack (total, D), its SDPA replaced by block-diagonal attention."""
    qkv = attn.qkv(x).reshape(x.shape[0], 3, attn.num_heads, attn.head_dim)
    q, k, v = qkv.unbind(1)
    q, k = attn.q_norm(q), attn.k_norm(k)
    out = packed_attention(q, k, v, packed.cu_seqlens, packed.max_len, scale=attn.scale, lengths=packed.lengths)
    return attn.proj_drop(attn.proj(attn.norm(out.reshape(x.shape[0], attn.attn_dim))))


def _windowed_attention(attn: Attention, x: torch.Tensor, windows: torch.Tensor, keys: bool) -> Attended:
    """timm's Attention.forward with attention kept within windows: the tokens of each (clip, window) are
    gathered into one segment of a pack, attend there (`packed_attention`), and go back to their places.
    Reading the windows' sizes is one wait for the device per block."""
    B, N, D = x.shape
    group = (windows + torch.arange(B, device=x.device)[:, None] * (N + 1)).flatten()
    order = torch.argsort(group, stable=True)
    lengths = torch.unique_consecutive(group[order], return_counts=True)[1].tolist()
    flat = x.reshape(B * N, D)[order]
    gate_layer = getattr(attn, "gate", None)
    qkv = attn.qkv(flat).reshape(B * N, 3, attn.num_heads, attn.head_dim)
    q, k, v = qkv.unbind(1)
    q, k = attn.q_norm(q), attn.k_norm(k)
    cu_seqlens = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int32, device=x.device)
    out = packed_attention(q, k, v, cu_seqlens, max(lengths), scale=attn.scale, lengths=lengths)
    out = attn.norm(out.reshape(B * N, attn.attn_dim))
    if gate_layer is not None:
        out = out * gate_layer(flat).sigmoid()
    out = attn.proj_drop(attn.proj(out))
    back = torch.empty_like(order).scatter_(0, order, torch.arange(B * N, device=x.device))
    mean_keys = k.mean(dim=1)[back].reshape(B, N, -1) if keys else None
    return Attended(out[back].reshape(B, N, -1), mean_keys)


def attention_half(block: Block, x: torch.Tensor, **asked: Any) -> tuple[torch.Tensor, Attended]:
    attended = attend(cast(Attention, block.attn), block.norm1(x), **asked)
    return x + block.drop_path1(block.ls1(attended.out)), attended


def mlp_half(block: Block, x: torch.Tensor) -> torch.Tensor:
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))


class BlockHooks:
    """What a run asks of each block and does between its halves; the base asks nothing and does nothing."""

    def asks(self, index: int) -> dict[str, Any]:
        """Keyword arguments of `attend` for block `index` (mask, keys, weights)."""
        return {}

    def after_attention(self, index: int, x: torch.Tensor, attended: Attended) -> torch.Tensor:
        return x

    def after_block(self, index: int, x: torch.Tensor, attended: Attended) -> torch.Tensor:
        return x


def run_blocks(
    blocks: Iterable[nn.Module],
    x: torch.Tensor,
    hooks: BlockHooks | None = None,
    packed: Packed | None = None,
    key_bias: KeyBias | None = None,
) -> torch.Tensor:
    """The blocks (timm Blocks), each as timm's Block.forward in two halves, with the run's hooks between them."""
    hooks = hooks or BlockHooks()
    for index, module in enumerate(blocks):
        block = cast(Block, module)
        asked = hooks.asks(index)
        if key_bias is not None:
            asked["key_bias"] = lambda keys, index=index: key_bias(index, keys)
        x, attended = attention_half(block, x, packed=packed, **asked)
        x = hooks.after_attention(index, x, attended)
        x = mlp_half(block, x)
        x = hooks.after_block(index, x, attended)
    return x


def forward_with_key_bias(model: VideoViT, video: torch.Tensor, key_bias: KeyBias) -> torch.Tensor:
    """Logits of the dense ViT with a bias made from each block's keys added to its attention logits (training)."""
    return model.forward_head(model.norm(run_blocks(model.blocks, model.embed(video), key_bias=key_bias)))


def forward_packed(model: VideoViT, packed: Packed) -> torch.Tensor:
    """Logits (B, classes): the model's blocks on the pack, then per-clip mean pooling and the head.

    Inference only: timm's drop-path would act on the pack, not on each clip.
    """
    x = model.norm(run_blocks(model.blocks, packed.tokens, packed=packed))
    segments = x.split(packed.lengths)
    first = model.cfg.pooling == "first"  # each clip's first kept token (RLT keeps all of tubelet 0)
    pooled = torch.stack([segment[0] if first else segment.mean(dim=0) for segment in segments])
    return model.head(model.fc_norm(pooled))


# --- one clip through the ViT with a reducer, tracing where every cell's token goes ------------------------------


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
    attention_pairs: int = 0  # (query, key) pairs its attention scored: N^2, or the sum over windows of theirs
    fused: np.ndarray | None = None  # (N, N) attention with heads fused, rows summing to one
    received: np.ndarray | None = None  # (N,) attention each token receives, averaged over heads and queries
    new_index: np.ndarray | None = None  # (N,) the reduction after this block's attention (or after the block)
    merge_weight: np.ndarray | None = None  # (N,) weights the reduction combined tokens with


@dataclass
class FlowRecord:
    layers: list[LayerRecord]
    blocks: list[BlockRecord]
    boxes: np.ndarray | None = None  # (N, 6) boxes of a tokenizer's tokens (the same at every layer)
    pooling: np.ndarray | None = None  # (N,) the weight the final mean pooling gave each token of the last layer


class _Flow(BlockHooks):
    """The current sequence of one run and, when tracing, the record of every layer.

    size: how many input tokens each token stands for; cells: the grid cell each token keeps;
    owner: for every grid cell, the current token that stands for it (-1: none).
    """

    def __init__(
        self,
        x: torch.Tensor,
        cells: torch.Tensor,
        owner: torch.Tensor,
        reducer: InModelReducer | None,
        grid: tuple[int, int, int],
        depth: int,
        trace: bool,
        fusion: HeadFusion | None,
        window_slots: int | None = None,
    ):
        self.size = torch.ones(x.shape[:2], device=x.device)
        self.window_slots = window_slots  # time slots per attention window; None: global attention
        self.cells, self.owner = cells, owner
        self.merged = False  # any token stands for more than one input token (set without asking the GPU)
        self.reducer, self.grid, self.depth = reducer, grid, depth
        self.trace, self.fusion = trace, fusion if trace else None
        self.layers: list[LayerRecord] = [self._layer()] if trace else []
        self.blocks: list[BlockRecord] = []
        self.mlp_tokens: list[int] = []

    def asks(self, index: int) -> dict[str, Any]:
        reducer = self.reducer
        needs = reducer.needs if reducer is not None and reducer.acts_at(index, self.depth) else frozenset()
        asked: dict[str, Any] = {"keys": "keys" in needs, "weights": self.fusion is not None or "attention" in needs}
        if self.merged and reducer is not None and reducer.proportional_attention:
            asked["mask"] = torch.log(self.size)[:, None, None, :]
        windows = self.windows()
        if windows is not None:
            asked["windows"] = windows
        if self.trace:
            tokens = self.cells.shape[1]
            pairs = tokens**2 if windows is None else int((np.bincount(windows[0].cpu().numpy()) ** 2).sum())
            self.blocks.append(BlockRecord(attention_tokens=tokens, mlp_tokens=0, attention_pairs=pairs))
        return asked

    def windows(self) -> torch.Tensor | None:
        """(B, N) each token's attention window: the time slot of the cell it keeps, over the slots per window."""
        if self.window_slots is None:
            return None
        _, H, W = self.grid
        return self.cells // (H * W * self.window_slots)

    def after_attention(self, index: int, x: torch.Tensor, attended: Attended) -> torch.Tensor:
        if self.fusion is not None:
            assert attended.weights is not None  # asked for in `asks`
            record = self.blocks[-1]
            record.fused = self.fusion(attended.weights)[0].cpu().numpy()
            record.received = attended.weights.mean(dim=(1, 2))[0].cpu().numpy()
        if self.reducer is not None and self.reducer.stage == "mid":
            x = self._step(index, x, attended)
        self.mlp_tokens.append(x.shape[1])
        return x

    def after_block(self, index: int, x: torch.Tensor, attended: Attended) -> torch.Tensor:
        if self.reducer is not None and self.reducer.stage == "end":
            x = self._step(index, x, attended)
        if self.trace:
            self.blocks[-1].mlp_tokens = self.mlp_tokens[-1]
            self.layers.append(self._layer())
        return x

    def _step(self, index: int, x: torch.Tensor, attended: Attended) -> torch.Tensor:
        """One reducer step; with a trace, its values go to the layer whose tokens it saw."""
        reducer = self.reducer
        assert reducer is not None  # only called with one
        if not reducer.acts_at(index, self.depth):
            return x
        weights = attended.weights
        received = weights.mean(dim=(1, 2)) if weights is not None and "attention" in reducer.needs else None
        ctx = BlockContext(
            block=index,
            depth=self.depth,
            grid=self.grid,
            x=x,
            keys=attended.keys,
            size=self.size,
            cells=self.cells,
            received=received,
            windows=self.windows(),
        )
        reduction, values = reducer.step(ctx)
        if self.trace:
            self.layers[-1].values.update({name: v[0].float().cpu().numpy() for name, v in values.items()})
        if reduction is None:
            return x
        if self.trace:
            self.blocks[-1].new_index = reduction.new_index[0].cpu().numpy()
            self.blocks[-1].merge_weight = reduction.weights(self.size)[0].float().cpu().numpy()
        return self._reduce(reduction, x)

    def _reduce(self, reduction: Reduction, x: torch.Tensor) -> torch.Tensor:
        x, self.size = merge_tokens(reduction, x, self.size)
        self.cells = self.cells.gather(1, reduction.keeper)
        has = self.owner >= 0
        self.owner = torch.where(has, reduction.new_index.gather(1, self.owner.clamp(min=0)), -1)
        self.merged = True
        return x

    def _layer(self) -> LayerRecord:
        return LayerRecord(
            owner=self.owner[0].to(torch.int32).cpu().numpy(),
            cells=self.cells[0].cpu().numpy(),
            size=self.size[0].float().cpu().numpy(),
        )


def run_clip(
    model: VideoViT,
    video: torch.Tensor,
    selection: InputSelection,
    reducer: Reducer,
    trace: bool = False,
    fusion: HeadFusion | None = None,
    window_slots: int | None = None,
) -> tuple[torch.Tensor, FlowRecord | None]:
    """Logits (B, classes) for normalized clips (B, 3, T, H, W), and with `trace` what happened to its tokens.

    window_slots: attention within windows of that many consecutive time slots (a token's window is its
    kept cell's), as VTM's blocks attend; merging reducers then merge within windows too. None: global.

    A batch (B > 1) runs untraced, with a reducer that lets every tubelet in and keeps the same count
    in every clip (ToMe, VTM, STA, EViT: their counts depend on the count alone).

    With `fusion` (and trace), every block's attention weights are computed too (slower) and fused; each
    block's per-head weights are freed once fused. Without trace nothing is copied off the device, so timed
    runs measure the model alone.
    """
    B = video.shape[0]
    if B != 1 and (trace or selection.keep.size != selection.owner.size):
        raise ValueError(
            f"run_clip traces one clip and batches only reducers that let every tubelet in, got a batch "
            f"of {B} (forward_packed runs batches of pre-model reducers)"
        )
    device = video.device
    keep = torch.from_numpy(selection.keep).to(device)[None].expand(B, -1)
    lengths = torch.from_numpy(selection.lengths).to(device)[None] if selection.lengths is not None else None
    tokenizer = reducer if isinstance(reducer, TokenizerReducer) else None
    x = tokenizer.tokenize(video, model.cfg.embed_dim) if tokenizer else model.embed(video, keep, lengths)
    owner = torch.from_numpy(selection.owner.reshape(1, -1)).to(device=device, dtype=torch.long).expand(B, -1)
    in_model = reducer if isinstance(reducer, InModelReducer) else None
    flow = _Flow(x, keep, owner, in_model, model.grid, len(model.blocks), trace, fusion, window_slots)
    x = model.norm(run_blocks(model.blocks, x, flow))
    pooling = flow.size if flow.merged and in_model is not None and in_model.pool_by_size else None
    first = flow.owner[:, 0].clamp(min=0) if model.cfg.pooling == "first" else None  # the first cell's token
    logits = model.forward_head(x, pooling, first)
    if not trace:
        return logits, None
    T, H, W = video.shape[2:]
    boxes = tokenizer.boxes((T, H, W))[0] if tokenizer else None
    if first is not None:
        pooling = F.one_hot(first, flow.size.shape[1]).to(flow.size.dtype)
    weights = (pooling if pooling is not None else torch.ones_like(flow.size))[0].float().cpu().numpy()
    return logits, FlowRecord(layers=flow.layers, blocks=flow.blocks, boxes=boxes, pooling=weights)


def score_bytes(reducer: Reducer, heads: int, tokens: int) -> int:
    """Bytes one block holds at its peak when the reducer makes it materialize its attention scores (it reads
    the weights, or biases them by size): float32 logits and probabilities, as much again in the kernel's math
    path. 0 when the reducer needs none (the fused kernel keeps no (N, N) scores)."""
    if not isinstance(reducer, InModelReducer):
        return 0
    if "attention" not in reducer.needs and not reducer.proportional_attention:
        return 0
    return 3 * 4 * heads * tokens**2


def saliency_bytes(depth: int, heads: int, tokens: int) -> int:
    """Bytes a traced run with saliency holds at its peak for `tokens` input tokens.

    The fused (N, N) float32 map of every block is kept for rollout; one block's per-head
    probabilities and logits (float32 at most) exist at a time, and the attention kernel may
    materialize as many again (its math path, with a mask); rollout then works in float64 on
    two (N, N) matrices at a time beside the kept maps.
    """
    square = tokens**2
    return int(square * (4 * depth + 12 * heads + 16))


# --- what outside code asks of a reducer's kind -----------------------------------------------------------------


def network_for(reducer: Reducer, num_frames: int, img_size: int, num_classes: int) -> nn.Module | None:
    """The network a reducer brings in place of the ViT (MViT), or None when it runs on the ViT."""
    if isinstance(reducer, NetworkReducer):
        return reducer.build(num_frames, img_size, num_classes)
    return None


def run_network(
    reducer: Reducer, network: nn.Module, video: torch.Tensor, trace: bool
) -> tuple[torch.Tensor, NetworkRecord | None]:
    """Logits of a reducer's own network and, with trace, what each of its layers did."""
    assert isinstance(reducer, NetworkReducer)
    return reducer.run(network, video) if trace else (network(video), None)


MAX_TOKENS = 65_536  # tokens entering the blocks: attention's cost grows with the square of the count


def prepare(reducer: Reducer, video: torch.Tensor, model: VideoViT) -> InputSelection:
    """The tubelets that enter the model; a reducer acting between blocks also reads what it needs of the clip.
    More than MAX_TOKENS tokens is refused here, before anything runs, with the count."""
    cfg = model.cfg
    selection = reducer.select(video, cfg.grid, cfg.tubelet, cfg.patch)
    if selection.keep.size > MAX_TOKENS:
        raise ParameterError(
            f"{reducer.name} would send {selection.keep.size:,} tokens through the blocks of a "
            f"{video.shape[-3]} x {video.shape[-2]} x {video.shape[-1]} clip; at most {MAX_TOKENS:,} run here "
            "(attention grows with the square of the count): use fewer frames, a smaller size or larger strides"
        )
    if isinstance(reducer, InModelReducer):
        reducer.prepare(video, cfg.grid, cfg.tubelet, cfg.patch)
    return selection


@dataclass
class BatchRun:
    """How a batch of clips runs with a reducer: `how` says it in words, `forward` runs it once."""

    how: str  # "batched", "packed" or "per clip"
    forward: Callable[[], object]
    selections: list[InputSelection] | None = None  # packed: each clip's selection


def batch_run(
    model: VideoViT, reducer: Reducer, videos: torch.Tensor, prepared: Sequence[tuple[Reducer, InputSelection]]
) -> BatchRun:
    """The fastest faithful way to run a batch (B, 3, T, H, W) with this reducer.

    prepared: per clip, the reducer fitted to it and its selection (`prepare`). Dense, reducers with
    tokens of their own and reducers acting between blocks run batched (the last keep the same count
    in every clip); pre-model reducers are packed (no padding).
    """
    cfg = model.cfg
    if isinstance(reducer, NetworkReducer):
        network = reducer.build(cfg.num_frames, cfg.img_size, cfg.num_classes).to(videos.device).eval()
        return BatchRun("batched", lambda: network(videos))
    if isinstance(reducer, TokenizerReducer):
        tokenizer = prepared[0][0]  # its tokens do not depend on the clip
        assert isinstance(tokenizer, TokenizerReducer)
        return BatchRun(
            "batched", lambda: model.forward_head(model.forward_blocks(tokenizer.tokenize(videos, cfg.embed_dim)))
        )
    if isinstance(reducer, InModelReducer):  # every clip keeps the same count: one batched forward
        own = reducer.batched([cast(InModelReducer, own) for own, _ in prepared])
        return BatchRun("batched", lambda: run_clip(model, videos, prepared[0][1], own))
    selections = [selection for _, selection in prepared]
    if all(s.keep.size == s.owner.size for s in selections):  # every tubelet enters (dense): no pack needed
        return BatchRun("batched", lambda: model(videos))
    return BatchRun("packed", lambda: forward_packed(model, pack(model, videos, selections)), selections)
