"""The trace: what happened to the tokens, layer by layer. Every reducer fills one; every view reads one.

Layer 0 is the model's input; layer l is the sequence after block l. The grid is the
dense tokenization of the clip, T' x H' x W' cells of `cell` = (frames, px, px).

This module needs numpy alone: `from explorer.trace import Trace; Trace.load(DIR)` works in a
notebook without torch, timm, PyAV or Streamlit. In Jupyter a trace shows itself (_repr_html_):
a summary table, the tokens per layer (an inline SVG) and a PNG of the token map at the last
layer on grey; `trace.show(clip, layer)` draws it on the clip's frames, `trace.html(...)` returns
the same block, `trace.overlay_png(...)` the picture alone. Drawing imports OpenCV and plotly
(explorer.overlays) when it is asked for; nothing is fetched from the network.

On disk: DIR/summary.json (numbers a person reads) and DIR/trace.npz (arrays). Both make one
format, versioned by summary.json's "schema_version" (SCHEMA_VERSION; Trace.load reads the
versions in READABLE_VERSIONS and refuses any other, a missing one included, with a
TraceFormatError, as it does a missing or malformed file).

trace.npz:
  owner             int32 (layers+1, T', H', W'): token standing for each cell, -1 where none
  tokens_per_layer  int64 (layers+1,)
  flops             float64 (layers+1,): [0] embedding and head, [l] block l
  dense_flops       float64: the same for the dense ViT, one entry per its layers (so of another
                    length when the reducer is a network of its own, MViT)
  logits            float32 (classes,), when the model has a head
  token.<name>      per-token values of every layer, concatenated in layer order; token.cell
                    (the flat index of the cell each token keeps as its place) is always there
  boxes             int64 (sum of tokens, 6): for tokens that are boxes rather than cells (sparse
                    tubes, pooled MViT queries), each token's [t0, t1) frames, [y0, y1) and
                    [x0, x1) pixels, every layer concatenated in layer order
  <name>            (T', H', W') the value at each input token's own cell, 0 elsewhere
                    (e.g. "run_length"); written for a person, not read back

summary.json:
  schema_version    int: the format's version (SCHEMA_VERSION)
  grid, cell        [T', H', W'] and [frames, px, px]                       (read back)
  seconds           {"reduce": s, "forward": s, "forward_min": s, "forward_max": s}: the reducer's
                    preparation; the forward's median, fastest and slowest over
                    meta["timing_runs"] runs (older files: "forward" alone)  (read back)
  labels            class names, or null                                    (read back)
  meta              everything else about the run, read back as Trace.meta (below)
  input_tokens, tokens_per_layer, flops_per_layer, flops_total, dense_flops_total, top5
                    [{index, label, probability}], reducer, params, model, device, notes:
                    copies of the arrays and of meta for a person; Trace.load ignores them

meta (Trace.meta; analyze() writes these, a hand-built trace may hold any, all optional):
  reducer       str: the reducer's registry name ("rlt", "tome", ...)
  params        {name: value}: its parameters as run (a token budget's fitted knob included)
  model         str: the model's name as analyze() was given it
  device        str: "cpu" or "cuda", where it ran
  precision     str: "fp32", "bf16" or "fp16", the autocast it ran under
  dtype         str: that precision's torch dtype ("float32", "bfloat16", "float16")
  timing_runs   int: how many timed forwards seconds["forward"] is the median of
  source        str: the clip's video (a path or a sample's name)
  notes         [str]: what a reader should know (saliency skipped, a GPU fallback, a padded video)
  saliency      {"fusion": str, "discard": float} or null: how rollout fused the heads
  budget        {"fraction", "knob", "value", "average_tokens"}: present when the reducer was
                given a token budget: the fraction asked for, the knob fitted to it and its
                value, the tokens per layer it gave on average
  layer_info    [{"q_grid", "kv_grid", ...}] per layer: for a network of its own (MViT), its
                query and key/value grids, width and heads, receptive field and its centre
  own_network   true when the reducer ran a network of its own (MViT), not the ViT dense ran:
                its tokens, FLOPs and time are not deltas of dense's
  values        {name: {"label": str, "explanation": str, "kind": "count" | "heat" | "index"}}:
                what each per-token value means, from the reducer's declarations;
                Trace.value_info(name) reads an entry as a ValueInfo
"""

