"""Data-set pairs for calibration and scoring, and the scores of a quantized network: EPE, bad-τ
and D1 of an ONNX file or a PyTorch callable over samples of the network's fixed size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgestereo.errors import EdgeStereoError

__all__ = ["fit_sample", "load_samples", "score_onnx", "score_torch"]


def load_samples(name: str, root: str | None, split: str, num: int, size: tuple[int, int], seed: int = 0,
                 max_disp: float | None = None) -> list[dict[str, Any]]:
    """Up to ``num`` samples of a data set; the synthetic one is generated at ``size`` (H, W) with
    disparities below ``max_disp`` (the model's, so calibration sees the ranges it will meet) and
    below half the width (a pair needs overlap to have ground truth)."""
    from edgestereo.data import create_dataset

    options: dict[str, Any] = {}
    if name == "synthetic" and root is None:
        options = {"num": num, "size": size, "seed": seed}
        if max_disp is not None:
            options["max_disp"] = min(max_disp, size[1] // 2)
    dataset = create_dataset(name, root, split=split, **options)
    return [dataset[index] for index in range(min(num, len(dataset)))]


def fit_sample(sample: dict[str, Any], height: int, width: int) -> dict[str, Any]:
    """Centre-crop a data-set sample (``left``, ``right`` (H,W,3) uint8, ``disp`` (H,W) px, ``valid``)
    to at most height×width; a smaller sample is left as it is (the predictor pads it)."""
    h, w = sample["left"].shape[:2]
    top, left = max(0, (h - height) // 2), max(0, (w - width) // 2)
    crop = (slice(top, top + min(h, height)), slice(left, left + min(w, width)))
    fitted = dict(sample)
    for key in ("left", "right", "disp", "valid"):
        if key in sample and sample[key] is not None:
            fitted[key] = np.ascontiguousarray(sample[key][crop])
    return fitted


def _pooled_metrics(predictions: list[np.ndarray], samples: list[dict[str, Any]]) -> dict[str, float]:
    """Metrics over the pixels of all samples together (``disp``, ``valid``); predictions (H,W) px."""
    from edgestereo.evaluation.metrics import disparity_metrics

    if not predictions:
        raise EdgeStereoError("no evaluation pair: the evaluation data set is empty")
    truths = [np.asarray(s["disp"], dtype=np.float32).ravel() for s in samples]
    valids = [np.asarray(s.get("valid", s["disp"] > 0), dtype=bool).ravel() for s in samples]
    return disparity_metrics(np.concatenate([p.ravel() for p in predictions]), np.concatenate(truths),
                             np.concatenate(valids))


def score_onnx(
    path: str | Path, samples: Sequence[dict[str, Any]], *, threads: int | None = None
) -> dict[str, float]:
    """EPE, bad-τ and D1 of an ONNX file over data-set samples (centre-cropped to the graph's size;
    pixels over all samples pooled). Samples need ``disp`` and ``valid``."""
    from edgestereo.runtime.factory import create_predictor

    predictor = create_predictor(onnx=path, device="cpu", threads=threads)
    height, width = predictor.input_size
    fitted = [fit_sample(sample, height, width) for sample in samples]
    return _pooled_metrics([predictor(s["left"], s["right"]) for s in fitted], fitted)


def score_torch(
    predict: Callable[[Any, Any], Any], samples: Sequence[dict[str, Any]], height: int, width: int
) -> dict[str, float]:
    """EPE, bad-τ, D1 of a PyTorch callable ((1,3,H,W) ×2 → (1,1,H,W) px) over samples centre-cropped
    to height×width (pixels of all samples pooled, as :func:`score_onnx`)."""
    import torch

    fitted = [fit_sample(sample, height, width) for sample in samples]
    predictions = []
    with torch.no_grad():
        for sample in fitted:
            if sample["left"].shape[:2] != (height, width):
                raise EdgeStereoError(f"sample of {sample['left'].shape[1]}x{sample['left'].shape[0]} is smaller "
                                      f"than the {width}x{height} the precision table is scored at")
            left, right = (torch.from_numpy(sample[k]).permute(2, 0, 1)[None].float() for k in ("left", "right"))
            predictions.append(predict(left, right)[0, 0].float().numpy())
    return _pooled_metrics(predictions, fitted)
