"""Random scenes for the synthetic generator: a background of one to three planes (wall, corner,
floor) and many textured objects in front of it, each a surface whose disparity is a quadratic
function of the left-image position (planes, domes, bowls).

A quadratic disparity keeps the right view exact: for each right-image pixel the left-image column
that maps onto it solves a quadratic equation in closed form (see :func:`solve_left_column`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edgestereo.data.synthetic.textures import (
    NATURAL_IMAGES,
    TEXTURE_KINDS,
    VALIDATION_PHOTOS,
    fractal_noise,
    loguniform,
    photo_segments,
    sample_texture,
)
from edgestereo.errors import EdgeStereoError

__all__ = ["Highlight", "Layer", "Reflection", "SyntheticConfig", "build_scene", "disparity_at", "solve_left_column"]

_MIN_DISP = 1.0  # every surface stays at least this far from infinity, so every pixel has ground truth
#: textures only, never photograph scenes: print (letters would become layers) and photographs with
#: large smooth areas ("brick", "camera": 43 % and 37 % textureless, benchmarks/data_texture.py --photos)
_TEXTURES_ONLY = ("page", "text", "brick", "camera")
#: Gaussian sigma (pixels) for photograph scenes: a whole photograph shrunk to the image keeps more
#: detail near the pixel pitch than a texture on an object, and resampling it into the right view
#: must stay exact.
_PHOTO_BLUR = 0.8


@dataclass(frozen=True)
class SyntheticConfig:
    """What the generator draws. Sizes and disparities are in pixels; probabilities per object.

    The defaults are the training recipe; :meth:`lambertian` turns off everything that makes the two
    views differ beyond geometry (used to check the ground truth).
    """

    height: int = 256
    width: int = 512
    #: disparities stay below this; most pixels get small or medium values, as in real scenes.
    max_disp: float = 192.0
    #: objects per image at 256×512 (scaled by the square root of the image area).
    objects: tuple[int, int] = (8, 24)
    #: fraction of objects that are thin structures (rods, wires, fences, wheels with spokes).
    thin_prob: float = 0.2
    #: fraction of solid objects with a curved surface (dome or bowl) instead of a plane.
    curved_prob: float = 0.35
    #: largest |∂d/∂x|, |∂d/∂y| of a slanted object plane (pixels of disparity per pixel).
    max_slant: float = 0.3
    #: texture kinds and their weights: natural photographs, fractal noise, dead leaves, patterns, flat.
    texture_kinds: tuple[str, ...] = TEXTURE_KINDS
    texture_weights: tuple[float, ...] = (0.5, 0.2, 0.18, 0.09, 0.03)
    #: probability that an object mirrors a farther scene (a view-dependent, non-Lambertian surface).
    reflective_prob: float = 0.1
    #: probability that an object carries specular highlights (which sit at a different depth).
    specular_prob: float = 0.15
    #: per-view exposure, gamma, white balance, vignetting, blur and sensor noise.
    photometric: bool = True
    #: largest sensor-noise standard deviation, in 8-bit levels.
    noise_std: float = 3.0
    #: the photographs that textures and photograph scenes draw from (scikit-image names).
    photos: tuple[str, ...] = NATURAL_IMAGES
    #: probability that a scene is built on a photograph: it covers the background and 2–6 of its
    #: segments stand in front as planes, so depth edges follow the photograph's own edges.
    segment_prob: float = 0.3

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise EdgeStereoError(f"synthetic size must be at least 16x16, got {self.height}x{self.width}")
        if not 4 <= self.max_disp < self.width:
            raise EdgeStereoError(f"synthetic max_disp must be in [4, width={self.width}), got {self.max_disp}")
        if len(self.texture_kinds) != len(self.texture_weights) or set(self.texture_kinds) - set(TEXTURE_KINDS):
            raise EdgeStereoError(f"texture_kinds must be a subset of {TEXTURE_KINDS} with one weight each")
        unknown = sorted(set(self.photos) - set(NATURAL_IMAGES) - set(VALIDATION_PHOTOS))
        if not self.photos or unknown:
            raise EdgeStereoError(f"photos must be names from {NATURAL_IMAGES + VALIDATION_PHOTOS}, got "
                                  f"{unknown or 'none'}")
        if not 0 <= self.segment_prob <= 1:
            raise EdgeStereoError(f"segment_prob must be in [0, 1], got {self.segment_prob}")
        if self.objects[0] < 0 or self.objects[1] < self.objects[0]:
            raise EdgeStereoError(f"objects must be (low, high) with 0 ≤ low ≤ high, got {self.objects}")

    @classmethod
    def lambertian(cls, **overrides) -> SyntheticConfig:
        """Matte surfaces and identical cameras: right image warped by the ground truth = left image."""
        return cls(**{"reflective_prob": 0.0, "specular_prob": 0.0, "photometric": False, **overrides})


@dataclass
class Reflection:
    """A mirrored farther scene blended into a surface: ``texture`` in left-image pixels from column
    ``x0`` and row ``y0``, seen at the constant ``disparity`` (px) with weight ``strength``."""

    texture: np.ndarray
    x0: int
    y0: int
    disparity: float
    strength: float


@dataclass
class Highlight:
    """A Gaussian specular spot at (x, y) in the left image; it appears at disparity ``disparity``."""

    x: float
    y: float
    sigma: float
    disparity: float
    colour: np.ndarray


@dataclass
class Layer:
    """One surface: coverage ``alpha`` (h,w) and ``colour`` (h,w,3) on a canvas whose top-left corner
    is left-image pixel (x0, y0); disparity ``coeffs`` (c0, cx, cy, cxx, cxy, cyy) of
    :func:`disparity_at` in canvas coordinates; ``d_min``/``d_max`` bound the disparity where the
    surface is. Background layers are painted in order without a depth test (``depth_test=False``)."""

    x0: int
    y0: int
    alpha: np.ndarray
    colour: np.ndarray
    coeffs: np.ndarray
    d_min: float
    d_max: float
    depth_test: bool = True
    reflection: Reflection | None = None
    highlights: list[Highlight] = field(default_factory=list)

    @property
    def order_key(self) -> float:
        """Painter's order: far (small disparity) to near."""
        return 0.5 * (self.d_min + self.d_max)


