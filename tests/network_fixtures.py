"""Helpers for tests of registered networks, importable from any test (``pythonpath = tests``)."""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

from edgestereo.models import StereoModel, create_model


def calibrated(name: str, **config) -> StereoModel:
    """A stand-in for a trained model: every BatchNorm gets a random non-zero scale (the initial zero
    scales switch residual and cross-scale branches off, which would hide them from parity tests) and
    statistics from a few training-mode passes, so activations have a trained model's range."""
    torch.manual_seed(0)
    model = create_model(name, **config)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.1, 0.1)
    refine = getattr(model, "refine", None)
    if refine is not None and hasattr(refine, "residual"):  # StereoNetPlus v2: its refinement starts at zero
        torch.nn.init.normal_(refine.residual.weight, std=0.05)
    left, right = model.example_inputs(64, 128, batch=2)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(left, right)
    return model.eval()


class MaxRank(TorchFunctionMode):
    """Records the highest rank among the tensors that torch functions return."""

    def __init__(self) -> None:
        super().__init__()
        self.max_rank = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor):
                self.max_rank = max(self.max_rank, tensor.dim())
        return out


def assert_parity(report, mean_px: float = 1e-3, max_px: float = 1e-2, min_std: float = 0.1,
                  min_distinct: int = 100) -> None:
    """An ONNX-vs-PyTorch :class:`~edgestereo.export.exporter.ParityReport` within (mean_px, max_px), on a
    PyTorch output varied enough (std ≥ min_std px, ≥ min_distinct values) that a constant or
    saturated graph could not pass."""
    assert report.reference_std >= min_std and report.reference_distinct >= min_distinct, f"degenerate: {report}"
    assert report.mean_abs <= mean_px and report.max_abs <= max_px, str(report)
