"""A model family in one file, as a new family is added to ``edgestereo/models/``: its config, its
network, its training loss, its checkpoint adapter and its registered variants. Nothing else in
edgestereo names it. test_new_family.py registers it for one test at a time.

ToyStereo: Conv features at 1/4 (both views stacked as one batch), a 1-D correlation volume,
softmax over the candidates (both ops with their export-safe twins) and a soft-argmin, upsampled
×4. Its published checkpoints (a made-up upstream) call the feature extractor ``backbone``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgestereo.models import StereoModel, TrainingLoss, register_model
from edgestereo.models._checkpoint import Checkpoint
from edgestereo.ops.correlation import Correlation1d
from edgestereo.ops.softmax import ChannelSoftmax


@dataclass(frozen=True)
class ToyStereoConfig:
    """max_disp: largest disparity (px, a multiple of 4); channels: feature channels."""

    max_disp: int = 32
    channels: int = 8


class ToyStereo(StereoModel):
    """left, right (B,3,H,W) in [0,255] → disparity (B,1,H,W) px; H, W multiples of 4."""

    divisor = 4
    training_loss = TrainingLoss("edgestereo.training.losses:MultiScaleSmoothL1Loss", {"weights": (1.0,)})

    def __init__(self, config: ToyStereoConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
        )
        self.correlation = Correlation1d(config.max_disp // 4)
        self.softmax = ChannelSoftmax()

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        batch = left.shape[0]
        features = self.features(torch.cat([left, right], 0) / 127.5 - 1.0)
        probability = self.softmax(self.correlation(features[:batch], features[batch:]) * 4.0)
        candidates = torch.arange(probability.shape[1], dtype=probability.dtype, device=probability.device)
        disparity = (probability * candidates.view(1, -1, 1, 1)).sum(1, keepdim=True)
        return F.interpolate(disparity * 4.0, scale_factor=4.0, mode="bilinear", align_corners=False)

    @classmethod
    def adapt_checkpoint(cls, checkpoint: Checkpoint, base: ToyStereoConfig, config: dict[str, Any]
                         ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Published files name the feature extractor ``backbone``."""
        prefix = "backbone."
        state_dict = {("features." + key[len(prefix):] if key.startswith(prefix) else key): value
                      for key, value in checkpoint.state_dict.items()}
        return state_dict, config


register_model("toy-stereo", ToyStereo, ToyStereoConfig(), description="test-only family in one file")
register_model("toy-stereo-wide", ToyStereo, ToyStereoConfig(channels=16),
               description="test-only family in one file, wider features")