from __future__ import annotations

import base64
import html
import json
import zipfile
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1  # the layout of summary.json + trace.npz that Trace.save writes
READABLE_VERSIONS = (1,)  # the layouts Trace.load reads
VALUE_KINDS = ("count", "heat", "index")
REQUIRED_ARRAYS = ("owner", "tokens_per_layer", "flops", "dense_flops", "token.cell")
NEUTRAL_GREY = 128  # what the overlay is drawn on when there are no frames


class TraceFormatError(ValueError):
    """A folder does not hold a trace this code reads: a file missing or malformed, or another schema version."""


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
    meta: dict[str, Any] = field(default_factory=dict)  # about the run: the keys in the module docstring
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

    def value_info(self, name: str) -> ValueInfo | None:
        """What the per-token value `name` means, as the trace records it in meta["values"] (analyze() writes the
        reducer's declarations there). None when the trace says nothing about it (a hand-built trace) or its entry
        is not {"label", "explanation", "kind"} strings with a kind of VALUE_KINDS."""
        entries = self.meta.get("values")
        entry = entries.get(name) if isinstance(entries, dict) else None
        if not isinstance(entry, dict) or set(entry) != {f.name for f in fields(ValueInfo)}:
            return None
        if not all(isinstance(text, str) for text in entry.values()) or entry["kind"] not in VALUE_KINDS:
            return None
        return ValueInfo(**entry)

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
        arrays: dict[str, Any] = {  # Any: numpy's stubs type the keywords of savez_compressed as its options
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
        summary = {"schema_version": SCHEMA_VERSION} | self.summary() | {"labels": self.labels, "meta": self.meta}
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_jsonable))
        return out

    def _input_map(self, name: str) -> np.ndarray:
        """The value at each layer-0 token's own cell, 0 at every other cell."""
        cells = np.zeros(self.input_tokens, dtype=self.values[name][0].dtype)
        cells[self.values["cell"][0]] = self.values[name][0]
        return cells.reshape(self.grid)

    @classmethod
    def load(cls, directory: str | Path) -> Trace:
        """The trace that save() wrote to `directory`; TraceFormatError (a ValueError) names what is wrong with a
        folder that does not hold one: a file missing or malformed, or a schema version this code does not read."""
        directory = Path(directory)
        summary = _read_summary(directory / "summary.json")
        arrays = _read_arrays(directory / "trace.npz")
        try:
            tokens = [int(n) for n in arrays["tokens_per_layer"]]
            layers = len(tokens)
            if arrays["flops"].shape != (layers,) or arrays["dense_flops"].ndim != 1:
                raise ValueError(
                    f"flops has shape {arrays['flops'].shape}, not one entry per layer ({layers}), or dense_flops "
                    f"{arrays['dense_flops'].shape} is not one per layer of the dense model"
                )
            splits = np.cumsum(tokens)[:-1]
            values = {key[len("token.") :]: np.split(arrays[key], splits) for key in arrays if key.startswith("token.")}
            return cls(
                grid=_ints(summary["grid"], "grid"),
                cell=_ints(summary["cell"], "cell"),
                owner=arrays["owner"],
                tokens_per_layer=tokens,
                values=values,
                flops=arrays["flops"],
                dense_flops=arrays["dense_flops"],
                seconds=summary["seconds"],
                logits=arrays.get("logits"),
                labels=summary.get("labels"),
                meta=summary.get("meta") or {},
                boxes=np.split(arrays["boxes"], splits) if "boxes" in arrays else None,
            )
        except (ValueError, TypeError, IndexError) as error:
            raise TraceFormatError(f"{directory} does not hold a consistent trace: {error}") from None

    def html(
        self, clip: Any = None, layer: int | None = None, style: str | None = None, value: str | None = None
    ) -> str:
        """The trace as one self-contained HTML block (no scripts, nothing fetched): a summary table, the tokens per
        layer as an inline SVG chart, and a PNG of the overlay at `layer` on one frame per tubelet (overlay_png).

        clip: a Clip or its frames ((frames, height, width, 3) uint8) to draw on; without one the token map is drawn
        on neutral grey, as a trace holds no pixels. The overlay needs OpenCV and plotly, imported here; where they
        are missing the block says so in place of the picture.
        """
        layer, style = self._overlay_choice(layer, style)
        try:
            png = self.overlay_png(clip, layer, style, value)
            picture = (
                f'<img alt="token overlay at layer {layer}" style="max-width:100%" '
                f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
            )
        except ImportError as error:
            picture = f"<p><em>The overlay needs OpenCV and plotly ({html.escape(str(error))}).</em></p>"
        on = "the clip's frames" if clip is not None else "neutral grey (no clip given: trace.show(clip))"
        caption = f"{self.tokens_per_layer[layer]} tokens at layer {layer}, style {style!r} on {on}"
        if style in _STYLE_CAPTIONS:
            caption += f": {_STYLE_CAPTIONS[style]}"
        return (
            '<div class="token-trace"><div style="display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start">'
            f"{self._html_table()}{_tokens_svg(self, layer)}</div>"
            f"<p>{html.escape(caption)}.</p>{picture}</div>"
        )

    def _repr_html_(self) -> str:
        """Jupyter's inline view: html() at the last layer, on grey."""
        return self.html()

    def show(
        self, clip: Any = None, layer: int | None = None, style: str | None = None, value: str | None = None
    ) -> None:
        """Display html(clip, layer, style, value) in a notebook (IPython); without IPython, say how to view it."""
        page = self.html(clip, layer, style, value)
        try:
            from IPython.display import HTML, display
        except ImportError:
            print(
                "IPython is not installed, so the trace cannot be shown inline. Write it to a file and open that in "
                "a browser: Path('trace.html').write_text(trace.html(clip, layer))"
            )
            return
        display(HTML(page))

    def overlay_png(
        self, clip: Any = None, layer: int | None = None, style: str | None = None, value: str | None = None
    ) -> bytes:
        """A PNG of the overlay at `layer` (default: the last) on one frame per tubelet, tiled 8 to a row
        (explorer.overlays.draw_clip). style (overlays.STYLES) by default: "boxes" for a trace of boxes, "clusters"
        where some token stands for several places of one frame at the layer (a merge), else "kept". `clip` as
        for html(); `value` names the per-token value of the "value", "heat" and "boxes" styles."""
        import cv2

        from .overlays import draw_clip

        layer, style = self._overlay_choice(layer, style)
        shape = (self.grid[0] * self.cell[0], self.grid[1] * self.cell[1], self.grid[2] * self.cell[2], 3)
        if clip is None:
            frames = np.full(shape, NEUTRAL_GREY, dtype=np.uint8)
        else:
            frames = np.asarray(getattr(clip, "frames", clip))
            if frames.shape != shape or frames.dtype != np.uint8:
                raise ValueError(f"the clip's frames are {frames.dtype} {frames.shape}, the trace covers {shape} uint8")
        image = draw_clip(frames, self, layer, style, value, columns=min(8, self.grid[0]))
        ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError("OpenCV could not encode the overlay as a PNG")
        return png.tobytes()

    def _overlay_choice(self, layer: int | None, style: str | None) -> tuple[int, str]:
        """The layer (default: the last) and overlay style (default: see overlay_png) to draw."""
        layer = self.layers if layer is None else int(layer)
        if not 0 <= layer <= self.layers:
            raise ValueError(f"layer must be between 0 and {self.layers}, got {layer}")
        if style is not None:
            return layer, style
        if self.boxes is not None:
            return layer, "boxes"
        owner = self.owner[layer]
        merged = any(np.bincount(frame[frame >= 0]).max(initial=0) > 1 for frame in owner)
        return layer, "clusters" if merged else "kept"

    def _html_table(self) -> str:
        params = self.meta.get("params") or {}
        budget = self.meta.get("budget") or {}
        fitted = isinstance(budget, dict) and {"fraction", "knob", "value"} <= set(budget)
        # a fitted budget's parameter reads 0 once the knob holds it: the budget row says it instead
        setting = ", ".join(f"{k}={v}" for k, v in params.items() if not (fitted and k == "budget"))
        last, first = self.tokens_per_layer[-1], self.tokens_per_layer[0]
        rows = [
            ("reducer", f"{self.meta.get('reducer', '?')}" + (f" ({setting})" if setting else "")),
            ("model", self.meta.get("model") or "?"),
            ("clip", self.meta.get("source") or "?"),
            ("grid", f"{' x '.join(map(str, self.grid))} cells of {' x '.join(map(str, self.cell))} (frames, px, px)"),
            ("tokens", f"{self.input_tokens} cells; {first} at the input, {last} after the last block"),
            (
                "FLOPs",
                f"{self.flops.sum() / 1e9:.3g} G, {100 * self.flops.sum() / max(self.dense_flops.sum(), 1):.0f}% "
                "of the dense model",
            ),
            ("forward", f"{1000 * self.seconds.get('forward', float('nan')):.1f} ms on {self.meta.get('device', '?')}"),
        ]
        if fitted:
            rows.insert(
                1, ("budget", f"{budget['fraction']} of the tokens: {budget['knob']} fitted to {budget['value']}")
            )
        top = "; ".join(f"{p['label']} {100 * p['probability']:.1f}%" for p in self.top_k(5))
        if top:
            rows.append(("top 5", top))
        rows += [("note", note) for note in self.meta.get("notes") or []]
        body = "".join(
            f'<tr><th style="text-align:left;padding-right:12px">{html.escape(k)}</th>'
            f'<td style="text-align:left">{html.escape(str(v))}</td></tr>'
            for k, v in rows
        )
        return f"<table>{body}</table>"


