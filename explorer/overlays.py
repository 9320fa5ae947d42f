"""Drawing a trace on the frames (numpy and OpenCV; no Streamlit).

Every view reads the trace only: which token stands for each cell at a layer, whether
the cell is that token's own (where it was embedded), and per-token values.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .trace import Trace
from .tube_charts import tube_colours
from .values import token_sizes

STYLES = ("kept", "value", "plain", "clusters", "heat", "boxes")
NO_TOKEN_GREY = np.array([40, 40, 40], dtype=np.float32)
DIM = 0.35  # brightness left to a cell covered by a token from elsewhere
FOCUS_DIM = 0.4  # brightness left to cells outside the focused token
FOCUS_COLOUR = (255, 230, 0)
FOCUS_WIDTH = 3  # px of the focused token's outline
HEAT_ALPHA = 0.6  # share of the heat colour over the frame
GOLDEN = 0.6180339887498949
# The layer_info key (models/mvit.py FIELD_CENTRE; the overlay stays free of torch) giving where each token's
# receptive field is centred, in frames and px from its box's first frame and pixel: Boxes centre the boxes there.
FIELD_CENTRE = "field centre"

Cell = tuple[int, int, int]  # (t', h, w)


@dataclass(frozen=True)
class Legend:
    """What the colours of a value overlay mean: (value, RGB) pairs."""

    title: str
    entries: list[tuple[int, tuple[int, int, int]]]


@dataclass(frozen=True)
class HeatLegend:
    """What the colours of a heat overlay mean: `ramp` runs from vmin (first) to vmax (last)."""

    name: str
    vmin: float
    vmax: float
    ramp: np.ndarray  # (256, 3) uint8 RGB


def palette(count: int) -> np.ndarray:
    """(count, 3) uint8 RGB colours from viridis, low values dark blue, high values yellow."""
    ramp = np.linspace(40, 255, max(count, 1)).astype(np.uint8)[:, None]
    bgr = cv2.applyColorMap(ramp, cv2.COLORMAP_VIRIDIS)[:, 0]
    return bgr[:, ::-1].copy()


def heat_ramp() -> np.ndarray:
    """(256, 3) uint8 RGB: inferno, from black (low) through red to pale yellow (high)."""
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_INFERNO)[:, 0]
    return bgr[:, ::-1].copy()


def identity_colours(keys: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB, one bright colour per integer key; hues follow the golden ratio so neighbours differ."""
    hue = ((np.asarray(keys, dtype=np.float64) * GOLDEN) % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hue, np.full_like(hue, 210), np.full_like(hue, 255)], axis=-1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def value_legend(trace: Trace, name: str) -> Legend:
    """Colours for an integer per-token value from 1 to its possible maximum (run lengths: T')."""
    top = trace.grid[0]
    colours = palette(top)
    return Legend(
        title=name.replace("_", " "), entries=[(v, tuple(int(c) for c in colours[v - 1])) for v in range(1, top + 1)]
    )


def heat_legend(
    trace: Trace, name: str, layer: int, vmin: float | None = None, vmax: float | None = None
) -> HeatLegend:
    """The colour range of a heat value at a layer; a bound not given is robust (2nd / 98th percentile of
    the finite cell values), so one outlier does not wash the rest out."""
    values = trace.cell_values(name, layer)
    finite = values[np.isfinite(values)]
    low, high = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
    low, high = float(low if vmin is None else vmin), float(high if vmax is None else vmax)
    if high <= low:
        low, high = low - 0.5, low + 0.5
    return HeatLegend(name=name, vmin=low, vmax=high, ramp=heat_ramp())


