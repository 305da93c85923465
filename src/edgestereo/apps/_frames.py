"""What `batch` and `live` share: calibration and rectification options, the picture of a frame,
a colour range that stays the same across frames, and the per-frame output files."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgestereo.apps._common import check_calibration_args
from edgestereo.errors import EdgeStereoError

__all__ = [
    "SAVE_KINDS",
    "FrameOutputs",
    "add_view_arguments",
    "calibration_setup",
    "make_rectifier",
    "parse_save",
    "stable_ranges",
]

#: per-frame output kinds and the suffix each adds to a frame's base path.
SAVE_KINDS = {
    "color": ".png",  # coloured disparity, or the four-panel picture with --panel
    "disparity": "_disp.pfm",  # float32 pixels
    "depth": "_depth.pfm",  # float32 in baseline units (needs a calibration)
    "ply": ".ply",  # coloured point cloud (needs a calibration)
}


def parse_save(text: str) -> tuple[str, ...]:
    """"disparity,ply" → ("disparity", "ply"); raises on unknown kinds."""
    kinds = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [kind for kind in kinds if kind not in SAVE_KINDS]
    if unknown:
        raise EdgeStereoError(f"--save: unknown output(s) {', '.join(unknown)}; choose from {', '.join(SAVE_KINDS)}")
    return kinds


def add_view_arguments(parser: argparse.ArgumentParser) -> None:
    """--panel, --disp-range, --alpha, --max-depth, --cloud-stride."""
    group = parser.add_argument_group("pictures and rectification")
    group.add_argument("--panel", action="store_true",
                       help="pictures show left | right | disparity | depth instead of the coloured disparity")
    group.add_argument("--disp-range", nargs=2, type=float, default=None, metavar=("LOW", "HIGH"),
                       help="disparity colour range in pixels (default: from the first frame, then fixed)")
    group.add_argument("--alpha", type=float, default=0.0,
                       help="rectification of an OpenCV stereo calibration: 0 keeps valid pixels only (default), "
                            "1 keeps every camera pixel")
    group.add_argument("--max-depth", type=float, default=None, help="point clouds: drop points farther than this")
    group.add_argument("--cloud-stride", type=int, default=1, metavar="N", help="point clouds: keep every N-th pixel")


def calibration_setup(args: argparse.Namespace) -> Any:
    """The :class:`~edgestereo.calibration.StereoSetup` that ``--calib`` names, or None; checks the options."""
    check_calibration_args(args)
    if args.cloud_stride < 1:
        raise EdgeStereoError(f"--cloud-stride must be ≥ 1, got {args.cloud_stride}")
    if args.disp_range is not None and not 0 <= args.disp_range[0] < args.disp_range[1]:
        raise EdgeStereoError(f"--disp-range needs 0 ≤ LOW < HIGH, got {args.disp_range[0]:g} {args.disp_range[1]:g}")
    if not args.calib:
        return None
    from edgestereo.calibration import read_calibration

    return read_calibration(args.calib)


def make_rectifier(setup: Any, args: argparse.Namespace, image_size: tuple[int, int]) -> Any:
    """The :class:`~edgestereo.calibration.Rectifier` for frames of ``image_size`` (W, H), or None
    when no calibration was given (pairs are then used as they come, without depth)."""
    from edgestereo.calibration import Rectifier
    from edgestereo.geometry import StereoCalibration

    if setup is not None:
        return setup.rectifier(image_size, args.alpha)
    if args.focal is not None:
        w, h = image_size
        return Rectifier(image_size, StereoCalibration.from_focal(args.focal, args.baseline, w, h, args.doffs))
    return None


def stable_ranges(disparity: np.ndarray, calibration: Any, fixed: Sequence[float] | None = None
                  ) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """Colour ranges to keep for a whole stream: disparity (px) and, with a calibration, depth.

    disparity: (H,W) pixels of the first frame. The disparity range is ``fixed`` when given,
    else the first frame's 1st–99th percentile widened by 20 % each way, so later frames with
    somewhat nearer or farther content still fall inside; the depth range is the same interval
    converted to depth, its far end capped at 20 times the near end (zero disparity is infinitely far).
    """
    from edgestereo.viz import value_range

    if fixed is not None:
        low, high = float(fixed[0]), float(fixed[1])
    else:
        low, high = value_range(np.where(disparity > 0, disparity, np.nan))
        low, high = max(0.0, low * 0.8), high * 1.2
    if calibration is None:
        return (low, high), None
    focal_baseline = calibration.fx * calibration.baseline
    nearest = max(high + calibration.doffs, 1e-6)
    return (low, high), (focal_baseline / nearest, focal_baseline / max(low + calibration.doffs, nearest / 20))


class FrameOutputs:
    """Builds a frame's picture and writes the chosen outputs beside a base path
    (``base.png``, ``base_disp.pfm``, ``base_depth.pfm``, ``base.ply``), each atomically.

    ``calibration`` (rectified, for depth and clouds) may be None; the colour ranges must be set
    (:meth:`set_ranges`) before the first picture.
    """

    def __init__(self, kinds: Sequence[str], *, panel: bool, title: str, depth_unit: str = "",
                 max_depth: float | None = None, cloud_stride: int = 1) -> None:
        self.kinds = tuple(kinds)
        self.panel = panel
        self.title = title
        self.depth_unit = depth_unit
        self.max_depth = max_depth
        self.cloud_stride = cloud_stride
        self.calibration: Any = None
        self.disparity_range: tuple[float, float] | None = None
        self.depth_range: tuple[float, float] | None = None

    def set_ranges(self, disparity_range: Sequence[float], depth_range: Sequence[float] | None) -> None:
        self.disparity_range = (float(disparity_range[0]), float(disparity_range[1]))
        self.depth_range = None if depth_range is None else (float(depth_range[0]), float(depth_range[1]))

    @staticmethod
    def paths(base: str | Path, kinds: Sequence[str]) -> dict[str, Path]:
        """kind → file for a frame whose outputs share ``base``."""
        return {kind: Path(f"{base}{SAVE_KINDS[kind]}") for kind in kinds}

    def depth(self, disparity: np.ndarray) -> np.ndarray | None:
        """(H,W) depth in baseline units (NaN invalid), or None without a calibration."""
        if self.calibration is None:
            return None
        from edgestereo.geometry import disparity_to_depth

        return disparity_to_depth(disparity, self.calibration.fx, self.calibration.baseline, self.calibration.doffs)

    def picture(self, left: np.ndarray, right: np.ndarray, disparity: np.ndarray, *, panel: bool | None = None,
                depth: np.ndarray | None = None) -> np.ndarray:
        """(H',W',3) uint8 RGB: the coloured disparity, or the panel (``panel``, default: as configured)."""
        from edgestereo.viz import colorize_disparity, make_panel

        if self.disparity_range is None:
            raise EdgeStereoError("colour ranges must be set before the first picture")
        if not (self.panel if panel is None else panel):
            return colorize_disparity(disparity, *self.disparity_range)
        return make_panel(left, right, disparity, depth if depth is not None else self.depth(disparity),
                          title=self.title, disparity_range=self.disparity_range, depth_range=self.depth_range,
                          depth_unit=self.depth_unit)

    def write(self, base: str | Path, left: np.ndarray, right: np.ndarray, disparity: np.ndarray) -> np.ndarray:
        """Write the outputs of one frame; returns its picture (also when "color" is not saved)."""
        from edgestereo.data.io import write_image, write_pfm, write_ply
        from edgestereo.geometry import disparity_to_points

        paths = self.paths(base, self.kinds)
        depth = self.depth(disparity)
        picture = self.picture(left, right, disparity, depth=depth)
        if "disparity" in paths:
            write_pfm(paths["disparity"], disparity)
        if "depth" in paths and depth is not None:
            write_pfm(paths["depth"], depth)
        if "ply" in paths and self.calibration is not None:
            points, colors = disparity_to_points(disparity, self.calibration, left, max_depth=self.max_depth,
                                                 stride=self.cloud_stride)
            write_ply(paths["ply"], points, colors)
        if "color" in paths:
            write_image(paths["color"], picture)
        return picture
