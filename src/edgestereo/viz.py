"""Colour maps and the left | right | disparity | depth panel, as uint8 RGB arrays.

Near is warm in both maps: large disparity and small depth are red, far is blue (TURBO colour
map), as in vendor stereo samples. Invalid pixels are black.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["colorize_depth", "colorize_disparity", "make_panel", "value_range", "write_panel"]

_COLORMAP = cv2.COLORMAP_TURBO


def value_range(values: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> tuple[float, float]:
    """A robust (min, max) of the finite values: the given percentiles; (0, 1) when none are finite."""
    finite = np.asarray(values)[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [low_pct, high_pct])
    return float(low), float(max(high, low + 1e-6))


def _colorize(values: np.ndarray, vmin: float, vmax: float, *, reverse: bool) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    valid = np.isfinite(values)
    scaled = np.clip((np.where(valid, values, vmin) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    if reverse:
        scaled = 1.0 - scaled
    bgr = cv2.applyColorMap((scaled * 255.0 + 0.5).astype(np.uint8), _COLORMAP)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def colorize_disparity(
    disparity: np.ndarray, vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """disparity: (H,W) pixels → (H,W,3) uint8 RGB; large (near) is red. Range automatic unless given.

    Pixels that are not finite or ≤ 0 are black.
    """
    disparity = np.where(np.asarray(disparity) > 0, disparity, np.nan)
    auto = value_range(disparity)
    return _colorize(disparity, auto[0] if vmin is None else vmin, auto[1] if vmax is None else vmax, reverse=False)


def colorize_depth(depth: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """depth: (H,W) → (H,W,3) uint8 RGB; near is red, far is blue, invalid (NaN, ≤ 0) black."""
    depth = np.where(np.asarray(depth) > 0, depth, np.nan)
    auto = value_range(depth)
    return _colorize(depth, auto[0] if vmin is None else vmin, auto[1] if vmax is None else vmax, reverse=True)


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    thickness = max(1, round(scale * 2))
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def _colorbar(height: int, vmin: float, vmax: float, *, reverse: bool, unit: str, scale: float) -> np.ndarray:
    """A vertical colour bar (top = vmax) with its end values printed beside it."""
    width = max(60, int(120 * scale))
    bar = np.zeros((height, width, 3), np.uint8)
    ramp = np.linspace(vmax, vmin, height, dtype=np.float32)[:, None].repeat(max(8, width // 5), axis=1)
    bar[:, : ramp.shape[1]] = _colorize(ramp, vmin, vmax, reverse=reverse)
    x = ramp.shape[1] + 4
    _text(bar, f"{vmax:.4g}", (x, int(20 * scale) + 4), scale * 0.8)
    _text(bar, f"{vmin:.4g}", (x, height - 6), scale * 0.8)
    if unit:
        _text(bar, unit, (x, height // 2), scale * 0.8)
    return bar


def make_panel(
    left: np.ndarray,
    right: np.ndarray,
    disparity: np.ndarray,
    depth: np.ndarray | None = None,
    *,
    title: str = "",
    disparity_range: tuple[float, float] | None = None,
    depth_range: tuple[float, float] | None = None,
    depth_unit: str = "",
) -> np.ndarray:
    """The four-panel picture left | right | disparity | depth, with a title and a colour bar per map.

    left, right: (H,W,3) uint8 RGB; disparity: (H,W) pixels; depth: (H,W) or None (the tile then
    says that depth needs a calibration). Returns (H', W', 3) uint8 RGB.
    """
    h, w = disparity.shape
    scale = max(0.4, h / 600.0)
    d_range = disparity_range or value_range(np.where(disparity > 0, disparity, np.nan))
    tiles = [left, right, colorize_disparity(disparity, *d_range)]
    tiles.append(_colorbar(h, *d_range, reverse=False, unit="px", scale=scale))
    if depth is not None:
        z_range = depth_range or value_range(np.where(depth > 0, depth, np.nan))
        tiles.append(colorize_depth(depth, *z_range))
        tiles.append(_colorbar(h, *z_range, reverse=True, unit=depth_unit, scale=scale))
    else:
        blank = np.full((h, w, 3), 40, np.uint8)
        _text(blank, "depth: needs calibration", (10, h // 2), scale)
        tiles.append(blank)
    body = np.concatenate([np.ascontiguousarray(t[:, :, :3]) for t in tiles], axis=1)
    header_h = int(36 * scale) + 8
    header = np.zeros((header_h, body.shape[1], 3), np.uint8)
    labels = ["left", "right", "disparity", "", "depth"]
    x = 0
    for label, tile in zip(labels, tiles):
        if label:
            _text(header, label, (x + 8, header_h - 10), scale * 0.9)
        x += tile.shape[1]
    if title:
        size = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, scale * 0.9, 1)[0][0]
        _text(header, title, (max(8, body.shape[1] - size - 16), header_h - 10), scale * 0.9)
    return np.concatenate([header, body], axis=0)


def write_panel(path: str | Path, panel: np.ndarray) -> None:
    """Write a panel (or any RGB uint8 picture) as PNG/JPEG, atomically."""
    from edgestereo.data.io import write_image

    write_image(path, panel)
