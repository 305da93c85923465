"""OpenCV semi-global block matching (StereoSGBM, 3-way mode): the classical baseline.

It follows the model contract (tensors in, tensors out) so every app and metric treats it like a
network, but it has no weights and cannot be exported to ONNX.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from edgestereo.errors import EdgeStereoError
from edgestereo.models._base import StereoModel, check_stereo_inputs
from edgestereo.models._registry import register_model

__all__ = ["SGBM", "SGBMConfig", "fill_invalid_background"]


@dataclass(frozen=True)
class SGBMConfig:
    """StereoSGBM parameters. ``max_disp`` is OpenCV's ``numDisparities`` (rounded up to a multiple
    of 16). ``p1``/``p2`` default to ``p1_factor``·3·block² and ``p2_factor``·3·block² (OpenCV's form).

    Block size, P factors, uniqueness ratio and speckle filter are the best of a grid on 36 synthetic
    pairs by mean D1 (``benchmarks/tune_sgbm.py``), never tuned on an evaluation image.
    """

    max_disp: int = 128
    block_size: int = 3
    p1: int | None = None
    p2: int | None = None
    p1_factor: int = 2
    p2_factor: int = 16
    uniqueness_ratio: int = 20
    speckle_window_size: int = 50
    speckle_range: int = 1
    disp12_max_diff: int = 1
    pre_filter_cap: int = 63
    #: fill invalid pixels as the KITTI devkit does (min of the valid neighbours in the row).
    fill_invalid: bool = True


def fill_invalid_background(disparity: np.ndarray) -> np.ndarray:
    """KITTI-devkit background interpolation: each run of invalid pixels (non-finite or ≤ 0) in a
    row takes the smaller of its two valid neighbours (the one next to it at the row ends).

    disparity: (H,W) pixels → (H,W) float32; rows with no valid pixel become 0.
    """
    disparity = np.asarray(disparity, dtype=np.float32)
    valid = np.isfinite(disparity) & (disparity > 0)
    h, w = disparity.shape
    cols = np.arange(w)[None, :].repeat(h, axis=0)
    left_idx = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    right_idx = np.minimum.accumulate(np.where(valid, cols, w)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(h)[:, None]
    safe = np.where(valid, disparity, 0.0)
    left_val = np.where(left_idx >= 0, safe[rows, np.clip(left_idx, 0, w - 1)], np.inf)
    right_val = np.where(right_idx < w, safe[rows, np.clip(right_idx, 0, w - 1)], np.inf)
    filled = np.minimum(left_val, right_val)
    filled = np.where(np.isfinite(filled), filled, 0.0)
    return np.where(valid, disparity, filled).astype(np.float32)


def _to_uint8_hwc(image: Tensor) -> np.ndarray:
    """(3,H,W) float in [0,255] → (H,W,3) uint8."""
    return image.detach().float().clamp(0, 255).round().byte().permute(1, 2, 0).cpu().numpy()


class SGBM(StereoModel):
    """OpenCV StereoSGBM (MODE_SGBM_3WAY) on the grey images, sub-pixel (1/16 px) disparities.

    The images are padded on the left by ``max_disp`` columns so the left border gets matched too.
    """

    divisor = 1
    exportable = False
    has_weights = False

    def __init__(self, config: SGBMConfig) -> None:
        super().__init__()
        if config.max_disp < 1:
            raise EdgeStereoError(f"max_disp must be ≥ 1, got {config.max_disp}")
        if config.block_size < 1 or config.block_size % 2 == 0:
            raise EdgeStereoError(f"block_size must be odd and ≥ 1, got {config.block_size}")
        self.config = config
        self.num_disparities = -(-config.max_disp // 16) * 16
        area = config.block_size**2
        self._matcher = cv2.StereoSGBM_create(
            minDisparity=0,
            numDisparities=self.num_disparities,
            blockSize=config.block_size,
            P1=config.p1 if config.p1 is not None else config.p1_factor * 3 * area,
            P2=config.p2 if config.p2 is not None else config.p2_factor * 3 * area,
            disp12MaxDiff=config.disp12_max_diff,
            preFilterCap=config.pre_filter_cap,
            uniquenessRatio=config.uniqueness_ratio,
            speckleWindowSize=config.speckle_window_size,
            speckleRange=config.speckle_range,
            mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY,
        )

    def match(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """left, right: (H,W,3) uint8 RGB → (H,W) float32 disparity in pixels (NaN where invalid
        unless ``fill_invalid``)."""
        pad = self.num_disparities
        grey = [cv2.copyMakeBorder(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), 0, 0, pad, 0, cv2.BORDER_REPLICATE)
                for im in (left, right)]
        raw = self._matcher.compute(grey[0], grey[1])[:, pad:]
        disparity = raw.astype(np.float32) / 16.0
        disparity[raw < 0] = np.nan
        if self.config.fill_invalid:
            disparity = fill_invalid_background(disparity)
        return disparity

    def inference_bytes(self, height: int, width: int) -> int:
        """OpenCV's buffers and the conversions around them: about 80 bytes per pixel of the padded
        views (measured as peak RSS at 1500x1000 and 3000x2000, 64 and 256 disparities)."""
        return 80 * height * (width + self.num_disparities)

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        """left, right: (B,3,H,W) RGB in [0,255] → disparity (B,1,H,W) pixels."""
        check_stereo_inputs(left, right)
        out = [torch.from_numpy(self.match(_to_uint8_hwc(lt), _to_uint8_hwc(rt))) for lt, rt in zip(left, right)]
        return torch.stack(out)[:, None].to(device=left.device, dtype=torch.float32)


register_model("sgbm", SGBM, SGBMConfig(),
               description="OpenCV StereoSGBM, 3-way mode: the classical baseline (no weights)")
