"""KITTI stereo 2012 and 2015, as published (``data_stereo_flow`` and ``data_scene_flow``).

Layouts (``root``)::

    KITTI 2012                                  KITTI 2015
    training/colored_0/000000_10.png            training/image_2/000000_10.png
    training/colored_1/000000_10.png            training/image_3/000000_10.png
    training/disp_occ/000000_10.png             training/disp_occ_0/000000_10.png
    training/disp_noc/000000_10.png             training/disp_noc_0/000000_10.png
    training/calib/000000.txt   (optional)      training/calib_cam_to_cam/000000.txt   (optional)
    testing/colored_0, colored_1                testing/image_2, image_3

Ground truth is sparse 16-bit PNG (value / 256 px, 0 = unknown). ``noc=True`` reads the
non-occluded maps. The ``testing`` split has no ground truth (``valid`` all False).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgestereo.data.datasets._base import (
    PairRecord,
    PairStereoDataset,
    Transform,
    check_records_exist,
    require_folder,
)
from edgestereo.errors import EdgeStereoError, ReadError

__all__ = ["Kitti2012", "Kitti2015", "read_kitti_calib"]


def read_kitti_calib(path: Path, left_key: str, right_key: str) -> dict[str, Any]:
    """Rectified projection matrices of a KITTI calibration file → focal, cx, cy (px), doffs (px),
    baseline (metres)."""
    matrices = {}
    for line in path.read_text().splitlines():
        key, _, values = line.partition(":")
        try:
            numbers = [float(v) for v in values.split()]
        except ValueError:
            continue
        if len(numbers) == 12:
            matrices[key.strip()] = np.array(numbers).reshape(3, 4)
    missing = [key for key in (left_key, right_key) if key not in matrices]
    if missing:
        raise ReadError(path, f"calibration is missing {', '.join(missing)}")
    left, right = matrices[left_key], matrices[right_key]
    return {
        "focal": float(left[0, 0]),
        "cx": float(left[0, 2]),
        "cy": float(left[1, 2]),
        "doffs": float(right[0, 2] - left[0, 2]),
        "baseline": float((left[0, 3] - right[0, 3]) / left[0, 0]),
        "baseline_unit": "m",
    }


class _Kitti(PairStereoDataset):
    folders: ClassVar[dict[str, str]]  # role → folder name
    calib_folder: ClassVar[str]
    calib_keys: ClassVar[tuple[str, str]]
    year: ClassVar[int]

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 noc: bool = False) -> None:
        if root is None:
            raise EdgeStereoError(f"{self.name} needs root: the folder holding training/ and testing/")
        layout = (f"root/{{training,testing}}/{{{self.folders['left']},{self.folders['right']}}}/000000_10.png "
                  f"and training/{self.folders['occ']}/ (KITTI {self.year})")
        root = require_folder(Path(root), layout)
        if split not in ("train", "test"):
            raise EdgeStereoError(f"{self.name}: unknown split {split!r}; choose train or test")
        base = require_folder(root / ("training" if split == "train" else "testing"), layout)
        left_dir = require_folder(base / self.folders["left"], layout)
        right_dir = require_folder(base / self.folders["right"], layout)
        disp_dir = require_folder(base / self.folders["noc" if noc else "occ"], layout) if split == "train" else None
        lefts = sorted(left_dir.glob("*_10.png"))
        if not lefts:
            raise EdgeStereoError(f"{left_dir}: no *_10.png images; expected the layout {layout}")
        records = []
        for left in lefts:
            frame = left.name.split("_")[0]
            records.append(PairRecord(left=left, right=right_dir / left.name,
                                      disp=disp_dir / left.name if disp_dir else None,
                                      calib=base / self.calib_folder / f"{frame}.txt", extra={"frame": frame}))
        check_records_exist(records, str(base))
        super().__init__(records, transform, noc=noc)

    def read_calib(self, path: Path) -> dict[str, Any]:
        return read_kitti_calib(path, *self.calib_keys)


class Kitti2012(_Kitti):
    """KITTI stereo 2012 (194 training, 195 testing pairs of the colour cameras)."""

    name = "kitti2012"
    year = 2012
    folders: ClassVar[dict[str, str]] = {
        "left": "colored_0", "right": "colored_1", "occ": "disp_occ", "noc": "disp_noc"}
    calib_folder = "calib"
    calib_keys = ("P2", "P3")


class Kitti2015(_Kitti):
    """KITTI stereo 2015 (200 training, 200 testing pairs)."""

    name = "kitti2015"
    year = 2015
    folders: ClassVar[dict[str, str]] = {
        "left": "image_2", "right": "image_3", "occ": "disp_occ_0", "noc": "disp_noc_0"}
    calib_folder = "calib_cam_to_cam"
    calib_keys = ("P_rect_02", "P_rect_03")
