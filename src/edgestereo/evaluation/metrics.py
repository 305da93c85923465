"""Stereo metrics: EPE, bad-τ, D1-all, over a validity mask; three diagnostics of a disparity map: the
8-px block pattern of a coarse-to-fine network, the compression of its range (a linear fit to the
ground truth), the pixels a left ground truth shows to be occluded in, or outside, the right view;
and masks that say where errors sit: near a depth edge, on textureless or textured surfaces.

Disparities are (H,W) or (B,H,W)/(B,1,H,W) arrays in pixels; images (H,W[,3]) uint8.
"""

from __future__ import annotations

import numpy as np

from edgestereo.errors import EdgeStereoError

__all__ = [
    "BAD_THRESHOLDS", "SEEN_PARTS", "LinearFit", "block_pattern_ratio", "disparity_metrics",
    "linear_fit", "near_depth_edge", "occluded_in_right_view", "right_view_masks", "split_seen", "textureless",
    "valid_mask",
]

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


def block_pattern_ratio(disparity, period: int = 8, clip: float = 4.0) -> float:
    """How much a disparity map jumps on a ``period``-pixel grid: for columns (and rows) the mean
    neighbour jump |d(x+1) − d(x)|, jumps clipped at ``clip`` px, per phase x mod ``period``; the
    ratio max/median over phases, the larger of the column and row ratios. A smooth or natural map
    scores about 1; blocks of a 1/``period`` stage upsampled without blending score well above.

    disparity: (H,W) px, finite where it counts (non-finite neighbours are left out).

    >>> blocks = np.kron(np.arange(16.0).reshape(4, 4), np.ones((8, 8)))
    >>> block_pattern_ratio(blocks) > 100
    True
    """
    d = _numpy(disparity)
    d = d.reshape(d.shape[-2:])
    ratios = []
    for jumps in (np.abs(np.diff(d, axis=1)), np.abs(np.diff(d, axis=0)).T):
        jumps = np.minimum(jumps, clip)
        means = []
        for phase in range(period):
            values = jumps[:, phase::period]
            values = values[np.isfinite(values)]
            if values.size:
                means.append(values.mean())
        median = float(np.median(means))
        ratios.append(float(max(means)) / median if median > 0 else float("inf") if max(means) > 0 else 1.0)
    return max(ratios)


class LinearFit:
    """Least-squares ``pred ≈ slope·gt + offset`` pooled over the pixels of many pairs, added one pair
    at a time (:meth:`add`; sums in float64, no pixels kept), over the pixels :func:`valid_mask`
    keeps and the prediction is finite. slope < 1 with a positive offset is a compressed range (near
    surfaces too far, far ones too near)."""

    def __init__(self) -> None:
        self._sums = np.zeros(5)  # pixels, Σgt, Σpred, Σgt², Σgt·pred

    def add(self, pred, gt, valid=None) -> None:
        pred_np, gt_np = _numpy(pred), _numpy(gt)
        pred_np = pred_np.reshape(gt_np.shape)
        mask = valid_mask(gt_np, valid) & np.isfinite(pred_np)
        x, y = gt_np[mask], pred_np[mask]
        self._sums += (x.size, x.sum(), y.sum(), x @ x, x @ y)

    def result(self) -> tuple[float, float]:
        """(slope, offset); EdgeStereoError with fewer than two pixels or a constant ground truth."""
        n, sum_x, sum_y, sum_xx, sum_xy = self._sums
        if n < 2:
            raise EdgeStereoError("linear fit needs at least two valid pixels")
        spread = n * sum_xx - sum_x**2
        if spread <= 1e-12 * n * sum_xx:
            raise EdgeStereoError("linear fit needs ground truth that varies")
        slope = (n * sum_xy - sum_x * sum_y) / spread
        return float(slope), float((sum_y - slope * sum_x) / n)


def linear_fit(pred, gt, valid=None) -> tuple[float, float]:
    """(slope, offset) of :class:`LinearFit` over one disparity map."""
    fit = LinearFit()
    fit.add(pred, gt, valid)
    return fit.result()


def occluded_in_right_view(disp_left, tolerance: float = 0.5) -> np.ndarray:
    """Pixels of the left view that the right camera does not see, from the left disparity alone:
    x is hidden when a pixel to its right lands left of it in the right image (x' − d(x') < x − d(x) −
    ``tolerance``): a nearer surface covers it. disp_left: (H,W) px (non-finite: unknown, never
    occluding) → (H,W) bool.

    >>> d = np.array([[1.0, 1, 1, 1, 5, 5, 5]])   # a near surface from x = 4 lands at −1, 0, 1
    >>> occluded_in_right_view(d).astype(int).tolist()   # x = 1, 2, 3 land at 0, 1, 2: behind it
    [[0, 1, 1, 1, 0, 0, 0]]
    """
    d = _numpy(disp_left)
    d = d.reshape(d.shape[-2:])
    landing = np.arange(d.shape[1])[None, :] - d
    landing = np.where(np.isfinite(landing), landing, np.inf)
    # the smallest landing column among the pixels strictly to the right
    right_min = np.minimum.accumulate(landing[:, ::-1], axis=1)[:, ::-1]
    right_min = np.concatenate([right_min[:, 1:], np.full((d.shape[0], 1), np.inf)], axis=1)
    return right_min < landing - tolerance


