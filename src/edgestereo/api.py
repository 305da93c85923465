"""``predict``: a stereo pair in, disparity, depth and a valid mask out — for scripts and notebooks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgestereo.errors import EdgeStereoError
from edgestereo.geometry import StereoCalibration, disparity_to_depth

__all__ = ["DEFAULT_MODEL", "StereoResult", "as_rgb8", "load_pair", "predict"]

#: the model used when none is named: StereoNetPlus-small with the weights packaged with edgestereo
#: (trained on the built-in synthetic set; README, "The default model").
DEFAULT_MODEL = "stereonet-plus-small"


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


def as_rgb8(image: Any, what: str = "image") -> np.ndarray:
    """A path, (H,W[,C]) uint8/uint16 array, or (3,H,W)/(1,3,H,W) tensor in [0,255] → (H,W,3) uint8 RGB."""
    from edgestereo.data.io import read_image

    if isinstance(image, (str, Path)):
        return read_image(image)
    if hasattr(image, "detach"):  # torch tensor
        tensor = image.detach().cpu().float()
        if tensor.dim() == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
            raise EdgeStereoError(f"{what}: expected a (3,H,W) tensor, got shape {tuple(image.shape)}")
        image = tensor.clamp(0, 255).round().byte().permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.dtype == np.uint16:
        array = (array.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if array.dtype != np.uint8:
        raise EdgeStereoError(f"{what}: expected uint8 image data, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise EdgeStereoError(f"{what}: expected an (H,W,3) image, got shape {array.shape}")
    return np.ascontiguousarray(array[:, :, :3])


def load_pair(left: Any, right: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both views as (H,W,3) uint8 RGB (grey is converted); raises if their sizes differ."""
    left_rgb, right_rgb = as_rgb8(left, "left"), as_rgb8(right, "right")
    if left_rgb.shape != right_rgb.shape:
        raise EdgeStereoError(
            f"left {left_rgb.shape[1]}x{left_rgb.shape[0]} and right "
            f"{right_rgb.shape[1]}x{right_rgb.shape[0]} images differ in size"
        )
    return left_rgb, right_rgb


def predict(
    left: Any,
    right: Any,
    model: Any = None,
    *,
    calib: StereoCalibration | str | Path | None = None,
    pretrained: str | Path | bool | None = None,
    device: str | None = None,
    precision: str = "fp32",
) -> StereoResult:
    """Estimate disparity (and depth, with a calibration) for one stereo pair.

    left, right: paths, (H,W,3) uint8 arrays or (3,H,W) tensors in [0,255]. model: a registry name
    (default :data:`DEFAULT_MODEL`), the path of an exported ``.onnx`` file (run in ONNX Runtime), a
    :class:`~edgestereo.models.StereoModel`, or a predictor (any callable from two uint8 images to a
    disparity map). pretrained: weights for a named model (default: the packaged ones, for a model
    that ships them). calib: a :class:`~edgestereo.geometry.StereoCalibration` or a Middlebury
    ``calib.txt`` path.
    """
    t0 = time.perf_counter()
    left_rgb, right_rgb = load_pair(left, right)
    if isinstance(calib, (str, Path)):
        calib = StereoCalibration.from_calib_txt(calib)
    t1 = time.perf_counter()
    predictor = _make_predictor(model, pretrained, device, precision)
    t2 = time.perf_counter()
    disparity = predictor(left_rgb, right_rgb)
    t3 = time.perf_counter()
    valid = np.isfinite(disparity) & (disparity > 0)
    depth = disparity_to_depth(disparity, calib.fx, calib.baseline, calib.doffs) if calib else None
    t4 = time.perf_counter()
    timings = {"load_ms": (t1 - t0) * 1e3, "model_ms": (t2 - t1) * 1e3,
               "inference_ms": (t3 - t2) * 1e3, "postprocess_ms": (t4 - t3) * 1e3}
    return StereoResult(disparity, valid, depth, calib, timings, {"model": predictor.name})


def _make_predictor(model: Any, pretrained: Any, device: str | None, precision: str):
    from edgestereo.models import StereoModel, create_model, default_weights
    from edgestereo.runtime.predictor import TorchPredictor

    if isinstance(model, (str, Path)) and str(model).endswith(".onnx"):
        from edgestereo.runtime.onnx_predictor import OnnxPredictor

        return OnnxPredictor(model, device=device)
    if model is None or isinstance(model, str):
        name = model or DEFAULT_MODEL
        return TorchPredictor(create_model(name, pretrained=default_weights(name, pretrained)), device, precision)
    if isinstance(model, StereoModel):
        return TorchPredictor(model, device, precision)
    if callable(model):
        if not hasattr(model, "name"):
            model.name = type(model).__name__
        return model
    raise EdgeStereoError(f"model must be a name, a StereoModel or a predictor, got {type(model).__name__}")
