"""The trace: what happened to the tokens, layer by layer. Every reducer fills one; every view reads one.

Layer 0 is the model's input; layer l is the sequence after block l. The grid is the
dense tokenization of the clip, T' x H' x W' cells of `cell` = (frames, px, px).

On disk: DIR/summary.json (numbers a person reads) and DIR/trace.npz (arrays):
  owner             int32 (layers+1, T', H', W'): token standing for each cell, -1 where none
  tokens_per_layer  int64 (layers+1,)
  flops, dense_flops  float64 (layers+1,): [0] embedding and head, [l] block l
  logits            float32 (classes,), when the model has a head
  token.<name>      per-token values of every layer, concatenated in layer order
  boxes             int64 (sum of tokens, 6): for tokens that are boxes rather than cells (sparse
                    tubes, pooled MViT queries), each token's [t0, t1) frames, [y0, y1) and
                    [x0, x1) pixels, every layer concatenated in layer order
  <name>            (T', H', W') the value at each input token's own cell, 0 elsewhere
                    (e.g. "run_length")
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ValueInfo:
    """What a per-token value means: its label, an explanation, and how it is drawn.

    kind: "count" (a whole number such as a cluster size: discrete legend), "heat" (a float such as
    attention: continuous colour bar) or "index" (a cell index: neither).
    """

    label: str
    explanation: str
    kind: str


def cells_per_token(owner: np.ndarray, tokens: int) -> np.ndarray:
    """(tokens,) int: how many cells each token stands for, counted from one layer's owner map."""
    return np.bincount(owner[owner >= 0].ravel(), minlength=tokens)


@dataclass
class Trace:
    grid: tuple[int, int, int]
    cell: tuple[int, int, int]
    owner: np.ndarray
    tokens_per_layer: list[int]
    values: dict[str, list[np.ndarray]]  # name -> one (tokens,) array per layer; always has "cell"
    flops: np.ndarray
    dense_flops: np.ndarray
    seconds: dict[str, float]
    logits: np.ndarray | None = None
    labels: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # reducer, params, model, device, notes, layer_info
    boxes: list[np.ndarray] | None = None  # per layer (tokens, 6) footprints, for tokens that are boxes

    def __post_init__(self) -> None:
        layers = self.owner.shape[0]
        if self.owner.shape[1:] != tuple(self.grid) or len(self.tokens_per_layer) != layers:
            raise ValueError("owner, grid and tokens_per_layer disagree")
        for name, per_layer in self.values.items():
            if [len(v) for v in per_layer] != list(self.tokens_per_layer):
                raise ValueError(f"value {name!r} does not have one entry per token at every layer")
        if self.boxes is not None and [len(b) for b in self.boxes] != list(self.tokens_per_layer):
            raise ValueError("boxes do not have one row per token at every layer")
        for layer in range(layers):
            if self.owner[layer].max(initial=-1) >= self.tokens_per_layer[layer] or self.owner[layer].min() < -1:
                raise ValueError(f"owner at layer {layer} names a token that does not exist")

    @property
    def layers(self) -> int:
        """Number of blocks (the trace has layers + 1 entries)."""
        return self.owner.shape[0] - 1

    @property
    def input_tokens(self) -> int:
        return int(np.prod(self.grid))

    def home(self, layer: int) -> np.ndarray:
        """(T', H', W') bool: the cell is the one its token was embedded from."""
        flat_owner = self.owner[layer].reshape(-1)
        cells = self.values["cell"][layer]
        own = np.zeros(flat_owner.shape, dtype=bool)
        has = flat_owner >= 0
        own[has] = cells[flat_owner[has]] == np.flatnonzero(has)
        return own.reshape(self.grid)

    def cell_values(self, name: str, layer: int) -> np.ndarray:
        """(T', H', W') float: each cell shows its token's value, NaN where no token stands."""
        owner = self.owner[layer]
        out = np.full(owner.shape, np.nan)
        has = owner >= 0
        out[has] = self.values[name][layer][owner[has]]
        return out

    def probabilities(self) -> np.ndarray | None:
        if self.logits is None:
            return None
        z = self.logits.astype(np.float64) - self.logits.max()
        return np.exp(z) / np.exp(z).sum()

    def top_k(self, k: int = 5) -> list[dict[str, Any]]:
        probs = self.probabilities()
        if probs is None:
            return []
        order = np.argsort(-probs)[:k]
        return [{"index": int(i), "label": self.label(int(i)), "probability": float(probs[i])} for i in order]

    def label(self, index: int) -> str:
        return self.labels[index] if self.labels and index < len(self.labels) else f"class {index}"

    def summary(self) -> dict[str, Any]:
        return {
            "grid": list(self.grid),
            "cell": list(self.cell),
            "input_tokens": self.input_tokens,
            "tokens_per_layer": [int(n) for n in self.tokens_per_layer],
            "reducer": self.meta.get("reducer"),
            "params": self.meta.get("params", {}),
            "model": self.meta.get("model"),
            "device": self.meta.get("device"),
            "seconds": self.seconds,
            "flops_per_layer": self.flops.tolist(),
            "flops_total": float(self.flops.sum()),
            "dense_flops_total": float(self.dense_flops.sum()),
            "top5": self.top_k(5),
            "notes": self.meta.get("notes", []),
        }

    def save(self, directory: str | Path) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "owner": self.owner.astype(np.int32),
            "tokens_per_layer": np.asarray(self.tokens_per_layer, dtype=np.int64),
            "flops": self.flops,
            "dense_flops": self.dense_flops,
        }
        if self.logits is not None:
            arrays["logits"] = self.logits.astype(np.float32)
        if self.boxes is not None:
            arrays["boxes"] = np.concatenate(self.boxes).astype(np.int64)
        for name, per_layer in self.values.items():
            arrays[f"token.{name}"] = np.concatenate(per_layer)
            if name != "cell":
                arrays[name] = self._input_map(name)
        np.savez_compressed(out / "trace.npz", **arrays)
        summary = self.summary() | {"labels": self.labels, "meta": self.meta}
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_jsonable))
        return out

    def _input_map(self, name: str) -> np.ndarray:
        """The value at each layer-0 token's own cell, 0 at every other cell."""
        cells = np.zeros(self.input_tokens, dtype=self.values[name][0].dtype)
        cells[self.values["cell"][0]] = self.values[name][0]
        return cells.reshape(self.grid)

    @classmethod
    def load(cls, directory: str | Path) -> "Trace":
        directory = Path(directory)
        summary = json.loads((directory / "summary.json").read_text())
        with np.load(directory / "trace.npz") as npz:
            tokens = [int(n) for n in npz["tokens_per_layer"]]
            splits = np.cumsum(tokens)[:-1]
            values = {key[len("token."):]: np.split(npz[key], splits) for key in npz.files if key.startswith("token.")}
            boxes = np.split(npz["boxes"], splits) if "boxes" in npz.files else None
            return cls(
                grid=tuple(summary["grid"]), cell=tuple(summary["cell"]), owner=npz["owner"],
                tokens_per_layer=tokens, values=values, flops=npz["flops"], dense_flops=npz["dense_flops"],
                seconds=summary["seconds"], logits=npz["logits"] if "logits" in npz.files else None,
                labels=summary.get("labels"), meta=summary.get("meta", {}), boxes=boxes,
            )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
