"""Surface textures for the synthetic generator: photographs bundled with scikit-image, and procedural
noise, dead leaves, periodic patterns and near-flat (low-texture) surfaces.

Every texture is drawn through a projective map from a layer's canvas (left-image pixels) to texture
coordinates, so a slanted plane shows foreshortened texture as a camera would see it. Colours are
float32 in [0, 1]. The heavy lifting is done by OpenCV, which is several times faster than NumPy
for these per-pixel operations.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

__all__ = [
    "NATURAL_IMAGES", "TEXTURE_KINDS", "VALIDATION_PHOTOS", "fractal_noise", "natural_images", "photo_segments",
    "random_colour", "sample_texture",
]

#: scikit-image images that ship with the wheel (no download). ``stereo_motorcycle`` is left out on
#: purpose: it is the evaluation pair, and its pixels must never leak into training data.
#: Photographs that are mostly empty (a third or more of their pixels textureless: "cell", "moon",
#: "retina") are left out too: as textures they taught flat surfaces (``benchmarks/data_texture.py
#: --photos`` prints each one's share).
NATURAL_IMAGES = (
    "astronaut", "brick", "camera", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "page", "text",
)
#: Photographs kept out of training, for a validation set of real-photograph scenes
#: (``photos=VALIDATION_PHOTOS``): a cat, a wall clock, a rocket against the sky.
VALIDATION_PHOTOS = ("chelsea", "clock", "rocket")

TEXTURE_KINDS = ("natural", "noise", "dead_leaves", "pattern", "flat")

_MAX_SIDE = 640  # larger photographs are shrunk once; each layer magnifies or shrinks its crop anyway
_MAX_SOURCE = 1024  # procedural sources are never larger than this (the border reflects beyond it)
_TEXTURE_BLUR = 0.6  # Gaussian sigma, pixels


def _load_photo(name: str) -> np.ndarray:
    """A bundled photograph as (H,W,3) uint8 RGB (grey ones replicated), longest side ≤ 640."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3])
    scale = _MAX_SIDE / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image


@functools.cache
def natural_images(names: tuple[str, ...] = NATURAL_IMAGES) -> tuple[tuple[np.ndarray, ...], ...]:
    """The photographs ``names`` as (H,W,3) uint8 RGB, each with two halved copies (a mip-map, so
    shrunk textures do not alias), loaded once per process."""
    images = []
    for name in names:
        image = _load_photo(name)
        half = cv2.pyrDown(image)
        images.append((image, half, cv2.pyrDown(half)))
    return tuple(images)


