"""GwcNet (Guo et al., CVPR 2019), checkpoint-compatible with xy-guo/GwcNet.

PSMNet-style feature extractor at 1/4 resolution (320 channels: layer2 ⊕ layer3 ⊕ layer4) →
group-wise correlation volume (40 groups) over max_disp/4 candidates, plus for ``gwcnet-gc`` a
concatenation volume of 12-channel features → two 3-D conv pairs and three stacked hourglasses →
a 3-D classifier per output → trilinear up-sampling to (max_disp, H, W) → softmax → expected
disparity. Training returns the four outputs (after the first pair and each hourglass); inference
only the last. Images are normalised with the ImageNet mean/std GwcNet was trained with.

Published checkpoints are ``{"model": state_dict, "optimizer": …, "epoch": …}`` saved from
``nn.DataParallel`` (``module.`` prefixes), which :func:`~edgestereo.models._checkpoint.read_checkpoint`
unwraps. The maximum disparity is not stored in them; it is a free choice at inference (any
multiple of 16), since every layer slides along disparity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgestereo.errors import EdgeStereoError
from edgestereo.models._base import StereoModel, TrainingLoss, check_stereo_inputs
from edgestereo.models._checkpoint import Checkpoint
from edgestereo.models._registry import register_model
from edgestereo.models.blocks.image import as_rgb, normalize
from edgestereo.models.blocks.volume3d import (
    VolumeBatchNorm3d,
    VolumeConv3d,
    VolumeConvTranspose3d,
    conv_bn_3d,
)
from edgestereo.ops.conv3d import static_shape
from edgestereo.ops.cost_volume3d import (
    VolumeLayout,
    concatenation_maps,
    disparity_regression,
    groupwise_correlation_maps,
)
from edgestereo.ops.upsample3d import CostVolumeUpsample

__all__ = ["GwcNet", "GwcNetConfig"]

_IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
#: features at 1/4 resolution, then two stride-2 levels along disparity, height and width.
_DISP_MULTIPLE = 16


@dataclass(frozen=True)
class GwcNetConfig:
    """GwcNet hyper-parameters. ``concat_channels`` 0 is GwcNet-g (group-wise correlation only),
    12 is GwcNet-gc; ``max_disp`` must be a multiple of 16."""

    max_disp: int = 192
    num_groups: int = 40
    concat_channels: int = 0


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
            dilation: int) -> nn.Sequential:
    """2-D convolution without bias and batch norm; a dilated one pads by its dilation."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, dilation if dilation > 1 else padding,
                  dilation, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """PSMNet's residual block: conv-BN-ReLU-conv-BN plus the (projected) input, no final ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int, padding: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(conv_bn(in_channels, channels, 3, stride, padding, dilation), nn.ReLU())
        self.conv2 = conv_bn(channels, channels, 3, 1, padding, dilation)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.conv2(self.conv1(x)) + shortcut


class FeatureExtraction(nn.Module):
    """(B,3,H,W) normalised → {"gwc": (B,320,H/4,W/4), "concat": (B,concat_channels,H/4,W/4) if any}."""

    def __init__(self, concat_channels: int) -> None:
        super().__init__()
        self.firstconv = nn.Sequential(
            conv_bn(3, 32, 3, 2, 1, 1), nn.ReLU(),
            conv_bn(32, 32, 3, 1, 1, 1), nn.ReLU(),
            conv_bn(32, 32, 3, 1, 1, 1), nn.ReLU(),
        )
        self.layer1 = self._layer(32, 32, 3, 1, 1)
        self.layer2 = self._layer(32, 64, 16, 2, 1)
        self.layer3 = self._layer(64, 128, 3, 1, 1)
        self.layer4 = self._layer(128, 128, 3, 1, 2)
        self.lastconv = None
        if concat_channels:
            self.lastconv = nn.Sequential(conv_bn(320, 128, 3, 1, 1, 1), nn.ReLU(),
                                          nn.Conv2d(128, concat_channels, 1, bias=False))

    @staticmethod
    def _layer(in_channels: int, channels: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
        return nn.Sequential(*(BasicBlock(in_channels if i == 0 else channels, channels, stride if i == 0 else 1,
                                          1, dilation) for i in range(blocks)))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        l2 = self.layer2(self.layer1(self.firstconv(x)))
        l3 = self.layer3(l2)
        l4 = self.layer4(l3)
        features = {"gwc": torch.cat((l2, l3, l4), dim=1)}
        if self.lastconv is not None:
            features["concat"] = self.lastconv(features["gwc"])
        return features


def _conv_bn_relu_3d(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_3d(in_channels, out_channels, 3, stride, 1), nn.ReLU())


def _up_bn_3d(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        VolumeConvTranspose3d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1, bias=False),
        VolumeBatchNorm3d(out_channels),
    )


class Hourglass(nn.Module):
    """Encoder-decoder over (D,H,W): two stride-2 levels down, two transposed convolutions up,
    with 1×1×1 shortcuts. (B,C,D,H,W) → same shape (or slice stacks on the deploy path)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu_3d(channels, 2 * channels, 2)
        self.conv2 = _conv_bn_relu_3d(2 * channels, 2 * channels, 1)
        self.conv3 = _conv_bn_relu_3d(2 * channels, 4 * channels, 2)
        self.conv4 = _conv_bn_relu_3d(4 * channels, 4 * channels, 1)
        self.conv5 = _up_bn_3d(4 * channels, 2 * channels)
        self.conv6 = _up_bn_3d(2 * channels, channels)
        self.redir1 = conv_bn_3d(channels, channels, 1, 1, 0)
        self.redir2 = conv_bn_3d(2 * channels, 2 * channels, 1, 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        conv2 = self.conv2(self.conv1(x))
        conv4 = self.conv4(self.conv3(conv2))
        conv5 = F.relu(self.conv5(conv4) + self.redir2(conv2))
        return F.relu(self.conv6(conv5) + self.redir1(x))


def _classifier() -> nn.Sequential:
    return nn.Sequential(conv_bn_3d(32, 32, 3, 1, 1), nn.ReLU(), VolumeConv3d(32, 1, 3, padding=1, bias=False))


class GwcNet(StereoModel):
    """GwcNet-g / GwcNet-gc: (B,3,H,W) RGB (or (B,1,H,W) grey) in [0,255] → disparity (B,1,H,W) pixels.

    H and W must be multiples of 16.
    """

    divisor = 16
    #: smooth-L1 on the four predictions, weighted 0.5, 0.5, 0.7, 1.0.
    training_loss = TrainingLoss("edgestereo.training.losses:MultiScaleSmoothL1Loss",
                                 {"weights": (0.5, 0.5, 0.7, 1.0)})

    def __init__(self, config: GwcNetConfig) -> None:
        super().__init__()
        _check_config(config)
        self.config = config
        self.feature_extraction = FeatureExtraction(config.concat_channels)
        self.dres0 = nn.Sequential(conv_bn_3d(config.num_groups + 2 * config.concat_channels, 32, 3, 1, 1), nn.ReLU(),
                                   conv_bn_3d(32, 32, 3, 1, 1), nn.ReLU())
        self.dres1 = nn.Sequential(conv_bn_3d(32, 32, 3, 1, 1), nn.ReLU(), conv_bn_3d(32, 32, 3, 1, 1))
        self.dres2 = Hourglass(32)
        self.dres3 = Hourglass(32)
        self.dres4 = Hourglass(32)
        self.classif0 = _classifier()
        self.classif1 = _classifier()
        self.classif2 = _classifier()
        self.classif3 = _classifier()
        self.volume_layout = VolumeLayout()
        self.upsample = CostVolumeUpsample()
        self._init_weights()

    def _init_weights(self) -> None:
        # GwcNet's initialisation: He-normal over fan-out for 2-D and 3-D convolutions (transposed
        # ones keep PyTorch's default), unit/zero batch norm.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                fan_out = math.prod(module.kernel_size) * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _aggregate(self, left: Tensor, right: Tensor) -> list[Tensor]:
        """Normalised views → [cost0, out1, out2, out3]: (B,32,D/4,H/4,W/4) volumes (or slice stacks)."""
        features_left = self.feature_extraction(left)
        features_right = self.feature_extraction(right)
        num_disp = self.config.max_disp // 4
        maps = groupwise_correlation_maps(features_left["gwc"], features_right["gwc"], num_disp,
                                          self.config.num_groups)
        if self.config.concat_channels:
            concat = concatenation_maps(features_left["concat"], features_right["concat"], num_disp)
            maps = [torch.cat((g, c), dim=1) for g, c in zip(maps, concat)]
        cost0 = self.dres0(self.volume_layout(maps))
        cost0 = self.dres1(cost0) + cost0
        out1 = self.dres2(cost0)
        out2 = self.dres3(out1)
        out3 = self.dres4(out2)
        return [cost0, out1, out2, out3]

    def _regress(self, volume: Tensor, classifier: nn.Module, height: int, width: int) -> Tensor:
        """Aggregated volume → cost (B,D/4,H/4,W/4) → up-sampled (B,D,H,W) → disparity (B,1,H,W) pixels."""
        cost = self.volume_layout.cost_maps(classifier(volume))
        cost = self.upsample(cost, (self.config.max_disp, height, width))
        candidates = torch.arange(self.config.max_disp, device=cost.device, dtype=cost.dtype)
        return disparity_regression(F.softmax(cost, dim=1), candidates)

    def _normalized_pair(self, left: Tensor, right: Tensor) -> tuple[Tensor, Tensor]:
        left, right = as_rgb(left, "left"), as_rgb(right, "right")
        check_stereo_inputs(left, right, self.divisor)
        return normalize(left, _IMAGENET_MEAN, _IMAGENET_STD), normalize(right, _IMAGENET_MEAN, _IMAGENET_STD)

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        """left, right: (B,3,H,W) RGB or (B,1,H,W) grey in [0,255] → disparity (B,1,H,W) pixels."""
        left, right = self._normalized_pair(left, right)
        out3 = self._aggregate(left, right)[-1]
        return self._regress(out3, self.classif3, *static_shape(left)[-2:])

    def forward_train(self, left: Tensor, right: Tensor) -> list[Tensor]:
        """The four predictions GwcNet is trained on (after dres1, and after each hourglass), each
        (B,1,H,W) pixels, in that order (the published loss weights them 0.5, 0.5, 0.7, 1.0)."""
        left, right = self._normalized_pair(left, right)
        classifiers = (self.classif0, self.classif1, self.classif2, self.classif3)
        return [self._regress(volume, classifier, *static_shape(left)[-2:])
                for volume, classifier in zip(self._aggregate(left, right), classifiers)]

    @classmethod
    def adapt_checkpoint(cls, checkpoint: Checkpoint, base: GwcNetConfig, config: dict[str, Any]
                         ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Refuse GwcNet-g weights for GwcNet-gc and the reverse, with a message naming both."""
        has_concat = any(key.startswith("feature_extraction.lastconv.") for key in checkpoint.state_dict)
        wants_concat = bool(config.get("concat_channels", base.concat_channels))
        if has_concat != wants_concat:
            held, asked = ("gwcnet-gc", "gwcnet-g") if has_concat else ("gwcnet-g", "gwcnet-gc")
            raise EdgeStereoError(f"{checkpoint.path}: the checkpoint holds {held} weights "
                                  f"({'with' if has_concat else 'without'} the concatenation-volume features "
                                  f"feature_extraction.lastconv.*), but {asked} was requested; load it as {held}")
        return checkpoint.state_dict, config


def _check_config(config: GwcNetConfig) -> None:
    if config.max_disp < _DISP_MULTIPLE or config.max_disp % _DISP_MULTIPLE:
        below = max(config.max_disp // _DISP_MULTIPLE * _DISP_MULTIPLE, _DISP_MULTIPLE)
        options = sorted({below, below + _DISP_MULTIPLE} if below < config.max_disp else {below})
        raise EdgeStereoError(f"gwcnet: max_disp must be a positive multiple of {_DISP_MULTIPLE} (1/4-resolution "
                              f"volume, two stride-2 levels), got {config.max_disp}; nearest valid: "
                              f"{' or '.join(map(str, options))}")
    if config.num_groups < 1 or 320 % config.num_groups:
        raise EdgeStereoError(f"gwcnet: num_groups must divide the 320 feature channels, got {config.num_groups}")
    if config.concat_channels < 0:
        raise EdgeStereoError(f"gwcnet: concat_channels must be ≥ 0, got {config.concat_channels}")


register_model("gwcnet-g", GwcNet, GwcNetConfig(concat_channels=0),
               description="GwcNet-g (CVPR 2019), group-wise correlation volume + stacked hourglass 3-D "
               "aggregation; loads xy-guo/GwcNet checkpoints")
register_model("gwcnet-gc", GwcNet, GwcNetConfig(concat_channels=12),
               description="GwcNet-gc (CVPR 2019), group-wise correlation + concatenation volumes; loads "
               "xy-guo/GwcNet checkpoints")
