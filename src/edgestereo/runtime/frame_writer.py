"""What a frame produces, computed and written in one place for ``infer``, ``batch`` and ``live``:
the depth map, the pictures (coloured disparity, four-panel) and the output files, each written
atomically (disparity and depth PFM, PNG pictures, PLY point cloud).

A :class:`FrameWriter` names its files with a layout: kind → pattern of ``{base}``.
:data:`FRAME_FILES` is the layout of a stream of frames (``NAME.png``, ``NAME_disp.pfm`` …),
:data:`PAIR_FILES` the one of a single pair in its own folder (``disparity.pfm``, ``panel.png`` …).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from edgestereo.errors import EdgeStereoError
from edgestereo.geometry import StereoCalibration

__all__ = ["FRAME_FILES", "KINDS", "PAIR_FILES", "FrameWriter", "WrittenFrame", "depth_map", "stable_ranges"]

#: what a frame can write: float disparity and depth (PFM), the coloured disparity and the panel
#: (PNG), and a coloured point cloud (PLY). depth and ply need a calibration.
KINDS = ("disparity", "color", "panel", "depth", "ply")
#: a stream of frames: the files of frame NAME beside each other (the picture is the coloured
#: disparity or, for a stream of panels, the panel).
FRAME_FILES = {"color": "{base}.png", "panel": "{base}.png", "disparity": "{base}_disp.pfm",
               "depth": "{base}_depth.pfm", "ply": "{base}.ply"}
#: a single pair: its files in the folder ``base``.
PAIR_FILES = {"disparity": "{base}/disparity.pfm", "color": "{base}/disparity.png", "panel": "{base}/panel.png",
              "depth": "{base}/depth.pfm", "ply": "{base}/cloud.ply"}
_CALIBRATED = ("depth", "ply")


def depth_map(disparity: np.ndarray, calibration: StereoCalibration | None) -> np.ndarray | None:
    """(H,W) disparity in pixels → (H,W) float32 depth in baseline units (NaN where invalid), or None
    without a calibration. The one depth computation of the API and the applications."""
    if calibration is None:
        return None
    from edgestereo.geometry import disparity_to_depth

    return disparity_to_depth(disparity, calibration.fx, calibration.baseline, calibration.doffs)


def stable_ranges(disparity: np.ndarray, calibration: StereoCalibration | None, fixed: Sequence[float] | None = None
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


class WrittenFrame(NamedTuple):
    """What :meth:`FrameWriter.write` wrote: kind → file, and the pictures it made ("color", "panel")."""

    files: dict[str, Path]
    pictures: dict[str, np.ndarray]


class FrameWriter:
    """Builds a frame's pictures and writes the chosen ``kinds`` of output at ``layout``'s paths.

    calibration: the rectified views' (for depth and clouds), or None. The colour ranges must be
    set (:meth:`set_ranges`) before the first picture; the depth range may stay None (each frame's own).
    title and depth_unit label the panel; max_depth and cloud_stride thin the point cloud.
    """

    def __init__(self, kinds: Sequence[str], layout: Mapping[str, str] = FRAME_FILES, *, title: str = "",
                 calibration: StereoCalibration | None = None, depth_unit: str = "", max_depth: float | None = None,
                 cloud_stride: int = 1) -> None:
        unknown = [kind for kind in kinds if kind not in layout]
        if unknown:
            raise EdgeStereoError(f"unknown output(s) {', '.join(unknown)}; choose from {', '.join(layout)}")
        if cloud_stride < 1:
            raise EdgeStereoError(f"--cloud-stride must be ≥ 1, got {cloud_stride}")
        self.kinds = tuple(dict.fromkeys(kinds))
        self.layout = dict(layout)
        self.title = title
        self.calibration = calibration
        self.depth_unit = depth_unit
        self.max_depth = max_depth
        self.cloud_stride = cloud_stride
        self.disparity_range: tuple[float, float] | None = None
        self.depth_range: tuple[float, float] | None = None

    def set_ranges(self, disparity_range: Sequence[float], depth_range: Sequence[float] | None = None) -> None:
        """Colour ranges: disparity (px) and depth (baseline units; None: each frame's own)."""
        self.disparity_range = (float(disparity_range[0]), float(disparity_range[1]))
        self.depth_range = None if depth_range is None else (float(depth_range[0]), float(depth_range[1]))

    def paths(self, base: str | Path, kinds: Sequence[str] | None = None) -> dict[str, Path]:
        """kind → file of the frame whose outputs share ``base`` (default: the writer's kinds)."""
        return {kind: Path(self.layout[kind].format(base=base)) for kind in (self.kinds if kinds is None else kinds)}

    def picture(self, left: np.ndarray, right: np.ndarray, disparity: np.ndarray, *, panel: bool,
                depth: np.ndarray | None = None) -> np.ndarray:
        """(H',W',3) uint8 RGB: the coloured disparity, or with ``panel`` left | right | disparity | depth."""
        from edgestereo.viz import colorize_disparity, make_panel

        if self.disparity_range is None:
            raise EdgeStereoError("colour ranges must be set before the first picture")
        if not panel:
            return colorize_disparity(disparity, *self.disparity_range)
        if depth is None:
            depth = depth_map(disparity, self.calibration)
        return make_panel(left, right, disparity, depth, title=self.title, disparity_range=self.disparity_range,
                          depth_range=self.depth_range, depth_unit=self.depth_unit)

    def write(self, base: str | Path, left: np.ndarray, right: np.ndarray, disparity: np.ndarray,
              depth: np.ndarray | None = None) -> WrittenFrame:
        """Write the outputs of one frame: left, right (H,W,3) uint8, disparity (H,W) px, depth
        (default: computed from the calibration). Depth and clouds are skipped without a calibration.
        All files of the frame appear together or, when one cannot be written, none does."""
        from edgestereo.data.io import atomic_paths, write_image, write_pfm, write_ply
        from edgestereo.geometry import disparity_to_points

        depth = depth if depth is not None else depth_map(disparity, self.calibration)
        paths = {kind: path for kind, path in self.paths(base).items()
                 if kind not in _CALIBRATED or self.calibration is not None}
        written = WrittenFrame(paths, {})
        with atomic_paths(list(paths.values())) as temporaries:
            for kind, tmp in zip(paths, temporaries):
                if kind == "disparity":
                    write_pfm(tmp, disparity)
                elif kind == "depth":
                    write_pfm(tmp, depth)
                elif kind == "ply":
                    points, colors = disparity_to_points(disparity, self.calibration, left,
                                                         max_depth=self.max_depth, stride=self.cloud_stride)
                    write_ply(tmp, points, colors)
                else:
                    picture = self.picture(left, right, disparity, panel=kind == "panel", depth=depth)
                    write_image(tmp, picture)
                    written.pictures[kind] = picture
        return written
