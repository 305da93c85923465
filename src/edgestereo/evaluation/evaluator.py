"""Evaluate any predictor on any data set: metrics over all and non-occluded pixels, runtime per
pair, and predictions saved in a benchmark's submission format.

The predictor is anything with the :class:`~edgestereo.runtime.predictor.Predictor` interface
(PyTorch, ONNX Runtime, a quantised model …): two (H,W,3) uint8 RGB images → (H,W) float32
disparity, so the same function scores every variant of a deployment.

>>> from edgestereo.data import create_dataset  # doctest: +SKIP
>>> report = evaluate(predictor, create_dataset("kitti2015", "/data/kitti2015"))  # doctest: +SKIP
>>> report["all"]["d1"], report["runtime_ms"]["median"]  # doctest: +SKIP
(4.87, 83.1)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgestereo.errors import EdgeStereoError
from edgestereo.evaluation.metrics import disparity_metrics

__all__ = ["SAVE_FORMATS", "evaluate", "format_report", "prediction_name"]

#: how predictions are written: PFM (Middlebury, ETH3D, SceneFlow) or KITTI 16-bit PNG under disp_0/.
SAVE_FORMATS = ("pfm", "kitti")
_WEIGHTED = ("epe", "bad0.5", "bad1", "bad2", "bad3", "bad4", "d1")


def prediction_name(meta: dict[str, Any], index: int) -> str:
    """The file stem of a pair's prediction: the scene (Middlebury, ETH3D), the pair name (folder),
    the left image's stem (KITTI ``000000_10``), else the index."""
    for key in ("scene", "name"):
        if meta.get(key):
            return str(meta[key])
    files = meta.get("files")
    left = files.get("left") if isinstance(files, dict) else None
    return Path(left).stem if left else f"{index:06d}"


def _pool(per_pair: Sequence[dict[str, float]]) -> dict[str, float] | None:
    """Pixel-weighted metrics over every scored pixel of the set (each pair weighs by its pixels)."""
    scored = [m for m in per_pair if m]
    if not scored:
        return None
    weights = np.array([m["valid_px"] for m in scored])
    pooled = {key: float(np.dot([m[key] for m in scored], weights) / weights.sum()) for key in _WEIGHTED}
    pooled["valid_px"] = float(weights.sum())
    return pooled


def _write_prediction(folder: Path, fmt: str, name: str, disparity: np.ndarray) -> Path:
    from edgestereo.data.io import write_kitti_disparity, write_pfm

    if fmt == "kitti":
        path = folder / "disp_0" / f"{name}.png"
        write_kitti_disparity(path, disparity)
    else:
        path = folder / f"{name}.pfm"
        write_pfm(path, disparity)
    return path


