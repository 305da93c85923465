"""``predict``: a stereo pair in, disparity, depth and a valid mask out — for scripts and notebooks.

It goes through the same predictor factory (:func:`edgestereo.runtime.factory.create_predictor`)
and the same depth computation (:func:`edgestereo.runtime.frame_writer.depth_map`) as the commands.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgestereo import DEFAULT_MODEL
from edgestereo.data.io import as_rgb8, load_pair
from edgestereo.geometry import StereoCalibration

__all__ = ["DEFAULT_MODEL", "StereoResult", "as_rgb8", "load_pair", "predict"]


@dataclass
class StereoResult:
    """What :func:`predict` returns.

    disparity: (H,W) float32 pixels; valid: (H,W) bool (finite, > 0); depth: (H,W) float32 in
    baseline units (NaN invalid) when a calibration was given; timings in milliseconds.
    """

    disparity: np.ndarray
    valid: np.ndarray
    depth: np.ndarray | None = None
    calib: StereoCalibration | None = None
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def predict(
    left: Any,
    right: Any,
    model: Any = None,
    *,
    calib: StereoCalibration | str | Path | None = None,
    pretrained: str | Path | None = None,
    random_weights: bool = False,
    device: str | None = None,
    precision: str = "fp32",
    threads: int | None = None,
    scale: float = 1.0,
    max_memory: float | None = None,
    runtime: str | None = None,
) -> StereoResult:
    """Estimate disparity (and depth, with a calibration) for one stereo pair.

    left, right: paths, (H,W,3) uint8 arrays or (3,H,W) tensors in [0,255]. model: a registry name
    (default :data:`DEFAULT_MODEL`), a weights file, the path of an exported ``.onnx`` file (run in
    ONNX Runtime), a :class:`~edgestereo.models.StereoModel`, or a predictor (any callable from two
    uint8 images to a disparity map). pretrained: weights for a named model (default: the packaged
    ones; a model that ships none needs them, or ``random_weights=True`` for an untrained network).
    calib: a :class:`~edgestereo.geometry.StereoCalibration`, or a file of the rectified views as the
    CLI's ``--calib`` reads it (Middlebury ``calib.txt``, or fx, fy, cx, cy, baseline as JSON/YAML);
    a file for another image size, or for cameras still to rectify, is refused.
    threads: intra-op threads (None leaves the process's setting). scale: run the network on the views
    resized by this factor (0.5 for a 12-MP pair); the disparity comes back at the input size, in
    its pixels. max_memory: GB the network may take on the pair (default: 4, or 80 % of the free
    memory when less); a larger pair is refused with the scale that fits, before it runs. runtime: for an
    ``.onnx`` model "onnxruntime" (default) or "openvino" (then ``precision`` "fp32", "bf16" or "auto").

    >>> result = predict("im0.png", "im1.png", calib="calib.txt")  # doctest: +SKIP
    >>> result.disparity.shape, float(np.nanmedian(result.depth))  # doctest: +SKIP
    """
    from edgestereo.runtime.factory import create_predictor
    from edgestereo.runtime.frame_writer import depth_map

    t0 = time.perf_counter()
    left_rgb, right_rgb = load_pair(left, right)
    if isinstance(calib, (str, Path)):
        from edgestereo.calibration import pair_calibration, read_calibration

        calib = pair_calibration(read_calibration(calib), (left_rgb.shape[1], left_rgb.shape[0]))
    t1 = time.perf_counter()
    predictor = create_predictor(model, pretrained=pretrained, random_weights=random_weights, device=device,
                                 precision=precision, threads=threads, scale=scale, max_memory=max_memory,
                                 runtime=runtime)
    prepare = getattr(predictor, "prepare", None)
    if prepare is not None:  # the memory check of this size, counted with the model, not the inference
        prepare(*left_rgb.shape[:2])
    t2 = time.perf_counter()
    disparity = predictor(left_rgb, right_rgb)
    t3 = time.perf_counter()
    valid = np.isfinite(disparity) & (disparity > 0)
    depth = depth_map(disparity, calib)
    t4 = time.perf_counter()
    timings = {"load_ms": (t1 - t0) * 1e3, "model_ms": (t2 - t1) * 1e3,
               "inference_ms": (t3 - t2) * 1e3, "postprocess_ms": (t4 - t3) * 1e3}
    return StereoResult(disparity, valid, depth, calib, timings, {"model": predictor.name})