_STYLE_CAPTIONS = {
    "kept": "outlined cells are their token's own place, dimmed cells are covered by a token from elsewhere "
    "(an earlier frame's, for a run), dark grey cells have no token",
    "clusters": "each token's cells are outlined where the token changes, in a colour of its own; "
    "faded cells have no token",
    "boxes": "the outline of every box-shaped token covering the frame",
}


def _tokens_svg(trace: Trace, layer: int, width: int = 420, height: int = 180) -> str:
    """Tokens per layer as a step line with a dot per layer in an inline SVG; the dense count dashed, `layer` dotted."""
    left, right, top, bottom = 48, 12, 24, 30
    most = max(trace.input_tokens, max(trace.tokens_per_layer), 1)

    def x(at: float) -> str:
        return f"{left + (width - left - right) * at / max(trace.layers, 1):.1f}"

    def y(tokens: float) -> str:
        return f"{top + (height - top - bottom) * (1 - tokens / most):.1f}"

    counts = trace.tokens_per_layer
    steps = " ".join(f"{x(at)},{y(counts[at - 1])} {x(at)},{y(n)}" for at, n in enumerate(counts) if at)
    font = 'font-family="sans-serif" font-size="11"'
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        'aria-label="tokens per layer">',
        f'<text x="{left}" y="14" {font} font-weight="bold">Tokens per layer</text>',
        f'<line x1="{left}" y1="{y(0)}" x2="{width - right}" y2="{y(0)}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{y(0)}" stroke="#888"/>',
        f'<line x1="{left}" y1="{y(trace.input_tokens)}" x2="{width - right}" y2="{y(trace.input_tokens)}" '
        'stroke="#aaa" stroke-dasharray="4 3"/>',
        f'<line x1="{x(layer)}" y1="{top}" x2="{x(layer)}" y2="{y(0)}" stroke="#aaa" stroke-dasharray="2 2"/>',
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{x(0)},{y(counts[0])} {steps}"/>',
        *(f'<circle cx="{x(at)}" cy="{y(n)}" r="3" fill="#1f77b4"/>' for at, n in enumerate(counts)),
        f'<text x="{left - 4}" y="{float(y(most)) + 4:.1f}" {font} text-anchor="end">{most}</text>',
        f'<text x="{left - 4}" y="{float(y(0)) + 4:.1f}" {font} text-anchor="end">0</text>',
        f'<text x="{x(0)}" y="{height - 14}" {font} text-anchor="middle">0</text>',
        f'<text x="{x(trace.layers)}" y="{height - 14}" {font} text-anchor="middle">{trace.layers}</text>',
        f'<text x="{(left + width - right) / 2:.1f}" y="{height - 2}" {font} text-anchor="middle">'
        "layer (0 = input, l = after block l; dashed: dense)</text></svg>",
    ]
    return "".join(parts)


