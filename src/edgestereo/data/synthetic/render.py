"""Render a synthetic scene into a rectified stereo pair with exact left and right disparity.

Each layer is drawn into the left view straight from its canvas and into the right view by solving,
for every right pixel, which left column of the surface lands there (x_r = x_l − d(x_l, y)); a depth
test keeps the nearest surface, so occlusions are correct in both views. Colours are anti-aliased at
object edges; the disparity of a pixel is that of the surface covering at least half of it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from edgestereo.data.synthetic.scene import Layer, SyntheticConfig, build_scene, disparity_at, solve_left_column

__all__ = ["SyntheticPair", "render_pair"]


@dataclass
class SyntheticPair:
    """A rendered pair: ``left``/``right`` (H,W,3) uint8 RGB; ``disp``/``disp_right`` (H,W) float32
    pixels (exact, > 0 everywhere); ``occlusion``/``occlusion_right`` (H,W) bool: pixels of this view
    that the other camera does not see (hidden behind a nearer surface or outside its image)."""

    left: np.ndarray
    right: np.ndarray
    disp: np.ndarray
    disp_right: np.ndarray
    occlusion: np.ndarray
    occlusion_right: np.ndarray


@dataclass
class _LayerView:
    rows: slice
    cols: slice
    alpha: np.ndarray
    colour: np.ndarray
    disp: np.ndarray


def _view_of_layer(layer: Layer, right: bool, height: int, width: int) -> _LayerView | None:
    """The part of ``layer`` inside one view, with its coverage, colour and disparity there."""
    canvas_h, canvas_w = layer.alpha.shape
    y_a, y_b = max(0, layer.y0), min(height, layer.y0 + canvas_h)
    if right:
        x_a = max(0, int(np.floor(layer.x0 - layer.d_max)) - 1)
        x_b = min(width, int(np.ceil(layer.x0 + canvas_w - layer.d_min)) + 1)
    else:
        x_a, x_b = max(0, layer.x0), min(width, layer.x0 + canvas_w)
    if x_a >= x_b or y_a >= y_b:
        return None
    # canvas coordinates of the view pixels
    us = np.arange(x_a - layer.x0, x_b - layer.x0, dtype=np.float32)[None, :]
    vs = np.arange(y_a - layer.y0, y_b - layer.y0, dtype=np.float32)[:, None]
    if right:
        u_left = solve_left_column(layer.coeffs, us, vs)
        found = np.isfinite(u_left)
        disp = np.where(found, disparity_at(layer.coeffs, u_left, vs), -np.inf).astype(np.float32)
        map_x = np.where(found, u_left, np.float32(-4))
        map_y = np.repeat(vs, x_b - x_a, axis=1)
        alpha = cv2.remap(layer.alpha, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        colour = cv2.remap(layer.colour, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    else:
        rows, cols = slice(y_a - layer.y0, y_b - layer.y0), slice(x_a - layer.x0, x_b - layer.x0)
        alpha, colour = layer.alpha[rows, cols], layer.colour[rows, cols]
        disp = disparity_at(layer.coeffs, us, vs)
    colour = _view_dependent(layer, colour, us + np.float32(layer.x0), vs + np.float32(layer.y0), right)
    return _LayerView(slice(y_a, y_b), slice(x_a, x_b), alpha, colour, disp)


def _view_dependent(layer: Layer, colour: np.ndarray, xs: np.ndarray, ys: np.ndarray, right: bool) -> np.ndarray:
    """Add what does not move with the surface: a mirrored farther scene and specular spots.

    xs (1,w), ys (h,1): image pixel coordinates of the view region.
    """
    if layer.reflection is None and not layer.highlights:
        return colour
    colour = colour.copy()
    shape = colour.shape[:2]
    if (mirror := layer.reflection) is not None:
        env_x = np.repeat(xs + np.float32((mirror.disparity if right else 0.0) - mirror.x0), shape[0], axis=0)
        env_y = np.repeat(ys - np.float32(mirror.y0), shape[1], axis=1)
        env = cv2.remap(mirror.texture, env_x, env_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        colour += np.float32(mirror.strength) * (env - colour)
    for spot in layer.highlights:
        spot_x = spot.x - (spot.disparity if right else 0.0)
        scale = np.float32(-0.5 / spot.sigma**2)
        weight = np.exp((xs - np.float32(spot_x)) ** 2 * scale) * np.exp((ys - np.float32(spot.y)) ** 2 * scale)
        colour += weight[:, :, None] * spot.colour
    return colour


def _composite(layers: list[Layer], right: bool, height: int, width: int) -> tuple[np.ndarray, ...]:
    """(image (H,W,3) float32 in [0,1]+, disparity (H,W) float32, layer index (H,W) int16)."""
    image = np.zeros((height, width, 3), np.float32)
    zbuffer = np.full((height, width), -np.inf, np.float32)
    owner = np.full((height, width), -1, np.int16)
    for index, layer in enumerate(layers):
        view = _view_of_layer(layer, right, height, width)
        if view is None:
            continue
        region = (view.rows, view.cols)
        depth = zbuffer[region]
        front = view.disp > depth if layer.depth_test else np.isfinite(view.disp)
        weight = view.alpha * front
        image[region] = cv2.blendLinear(view.colour, image[region], weight, 1 - weight)
        take = front & (view.alpha >= 0.5)
        np.copyto(depth, view.disp, where=take)
        np.copyto(owner[region], np.int16(index), where=take)
    return image, zbuffer, owner


def _occluded(disp: np.ndarray, owner: np.ndarray, other_owner: np.ndarray, towards: float) -> np.ndarray:
    """Pixels whose surface the other view does not show at x + towards·d (a neighbour of that
    sub-pixel position must belong to the same layer)."""
    height, width = disp.shape
    target = np.arange(width, dtype=np.float32)[None, :] + towards * disp
    inside = (target >= 0) & (target <= width - 1)
    lower = np.clip(np.floor(target), 0, width - 1).astype(np.intp)
    upper = np.clip(lower + 1, 0, width - 1)
    rows = np.arange(height)[:, None]
    same = (other_owner[rows, lower] == owner) | (other_owner[rows, upper] == owner)
    return ~(inside & same)


@functools.cache
def _noise_bank() -> np.ndarray:
    """A fixed block of standard-normal noise; cameras read random windows of it (drawing fresh
    normals for every pixel would cost more than rendering the scene)."""
    return np.random.default_rng(20240611).standard_normal(1 << 21, dtype=np.float32)


def _sensor_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    bank = _noise_bank()
    size = int(np.prod(shape))
    reps = -(-size // (bank.size // 2))
    start = int(rng.integers(0, bank.size // 2))
    window = bank[start : start + size] if reps == 1 else np.resize(np.roll(bank, -start), size)
    return window.reshape(shape)


def _camera(image: np.ndarray, rng: np.random.Generator, config: SyntheticConfig,
            scene_gain: np.ndarray) -> np.ndarray:
    """One camera's response: gain, white balance, gamma, vignetting, blur and sensor noise → uint8."""
    image = image * scene_gain
    if config.photometric:
        height, width = image.shape[:2]
        image *= (rng.uniform(0.9, 1.1) * rng.uniform(0.96, 1.04, 3)).astype(np.float32)
        image = cv2.pow(np.clip(image, 0, None, out=image), rng.uniform(0.9, 1.1))
        xs = (np.arange(width, dtype=np.float32) - np.float32(rng.uniform(0.4, 0.6) * width))[None, :]
        ys = (np.arange(height, dtype=np.float32) - np.float32(rng.uniform(0.4, 0.6) * height))[:, None]
        falloff = np.float32(-rng.uniform(0, 0.25) / (0.25 * (width**2 + height**2)))
        image *= (1 + falloff * (xs * xs + ys * ys))[:, :, None]
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.2, 0.7))
        image += _sensor_noise(rng, image.shape) * np.float32(rng.uniform(0, config.noise_std) / 255.0)
    return cv2.convertScaleAbs(image, alpha=255.0)


def render_pair(config: SyntheticConfig, seed: int, index: int, stream: int = 0) -> SyntheticPair:
    """Sample ``index`` of the set with ``seed``: a pure function of (config, seed, stream, index).

    ``stream`` separates sets drawn with one seed (the data set uses 0 for train, 1 val, 2 test).
    """
    rng = np.random.default_rng([seed, stream, index])
    layers = build_scene(config, rng)
    h, w = config.height, config.width
    left, disp, owner = _composite(layers, False, h, w)
    right, disp_right, owner_right = _composite(layers, True, h, w)
    scene_gain = (rng.uniform(0.8, 1.15) * rng.uniform(0.9, 1.1, 3)).astype(np.float32)
    return SyntheticPair(
        left=_camera(left, rng, config, scene_gain),
        right=_camera(right, rng, config, scene_gain),
        disp=disp,
        disp_right=disp_right,
        occlusion=_occluded(disp, owner, owner_right, -1.0),
        occlusion_right=_occluded(disp_right, owner_right, owner, 1.0),
    )