def draw_frame(
    frame: np.ndarray,
    trace: Trace,
    layer: int,
    tubelet_index: int,
    style: str = "kept",
    value: str | None = None,
    dim: float = DIM,
    *,
    frames: np.ndarray | None = None,
    focus: Cell | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """One RGB frame with the tokens of its tubelet at `layer` drawn over it.

    kept     — cells that are their token's own are outlined; cells covered by a token
               from elsewhere (an RLT run) are dimmed; cells with no token are grey.
    value    — as kept, with own cells tinted by the token's `value` (legend from value_legend).
    plain    — the frame as the model saw it.
    clusters — each token's cells filled with the token's mean colour over all the frames
               it covers (`frames`: the whole clip) and outlined where the token changes,
               in a colour of its own; cells with no token faded grey.
    heat     — the token's float `value` as a heatmap (range from heat_legend); NaN grey.
    boxes    — for tokens that are boxes (sparse tubes, pooled queries): the outline of every
               box covering this frame, coloured by the token's `value` group (e.g. its tube)
               or, without one, by token.
    focus    — a cell (t', h, w): its token's cells stay bright and are outlined, the rest dimmed.
    """
    maps = _LayerMaps(trace, layer, style, value, frames=frames, focus=focus, vmin=vmin, vmax=vmax)
    return maps.draw(frame, (tubelet_index + 1) * trace.cell[0] - 1, dim)  # the tubelet's last frame


class _LayerMaps:
    """What a layer's overlay needs per cell, computed once for all the frames drawn from it."""

    def __init__(
        self,
        trace: Trace,
        layer: int,
        style: str,
        value: str | None,
        *,
        frames: np.ndarray | None = None,
        focus: Cell | None = None,
        vmin: float | None = None,
        vmax: float | None = None,
    ):
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}")
        self.style, self.cell, self.tubelet = style, trace.cell[1:], trace.cell[0]
        self.owner = trace.owner[layer]
        self.home = trace.home(layer)
        self.tint = None
        if style == "value" and value is not None:
            cell_value = np.nan_to_num(trace.cell_values(value, layer)).astype(int)
            colours = palette(trace.grid[0]).astype(np.float64)
            self.tint = colours[np.clip(cell_value - 1, 0, len(colours) - 1)]
        if style == "clusters":
            if frames is None:
                raise ValueError("the clusters style needs the clip's frames for each token's mean colour")
            mean = np.rint(_token_mean_colours(frames, trace, layer)).astype(np.uint8)
            self.fill = _per_cell(mean, self.owner)
            # keyed by the token's home cell, not its index, so a token keeps its colour from layer to layer
            self.identity = _per_cell(identity_colours(trace.values["cell"][layer]), self.owner)
            self.edges = _boundaries(self.owner) & (self.owner >= 0)[..., None]
        if style == "heat":
            if value is None:
                raise ValueError("the heat style needs a value to draw")
            self.heat, self.no_heat = _heat_colours(trace, value, layer, vmin, vmax)
        if style == "boxes":
            if trace.boxes is None:
                raise ValueError("the boxes style needs a trace whose tokens are boxes")
            self.boxes = trace.boxes[layer]
            layer_info = trace.meta.get("layer_info")
            centre = layer_info[layer].get(FIELD_CENTRE) if layer_info else None
            if centre is not None:
                self.boxes = centred_boxes(self.boxes, centre)
            if value is None:
                self.box_colours = identity_colours(np.arange(len(self.boxes)))
            else:  # a group per token (e.g. its tube): the colours of the 3-D view
                groups = trace.values[value][layer].astype(int)
                self.box_colours = tube_colours(int(groups.max(initial=0)) + 1)[groups]
        self.focus_cell = None if focus is None else _cell(focus)
        self.focus = None
        if focus is not None:
            self.focus = _focus_region(self.owner, self.focus_cell)
            self.focus_edges = _boundaries(self.focus.astype(np.int32)) & self.focus[..., None]

    def draw(self, frame: np.ndarray, frame_index: int, dim: float) -> np.ndarray:
        t = frame_index // self.tubelet
        if self.style == "plain":
            out = frame.copy()
        elif self.style == "boxes":
            out = self._boxes(frame, frame_index)
        elif self.style == "clusters":
            out = self._clusters(frame, t)
        elif self.style == "heat":
            out = self._heat(frame, t)
        else:
            out = self._kept(frame, t, dim)
        if self.focus is not None:
            out = self._highlight(out, t)
        return out

    def _kept(self, frame: np.ndarray, t: int, dim: float) -> np.ndarray:
        home, owner = self.home[t], self.owner[t]
        image = frame.astype(np.float32)
        image *= np.where(self._pixels((owner >= 0) & ~home), dim, 1.0)
        image = np.where(self._pixels(owner < 0), 0.3 * image + 0.7 * NO_TOKEN_GREY, image)
        if self.tint is not None:
            image = np.where(self._pixels(home), 0.45 * image + 0.55 * self._pixels(self.tint[t]), image)
        out = np.clip(image, 0, 255).astype(np.uint8)
        _outline_cells(out, home, *self.cell)
        return out

    def _clusters(self, frame: np.ndarray, t: int) -> np.ndarray:
        out = _upscale(self.fill[t], self.cell)
        _fade(out, frame, self._mask(self.owner[t] < 0))
        edge = _edge_pixels(self.edges[t], *self.cell, width=1)
        out[edge] = _upscale(self.identity[t], self.cell)[edge]
        return out

    def _heat(self, frame: np.ndarray, t: int) -> np.ndarray:
        out = cv2.addWeighted(frame, 1 - HEAT_ALPHA, _upscale(self.heat[t], self.cell), HEAT_ALPHA, 0)
        _fade(out, frame, self._mask(self.no_heat[t]))
        return out

    def _boxes(self, frame: np.ndarray, f: int) -> np.ndarray:
        out = cv2.convertScaleAbs(frame, alpha=0.7)
        boxes = self.boxes
        here = (boxes[:, 0] <= f) & (f < boxes[:, 1])
        for (_, _, y0, y1, x0, x1), colour in zip(boxes[here], self.box_colours[here]):
            cv2.rectangle(out, (int(x0), int(y0)), (int(x1) - 1, int(y1) - 1), tuple(int(c) for c in colour), 1)
        return out

    def _highlight(self, image: np.ndarray, t: int) -> np.ndarray:
        out = cv2.convertScaleAbs(image, alpha=FOCUS_DIM)
        inside = self._mask(self.focus[t])
        out[inside] = image[inside]
        out[_edge_pixels(self.focus_edges[t], *self.cell, width=FOCUS_WIDTH)] = FOCUS_COLOUR
        ft, fh, fw = self.focus_cell
        if ft == t:  # a dot on the picked cell itself
            ph, pw = self.cell
            centre = (int(fw * pw + pw // 2), int(fh * ph + ph // 2))
            cv2.circle(out, centre, max(2, min(ph, pw) // 6), FOCUS_COLOUR, -1)
        return out

    def _mask(self, per_cell: np.ndarray) -> np.ndarray:
        """(H', W') bool per cell -> (H, W) bool per pixel."""
        return self._pixels(per_cell)[..., 0]

    def _pixels(self, per_cell: np.ndarray) -> np.ndarray:
        """(H', W'[, C]) per-cell values -> (H, W, 1 or C) per-pixel values."""
        ph, pw = self.cell
        pixels = per_cell.repeat(ph, axis=0).repeat(pw, axis=1)
        return pixels if pixels.ndim == 3 else pixels[..., None]


def centred_boxes(boxes: np.ndarray, centre: Iterable[float]) -> np.ndarray:
    """Boxes (N, 6: t0, t1, y0, y1, x0, x1) of a stride tiling, moved to be centred on their tokens' receptive
    fields, whose centres lie `centre` (t, y, x) frames and pixels from each box's first frame and pixel.

    In space a box keeps its width and is centred on the field's centre pixel: its outline runs through the
    pixels half a stride either side (y1, x1 one past them, so a box spans stride + 1 px and shares its outline
    with its neighbours', midway between their centres; a centre between two pixels rounds half up). In time
    a box stays on its own frames: a two-frame stride has no whole frames centred on one frame.
    """
    _, dy, dx = centre
    out = boxes.copy()
    for axis, offset in ((1, dy), (2, dx)):
        start, end = boxes[:, 2 * axis], boxes[:, 2 * axis + 1]
        middle, half = start + offset, (end - start) / 2
        out[:, 2 * axis] = np.floor(middle - half + 0.5)
        out[:, 2 * axis + 1] = np.floor(middle + half + 0.5) + 1
    return out


def _upscale(per_cell: np.ndarray, cell: tuple[int, int]) -> np.ndarray:
    """(H', W', 3) uint8 per-cell colours -> (H, W, 3) pixels, each cell a flat block."""
    ph, pw = cell
    return cv2.resize(per_cell, (per_cell.shape[1] * pw, per_cell.shape[0] * ph), interpolation=cv2.INTER_NEAREST)


def _fade(out: np.ndarray, frame: np.ndarray, mask: np.ndarray) -> None:
    """Where `mask` (no token, or no value), draw the frame blended strongly to grey."""
    if mask.any():
        out[mask] = (0.3 * frame[mask] + 0.7 * NO_TOKEN_GREY).astype(np.uint8)


def _cell(cell: Cell) -> Cell:
    """A cell as a tuple of ints, so it indexes one element (a list would index rows)."""
    t, h, w = (int(i) for i in cell)
    return t, h, w


def _per_cell(per_token: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """(T', H', W', ...) each cell's token's entry; zeros where no token stands."""
    out = np.zeros(owner.shape + per_token.shape[1:], dtype=per_token.dtype)
    has = owner >= 0
    out[has] = per_token[owner[has]]
    return out


def _token_mean_colours(frames: np.ndarray, trace: Trace, layer: int) -> np.ndarray:
    """(tokens, 3) float32: the mean RGB of all the pixels of all the cells each token stands for."""
    tf, ph, pw = trace.cell
    tp, hp, wp = trace.grid
    if frames.shape[:3] != (tp * tf, hp * ph, wp * pw):
        raise ValueError(f"frames {frames.shape[:3]} do not match the trace's grid {trace.grid} of cells {trace.cell}")
    # INTER_AREA at an integer factor is the exact mean of each cell's pixels.
    cell_means = np.stack([cv2.resize(f.astype(np.float32), (wp, hp), interpolation=cv2.INTER_AREA) for f in frames])
    cell_means = cell_means.reshape(tp, tf, hp, wp, 3).mean(axis=1).reshape(-1, 3)
    owner = trace.owner[layer].reshape(-1)
    has = owner >= 0
    sums = np.stack([np.bincount(owner[has], cell_means[has, c], trace.tokens_per_layer[layer]) for c in range(3)], 1)
    return (sums / np.maximum(token_sizes(trace, layer), 1)[:, None]).astype(np.float32)


def _heat_colours(
    trace: Trace, name: str, layer: int, vmin: float | None, vmax: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: the heat colour (T', H', W', 3) uint8 and where there is no value (T', H', W') bool."""
    legend = heat_legend(trace, name, layer, vmin, vmax)
    values = trace.cell_values(name, layer)
    missing = ~np.isfinite(values)
    scaled = (np.where(missing, legend.vmin, values) - legend.vmin) / (legend.vmax - legend.vmin)
    index = np.clip(np.rint(scaled * (len(legend.ramp) - 1)), 0, len(legend.ramp) - 1).astype(int)
    return legend.ramp[index], missing


def _focus_region(owner: np.ndarray, focus: Cell) -> np.ndarray:
    """(T', H', W') bool: the cells of the focused cell's token; the cell alone where no token stands."""
    token = owner[focus]
    if token >= 0:
        return owner == token
    region = np.zeros(owner.shape, dtype=bool)
    region[focus] = True
    return region


def _boundaries(ids: np.ndarray) -> np.ndarray:
    """(T', H', W', 4) bool: the top, bottom, left, right edge of each cell borders another id or the frame's edge."""
    padded = np.pad(ids, ((0, 0), (1, 1), (1, 1)), constant_values=np.iinfo(np.int32).min)
    return np.stack(
        [
            padded[:, :-2, 1:-1] != ids,
            padded[:, 2:, 1:-1] != ids,
            padded[:, 1:-1, :-2] != ids,
            padded[:, 1:-1, 2:] != ids,
        ],
        axis=-1,
    )


def _edge_pixels(edges: np.ndarray, ph: int, pw: int, width: int) -> np.ndarray:
    """(H', W', 4) per-cell edge flags -> (H, W) bool: the pixels within `width` of a flagged edge, inside the cell."""
    rows, cols = np.arange(ph)[None, :, None, None], np.arange(pw)[None, None, None, :]
    top, bottom, left, right = (edges[:, None, :, None, i] for i in range(4))
    mask = (
        (top & (rows < width))
        | (bottom & (rows >= ph - width))
        | (left & (cols < width))
        | (right & (cols >= pw - width))
    )
    return mask.reshape(edges.shape[0] * ph, edges.shape[1] * pw)


def _outline_cells(image: np.ndarray, cells: np.ndarray, ph: int, pw: int) -> None:
    for h, w in zip(*np.nonzero(cells)):
        cv2.rectangle(
            image, (int(w * pw), int(h * ph)), (int((w + 1) * pw - 1), int((h + 1) * ph - 1)), (255, 255, 255), 1
        )


def cluster_info(trace: Trace, layer: int, cell: Cell) -> dict[str, Any]:
    """What the token standing for `cell` at `layer` is: its index, size in cells, cells per time slot t',
    its home cell (t', h, w), its per-token values; and the cell's fate over the whole trace: the first
    layer (>= 1) where its token stands for more cells than at the layer before ("merged_at") and the
    first layer where no token stands for it ("pruned_at"), each None if never."""
    cell = _cell(cell)
    sizes = [_size_at(trace, at, cell) for at in range(trace.layers + 1)]
    merged_at = next((at for at in range(1, len(sizes)) if sizes[at] > sizes[at - 1]), None)
    pruned_at = next((at for at in range(len(sizes)) if trace.owner[at][cell] < 0), None)
    token = int(trace.owner[layer][cell])
    info: dict[str, Any] = {
        "token": None,
        "size": 0,
        "per_slot": [0] * trace.grid[0],
        "home": None,
        "values": {},
        "merged_at": merged_at,
        "pruned_at": pruned_at,
    }
    if token < 0:
        return info
    mine = trace.owner[layer] == token
    home = np.unravel_index(int(trace.values["cell"][layer][token]), trace.grid)
    values = {name: per_layer[layer][token].item() for name, per_layer in trace.values.items() if name != "cell"}
    return info | {
        "token": token,
        "size": int(mine.sum()),
        "per_slot": mine.sum(axis=(1, 2)).tolist(),
        "home": tuple(int(i) for i in home),
        "values": values,
    }


def _size_at(trace: Trace, layer: int, cell: Cell) -> int:
    token = trace.owner[layer][cell]
    return int((trace.owner[layer] == token).sum()) if token >= 0 else 0


def draw_clip(
    frames: np.ndarray,
    trace: Trace,
    layer: int,
    style: str = "kept",
    value: str | None = None,
    every_frame: bool = False,
    columns: int = 8,
    gap: int = 4,
    *,
    focus: Cell | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    slots: range | None = None,
) -> np.ndarray:
    """All tubelets (one frame each, its last, or every frame) tiled in a grid with labels; with `slots`,
    only the tubelets of those time slots (a page of a long clip)."""
    tubelet = trace.cell[0]
    picks = [
        f
        for f in range(frames.shape[0])
        if (every_frame or f % tubelet == tubelet - 1) and (slots is None or f // tubelet in slots)
    ]
    tiles = draw_frames(frames, trace, layer, style, value, picks=picks, focus=focus, vmin=vmin, vmax=vmax)
    return tile_images(tiles, columns, gap)


def draw_frames(
    frames: np.ndarray,
    trace: Trace,
    layer: int,
    style: str = "kept",
    value: str | None = None,
    *,
    picks: Iterable[int] | None = None,
    focus: Cell | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> list[np.ndarray]:
    """The frames `picks` (default: every frame) with the tokens of `layer` drawn over them, each labelled;
    the per-cell maps are computed once for all of them. Tiles for draw_clip, frames of an animation."""
    maps = _LayerMaps(trace, layer, style, value, frames=frames, focus=focus, vmin=vmin, vmax=vmax)
    tiles = []
    for f in range(frames.shape[0]) if picks is None else picks:
        tile = maps.draw(frames[f], f, DIM)
        _label(tile, f"frame {f}  t'={f // trace.cell[0]}")
        tiles.append(tile)
    return tiles


def _label(tile: np.ndarray, text: str) -> None:
    """White text with a dark outline, scaled to the tile so it stays small on small frames."""
    scale = 0.45 * min(1.0, tile.shape[1] / 224)
    outline, fill, rise = _text_coverage(text, scale, 3 if scale > 0.3 else 2)
    top, left = 4 + int(24 * scale) - rise, 4 - TEXT_PAD  # where the patch's corner falls on the tile
    rows = slice(max(0, -top), min(outline.shape[0], tile.shape[0] - top))
    cols = slice(max(0, -left), min(outline.shape[1], tile.shape[1] - left))
    if rows.start >= rows.stop or cols.start >= cols.stop:
        return
    spot = np.s_[top + rows.start : top + rows.stop, left + cols.start : left + cols.stop]
    patch = tile[spot].astype(np.float32)
    patch *= 1 - outline[rows, cols, None]
    patch += (255 - patch) * fill[rows, cols, None]
    tile[spot] = np.rint(patch).astype(np.uint8)


TEXT_PAD = 4  # px around a label's text: room for its outline


@functools.lru_cache(maxsize=1024)
def _text_coverage(text: str, scale: float, thickness: int) -> tuple[np.ndarray, np.ndarray, int]:
    """How much the outline and the fill of `text` cover each pixel of a patch around it (0-1, read-only), and
    the baseline's height in that patch. Kept for the process: OpenCV sets its Hershey font up again in each
    thread that first draws text (about 20 ms), and Streamlit runs each script run in a thread of its own."""
    (width, height), below = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    shape = (height + below + 2 * TEXT_PAD, width + 2 * TEXT_PAD)
    rise = TEXT_PAD + height
    masks = []
    for weight in (thickness, 1):
        canvas = np.zeros(shape, np.uint8)
        cv2.putText(canvas, text, (TEXT_PAD, rise), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, weight, cv2.LINE_AA)
        mask = canvas.astype(np.float32) / 255
        mask.flags.writeable = False
        masks.append(mask)
    return masks[0], masks[1], rise


def tile_images(tiles: list[np.ndarray], columns: int, gap: int = 4) -> np.ndarray:
    rows = -(-len(tiles) // columns)
    h, w = tiles[0].shape[:2]
    sheet = np.full((rows * h + (rows - 1) * gap, min(columns, len(tiles)) * (w + gap) - gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    return sheet
