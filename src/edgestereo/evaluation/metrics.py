"""Stereo metrics: EPE, bad-τ, D1-all, over a validity mask.

All functions take (H,W) or (B,H,W)/(B,1,H,W) arrays of disparities in pixels.
"""

from __future__ import annotations

import numpy as np

from edgestereo.errors import EdgeStereoError

__all__ = ["BAD_THRESHOLDS", "disparity_metrics", "valid_mask"]

BAD_THRESHOLDS = (0.5, 1.0, 2.0, 3.0, 4.0)


def _numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def valid_mask(gt: np.ndarray, valid: np.ndarray | None = None, max_disp: float | None = None) -> np.ndarray:
    """Pixels that count: finite positive ground truth, inside ``valid``, below ``max_disp``."""
    gt = _numpy(gt)
    mask = np.isfinite(gt) & (gt > 0)
    if valid is not None:
        mask &= _numpy(valid).astype(bool).reshape(gt.shape)
    if max_disp is not None:
        mask &= gt < max_disp
    return mask


def disparity_metrics(
    pred,
    gt,
    valid=None,
    *,
    max_disp: float | None = None,
) -> dict[str, float]:
    """EPE (px), bad-τ for τ in {0.5, 1, 2, 3, 4} (% of pixels with error > τ), D1-all (% with error
    > 3 px and > 5 % of the ground truth), and ``valid_px`` (the number of pixels scored).

    Pixels count where the ground truth is finite and > 0, ``valid`` is true and, with ``max_disp``,
    the ground truth is below it. Non-finite predictions are scored as 0 px.

    >>> m = disparity_metrics(np.array([[1.0, 5.0]]), np.array([[1.5, 1.0]]))
    >>> m["epe"], m["bad1"], m["d1"]
    (2.25, 50.0, 50.0)
    """
    pred_np, gt_np = _numpy(pred), _numpy(gt)
    if pred_np.size != gt_np.size:
        raise EdgeStereoError(f"prediction shape {pred_np.shape} does not match ground truth {gt_np.shape}")
    pred_np = pred_np.reshape(gt_np.shape)
    mask = valid_mask(gt_np, valid, max_disp)
    count = int(mask.sum())
    if count == 0:
        raise EdgeStereoError("no valid ground-truth pixel to score (check the mask and max_disp)")
    estimate = np.where(np.isfinite(pred_np), pred_np, 0.0)[mask]
    truth = gt_np[mask]
    error = np.abs(estimate - truth)
    metrics = {"epe": float(error.mean())}
    for tau in BAD_THRESHOLDS:
        metrics[f"bad{tau:g}"] = float((error > tau).mean() * 100.0)
    metrics["d1"] = float(((error > 3.0) & (error > 0.05 * truth)).mean() * 100.0)
    metrics["valid_px"] = float(count)
    return metrics
