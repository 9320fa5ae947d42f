"""What every token reducer shares: declared parameters and values, hooks, what it returns.

A reducer is one file in this folder that registers itself: the file's name is the
reducer's `name`, and defining the class is enough (`Reducer.__init_subclass__`). It
declares its typed parameters once (`params`: the sidebar, CLI, links, bench, accuracy and
comparisons read them) and the per-token values it records (`token_values`: label, explanation,
count or heat). It implements only the hooks it needs:

  choose input tokens     `select` (RLT, random drop, masking): which tubelets enter, and
                          which entering token stands for every cell of the T' x H' x W' grid;
  act between blocks      subclass `InModelReducer` and implement `step` (ToMe, VTM, STA,
                          EViT): it sees the tokens at one point of a block and returns a
                          `Reduction`, how the current tokens map to fewer ones;
  replace the tokenizer   subclass `TokenizerReducer` (TubeViT's sparse tubes);
  be a network of its own subclass `NetworkReducer` (MViT).

The engine (models/engine.py) runs whichever it is and fills a trace; views never see the
reducer itself, and no other code tells the kinds apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from explorer.trace import ValueInfo

from ..merge import Reduction  # noqa: F401  (re-exported: reducers return it)

REGISTRY: dict[str, type[Reducer]] = {}  # filled as reducer modules are imported (see __init__.py)
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")  # a bool parameter written as text


class ParameterError(ValueError):
    """A reducer parameter is unknown or out of range; the message says which and why."""


@dataclass(frozen=True)
class Param:
    """One reducer parameter: its default fixes its type; low/high bound numbers; choices bound strings."""

    name: str
    default: bool | int | float | str
    help: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None  # a str parameter with a fixed set of values

    @property
    def kind(self) -> type:
        return type(self.default)

    def parse(self, value: Any) -> bool | int | float | str:
        """Check and convert a value (a Python value or a CLI string) to this parameter's type."""
        kind = self.kind
        if kind is str:
            text = str(value).strip()
            if self.choices is not None and text not in self.choices:
                raise ParameterError(f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}")
            return text
        if kind is bool:
            return self._parse_bool(value)
        check_number(self.name, value, self.low, self.high, whole=kind is int)
        return kind(float(value))  # through float: "1e3" is a valid int; a huge int passed the bounds above

    def _parse_bool(self, value: Any) -> bool:
        if not isinstance(value, str):
            return bool(value)
        if value.lower() not in TRUE + FALSE:
            raise ParameterError(f"{self.name} must be true or false, got {value!r}")
        return value.lower() in TRUE


def check_number(
    name: str, value: Any, low: float | None = None, high: float | None = None, *, whole: bool = False
) -> None:
    """Refuse, naming it, a value that is not a finite number (nan, inf, text, None), not whole where it must be,
    or outside [low, high]; every number a user gives passes here before any work uses it."""
    try:
        real = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ParameterError(f"{name} must be a finite number, got {_shown(value)}") from None
    if not math.isfinite(real):
        raise ParameterError(f"{name} must be a finite number, got {_shown(value)}")
    if whole and real != int(real):
        raise ParameterError(f"{name} must be a whole number, got {_shown(value)}")
    if (low is not None and real < low) or (high is not None and real > high):
        raise ParameterError(f"{name} must be between {_bound(low)} and {_bound(high)}, got {_shown(value)}")