def right_view_masks(disp_left, tolerance: float = 0.5) -> dict[str, np.ndarray]:
    """The known (finite) pixels of the left view split by what the right camera shows of them, from
    the left disparity alone: ``outside`` where the match falls left of the right image (x − d(x) <
    0), ``covered`` where a nearer surface hides it (:func:`occluded_in_right_view`; outside wins),
    ``seen`` the rest (Middlebury's and the renderer's "non-occluded"). Unknown pixels are in none.
    disp_left: (H,W) px → {"seen", "covered", "outside": (H,W) bool}, in that order.

    >>> masks = right_view_masks(np.array([[3.0, 3, 3, 3, np.inf]]))  # x < 3 lands left of the image
    >>> {name: mask.astype(int).tolist()[0] for name, mask in masks.items()}
    {'seen': [0, 0, 0, 1, 0], 'covered': [0, 0, 0, 0, 0], 'outside': [1, 1, 1, 0, 0]}
    """
    d = _numpy(disp_left)
    d = d.reshape(d.shape[-2:])
    known = np.isfinite(d)
    outside = known & (np.arange(d.shape[1])[None, :] - d < 0)
    covered = known & ~outside & occluded_in_right_view(d, tolerance)
    return {"seen": known & ~outside & ~covered, "covered": covered, "outside": outside}


def near_depth_edge(disp, jump: float = 1.0, radius: int = 3) -> np.ndarray:
    """Known pixels within ``radius`` px (a (2·radius+1)² square) of a depth edge: two known
    4-neighbours whose disparities differ by more than ``jump`` px, both of them on the edge.
    disp: (H,W) px (non-finite: unknown) → (H,W) bool.

    >>> near_depth_edge(np.array([[1.0, 1, 1, 1, 1, 5, 5]]), radius=1).astype(int).tolist()
    [[0, 0, 0, 1, 1, 1, 1]]
    """
    import cv2  # here, not at import time: the rest of this module needs numpy only

    d = _numpy(disp)
    d = d.reshape(d.shape[-2:]).astype(np.float64)
    known = np.isfinite(d)
    d = np.where(known, d, 0.0)
    edge = np.zeros(d.shape, bool)
    across = known[:, 1:] & known[:, :-1] & (np.abs(np.diff(d, axis=1)) > jump)
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    down = known[1:] & known[:-1] & (np.abs(np.diff(d, axis=0)) > jump)
    edge[1:] |= down
    edge[:-1] |= down
    if radius > 0:
        edge = cv2.dilate(edge.astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)) > 0
    return edge & known


def textureless(image: np.ndarray, window: int = 9, below: float = 2.0) -> np.ndarray:
    """Pixels whose ``window``×``window`` grey-level standard deviation is below ``below`` (8-bit
    levels): nothing for matching to lock on to. image: (H,W) grey or (H,W,3) RGB uint8 → (H,W) bool."""
    import cv2

    image = np.asarray(image)
    grey = (cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image).astype(np.float32)
    mean = cv2.blur(grey, (window, window))
    mean_sq = cv2.blur(grey * grey, (window, window))
    return np.sqrt(np.maximum(mean_sq - mean * mean, 0)) < below


#: the parts of :func:`split_seen`, in the order the benchmarks print them.
SEEN_PARTS = ("near a depth edge", "textureless", "textured")


def split_seen(seen: np.ndarray, disp_left, left_image: np.ndarray) -> dict[str, np.ndarray]:
    """The seen pixels (``right_view_masks(disp_left)["seen"]``) by what matching meets there: ``near a
    depth edge`` (within 3 px of a jump above 1 px, :func:`near_depth_edge`; it wins), ``textureless``
    (9×9 grey standard deviation below 2 levels, :func:`textureless`) and ``textured`` (the rest).
    seen: (H,W) bool; disp_left: (H,W) px; left_image: (H,W[,3]) uint8 → {part: (H,W) bool} in
    :data:`SEEN_PARTS` order."""
    seen, left_image = np.asarray(seen, bool), np.asarray(left_image)
    if left_image.shape[:2] != seen.shape:
        raise EdgeStereoError(f"left image {left_image.shape[:2]} and disparity {seen.shape} differ in size")
    edge = seen & near_depth_edge(disp_left, jump=1.0, radius=3)
    flat = seen & ~edge & textureless(left_image, window=9, below=2.0)
    return {"near a depth edge": edge, "textureless": flat, "textured": seen & ~edge & ~flat}