def evaluate(
    predictor: Callable[[np.ndarray, np.ndarray], np.ndarray],
    dataset: Any,
    *,
    noc_dataset: Any | None = None,
    max_disp: float | None = None,
    save_dir: str | Path | None = None,
    save_format: str = "pfm",
    limit: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run ``predictor`` on every pair of ``dataset`` and score it.

    dataset: samples as ``edgestereo.data`` gives them (``left``/``right`` (H,W,3) uint8, ``disp``
    (H,W) px, ``valid`` (H,W) bool, ``meta``). noc_dataset: the same pairs with non-occluded
    ``valid`` masks (``create_dataset(..., noc=True)``), scored as "noc". max_disp: only pixels whose
    ground truth is below it (px) count. save_dir: write each prediction (``save_format`` "pfm" or
    "kitti"). limit: the first N pairs only.

    Returns ``{"dataset", "pairs", "pairs_scored", "all", "noc", "runtime_ms", "per_pair"}``:
    "all"/"noc" hold EPE (px), bad-0.5/1/2/3/4 and D1-all (%), pooled over pixels, or None without
    ground truth; "runtime_ms" the mean and median of the predictor call (the first pair, a warm-up,
    is left out when there are several).
    """
    if save_format not in SAVE_FORMATS:
        raise EdgeStereoError(f"unknown prediction format {save_format!r}; choose {', '.join(SAVE_FORMATS)}")
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if count == 0:
        raise EdgeStereoError(f"{getattr(dataset, 'name', 'the data set')}: no pair to evaluate")
    if noc_dataset is not None and len(noc_dataset) != len(dataset):
        raise EdgeStereoError("the non-occluded data set does not have the same pairs")
    folder = Path(save_dir) if save_dir is not None else None
    indices: Any = range(count)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"eval {getattr(dataset, 'name', '')}", unit="pair")
    per_pair, all_metrics, noc_metrics, runtimes = [], [], [], []
    for index in indices:
        sample = dataset[index]
        meta = sample.get("meta", {})
        start = time.perf_counter()
        disparity = np.asarray(predictor(sample["left"], sample["right"]), dtype=np.float32)
        runtimes.append((time.perf_counter() - start) * 1000.0)
        if disparity.shape != sample["left"].shape[:2]:
            raise EdgeStereoError(f"predictor returned {disparity.shape} for a {sample['left'].shape[:2]} pair")
        name = prediction_name(meta, index)
        entry: dict[str, Any] = {"name": name, "runtime_ms": runtimes[-1]}
        has_gt = "disp" in sample and bool(np.any(sample.get("valid", sample["disp"] > 0)))
        metrics = _score(disparity, sample, max_disp) if has_gt else {}
        all_metrics.append(metrics)
        entry["all"] = metrics or None
        if noc_dataset is not None and has_gt:
            noc_sample = noc_dataset[index]
            noc = _score(disparity, noc_sample, max_disp)
            noc_metrics.append(noc)
            entry["noc"] = noc or None
        if folder is not None:
            entry["file"] = str(_write_prediction(folder, save_format, name, disparity))
        per_pair.append(entry)
    timed = runtimes[1:] if len(runtimes) > 1 else runtimes
    return {
        "dataset": getattr(dataset, "name", "") or type(dataset).__name__,
        "pairs": count,
        "pairs_scored": sum(1 for m in all_metrics if m),
        "all": _pool(all_metrics),
        "noc": _pool(noc_metrics) if noc_dataset is not None else None,
        "runtime_ms": {"mean": float(np.mean(timed)), "median": float(np.median(timed))},
        "per_pair": per_pair,
    }


def _score(disparity: np.ndarray, sample: dict[str, Any], max_disp: float | None) -> dict[str, float]:
    valid = sample.get("valid")
    if valid is not None and not np.any(valid):
        return {}
    try:
        return disparity_metrics(disparity, sample["disp"], valid, max_disp=max_disp)
    except EdgeStereoError:
        # every ground-truth pixel is at or above max_disp: the pair has nothing to score
        return {}


def format_report(report: dict[str, Any], title: str = "") -> str:
    """A plain-text table of one :func:`evaluate` report: a row per mask, then the runtime."""
    header = f"{'mask':<6}{'EPE px':>9}{'bad0.5 %':>10}{'bad1 %':>9}{'bad2 %':>9}{'bad3 %':>9}{'D1 %':>8}{'pixels':>12}"
    lines = [title or f"{report['dataset']}: {report['pairs']} pairs, {report['pairs_scored']} with ground truth",
             header]
    for mask in ("all", "noc"):
        metrics = report.get(mask)
        if metrics:
            lines.append(f"{mask:<6}{metrics['epe']:>9.3f}{metrics['bad0.5']:>10.2f}{metrics['bad1']:>9.2f}"
                         f"{metrics['bad2']:>9.2f}{metrics['bad3']:>9.2f}{metrics['d1']:>8.2f}"
                         f"{int(metrics['valid_px']):>12d}")
    if not report.get("all"):
        lines.append("(no ground truth: predictions only)")
    runtime = report["runtime_ms"]
    lines.append(f"runtime per pair: {runtime['median']:.1f} ms median, {runtime['mean']:.1f} ms mean")
    return "\n".join(lines)
