"""A tiny test-only stereo network, so export tests do not depend on the big models (importable from
any test, ``pythonpath = tests``; ``tests/export/conftest.py`` makes fixtures of it).

Conv features at 1/4 resolution, a 1-D correlation, soft-argmin, bilinear upsampling; it *matches*
(fixed matching filters, unit-RMS features, a sharp softmax: see ``tiny_matching``), so a broken graph
shows in its output. Its correlation has a real deploy switch: the reference path builds a 5-D
(B,C,D,H,W) volume (an NPU rejects it), the deploy path shifts and pads with 4-D tensors only; same
weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgestereo.models._base import StereoModel, build_config
from tiny_matching import SHARPNESS, init_matching_filters, unit_rms

TINY_NAME = "tiny-test-stereo"


class TinyCorrelation(nn.Module):
    """(B,C,H,W) x2 → (B,D,H,W): mean over channels of left(x)·right(x-d), zero where x < d."""

    def __init__(self, num_disp: int) -> None:
        super().__init__()
        self.num_disp = num_disp
        self.deploy_mode = False

    def _shifted(self, right: Tensor, d: int) -> Tensor:
        return F.pad(right, (d, 0))[..., : right.shape[-1]]

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        if self.deploy_mode:
            return torch.cat([(left * self._shifted(right, d)).mean(1, keepdim=True) for d in range(self.num_disp)], 1)
        volume = torch.stack([self._shifted(right, d) for d in range(self.num_disp)], dim=2)
        return (left.unsqueeze(2) * volume).mean(1)

    def switch_to_deploy(self, enabled: bool = True) -> None:
        self.deploy_mode = enabled


@dataclass(frozen=True)
class TinyStereoConfig:
    max_disp: int = 32
    channels: int = 16


class TinyStereo(StereoModel):
    """left, right (B,3,H,W) in [0,255] → disparity (B,1,H,W) pixels; H, W multiples of 4."""

    divisor = 4

    def __init__(self, config: TinyStereoConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
        )
        self.correlation = TinyCorrelation(config.max_disp // 4)
        init_matching_filters(self.features)

    def extract(self, image: Tensor) -> Tensor:
        """(B,3,H,W) in [0,255] → unit-RMS features (B,C,H/4,W/4)."""
        return unit_rms(self.features(image / 127.5 - 1.0))

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        left_f, right_f = self.extract(left), self.extract(right)
        cost = self.correlation(left_f, right_f)
        probability = torch.softmax(cost * SHARPNESS, dim=1)
        candidates = torch.arange(cost.shape[1], dtype=cost.dtype, device=cost.device).view(1, -1, 1, 1)
        disparity = (probability * candidates).sum(1, keepdim=True)
        return F.interpolate(disparity * 4.0, scale_factor=4, mode="bilinear", align_corners=False)


def tiny_factory(**overrides) -> TinyStereo:
    return TinyStereo(build_config(TinyStereoConfig(), overrides))


class FragileOffset(nn.Module):
    """Adds 1000 and takes it away again: exact in float, but the activation in between spans 0..1003, so
    one uint8 step is ~4 and the unit-scale features drown in quantization noise."""

    def forward(self, features: Tensor) -> Tensor:
        return (features + 1000.0) - 1000.0


class FragileTinyStereo(TinyStereo):
    """The tiny network with one layer group, ``/fragile``, that int8 breaks."""

    def __init__(self, config: TinyStereoConfig) -> None:
        super().__init__(config)
        self.fragile = FragileOffset()

    def extract(self, image: Tensor) -> Tensor:
        return unit_rms(self.fragile(self.features(image / 127.5 - 1.0)))