@functools.cache
def photo_segments(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Photograph ``name`` as (H,W,3) float32 RGB in [0,1] and its segmentation (H,W) int32 into
    regions bounded by image edges (Felzenszwalb's graph-based method, a few dozen regions), once
    per process."""
    from skimage.segmentation import felzenszwalb

    image = _load_photo(name)
    labels = felzenszwalb(image, scale=300, sigma=0.8, min_size=300).astype(np.int32)
    return image.astype(np.float32) * np.float32(1 / 255), labels


def loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A log-uniform draw in [low, high]."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour (3,) float32 in [0,1], drawn in HSV so greys, pastels and saturated colours all occur."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0, 1) ** 1.5 * 255, rng.uniform(0.1, 1) * 255]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def fractal_noise(rng: np.random.Generator, height: int, width: int, period: float, octaves: int = 5,
                  persistence: float = 0.5) -> np.ndarray:
    """Value noise summed over octaves: (H,W) float32 in [0,1]; ``period`` of the coarsest octave in pixels."""
    total = np.zeros((height, width), np.float32)
    amplitude = 1.0
    for _ in range(octaves):
        cells_y, cells_x = int(np.ceil(height / period)) + 2, int(np.ceil(width / period)) + 2
        grid = rng.random((cells_y, cells_x), dtype=np.float32)
        layer = cv2.resize(grid, (int(cells_x * period), int(cells_y * period)), interpolation=cv2.INTER_CUBIC)
        total += np.float32(amplitude) * layer[:height, :width]
        amplitude *= persistence
        period /= 2
        if period < 1.5:
            break
    low, high = cv2.minMaxLoc(total)[:2]
    return (total - np.float32(low)) * np.float32(1.0 / max(high - low, 1e-6))


def _palette(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """Map (H,W) values in [0,1] through a random gradient of 2–4 colours → (H,W,3) float32."""
    count = int(rng.integers(2, 5))
    stops = np.sort(rng.random(count))
    stops[0], stops[-1] = 0.0, 1.0
    colours = np.stack([random_colour(rng) for _ in range(count)])
    levels = np.linspace(0, 1, 256)
    table = np.stack([np.interp(levels, stops, colours[:, c]) for c in range(3)], axis=1).astype(np.float32)
    index = cv2.convertScaleAbs(values, alpha=255.0)
    return cv2.LUT(cv2.merge([index, index, index]), table.reshape(1, 256, 3))


def _noise_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    noise = fractal_noise(rng, height, width, loguniform(rng, 4, 96), octaves=6, persistence=rng.uniform(0.35, 0.7))
    if rng.random() < 0.3:  # veins, marble-like ridges
        noise = 1.0 - np.abs(2.0 * noise - 1.0)
    return _palette(rng, noise)


def _dead_leaves(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Occluding discs and boxes with power-law sizes: a classic model of natural-image statistics."""
    canvas = np.empty((height, width, 3), np.uint8)  # OpenCV anti-aliases only 8-bit drawings
    canvas[:] = np.round(random_colour(rng) * 255).astype(np.uint8)
    count = int(np.clip(height * width / 250, 30, 300))
    radii = np.minimum(max(4.0, max(height, width) / 4), 2.0 / rng.uniform(0.03, 1, count) ** 0.6)
    base = random_colour(rng)
    near_base = np.clip(base + rng.normal(0, 0.3, (count, 3)), 0, 1)
    colours = np.where(rng.random((count, 1)) < 0.7, near_base, rng.random((count, 3)) ** 1.3) * 255
    centres = np.stack([rng.uniform(0, width, count), rng.uniform(0, height, count)], axis=1).astype(int)
    boxes = rng.random(count) < 0.3
    aspects, angles = rng.uniform(0.3, 1, count), rng.uniform(0, 180, count)
    for radius, colour, centre, box, aspect, angle in zip(radii, colours.tolist(), centres.tolist(), boxes,
                                                          aspects, angles):
        if box:
            corners = cv2.boxPoints((tuple(centre), (2 * radius, 2 * radius * aspect), angle))
            cv2.fillPoly(canvas, [np.round(corners).astype(np.int32)], colour, cv2.LINE_AA)
        else:
            cv2.circle(canvas, tuple(centre), int(radius), colour, -1, cv2.LINE_AA)
    return canvas.astype(np.float32) * np.float32(1 / 255)


def _pattern(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Stripes, checks or a grid: repetitive structure that makes matching ambiguous."""
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    angle = rng.uniform(0, np.pi)
    period = loguniform(rng, 4, 40)
    cos, sin = np.float32(np.cos(angle) * 2 * np.pi / period), np.float32(np.sin(angle) * 2 * np.pi / period)
    wave_u = np.sin(xs * cos + ys * sin)
    kind = rng.integers(3)
    if kind == 0:
        values = wave_u
    else:
        stretch = np.float32(rng.uniform(0.5, 2) if kind == 1 else 1.0)
        wave_v = np.sin((ys * cos - xs * sin) / stretch)
        values = wave_u * wave_v if kind == 1 else np.maximum(np.abs(wave_u), np.abs(wave_v)) * 2 - 1
    values = 0.5 + 0.5 * np.tanh(np.float32(rng.uniform(1, 8)) * values)
    texture = _palette(rng, values)
    return texture * (0.85 + 0.3 * fractal_noise(rng, height, width, 32, 3))[:, :, None]


def _flat(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Low texture: one colour with a faint smooth variation (white walls, painted metal, sky)."""
    coarse_h, coarse_w = max(2, height // 8), max(2, width // 8)
    variation = fractal_noise(rng, coarse_h, coarse_w, loguniform(rng, 2, 16), octaves=3)
    variation = cv2.resize(variation, (width, height), interpolation=cv2.INTER_LINEAR) - np.float32(0.5)
    strength = np.float32(rng.uniform(0.01, 0.06))
    return random_colour(rng)[None, None, :] * (1 + strength * variation)[:, :, None]


def _natural(rng: np.random.Generator, height: int, width: int, homography: np.ndarray,
             photos: tuple[str, ...]) -> np.ndarray:
    """One of ``photos``, scaled, rotated and recoloured, seen through ``homography``."""
    images = natural_images(photos)
    pyramid = images[int(rng.integers(len(images)))]
    scale = loguniform(rng, 0.35, 2.5)  # photo pixels per texture unit
    level = min(int(np.log2(max(scale, 1.0))), len(pyramid) - 1)
    image, scale = pyramid[level], scale / 2**level
    ih, iw = image.shape[:2]
    angle = rng.uniform(-np.pi, np.pi) if rng.random() < 0.5 else rng.uniform(-0.3, 0.3)
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    placement = np.array([[cos, -sin, rng.uniform(0, iw)], [sin, cos, rng.uniform(0, ih)], [0, 0, 1]])
    warped = cv2.warpPerspective(image, placement @ homography, (width, height),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT_101)
    roll = rng.random()
    if roll < 0.3:  # tint: grey photographs (and some colour ones) take a random colour
        grey = cv2.cvtColor(warped, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1 / 255)
        return grey[:, :, None] * (0.4 + 0.9 * random_colour(rng))
    texture = warped.astype(np.float32) * np.float32(1 / 255)
    if roll < 0.55:  # recolour by mixing channels
        mix = np.eye(3) * rng.uniform(0.3, 1) + rng.uniform(0, 0.5, (3, 3))
        texture = cv2.transform(texture, (mix / mix.sum(axis=1, keepdims=True)).astype(np.float32))
    return texture


def sample_texture(rng: np.random.Generator, height: int, width: int, homography: np.ndarray,
                   kind: str, photos: tuple[str, ...] = NATURAL_IMAGES) -> np.ndarray:
    """A (H,W,3) float32 texture in [0,1] for a canvas of this size.

    ``homography``: 3×3 map from canvas pixels to texture units (about one unit per pixel at the
    layer's centre). ``kind``: one of :data:`TEXTURE_KINDS`; ``photos``: the photographs "natural"
    draws from.
    """
    if kind == "natural":
        texture = _natural(rng, height, width, homography, photos)
    else:
        corners = np.array([[[0, 0], [width, 0], [0, height], [width, height]]], np.float64)
        mapped = cv2.perspectiveTransform(corners, homography)[0]
        low = np.floor(mapped.min(axis=0))
        size = np.clip(np.ceil(mapped.max(axis=0) - low) + 2, 4, _MAX_SOURCE).astype(int)
        make = {"noise": _noise_texture, "dead_leaves": _dead_leaves, "pattern": _pattern, "flat": _flat}[kind]
        source = make(rng, int(size[1]), int(size[0]))
        shift = np.array([[1, 0, -low[0]], [0, 1, -low[1]], [0, 0, 1]])
        texture = cv2.warpPerspective(source, shift @ homography, (width, height),
                                      flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                      borderMode=cv2.BORDER_REFLECT_101)
    if kind != "flat":
        contrast = loguniform(rng, 0.5, 1.4)
        mean = np.array(cv2.mean(texture)[:3])
        # one pass: t ↦ contrast·t + (1 − contrast)·mean, per channel
        affine = np.hstack([np.eye(3) * contrast, (1 - contrast) * mean[:, None]]).astype(np.float32)
        texture = cv2.transform(texture, affine)
        # Surface grain (paper, concrete, fabric, paint): real surfaces show detail at every scale, which
        # a magnified photograph or a coarse procedural texture lacks; without it a third of the
        # synthetic pixels were textureless against 6 % of a real photograph's.
        grain = fractal_noise(rng, height, width, loguniform(rng, 3.0, 10.0), octaves=2) - np.float32(0.5)
        texture *= (1 + np.float32(loguniform(rng, 0.06, 0.35)) * grain)[:, :, None]
        # Band-limit as a lens would: detail at the pixel pitch cannot be resampled into the other view
        # without error, so the ground truth would stop being exact there.
        texture = cv2.GaussianBlur(texture, (5, 5), _TEXTURE_BLUR)
    return np.clip(texture, 0, 1, out=texture)
