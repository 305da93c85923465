"""Disparity ↔ depth and point clouds for rectified stereo.

Depth comes out in the unit of the baseline (Middlebury: mm; most robot rigs: m). Invalid depth is
NaN: where the disparity is not finite or ``d + doffs ≤ 0``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgestereo.errors import EdgeStereoError

__all__ = ["StereoCalibration", "depth_to_disparity", "disparity_to_depth", "disparity_to_points"]


@dataclass(frozen=True)
class StereoCalibration:
    """Rectified stereo intrinsics of the left camera.

    ``fx, fy, cx, cy`` in pixels; ``baseline`` in the unit depth should have; ``doffs`` the
    x-difference of the principal points (``cx_right - cx_left``), in pixels.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    baseline: float
    doffs: float = 0.0

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0):
            raise EdgeStereoError(f"focal length must be positive, got fx={self.fx}, fy={self.fy}")
        if self.baseline <= 0:
            raise EdgeStereoError(f"baseline must be positive, got {self.baseline}")

    @classmethod
    def from_focal(cls, focal: float, baseline: float, width: int, height: int, doffs: float = 0.0):
        """Calibration from a focal length and baseline; principal point at the image centre."""
        return cls(focal, focal, (width - 1) / 2.0, (height - 1) / 2.0, baseline, doffs)

    @classmethod
    def from_calib_txt(cls, path: str | Path) -> StereoCalibration:
        """Calibration from a Middlebury ``calib.txt`` (baseline in mm)."""
        from edgestereo.data.io import read_calib_txt

        calib = read_calib_txt(path)
        cam = calib.cam0
        return cls(cam[0, 0], cam[1, 1], cam[0, 2], cam[1, 2], calib.baseline, calib.doffs)

    def scaled(self, factor: float) -> StereoCalibration:
        """The calibration for the images resized by ``factor`` (disparities scale with it)."""
        return replace(
            self,
            fx=self.fx * factor,
            fy=self.fy * factor,
            cx=(self.cx + 0.5) * factor - 0.5,
            cy=(self.cy + 0.5) * factor - 0.5,
            doffs=self.doffs * factor,
        )


def disparity_to_depth(disparity: np.ndarray, focal: float, baseline: float, doffs: float = 0.0) -> np.ndarray:
    """``depth = focal·baseline / (disparity + doffs)``; NaN where invalid.

    disparity: (H,W) pixels → depth: (H,W) float32 in baseline units.

    >>> disparity_to_depth(np.array([[10.0, 0.0]]), focal=100.0, baseline=0.5).tolist()
    [[5.0, nan]]
    """
    disparity = np.asarray(disparity, dtype=np.float64)
    denominator = disparity + doffs
    valid = np.isfinite(disparity) & (denominator > 0)
    depth = np.full(disparity.shape, np.nan)
    depth[valid] = focal * baseline / denominator[valid]
    return depth.astype(np.float32)


def depth_to_disparity(depth: np.ndarray, focal: float, baseline: float, doffs: float = 0.0) -> np.ndarray:
    """``disparity = focal·baseline / depth - doffs``; NaN where depth is not finite or ≤ 0."""
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    disparity = np.full(depth.shape, np.nan)
    disparity[valid] = focal * baseline / depth[valid] - doffs
    return disparity.astype(np.float32)


def disparity_to_points(
    disparity: np.ndarray,
    calib: StereoCalibration,
    image: np.ndarray | None = None,
    *,
    max_depth: float | None = None,
    stride: int = 1,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Back-project valid pixels into the left camera frame (x right, y down, z forward).

    disparity: (H,W) pixels; image: optional (H,W,3) uint8 colours. ``stride`` keeps every
    ``stride``-th pixel in each direction; ``max_depth`` drops farther points.
    Returns ``points`` (N,3) float32 in baseline units and ``colors`` (N,3) uint8 or None.
    """
    if stride < 1:
        raise EdgeStereoError(f"point-cloud stride must be ≥ 1, got {stride}")
    disparity = np.asarray(disparity)
    if image is not None and image.shape[:2] != disparity.shape:
        raise EdgeStereoError(f"image {image.shape[:2]} and disparity {disparity.shape} sizes differ")
    depth = disparity_to_depth(disparity, calib.fx, calib.baseline, calib.doffs)[::stride, ::stride]
    v, u = np.mgrid[0 : disparity.shape[0] : stride, 0 : disparity.shape[1] : stride]
    keep = np.isfinite(depth)
    if max_depth is not None:
        keep &= depth <= max_depth
    z = depth[keep]
    x = (u[keep] - calib.cx) * z / calib.fx
    y = (v[keep] - calib.cy) * z / calib.fy
    points = np.stack([x, y, z], axis=1).astype(np.float32)
    colors = image[::stride, ::stride][keep].astype(np.uint8) if image is not None else None
    return points, colors
