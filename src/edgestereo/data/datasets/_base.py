"""What every data set shares: the sample dict, loading a pair of files, layout checks.

A sample is a dict: ``left``/``right`` (H,W,3) uint8 RGB; ``disp`` (H,W) float32 pixels, 0 where
invalid; ``valid`` (H,W) bool; optionally ``disp_right``/``valid_right``; ``meta``: a JSON-friendly
dict (``dataset``, ``index``, ``files``, ``has_gt``, ``calib`` where the layout has one).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch.utils.data import Dataset

from edgestereo.data.io import read_calib_txt, read_disparity, read_image
from edgestereo.errors import EdgeStereoError

__all__ = [
    "PairRecord",
    "PairStereoDataset",
    "Sample",
    "StereoDataset",
    "check_records_exist",
    "disparity_and_valid",
    "middlebury_calib",
    "require_folder",
]

Sample = dict[str, Any]
Transform = Callable[[Sample], Sample]

#: image suffixes the generic readers accept (anything OpenCV decodes; these are the usual ones).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def require_folder(path: Path, layout: str) -> Path:
    """``path`` if it is a folder; otherwise an error naming it and the layout expected."""
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "folder not found"
        raise EdgeStereoError(f"{path}: {what}; expected the layout {layout}")
    return path


def disparity_and_valid(raw: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth as stored (NaN/inf/≤0 = unknown) → (disp with 0 where invalid, valid)."""
    valid = np.isfinite(raw) & (raw > 0)
    if mask is not None:
        valid &= mask
    return np.where(valid, raw, 0).astype(np.float32), valid


def middlebury_calib(path: Path, unit: str | None) -> dict[str, Any]:
    """A Middlebury-style ``calib.txt`` as the JSON-friendly ``meta["calib"]`` dict."""
    calib = read_calib_txt(path)
    info: dict[str, Any] = {
        "focal": float(calib.cam0[0, 0]),
        "cx": float(calib.cam0[0, 2]),
        "cy": float(calib.cam0[1, 2]),
        "doffs": float(calib.doffs),
        "baseline": float(calib.baseline),
        "ndisp": int(calib.ndisp),
    }
    if unit:
        info["baseline_unit"] = unit
    return info


@dataclass(frozen=True)
class PairRecord:
    """Files of one sample. ``mask``: Middlebury-style occlusion mask (255 = seen by both cameras)
    applied when ``noc`` is asked for; ``calib``: calibration file and how to read it."""

    left: Path
    right: Path
    disp: Path | None = None
    disp_right: Path | None = None
    mask: Path | None = None
    mask_right: Path | None = None
    calib: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def paths(self) -> list[Path]:
        return [p for p in (self.left, self.right, self.disp, self.disp_right, self.mask, self.mask_right) if p]


def check_records_exist(records: Sequence[PairRecord], where: str) -> None:
    """Raise if any file named by ``records`` is missing: the count and the first few are named."""
    missing = [path for record in records for path in record.paths() if not os.path.isfile(path)]
    if missing:
        first = ", ".join(str(p) for p in missing[:3])
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise EdgeStereoError(f"{where}: {len(missing)} file(s) listed but not found: {first}{more}")


class StereoDataset(Dataset):
    """Base of every data set: indexing, ``meta`` bookkeeping, the optional transform.

    Subclasses set :attr:`name` and implement :meth:`__len__` and :meth:`load`.
    """

    name: ClassVar[str] = ""

    def __init__(self, transform: Transform | None = None) -> None:
        self.transform = transform

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, index: int) -> Sample:  # pragma: no cover - abstract
        """The untransformed sample ``index`` (0 ≤ index < len)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample:
        count = len(self)
        if not -count <= index < count:
            raise IndexError(f"{self.name}: index {index} out of range for {count} samples")
        index %= count
        sample = self.load(index)
        sample["meta"] = {"dataset": self.name, "index": index, **sample.get("meta", {})}
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} samples)"


class PairStereoDataset(StereoDataset):
    """A data set given as a list of :class:`PairRecord` (every published layout).

    ``noc``: count only pixels both cameras see, where the layout provides that (an occlusion mask or
    a non-occluded ground truth). Records without ground truth give ``valid`` all False.
    """

    def __init__(self, records: Iterable[PairRecord], transform: Transform | None = None, noc: bool = False) -> None:
        super().__init__(transform)
        self.records = list(records)
        self.noc = noc

    def __len__(self) -> int:
        return len(self.records)

    def _ground_truth(self, disp_path: Path | None, mask_path: Path | None, shape: tuple[int, int],
                      record: PairRecord) -> tuple[np.ndarray, np.ndarray]:
        if disp_path is None:
            return np.zeros(shape, np.float32), np.zeros(shape, bool)
        raw = read_disparity(disp_path)
        if raw.shape != shape:
            raise EdgeStereoError(f"{disp_path}: disparity is {raw.shape[1]}x{raw.shape[0]} but the images of "
                                  f"this sample are {shape[1]}x{shape[0]} ({record.left})")
        mask = None
        if self.noc and mask_path is not None:
            mask = read_image(mask_path, rgb8=False)
            mask = (mask if mask.ndim == 2 else mask[:, :, 0]) == 255
            if mask.shape != shape:
                raise EdgeStereoError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but the images of "
                                      f"this sample are {shape[1]}x{shape[0]}")
        return disparity_and_valid(raw, mask)

    def load(self, index: int) -> Sample:
        record = self.records[index]
        left, right = read_image(record.left), read_image(record.right)
        if left.shape != right.shape:
            raise EdgeStereoError(f"{record.right}: right image is {right.shape[1]}x{right.shape[0]} but the left "
                                  f"image {record.left} is {left.shape[1]}x{left.shape[0]}")
        shape = left.shape[:2]
        disp, valid = self._ground_truth(record.disp, record.mask, shape, record)
        sample: Sample = {"left": left, "right": right, "disp": disp, "valid": valid}
        if record.disp_right is not None:
            sample["disp_right"], sample["valid_right"] = self._ground_truth(
                record.disp_right, record.mask_right, shape, record)
        files = {"left": str(record.left), "right": str(record.right)}
        files.update({key: str(path) for key, path in (("disp", record.disp), ("disp_right", record.disp_right))
                      if path is not None})
        meta: dict[str, Any] = {"files": files, "has_gt": record.disp is not None, **record.extra}
        if record.calib is not None and record.calib.is_file():
            meta["calib"] = self.read_calib(record.calib)
        sample["meta"] = meta
        return sample

    def read_calib(self, path: Path) -> dict[str, Any]:
        """The layout's calibration file as ``meta["calib"]``: focal, cx, cy, doffs (px), baseline."""
        return middlebury_calib(path, None)
