"""Built-in sample data that works offline: the Middlebury 2014 "Motorcycle" pair that
scikit-image ships (down-sampled ×4 to 741×500), with ground truth and calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgestereo.data.io import MiddleburyCalib, write_calib_txt, write_image, write_pfm
from edgestereo.errors import EdgeStereoError

__all__ = ["MOTORCYCLE_CALIB", "SAMPLES", "load_motorcycle", "write_sample"]

#: Calibration of the ×4 down-sampled pair, as scikit-image documents it (baseline in mm).
MOTORCYCLE_CALIB = MiddleburyCalib(
    cam0=np.array([[994.978, 0, 311.193], [0, 994.978, 254.877], [0, 0, 1]]),
    cam1=np.array([[994.978, 0, 311.193 + 31.086], [0, 994.978, 254.877], [0, 0, 1]]),
    doffs=31.086,
    baseline=193.001,
    width=741,
    height=500,
    ndisp=68,
)

SAMPLES = ("motorcycle",)


def load_motorcycle() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left, right, disparity): (500,741,3) uint8 RGB ×2 and (500,741) float32 px (inf = no ground truth)."""
    from skimage.data import stereo_motorcycle

    left, right, disparity = stereo_motorcycle()
    return left, right, disparity.astype(np.float32)


def write_sample(name: str, out: str | Path) -> dict[str, Path]:
    """Write a sample as Middlebury files (``im0.png``, ``im1.png``, ``disp0.pfm``, ``calib.txt``)."""
    if name not in SAMPLES:
        raise EdgeStereoError(f"unknown sample {name!r}; available: {', '.join(SAMPLES)}")
    out = Path(out)
    left, right, disparity = load_motorcycle()
    finite = disparity[np.isfinite(disparity)]
    calib = MiddleburyCalib(**{**MOTORCYCLE_CALIB.__dict__, "vmin": float(finite.min()), "vmax": float(finite.max())})
    paths = {"left": out / "im0.png", "right": out / "im1.png", "disparity": out / "disp0.pfm",
             "calib": out / "calib.txt"}
    write_image(paths["left"], left)
    write_image(paths["right"], right)
    write_pfm(paths["disparity"], disparity)
    write_calib_txt(paths["calib"], calib)
    return paths