def _read_summary(path: Path) -> dict[str, Any]:
    """summary.json as a dict, its schema version checked; TraceFormatError otherwise."""
    if not path.is_file():
        raise TraceFormatError(
            f"{path.parent} does not hold a trace: {path.name} is missing "
            "(Trace.save writes summary.json and trace.npz)"
        )
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TraceFormatError(f"{path} is not readable JSON: {error}") from None
    if not isinstance(summary, dict):
        raise TraceFormatError(f"{path} holds a JSON {type(summary).__name__}, not an object")
    _check_version(summary.get("schema_version"), path)
    for key, kind in (("grid", list), ("cell", list), ("seconds", dict)):
        if not isinstance(summary.get(key), kind):
            found = "nothing" if key not in summary else f"a {type(summary[key]).__name__}"
            raise TraceFormatError(
                f"{path} needs {key!r} as a JSON {kind.__name__ if kind is list else 'object'}, found {found}"
            )
    if not isinstance(summary.get("meta") or {}, dict) or not isinstance(summary.get("labels") or [], list):
        raise TraceFormatError(f"{path}: 'meta' must be an object and 'labels' a list, where present")
    return summary


def _check_version(version: Any, path: Path) -> None:
    readable = ", ".join(map(str, READABLE_VERSIONS))
    reads = f"this code reads schema version {readable}"
    if version is None:
        raise TraceFormatError(
            f"{path} has no schema_version: it was written before trace files were versioned, or not by Trace.save; "
            f"{reads}. Analyze the clip again to write a current trace"
        )
    if isinstance(version, bool) or not isinstance(version, int):
        raise TraceFormatError(f"{path} has schema_version {version!r}, not a whole number; {reads}")
    if version > max(READABLE_VERSIONS):
        raise TraceFormatError(
            f"{path} has schema_version {version}, newer than this code reads; {reads}. Update the explorer"
        )
    if version not in READABLE_VERSIONS:
        raise TraceFormatError(
            f"{path} has schema_version {version}, older than this code reads; {reads}. "
            "Analyze the clip again to write a current trace"
        )


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of trace.npz, the required ones checked; TraceFormatError otherwise."""
    if not path.is_file():
        raise TraceFormatError(
            f"{path.parent} does not hold a whole trace: {path.name} is missing (Trace.save writes summary.json and "
            "trace.npz)"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, AttributeError) as error:
        raise TraceFormatError(f"{path} is not a readable .npz archive: {error}") from None
    missing = [key for key in REQUIRED_ARRAYS if key not in arrays]
    if missing:
        raise TraceFormatError(f"{path} lacks the array(s) {', '.join(missing)}")
    return arrays


def _ints(values: list[Any], name: str) -> tuple[int, int, int]:
    if len(values) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be three whole numbers, got {values!r}")
    return values[0], values[1], values[2]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
