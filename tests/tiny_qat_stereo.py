"""A tiny test-only network that torchao's x86 QAT quantizer accepts, so QAT and precision-table tests
do not pay for tracing a real model (a minute and more for stereonet-plus-small on a 2-core CPU).

Conv+BN+ReLU features run once on both views stacked as a batch (the quantizer refuses a
convolution called twice), a 1-D correlation with a 4-D deploy path, soft-argmin, bilinear
upsampling; it *matches* (fixed matching filters, unit-RMS features, a sharp softmax: ``tiny_matching``).
Importable from any test (``pythonpath = tests``); :func:`register_tiny_qat` adds it
to the registry and gives it a published loss for one test.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgestereo.models import _registry
from edgestereo.models._base import StereoModel, TrainingLoss, build_config
from edgestereo.ops.correlation import Correlation1d
from tiny_matching import SHARPNESS, init_matching_filters, unit_rms

TINY_QAT_NAME = "tiny-qat-stereo"


@dataclass(frozen=True)
class TinyQATConfig:
    max_disp: int = 32
    channels: int = 16


class TinyQATStereo(StereoModel):
    """left, right (B,3,H,W) in [0,255] → disparity (B,1,H,W) px; H, W multiples of 4."""

    divisor = 4
    training_loss = TrainingLoss("edgestereo.training.losses:MultiScaleSmoothL1Loss", {"weights": (1.0,)})

    def __init__(self, config: TinyQATConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
        )
        self.correlation = Correlation1d(config.max_disp // 4)
        init_matching_filters(self.features)

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        batch = left.shape[0]
        features = unit_rms(self.features(torch.cat([left, right], 0) / 127.5 - 1.0))
        cost = self.correlation(features[:batch], features[batch:])
        probability = torch.softmax(cost * SHARPNESS, dim=1)
        candidates = torch.arange(cost.shape[1], dtype=cost.dtype, device=cost.device).view(1, -1, 1, 1)
        disparity = (probability * candidates).sum(1, keepdim=True)
        return F.interpolate(disparity * 4.0, scale_factor=4, mode="bilinear", align_corners=False)


def tiny_qat_factory(**overrides) -> TinyQATStereo:
    return TinyQATStereo(build_config(TinyQATConfig(), overrides))


def register_tiny_qat(monkeypatch: pytest.MonkeyPatch) -> str:
    """Registers the tiny network (its published loss: smooth-L1 on its one prediction) for one test."""
    _registry.list_models()  # load the real families first, so the entry is not lost to a later load
    entry = _registry.ModelEntry(TINY_QAT_NAME, TinyQATStereo, TinyQATConfig(), "test-only tiny network for QAT")
    monkeypatch.setitem(_registry._REGISTRY, TINY_QAT_NAME, entry)
    return TINY_QAT_NAME