def _shown(value: Any) -> str:
    """The value as given, cut short: a 400-digit number is named, not printed."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _bound(value: float | None) -> str:
    if value is None:
        return "any"
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else str(value)


BUDGET = Param(
    "budget",
    0.0,
    "Target token budget: the average number of tokens over the layers, as a fraction "
    "of the dense count. 0 = off; otherwise the reducer's own knob is solved for it.",
    low=0.0,
    high=1.0,
    step=0.01,
)


@dataclass
class InputSelection:
    """The tokens a pre-model reducer lets in.

    keep: (K,) flat (t, h, w) indices, ascending, of the tubelets that enter the model.
    owner: (T', H', W') index into `keep` of the token that stands for each cell; -1 where none does.
    values: per-token numbers, each (K,) (e.g. "run_length").
    lengths: (K,) run lengths for a model with a learned length embedding, else None.
    """

    keep: np.ndarray
    owner: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)
    lengths: np.ndarray | None = None


class Reducer:
    """Base class: a subclass declares `name`, `title`, `explanation`, `params`, `token_values` and its hooks.

    The base is a pre-model reducer that lets every tubelet in (dense).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    explanation: ClassVar[str]  # markdown shown beside the view
    departures: ClassVar[str] = ""  # where the explorer departs from the paper, said in UI and docs
    paper: ClassVar[str] = ""  # authors, venue and year, for the README's table
    acts: ClassVar[str] = ""  # where in the network it acts, in a few words
    shows: ClassVar[str] = ""  # what the views show of it, in a few words
    params: ClassVar[tuple[Param, ...]] = ()
    token_values: ClassVar[dict[str, ValueInfo]] = {}  # per-token values it records: what each means
    budget_knob: ClassVar[str | None] = None  # the parameter solved for when a token budget is asked (budget.py)
    budget_fixed: ClassVar[dict[str, Any]] = {}  # other parameters the knob only works with
    variants: ClassVar[tuple[str, ...]] = ()  # other settings compared by default ("targets=learnable")
    runs_on_tubelets: ClassVar[bool] = True  # False: its tokens or network need weights trained for them
    replaces_network: ClassVar[bool] = False  # True: it is a network of its own; "dense" is still the ViT

    def __init_subclass__(cls, **kwargs: Any):
        """Register a class that names itself; its module's file must carry the same name."""
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return
        module = cls.__module__.rsplit(".", 1)[-1]
        if module != cls.name:
            raise TypeError(f"reducer {cls.name!r} must live in a file named {cls.name}.py, not {module}.py")
        REGISTRY[cls.name] = cls

    def __init__(self, **values: Any):
        known = {p.name: p for p in self.params}
        unknown = sorted(set(values) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise ParameterError(
                f"unknown parameter {unknown[0]!r} for reducer {self.name!r} (its parameters: {names})"
            )
        self.values: dict[str, Any] = {name: p.parse(values.get(name, p.default)) for name, p in known.items()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.values.items())
        return f"{self.name}({args})"

    def select(self, video: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int) -> InputSelection:
        """video: (3, T, H, W) ImageNet-normalized float; grid: (T', H', W'). Every tubelet by default."""
        return selection_from_mask(np.ones(grid, dtype=bool))

    def token_source(self) -> str:
        """What makes its tokens, as a refusal names it (TubeViT: its tubes)."""
        return self.name

    def shape_cost(self, clip: tuple[int, int, int], grid: tuple[int, int, int]) -> tuple[int, int]:
        """(tokens entering the first block, (query, key) pairs of the widest attention) for a clip of (T, H, W)
        frames and px on the model's (T', H', W') grid, by shape arithmetic alone: the most this reducer may ask
        (a token budget's whole search included), so that a run past the limits is refused before it starts.
        Every tubelet, each attending to every other, by default."""
        tokens = math.prod(grid)
        return tokens, tokens * tokens

    def layer_tokens(
        self, video: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int, depth: int
    ) -> list[int]:
        """Tokens at each layer (depth + 1 entries) this reducer gives for the clip, without running the model."""
        return [int(self.select(video, grid, tubelet, patch).keep.size)] * (depth + 1)

    def mlp_tokens(self, counts: list[int]) -> list[int]:
        """Tokens each block's MLP runs on, from the tokens at each layer: the block's input by default."""
        return counts[:-1]

    def attach(self, model: torch.nn.Module) -> list[str]:
        """Take what was trained for this reducer with the model (VTM's saliency); notes saying so. None by default."""
        return []


def selection_from_mask(
    kept: np.ndarray, values: dict[str, np.ndarray] | None = None, fill_runs: bool = False
) -> InputSelection:
    """Build a selection from a boolean (T', H', W') mask of kept cells.

    With fill_runs, a dropped cell belongs to the most recent kept token at the same
    spatial position (RLT's runs); otherwise it has no token.
    """
    flat_ids = np.full(kept.shape, -1, dtype=np.int64)
    keep = np.flatnonzero(kept)
    flat_ids.reshape(-1)[keep] = np.arange(keep.size)
    owner = flat_ids.copy()
    if fill_runs:
        for t in range(1, kept.shape[0]):
            owner[t] = np.where(kept[t], flat_ids[t], owner[t - 1])
    per_token = {name: cell_values.reshape(-1)[keep] for name, cell_values in (values or {}).items()}
    return InputSelection(keep=keep, owner=owner.astype(np.int32), values=per_token)


@dataclass
class BlockContext:
    """What an in-model reducer sees at its point in block `block` (0-based) of `depth`."""

    block: int
    depth: int
    grid: tuple[int, int, int]
    x: torch.Tensor  # (B, N, D) the tokens at this point
    keys: torch.Tensor | None  # (B, N, head_dim) this block's attention keys, averaged over heads ("keys" needed)
    size: torch.Tensor  # (B, N) float: how many input tokens each token stands for (merges add up)
    cells: torch.Tensor  # (B, N) long: flat (t, h, w) index of the cell each token keeps
    received: torch.Tensor | None = None  # (B, N) attention each token receives, mean over heads and queries
    windows: torch.Tensor | None = None  # (B, N) long: each token's attention window; None: attention is global

    def metric(self) -> torch.Tensor:
        """The keys averaged over heads; the engine computes them where a reducer that needs them acts."""
        if self.keys is None:
            raise ValueError(f"block {self.block}: the keys were not recorded (the reducer's `needs` lacks 'keys')")
        return self.keys

    def attention_received(self) -> torch.Tensor:
        """(B, N) attention each token receives; recorded where a reducer that needs "attention" acts."""
        if self.received is None:
            raise ValueError(f"block {self.block}: the attention was not recorded (`needs` lacks 'attention')")
        return self.received


class InModelReducer(Reducer):
    """A reducer that shortens the sequence inside the network (merging or pruning).

    Every tubelet enters the model; then in each block where `acts_at` holds, `step` may
    return a Reduction. It is called between the block's attention and its MLP (stage "mid",
    as ToMe) or after the block (stage "end"). `needs` says what the step reads of the block's
    attention: "keys" (averaged over heads, the merge metric) and/or "attention" (the
    attention each token receives; costs the explicit attention weights). Values it
    returns, (B, N) tensors for the tokens it saw, become per-token values of the trace at
    the layer those tokens entered the block.
    """

    stage: ClassVar[str] = "mid"
    needs: ClassVar[frozenset[str]] = frozenset({"keys"})
    pool_by_size: ClassVar[bool] = True  # the final mean pooling weighs a token by the inputs it stands for (ToMe's
    # MAE pooling); False: every token counts once, as a class token's attention sees a fused token (EViT)

    def acts_at(self, block: int, depth: int) -> bool:
        """Whether `step` may act in this block (0-based) of `depth`; every block by default."""
        return True

    @property
    def proportional_attention(self) -> bool:
        """Add log(size) to the attention logits, so a merged token is attended as its copies would be."""
        return False

    def prepare(self, video: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int) -> None:
        """Called once per clip before the blocks run (e.g. to measure motion); nothing by default."""

    def batched(self, prepared: Sequence[InModelReducer]) -> InModelReducer:
        """One reducer acting on a batch of clips, from the reducers prepared for each clip one by one; a reducer
        that keeps nothing per clip serves them all as it is."""
        return prepared[0]

    def step(self, ctx: BlockContext) -> tuple[Reduction | None, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def token_counts(self, tokens: int, grid: tuple[int, int, int], depth: int) -> list[int]:
        """Tokens after each layer (depth + 1 entries, [0] = input) for `tokens` input tokens, without running."""
        raise NotImplementedError

    def layer_tokens(
        self, video: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int, depth: int
    ) -> list[int]:
        return self.token_counts(int(np.prod(grid)), grid, depth)

    def mlp_tokens(self, counts: list[int]) -> list[int]:
        return counts[1:] if self.stage == "mid" else counts[:-1]  # a merge inside the block shortens its MLP


class TokenizerReducer(Reducer):
    """A reducer that makes its own tokens in place of the model's tubelets (TubeViT's sparse tubes).

    Its tokens are boxes of the video that overlap and leave gaps, so no cell is a token's
    own: the trace keeps each token's box, the owner map stays empty (-1), and the "cell"
    of a token is the cell holding its box's centre. The tokens go through the model's blocks.
    """

    runs_on_tubelets = False

    def boxes(self, size: tuple[int, int, int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(N, 6) [t0, t1, y0, y1, x0, x1) boxes for a clip of size (T, H, W), and per-token values."""
        raise NotImplementedError

    def tokenize(self, video: torch.Tensor, embed_dim: int) -> torch.Tensor:
        """(B, 3, T, H, W) normalized clip -> (B, N, embed_dim) tokens, in the order of `boxes`."""
        raise NotImplementedError

    def select(self, video: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int) -> InputSelection:
        T, H, W = video.shape[1:]
        boxes, values = self.boxes((T, H, W))
        centre = (boxes[:, 0::2] + boxes[:, 1::2]) // 2  # (t, y, x) of each box's centre
        t = np.minimum(centre[:, 0] // tubelet, grid[0] - 1)
        h = np.minimum(centre[:, 1] // patch, grid[1] - 1)
        w = np.minimum(centre[:, 2] // patch, grid[2] - 1)
        cells = (t * grid[1] + h) * grid[2] + w
        return InputSelection(keep=cells.astype(np.int64), owner=np.full(grid, -1, dtype=np.int32), values=values)


@dataclass
class NetworkRecord:
    """What a network of its own did, layer by layer (0 = after the patch embedding, l = after block l).

    grids: the token grid (t, h, w) at each layer; tokens tile the clip, so each token of a
    coarser grid covers a block of the first grid's cells. cell: frames and pixels of a
    first-grid cell. kv_grids: the grid each block's keys and values were pooled to.
    flops: (layers + 1,) [0] embedding and head, [l] block l. info: per layer, anything a
    person may read (width, heads).
    """

    grids: list[tuple[int, int, int]]
    cell: tuple[int, int, int]
    kv_grids: list[tuple[int, int, int]]
    flops: np.ndarray
    info: list[dict[str, Any]] = field(default_factory=list)


class NetworkReducer(Reducer):
    """A different network altogether (MViT's pooling attention): it replaces the chosen ViT."""

    runs_on_tubelets = False
    replaces_network = True

    def build(self, num_frames: int, img_size: int, num_classes: int) -> torch.nn.Module:
        """The network, seeded, for clips of num_frames x img_size^2."""
        raise NotImplementedError

    def run(self, network: torch.nn.Module, video: torch.Tensor) -> tuple[torch.Tensor, NetworkRecord]:
        """Logits (B, classes) for a normalized clip (B, 3, T, H, W) and what each layer did."""
        raise NotImplementedError

    def flops(self, clip: tuple[int, int, int]) -> float:
        """FLOPs of one forward on a clip of (T, H, W) frames and px, from the shapes alone."""
        raise NotImplementedError
