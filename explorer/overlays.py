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
               value: str | None = None, dim: float = 0.35) -> np.ndarray:
    """One RGB frame with the tokens of its tubelet at `layer` drawn over it.

    kept  — cells that are their token's own are outlined; cells covered by a token
            from elsewhere (an RLT run) are dimmed; cells with no token are grey.
    value — as kept, with own cells tinted by the token's `value` (legend from value_legend).
    plain — the frame as the model saw it.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}")
    image = frame.astype(np.float32)
    if style == "plain":
        return frame.copy()
    _, ph, pw = trace.cell
    owner = trace.owner[layer, tubelet_index]
    home = trace.home(layer)[tubelet_index]
    covered = (owner >= 0) & ~home
    none = owner < 0
    cell_px = np.ones((ph, pw, 1), dtype=np.float32)
    image *= np.where(np.kron(covered, cell_px[..., 0])[..., None] > 0, dim, 1.0)
    none_px = np.kron(none, cell_px[..., 0])[..., None] > 0
    image = np.where(none_px, 0.3 * image + 0.7 * NO_TOKEN_GREY, image)
    if style == "value" and value is not None:
        cell_value = np.nan_to_num(trace.cell_values(value, layer)[tubelet_index]).astype(int)
        colours = palette(trace.grid[0]).astype(np.float32)
        tint = colours[np.clip(cell_value - 1, 0, len(colours) - 1)]
        tint_px = np.kron(tint, np.ones((ph, pw, 1)))
        home_px = np.kron(home, cell_px[..., 0])[..., None] > 0
        image = np.where(home_px, 0.45 * image + 0.55 * tint_px, image)
    out = np.clip(image, 0, 255).astype(np.uint8)
    _outline_cells(out, home, ph, pw)
    return out


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
    for f in picks:
        tile = draw_frame(frames[f], trace, layer, f // t_frames, style, value)
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