def disparity_at(coeffs: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d(x,y) = c0 + cx·x + cy·y + cxx·x² + cxy·x·y + cyy·y², in the dtype of x (arrays broadcast).

    x, y are canvas coordinates (left-image pixels minus the canvas origin), which keeps the numbers
    small enough for float32.
    """
    c0, cx, cy, cxx, cxy, cyy = (x.dtype.type(c) for c in coeffs)
    return c0 + x * (cx + cxx * x + cxy * y) + y * (cy + cyy * y)


def solve_left_column(coeffs: np.ndarray, x_right: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The canvas column x with x − d(x,y) = x_right on the branch where ∂d/∂x < 1; NaN if none.

    x_right: right-image column minus the canvas origin; arrays broadcast, dtype of ``x_right``.
    """
    c0, cx, cy, cxx, cxy, cyy = (x_right.dtype.type(c) for c in coeffs)
    b = cx + cxy * y - 1
    c = c0 + cy * y + cyy * y * y + x_right
    disc = b * b - 4 * cxx * c
    denominator = np.sqrt(np.maximum(disc, 0)) - b
    # 2c / (−b + √disc) is the rationalised root: stable as cxx → 0, where it becomes −c/b.
    with np.errstate(divide="ignore", invalid="ignore"):
        x = 2 * c / denominator
    return np.where((disc >= 0) & (denominator > 1e-6), x, np.nan)


def _surface_coeffs(centre: tuple[float, float], d_centre: float, slope: tuple[float, float],
                    bump: float = 0.0, quad: np.ndarray | None = None) -> np.ndarray:
    """Coefficients of d = d_c + gx·(x−x̄) + gy·(y−ȳ) + h·(1 − [x−x̄, y−ȳ]·Q·[x−x̄, y−ȳ]ᵀ)."""
    xc, yc = centre
    gx, gy = slope
    q11, q12, q22 = (quad[0, 0], quad[0, 1], quad[1, 1]) if quad is not None else (0.0, 0.0, 0.0)
    h = bump
    return np.array([
        d_centre + h - gx * xc - gy * yc - h * (q11 * xc * xc + 2 * q12 * xc * yc + q22 * yc * yc),
        gx + 2 * h * (q11 * xc + q12 * yc),
        gy + 2 * h * (q12 * xc + q22 * yc),
        -h * q11,
        -2 * h * q12,
        -h * q22,
    ])


def _axes(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Canvas coordinates as a row (1,W) and a column (H,1), float32, for broadcasting."""
    return np.arange(width, dtype=np.float32)[None, :], np.arange(height, dtype=np.float32)[:, None]


def _plane_homography(centre: tuple[float, float], d_centre: float, slope: tuple[float, float],
                      height: int, width: int) -> np.ndarray:
    """Canvas pixel → texture units for a plane (one unit per pixel at its centre).

    Image → plane coordinates of a plane with disparity d(x,y) is the projective map
    (x−x̄, y−ȳ)/(d/d̄): farther parts show more texture per pixel. Where the plane would reach the
    horizon inside the canvas the foreshortening is damped to keep the map finite.
    """
    xc, yc = centre
    gx, gy = slope
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], np.float64)
    relative = 1.0 + (gx * (corners[:, 0] - xc) + gy * (corners[:, 1] - yc)) / d_centre
    damp = 1.0 if relative.min() >= 0.3 else 0.7 / max(1.0 - float(relative.min()), 1e-6)
    row = [damp * gx / d_centre, damp * gy / d_centre, 1.0 - damp * (gx * xc + gy * yc) / d_centre]
    return np.array([[1.0, 0.0, -xc], [0.0, 1.0, -yc], row])


def _texture_kind(rng: np.random.Generator, config: SyntheticConfig) -> str:
    weights = np.asarray(config.texture_weights, dtype=np.float64)
    return config.texture_kinds[int(rng.choice(len(weights), p=weights / weights.sum()))]


def _shade(rng: np.random.Generator, colour: np.ndarray, centre: tuple[float, float], radius: float,
           bump: tuple[float, np.ndarray] | None = None) -> np.ndarray:
    """Lambertian shading attached to the surface (so identical in both views): a smooth illumination
    gradient, plus the light falling on a curved surface (``bump`` = (h, Q) of the dome or bowl)."""
    height, width = colour.shape[:2]
    xs, ys = _axes(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    lx, ly = np.cos(angle), np.sin(angle)
    gain, tilt = rng.uniform(0.7, 1.2), rng.uniform(0, 0.25) / max(radius, 1.0)
    dx, dy = xs - np.float32(centre[0]), ys - np.float32(centre[1])
    shading = np.float32(gain) * (1 + np.float32(tilt * lx) * dx + np.float32(tilt * ly) * dy)
    if bump is not None:
        # light · ∇(bump): the gradient of −h·(r·Q·r) is −2h·Q·r
        h, quad = bump
        strength = -2 * h * rng.uniform(0.5, 1.2)
        ax = strength * (lx * quad[0, 0] + ly * quad[1, 0])
        ay = strength * (lx * quad[0, 1] + ly * quad[1, 1])
        shading = shading * (1 + np.float32(ax) * dx + np.float32(ay) * dy)
    np.clip(shading, 0.25, 1.8, out=shading)
    return np.clip(colour * shading[:, :, None], 0, 1)


# --------------------------------------------------------------------------- background
def _background_layers(rng: np.random.Generator, config: SyntheticConfig) -> list[Layer]:
    """A wall, optionally a second wall meeting it at a vertical crease and a floor below a horizon.

    The canvas spans columns [0, W + 0.4·max_disp + 4): the right camera sees that far to the right.
    """
    h, w, max_d = config.height, config.width, config.max_disp
    ceiling = 0.4 * max_d
    width = int(np.ceil(w + ceiling + 4))
    xs, ys = _axes(h, width)
    centre = (w / 2, h / 2)

    def in_range(coeffs: np.ndarray, top: float) -> bool:
        low, high = cv2.minMaxLoc(disparity_at(coeffs, xs, ys))[:2]
        return low >= _MIN_DISP and high <= top

    def plane_layer(coeffs: np.ndarray, alpha: np.ndarray, plane_centre, plane_slope) -> Layer:
        low, high = cv2.minMaxLoc(disparity_at(coeffs, xs, ys))[:2]
        kind = "natural" if rng.random() < 0.6 else _texture_kind(rng, config)
        plane_d = float(disparity_at(coeffs, np.float64(plane_centre[0]), np.float64(plane_centre[1])))
        homography = _plane_homography(plane_centre, plane_d, plane_slope, h, width)
        colour = _shade(rng, sample_texture(rng, h, width, homography, kind, config.photos), plane_centre, w)
        return Layer(0, 0, alpha, colour, coeffs, low, high, depth_test=False)

    d_centre = min(max(_MIN_DISP + 0.5, loguniform(rng, 0.02, 0.3) * max_d), 0.9 * ceiling)
    slope = (rng.uniform(-0.7, 0.7) * d_centre / w, rng.uniform(-0.7, 0.7) * d_centre / h)
    wall = _surface_coeffs(centre, d_centre, slope)
    for _ in range(8):  # shrink the slant until the wall stays in range over the whole canvas
        if in_range(wall, ceiling):
            break
        slope = (slope[0] * 0.6, slope[1] * 0.6)
        wall = _surface_coeffs(centre, d_centre, slope)
    else:
        slope = (0.0, 0.0)
        wall = _surface_coeffs(centre, d_centre, slope)
    layers = [plane_layer(wall, np.ones((h, width), np.float32), centre, slope)]

    if rng.random() < 0.3:  # a second wall, hinged to the first along a vertical crease
        crease = rng.uniform(0.15, 0.85) * w
        turn = rng.uniform(-1, 1) * 0.5 * d_centre / w
        corner = wall + np.array([-turn * crease, turn, 0, 0, 0, 0])
        if in_range(corner, ceiling):
            alpha = np.repeat(np.clip(xs - np.float32(crease - 0.5), 0, 1), h, axis=0)
            layers.append(plane_layer(corner, alpha, (crease, h / 2), (slope[0] + turn, slope[1])))

    if rng.random() < 0.55:  # a floor: the disparity grows towards the bottom of the image
        horizon = rng.uniform(0.3, 0.9) * h
        at_horizon = float(disparity_at(wall, np.float64(w / 2), np.float64(horizon)))
        rise = min(rng.uniform(0.05, 0.5) * max_d, 1.8 * ceiling - at_horizon) / max(h - horizon, 1.0)
        floor = wall + np.array([-rise * horizon, 0, rise, 0, 0, 0])
        below = slice(int(np.ceil(horizon)), h)
        floor_disp = disparity_at(floor, xs, ys[below])
        if rise > 0 and floor_disp.size and floor_disp.max() <= 0.9 * max_d and floor_disp.min() >= _MIN_DISP:
            alpha = np.repeat(np.clip(ys - np.float32(horizon - 0.5), 0, 1), width, axis=1)
            layer = plane_layer(floor, alpha, (w / 2, h - 1.0), (slope[0], slope[1] + rise))
            layer.d_min, layer.d_max = float(floor_disp.min()), float(floor_disp.max())
            layers.append(layer)
    return layers


# --------------------------------------------------------------------------- object shapes
def _draw_mask(height: int, width: int, draw) -> np.ndarray:
    """Run ``draw(canvas)`` on an 8-bit canvas (OpenCV anti-aliases only 8-bit drawings) → float alpha."""
    canvas = np.zeros((height, width), np.uint8)
    draw(canvas)
    return canvas.astype(np.float32) * np.float32(1 / 255)


def _fixed(points) -> np.ndarray:
    """Sub-pixel coordinates for OpenCV drawing with shift=4 (1/16 px)."""
    return np.round(np.asarray(points, np.float64) * 16).astype(np.int32)


def _solid_shape(rng: np.random.Generator, radius: float) -> tuple[str, object, float]:
    """A random solid outline centred on the origin: (kind, geometry, aspect ratio)."""
    roll = rng.random()
    aspect = rng.uniform(0.3, 1.0)
    angle = rng.uniform(0, 360)
    if roll < 0.3:
        return "ellipse", (radius, radius * aspect, angle), aspect
    if roll < 0.45:
        rect = cv2.boxPoints(((0.0, 0.0), (2 * radius, 2 * radius * aspect), angle))
        return "polygon", [rect], aspect
    if roll < 0.55:
        return "ring", (radius, radius * aspect, angle, rng.uniform(0.45, 0.85)), aspect
    if roll < 0.7:
        return "blob", (radius, aspect, angle), aspect
    count = int(rng.integers(3, 13))
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    radii = radius * (rng.uniform(0.35, 1.0, count) if rng.random() < 0.6 else rng.uniform(0.8, 1.0, count))
    polygon = np.stack([radii * np.cos(angles), aspect * radii * np.sin(angles)], axis=1)
    return "polygon", [polygon], aspect


def _solid_mask(rng: np.random.Generator, kind: str, geometry, centre: tuple[float, float],
                height: int, width: int) -> np.ndarray:
    """Coverage (H,W) float32 of a solid shape centred at ``centre`` (canvas pixels)."""
    cx, cy = centre
    if kind == "blob":  # thresholded noise inside an elliptic envelope: organic outlines
        radius, aspect, angle = geometry
        xs, ys = _axes(height, width)
        cos, sin = np.float32(np.cos(np.radians(angle)) / radius), np.float32(np.sin(np.radians(angle)) / radius)
        u = (xs - np.float32(cx)) * cos + (ys - np.float32(cy)) * sin
        v = ((ys - np.float32(cy)) * cos - (xs - np.float32(cx)) * sin) / np.float32(aspect)
        envelope = 1 - np.sqrt(u * u + v * v)
        noise = fractal_noise(rng, height, width, max(radius / 2, 4), octaves=3)
        edge = np.float32(max(radius * aspect, 2) / 2)
        return np.clip((envelope + 0.6 * (noise - 0.5)) * edge + 0.5, 0, 1)

    def draw(canvas: np.ndarray) -> None:
        if kind in ("ellipse", "ring"):
            rx, ry, angle = geometry[:3]
            cv2.ellipse(canvas, _fixed((cx, cy)), _fixed((rx, ry)), angle, 0, 360, 255, -1, cv2.LINE_AA, 4)
            if kind == "ring":
                inner = geometry[3]
                cv2.ellipse(canvas, _fixed((cx, cy)), _fixed((rx * inner, ry * inner)), angle, 0, 360, 0, -1,
                            cv2.LINE_AA, 4)
            return
        cv2.fillPoly(canvas, [_fixed(p + np.array([cx, cy])) for p in geometry], 255, cv2.LINE_AA, 4)
        if rng.random() < 0.2:  # holes through which farther surfaces show
            radius = float(np.abs(geometry[0]).max())
            for _ in range(int(rng.integers(1, 4))):
                hole = (cx + rng.uniform(-0.5, 0.5) * radius, cy + rng.uniform(-0.5, 0.5) * radius)
                size = rng.uniform(0.08, 0.3) * radius
                cv2.ellipse(canvas, _fixed(hole), _fixed((size, size * rng.uniform(0.4, 1))), rng.uniform(0, 360),
                            0, 360, 0, -1, cv2.LINE_AA, 4)

    return _draw_mask(height, width, draw)


def _thin_structure(rng: np.random.Generator, config: SyntheticConfig) -> tuple[list[np.ndarray], int, bool]:
    """Polylines of a thin object (rod, wire, fence, wheel with spokes) in left-image pixels, the line
    thickness in pixels and whether the polylines are closed."""
    h, w = config.height, config.width
    thickness = int(np.clip(np.round(loguniform(rng, 1, 7)), 1, 7))
    centre = np.array([rng.uniform(-0.05, 1.05) * w, rng.uniform(-0.05, 1.05) * h])
    length = loguniform(rng, 0.15, 1.0) * min(h, w) * 1.5
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    roll = rng.random()
    if roll < 0.35:  # a rod
        return [np.stack([centre - direction * length / 2, centre + direction * length / 2])], thickness, False
    if roll < 0.55:  # a wire bending through a few points
        count = int(rng.integers(3, 7))
        along = np.linspace(-0.5, 0.5, count)[:, None] * length
        return [centre + along * direction + rng.normal(0, 0.15 * length, (count, 1)) * normal], thickness, False
    if roll < 0.8:  # a fence or grille: parallel bars and one or two cross bars
        bars = int(rng.integers(3, 10))
        spacing = rng.uniform(2.5, 8) * thickness + rng.uniform(2, 10)
        lines = []
        for k in range(bars):
            offset = (k - (bars - 1) / 2) * spacing * normal
            lines.append(np.stack([centre + offset - direction * length / 2, centre + offset + direction * length / 2]))
        span = (bars - 1) / 2 * spacing * normal
        for cross in rng.uniform(-0.45, 0.45, int(rng.integers(1, 3))):
            base = centre + cross * length * direction
            lines.append(np.stack([base - span, base + span]))
        return lines, thickness, False
    radius = length / 3  # a wheel: rim and spokes
    aspect = rng.uniform(0.5, 1)
    circle = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    lines = [centre + radius * np.stack([np.cos(circle), aspect * np.sin(circle)], axis=1)]
    for spoke in np.linspace(0, 2 * np.pi, int(rng.integers(3, 16)), endpoint=False) + rng.uniform(0, np.pi):
        lines.append(np.stack([centre, centre + radius * np.array([np.cos(spoke), aspect * np.sin(spoke)])]))
    return lines, thickness, True


# --------------------------------------------------------------------------- objects
def _object_disparity(rng: np.random.Generator, config: SyntheticConfig, background: np.ndarray,
                      x: float, y: float) -> float:
    """Disparity at an object's centre: in front of the background there, usually not by much, so
    that small and medium disparities dominate as they do in real scenes."""
    behind = float(background[int(np.clip(y, 0, background.shape[0] - 1)),
                              int(np.clip(x, 0, background.shape[1] - 1))]) + 1.0
    top = 0.92 * config.max_disp
    if behind >= top:
        return top
    return behind + (top - behind) * float(rng.beta(1.1, 2.8))


def _object_layer(rng: np.random.Generator, config: SyntheticConfig, background: np.ndarray) -> Layer | None:
    """One object: shape, surface (plane, dome or bowl) and texture; None if it falls outside both views."""
    h, w, max_d = config.height, config.width, config.max_disp
    thin = rng.random() < config.thin_prob
    if thin:
        lines, thickness, closed = _thin_structure(rng, config)
        points = np.concatenate(lines)
        centre = (float(points[:, 0].mean()), float(points[:, 1].mean()))
        radius = float(np.abs(points - np.array(centre)).max()) + thickness
    else:
        radius = loguniform(rng, 0.04, 0.45) * min(h, w)
        centre = (rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h)
        shape, geometry, aspect = _solid_shape(rng, radius)
    # The canvas: the object's box, cut to what either view can see (image rows, columns < W + max_disp).
    x0, y0 = max(int(np.floor(centre[0] - radius)) - 2, -2), max(int(np.floor(centre[1] - radius)) - 2, -2)
    x1 = min(int(np.ceil(centre[0] + radius)) + 3, int(w + max_d) + 2)
    y1 = min(int(np.ceil(centre[1] + radius)) + 3, h + 2)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    height, width = y1 - y0, x1 - x0
    local = (centre[0] - x0, centre[1] - y0)
    if thin:
        shifted = [_fixed(line - np.array([x0, y0])) for line in lines]
        alpha = _draw_mask(height, width, lambda c: cv2.polylines(c, shifted, closed, 255, thickness, cv2.LINE_AA, 4))
    else:
        alpha = _solid_mask(rng, shape, geometry, local, height, width)
    if alpha.max() < 0.5:
        return None

    d_centre = _object_disparity(rng, config, background, *centre)
    slope = tuple(float(np.clip(rng.normal(0, config.max_slant / 2.5), -config.max_slant, config.max_slant))
                  for _ in range(2))
    quad, bump = None, 0.0
    if not thin and rng.random() < config.curved_prob:
        rx, ry = radius, radius * aspect
        angle = rng.uniform(0, np.pi)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        cylinder = rng.random() < 0.3
        quad = rot @ np.diag([1 / rx**2, 0.0 if cylinder else 1 / ry**2]) @ rot.T
        # inside the shape |∂bump/∂x| ≤ 2|h|/r: with the slope it stays well below 1 (no self-occlusion)
        bump = rng.uniform(0.05, 0.2) * min(rx, ry) * (1 if rng.random() < 0.8 else -1)
    # Shrink slant and bump until the surface stays in range where the object is.
    xs, ys = _axes(height, width)
    covered = alpha > 0
    floor, ceiling = max(_MIN_DISP, 0.5 * d_centre), 0.97 * max_d
    for shrink in (1.0, 0.6, 0.35, 0.15, 0.0):
        coeffs = _surface_coeffs(local, d_centre, (slope[0] * shrink, slope[1] * shrink), bump * shrink, quad)
        inside = disparity_at(coeffs, xs, ys)[covered]
        low, high = float(inside.min()), float(inside.max())
        if low >= floor and high <= ceiling:
            break
    else:
        return None
    slope, bump = (slope[0] * shrink, slope[1] * shrink), bump * shrink

    kind = _texture_kind(rng, config)
    if thin and kind == "natural" and rng.random() < 0.5:
        kind = "flat"  # rods and wires are mostly painted or bare metal
    homography = _plane_homography(local, d_centre, slope, height, width)
    texture = sample_texture(rng, height, width, homography, kind, config.photos)
    colour = _shade(rng, texture, local, radius, (bump, quad) if quad is not None else None)
    layer = Layer(x0, y0, alpha, colour, coeffs, low, high)

    if rng.random() < config.reflective_prob:
        layer.reflection = _reflection(rng, layer, config.photos)
    if rng.random() < config.specular_prob:
        for _ in range(int(rng.integers(1, 4))):
            hx, hy = local[0] + rng.normal(0, radius / 3), local[1] + rng.normal(0, radius / 3)
            surface = float(disparity_at(coeffs, np.float64(hx), np.float64(hy)))
            colour = (1 - rng.uniform(0, 0.25, 3)) * rng.uniform(0.4, 1.2)
            layer.highlights.append(Highlight(hx + x0, hy + y0, radius * rng.uniform(0.04, 0.2),
                                              max(surface * rng.uniform(0.3, 0.9), 0.0), colour.astype(np.float32)))
    return layer


def _reflection(rng: np.random.Generator, layer: Layer, photos: tuple[str, ...]) -> Reflection:
    """A farther scene mirrored in the surface: it moves with its own, smaller disparity."""
    disparity = layer.d_min * rng.uniform(0.1, 0.8)
    height, width = layer.alpha.shape
    margin = int(np.ceil(layer.d_max - disparity)) + 2
    texture = sample_texture(rng, height, width + margin, np.eye(3), "natural" if rng.random() < 0.6 else "noise",
                             photos)
    texture = cv2.GaussianBlur(texture, (0, 0), rng.uniform(0.5, 2.0))
    return Reflection(texture, layer.x0 - margin, layer.y0, float(disparity), float(rng.uniform(0.15, 0.55)))


def _cast_shadows(rng: np.random.Generator, background: list[Layer], objects: list[Layer]) -> None:
    """Darken the background under soft, offset silhouettes of some objects. A shadow is painted on
    the surface, so both views show it at the background's disparity."""
    height, width = background[0].alpha.shape
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.abs(np.sin(angle))])  # light from above: shadows fall downwards
    light = np.ones((height, width), np.float32)
    for layer in objects:
        if rng.random() > 0.5:
            continue
        offset = direction * rng.uniform(0.05, 0.3) * max(layer.alpha.shape)
        pad = int(rng.uniform(1, 0.2 * max(layer.alpha.shape) + 2))
        x0, y0 = round(float(layer.x0 + offset[0])) - pad, round(float(layer.y0 + offset[1])) - pad
        padded = cv2.copyMakeBorder(layer.alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        shadow = cv2.stackBlur(padded, (2 * pad + 1, 2 * pad + 1))  # cost independent of the blur radius
        ya, yb, xa, xb = max(y0, 0), min(y0 + shadow.shape[0], height), max(x0, 0), min(x0 + shadow.shape[1], width)
        if ya >= yb or xa >= xb:
            continue
        light[ya:yb, xa:xb] *= 1 - np.float32(rng.uniform(0.2, 0.6)) * shadow[ya - y0 : yb - y0, xa - x0 : xb - x0]
    for surface in background:
        surface.colour *= light[:, :, None]


def _photo_on_canvas(rng: np.random.Generator, name: str, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Photograph ``name`` scaled to cover a (height, width) canvas, shifted and maybe mirrored:
    colour (H,W,3) float32 in [0,1] and its segment labels (H,W) int32."""
    image, labels = photo_segments(name)
    ih, iw = labels.shape
    scale = max(height / ih, width / iw) * loguniform(rng, 1.0, 1.6)
    size = (max(int(np.ceil(iw * scale)), width), max(int(np.ceil(ih * scale)), height))
    # area-averaged when shrinking (no aliasing), then band-limited
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    labels = cv2.resize(labels.astype(np.float32), size, interpolation=cv2.INTER_NEAREST).astype(np.int32)
    x0, y0 = int(rng.integers(0, size[0] - width + 1)), int(rng.integers(0, size[1] - height + 1))
    colour, warped_labels = image[y0 : y0 + height, x0 : x0 + width], labels[y0 : y0 + height, x0 : x0 + width]
    if rng.random() < 0.5:
        colour, warped_labels = colour[:, ::-1], warped_labels[:, ::-1]
    colour = cv2.GaussianBlur(np.ascontiguousarray(colour), (5, 5), _PHOTO_BLUR)
    return colour, np.ascontiguousarray(warped_labels)


def _segment_layers(rng: np.random.Generator, config: SyntheticConfig, colour: np.ndarray, labels: np.ndarray,
                    background: np.ndarray) -> list[Layer]:
    """2–6 segments of a photograph (canvas-sized ``colour``/``labels``) as planes in front of the
    background, each cut to its bounding box, coloured by the photograph itself."""
    h, w = config.height, config.width
    ids, counts = np.unique(labels[:, :w], return_counts=True)
    share = counts / float(h * w)
    candidates = ids[(share > 0.01) & (share < 0.35)]
    if candidates.size == 0:
        return []
    chosen = rng.choice(candidates, size=min(int(rng.integers(2, 7)), candidates.size), replace=False)
    layers = []
    for label in chosen:
        mask = (labels == label).astype(np.float32)
        ys, xs = np.nonzero(mask)
        x0, x1 = max(int(xs.min()) - 2, 0), min(int(xs.max()) + 3, mask.shape[1])
        y0, y1 = max(int(ys.min()) - 2, 0), min(int(ys.max()) + 3, mask.shape[0])
        alpha = cv2.GaussianBlur(mask[y0:y1, x0:x1], (0, 0), 0.6)  # anti-aliased like a lens would
        centre = (float(xs.mean()) - x0, float(ys.mean()) - y0)
        d_centre = _object_disparity(rng, config, background, centre[0] + x0, centre[1] + y0)
        slope = (rng.uniform(-0.15, 0.15) * d_centre / w, rng.uniform(-0.15, 0.15) * d_centre / h)
        coeffs = _surface_coeffs(centre, d_centre, slope)
        xs_local, ys_local = _axes(y1 - y0, x1 - x0)
        inside = disparity_at(coeffs, xs_local, ys_local)[alpha > 0.01]
        low, high = float(inside.min()), float(inside.max())
        if low < _MIN_DISP or high > 0.95 * config.max_disp:
            coeffs = _surface_coeffs(centre, d_centre, (0.0, 0.0))
            low = high = d_centre
        layers.append(Layer(x0, y0, alpha, colour[y0:y1, x0:x1].copy(), coeffs, low, high))
    return layers


def build_scene(config: SyntheticConfig, rng: np.random.Generator) -> list[Layer]:
    """Background layers (painted in order), then objects sorted far to near. With probability
    ``segment_prob`` the scene is built on a photograph: it covers the background, and some of its
    segments stand in front of it as planes (fewer random objects then)."""
    layers = _background_layers(rng, config)
    xs, ys = _axes(config.height, layers[0].alpha.shape[1])
    background = disparity_at(layers[0].coeffs, xs, ys)
    for layer in layers[1:]:
        background = np.where(layer.alpha >= 0.5, disparity_at(layer.coeffs, xs, ys), background)
    objects: list[Layer] = []
    low, high = config.objects
    count = round(float(rng.integers(low, high + 1)) * np.sqrt(config.height * config.width / (256 * 512)))
    if config.segment_prob > 0 and rng.random() < config.segment_prob:
        photos = [name for name in config.photos if name not in _TEXTURES_ONLY] or list(config.photos)
        name = photos[int(rng.integers(len(photos)))]
        colour, labels = _photo_on_canvas(rng, name, *layers[0].alpha.shape)
        for layer in layers:  # the photograph, shaded like the surface it is on
            layer.colour = _shade(rng, colour, (config.width / 2, config.height / 2), config.width)
        objects += _segment_layers(rng, config, colour, labels, background)
        count //= 3
    objects += [layer for _ in range(count) if (layer := _object_layer(rng, config, background)) is not None]
    objects.sort(key=lambda layer: layer.order_key)
    _cast_shadows(rng, layers, objects)
    return layers + objects
