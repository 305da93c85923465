"""Predictors: one interface that the apps call, whatever runs underneath.

A predictor maps a stereo pair of (H,W,3) uint8 RGB images to an (H,W) float32 disparity in
pixels, handling padding, devices and precision itself.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import numpy as np
import torch

from edgestereo.data.io import check_pair_size
from edgestereo.errors import EdgeStereoError
from edgestereo.models._base import StereoModel
from edgestereo.runtime.memory import MemoryLimitError, check_memory, check_scale, memory_limit, scaled_size
from edgestereo.runtime.padding import InputPadder

__all__ = ["Predictor", "ScaledPredictor", "TorchPredictor", "resolve_device", "to_tensor"]


class Predictor(Protocol):
    """What the apps need from a runtime (built by :func:`edgestereo.runtime.factory.create_predictor`)."""

    name: str

    def __call__(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """left, right: (H,W,3) uint8 RGB → disparity (H,W) float32 pixels."""
        ...


def resolve_device(device: str | None = None) -> torch.device:
    """``None``/"auto" → CUDA when available, else CPU; otherwise the named device (checked)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise EdgeStereoError(f"unknown device {device!r} (use cpu, cuda, cuda:N or auto)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise EdgeStereoError(f"device {device!r} asked for, but CUDA is not available here")
    return resolved


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H,W,3) uint8 RGB → (1,3,H,W) float32 in [0,255]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().to(device)


class TorchPredictor:
    """Runs a :class:`StereoModel` in PyTorch; ``precision`` "fp32", "bf16" or "fp16" (autocast).

    Before the first pair of each size runs, the memory it needs is estimated (without running it)
    and a pair over ``max_memory`` GB is refused (:func:`~edgestereo.runtime.memory.check_memory`;
    default :func:`~edgestereo.runtime.memory.memory_limit`).
    """

    runtime = "torch"

    def __init__(self, model: StereoModel, device: str | torch.device | None = None, precision: str = "fp32",
                 max_memory: float | None = None):
        if precision not in ("fp32", "bf16", "fp16"):
            raise EdgeStereoError(f"unknown precision {precision!r} (fp32, bf16, fp16)")
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise EdgeStereoError("fp16 autocast needs a CUDA device; use bf16 on the CPU")
        self.model = model.to(self.device).eval()
        self.precision = precision
        self.name = model.model_name or type(model).__name__
        self.memory_limit = memory_limit(max_memory, self.device)
        self._sizes_checked: set[tuple[int, int]] = set()

    def _autocast(self):
        if self.precision == "fp32" or not self.model.exportable:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def prepare(self, height: int, width: int) -> None:
        """Estimate the memory a (height, width) pair needs and refuse it over the limit, once per size
        (the first pair of each size does it otherwise, inside its inference time)."""
        if (height, width) not in self._sizes_checked:
            check_memory(self.model, height, width, self.memory_limit, self.name)
            self._sizes_checked.add((height, width))

    @torch.inference_mode()
    def __call__(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """left, right: (H,W,3) uint8 RGB → disparity (H,W) float32 pixels."""
        check_pair_size(left, right)
        self.prepare(*left.shape[:2])
        left_t, right_t = to_tensor(left, self.device), to_tensor(right, self.device)
        padder = InputPadder(left_t.shape, self.model.divisor)
        left_t, right_t = padder.pad(left_t, right_t)
        with self._autocast():
            disparity = self.model(left_t, right_t)
        return padder.unpad(disparity)[0, 0].float().cpu().numpy()


class ScaledPredictor:
    """Runs ``predictor`` on both views resized by ``scale`` and returns the disparity at the input
    size, in the input's pixels (resized back, divided by the horizontal factor): a 12-MP pair at
    scale 0.5 runs on 3-MP views and needs a quarter of the memory."""

    def __init__(self, predictor: Predictor, scale: float) -> None:
        check_scale(scale)
        self.predictor = predictor
        self.scale = scale
        self.name = f"{predictor.name} at scale {scale:g}"
        self.runtime = getattr(predictor, "runtime", "")
        self.precision = getattr(predictor, "precision", "")

    def prepare(self, height: int, width: int) -> None:
        """What the wrapped predictor's ``prepare`` checks, at the scaled size."""
        prepare = getattr(self.predictor, "prepare", None)
        if prepare is not None:
            size = scaled_size(width, height, self.scale)
            try:
                prepare(size[1], size[0])
            except MemoryLimitError as exc:
                raise exc.at_scale(self.scale, (width, height)) from None

    def __call__(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """left, right: (H,W,3) uint8 RGB → disparity (H,W) float32 pixels."""
        import cv2

        check_pair_size(left, right)
        height, width = left.shape[:2]
        size = scaled_size(width, height, self.scale)
        interpolation = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
        views = [cv2.resize(view, size, interpolation=interpolation) for view in (left, right)]
        try:
            disparity = self.predictor(*views)
        except MemoryLimitError as exc:
            raise exc.at_scale(self.scale, (width, height)) from None
        full = cv2.resize(disparity, (width, height), interpolation=cv2.INTER_LINEAR)
        return full * np.float32(width / size[0])
