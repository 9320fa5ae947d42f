"""Drawing a trace on the frames (numpy and OpenCV; no Streamlit).

Every view reads the trace only: which token stands for each cell at a layer, whether
the cell is that token's own (where it was embedded), and per-token values.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .trace import Trace

STYLES = ("kept", "value", "plain")
NO_TOKEN_GREY = np.array([40, 40, 40], dtype=np.float32)
DIM = 0.35  # brightness left to a cell covered by a token from elsewhere


@dataclass(frozen=True)
class Legend:
    """What the colours of a value overlay mean: (value, RGB) pairs."""

    title: str
    entries: list[tuple[int, tuple[int, int, int]]]


def palette(count: int) -> np.ndarray:
    """(count, 3) uint8 RGB colours from viridis, low values dark blue, high values yellow."""
    ramp = np.linspace(40, 255, max(count, 1)).astype(np.uint8)[:, None]
    bgr = cv2.applyColorMap(ramp, cv2.COLORMAP_VIRIDIS)[:, 0]
    return bgr[:, ::-1].copy()


def value_legend(trace: Trace, name: str) -> Legend:
    """Colours for an integer per-token value from 1 to its possible maximum (run lengths: T')."""
    top = trace.grid[0]
    colours = palette(top)
    return Legend(title=name.replace("_", " "), entries=[(v, tuple(int(c) for c in colours[v - 1])) for v in range(1, top + 1)])


def draw_frame(frame: np.ndarray, trace: Trace, layer: int, tubelet_index: int, style: str = "kept",
               value: str | None = None, dim: float = DIM) -> np.ndarray:
    """One RGB frame with the tokens of its tubelet at `layer` drawn over it.

    kept  — cells that are their token's own are outlined; cells covered by a token
            from elsewhere (an RLT run) are dimmed; cells with no token are grey.
    value — as kept, with own cells tinted by the token's `value` (legend from value_legend).
    plain — the frame as the model saw it.
    """
    maps = _LayerMaps(trace, layer, style, value)
    return maps.draw(frame, tubelet_index, dim)


class _LayerMaps:
    """What a layer's overlay needs per cell, computed once for all the frames drawn from it."""

    def __init__(self, trace: Trace, layer: int, style: str, value: str | None):
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}")
        self.style, self.cell = style, trace.cell[1:]
        self.owner = trace.owner[layer]
        self.home = trace.home(layer)
        self.tint = None
        if style == "value" and value is not None:
            cell_value = np.nan_to_num(trace.cell_values(value, layer)).astype(int)
            colours = palette(trace.grid[0]).astype(np.float64)
            self.tint = colours[np.clip(cell_value - 1, 0, len(colours) - 1)]

    def draw(self, frame: np.ndarray, t: int, dim: float) -> np.ndarray:
        if self.style == "plain":
            return frame.copy()
        home, owner = self.home[t], self.owner[t]
        image = frame.astype(np.float32)
        image *= np.where(self._pixels((owner >= 0) & ~home), dim, 1.0)
        image = np.where(self._pixels(owner < 0), 0.3 * image + 0.7 * NO_TOKEN_GREY, image)
        if self.tint is not None:
            image = np.where(self._pixels(home), 0.45 * image + 0.55 * self._pixels(self.tint[t]), image)
        out = np.clip(image, 0, 255).astype(np.uint8)
        _outline_cells(out, home, *self.cell)
        return out

    def _pixels(self, per_cell: np.ndarray) -> np.ndarray:
        """(H', W'[, C]) per-cell values -> (H, W, 1 or C) per-pixel values."""
        ph, pw = self.cell
        pixels = per_cell.repeat(ph, axis=0).repeat(pw, axis=1)
        return pixels if pixels.ndim == 3 else pixels[..., None]


def _outline_cells(image: np.ndarray, cells: np.ndarray, ph: int, pw: int) -> None:
    for h, w in zip(*np.nonzero(cells)):
        cv2.rectangle(image, (int(w * pw), int(h * ph)), (int((w + 1) * pw - 1), int((h + 1) * ph - 1)),
                      (255, 255, 255), 1)


def draw_clip(frames: np.ndarray, trace: Trace, layer: int, style: str = "kept", value: str | None = None,
              every_frame: bool = False, columns: int = 8, gap: int = 4) -> np.ndarray:
    """All tubelets (one frame each, its last, or every frame) tiled in a grid with labels."""
    t_frames = trace.cell[0]
    picks = range(frames.shape[0]) if every_frame else range(t_frames - 1, frames.shape[0], t_frames)
    tiles = []
    maps = _LayerMaps(trace, layer, style, value)
    for f in picks:
        tile = maps.draw(frames[f], f // t_frames, DIM)
        label = f"frame {f}  t'={f // t_frames}"
        cv2.putText(tile, label, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(tile, label, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    return tile_images(tiles, columns, gap)


def tile_images(tiles: list[np.ndarray], columns: int, gap: int = 4) -> np.ndarray:
    rows = -(-len(tiles) // columns)
    h, w = tiles[0].shape[:2]
    sheet = np.full((rows * h + (rows - 1) * gap, min(columns, len(tiles)) * (w + gap) - gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = tile
    return sheet
