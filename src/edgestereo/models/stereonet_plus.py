"""StereoNetPlus: the NPU-native real-time model (Horizon's reference design, built in the open).

backbone → FPN → correlation volumes → adaptive aggregation → disparity head → superpixel upsampling:

- backbone: grouped-convolution blocks in the spirit of MixVarGE (3×3 group conv that widens, 1×1
  that projects, residual), shared by both views, run once on the two images stacked as a batch of 2;
- FPN neck: features at 1/8, 1/16 and 1/32;
- correlation cost volumes at those scales, ``max_disp / stride`` candidates each (24, 12, 6 for 192);
- adaptive aggregation modules (AANet): intra-scale BasicResBlocks over the disparity channels and
  cross-scale fusion (identity; strided 3×3 conv + BN chains down; 1×1 conv + BN then bilinear up),
  summed, LeakyReLU 0.2;
- disparity head at 1/8: 1×1 conv, softmax over candidates, regression to a fraction of ``max_disp``,
  and the 2×2 neighbourhood unfold (a one-hot convolution on the deploy path);
- superpixel upsampling (CoEx): left features at 1/2, 1/4, 1/8 fused by deconvolution residual
  modules and a transposed convolution to full resolution, softmax weights over the 4 neighbours;
- post-process: nearest ×8 upsampling of the unfolded 1/8 disparities, weighted sum, × ``max_disp``.

Every tensor of the deploy path is 4-D; H and W must be multiples of 32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgestereo.errors import EdgeStereoError
from edgestereo.models._base import StereoModel, TrainingLoss, check_stereo_inputs
from edgestereo.models._registry import register_model
from edgestereo.ops.correlation import Correlation1d
from edgestereo.ops.softmax import ChannelSoftmax
from edgestereo.ops.unfold import NeighbourUnfold

__all__ = ["MatchingAtEighth", "StereoNetPlus", "StereoNetPlusConfig"]

#: the coarsest feature stride; H and W must be multiples of it.
_MAX_STRIDE = 32
#: strides of the three correlation volumes, finest first.
_VOLUME_STRIDES = (8, 16, 32)
#: the superpixel upsampling mixes each pixel's 2×2 neighbourhood at 1/8.
_UNFOLD_KERNEL = 2
#: ImageNet statistics, the usual choice for backbones trained from scratch on natural images.
_RGB_MEAN = (0.485, 0.456, 0.406)
_RGB_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class StereoNetPlusConfig:
    """StereoNetPlus hyper-parameters.

    max_disp: largest disparity, full-resolution pixels (a multiple of 32; 192 gives 24/12/6
    candidates at 1/8, 1/16, 1/32). stem_channels: 1/2 features. stage_channels / stage_blocks:
    the backbone stages at 1/4, 1/8, 1/16, 1/32 (blocks per stage, the first one strided).
    expansion / group_width: the grouped 3×3 conv widens by ``expansion`` with ``group_width``
    channels per group. feature_channels: FPN outputs that are correlated. refine_channels: the
    superpixel branch. num_aggregations: stacked adaptive aggregation modules.
    """

    max_disp: int = 192
    stem_channels: int = 16
    stage_channels: tuple[int, ...] = (24, 48, 64, 96)
    stage_blocks: tuple[int, ...] = (1, 2, 3, 2)
    expansion: int = 2
    group_width: int = 8
    feature_channels: int = 16
    refine_channels: int = 16
    num_aggregations: int = 6


def _validate(config: StereoNetPlusConfig) -> None:
    if config.max_disp < _MAX_STRIDE or config.max_disp % _MAX_STRIDE:
        raise EdgeStereoError(f"max_disp must be a positive multiple of {_MAX_STRIDE}, got {config.max_disp}")
    if len(config.stage_channels) != 4 or len(config.stage_blocks) != 4:
        raise EdgeStereoError(
            "stage_channels and stage_blocks need 4 entries (strides 4, 8, 16, 32), got "
            f"{config.stage_channels} and {config.stage_blocks}"
        )
    if min(config.stage_blocks) < 1 or config.num_aggregations < 1:
        raise EdgeStereoError("stage_blocks and num_aggregations must be ≥ 1")
    widths = (config.stem_channels, *config.stage_channels)
    if config.group_width < 1 or any(c % config.group_width for c in widths):
        raise EdgeStereoError(f"group_width {config.group_width} must divide every backbone width {widths}")


def conv_bn(
    in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1, relu: bool = True
) -> nn.Sequential:
    """Conv (no bias) + BN [+ ReLU]; padding keeps the size at stride 1."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class GroupExpandBlock(nn.Module):
    """Backbone block in the spirit of MixVarGE: grouped 3×3 conv that widens by ``expansion``
    (``group_width`` channels per group), 1×1 conv that projects, residual, ReLU.

    x: (N,C_in,H,W) → (N,C_out,H/s,W/s). The shortcut is a strided 1×1 conv + BN when the shape changes.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int, group_width: int) -> None:
        super().__init__()
        mid = in_ch * expansion
        self.widen = conv_bn(in_ch, mid, 3, stride, groups=in_ch // group_width)
        self.project = conv_bn(mid, out_ch, 1, relu=False)
        self.shortcut = (
            nn.Identity() if stride == 1 and in_ch == out_ch else conv_bn(in_ch, out_ch, 1, stride, relu=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.project(self.widen(x)) + self.shortcut(x))


class Backbone(nn.Module):
    """Shared feature extractor. images: (N,3,H,W) normalised → features at strides 2, 4, 8, 16, 32."""

    def __init__(self, config: StereoNetPlusConfig) -> None:
        super().__init__()
        self.stem = conv_bn(3, config.stem_channels, 3, 2)
        self.stages = nn.ModuleList()
        in_ch = config.stem_channels
        for out_ch, blocks in zip(config.stage_channels, config.stage_blocks):
            stage = [GroupExpandBlock(in_ch, out_ch, 2, config.expansion, config.group_width)]
            stage += [GroupExpandBlock(out_ch, out_ch, 1, config.expansion, config.group_width)
                      for _ in range(blocks - 1)]
            self.stages.append(nn.Sequential(*stage))
            in_ch = out_ch

    def forward(self, images: Tensor) -> list[Tensor]:
        features = [self.stem(images)]
        for stage in self.stages:
            features.append(stage(features[-1]))
        return features


class FeaturePyramid(nn.Module):
    """FPN over the three coarsest backbone levels: 1×1 laterals, nearest ×2 top-down sums, 3×3
    output convs (no activation: correlation wants signed features).

    features: (N,C_k,H/s,W/s) for s = 8, 16, 32 → (N,feature_channels,H/s,W/s) each.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(conv_bn(c, out_channels, 1, relu=False) for c in in_channels)
        self.outputs = nn.ModuleList(conv_bn(out_channels, out_channels, 3, relu=False) for _ in in_channels)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        merged = [lateral(x) for lateral, x in zip(self.laterals, features)]
        for level in range(len(merged) - 2, -1, -1):
            merged[level] = merged[level] + F.interpolate(merged[level + 1], scale_factor=2.0, mode="nearest")
        return [out(x) for out, x in zip(self.outputs, merged)]


class BasicResBlock(nn.Module):
    """3×3 conv + BN + ReLU, 3×3 conv + BN, identity shortcut, ReLU. x: (N,C,H,W) → (N,C,H,W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv_bn(channels, channels, 3)
        self.conv2 = conv_bn(channels, channels, 3, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(self.conv1(x)) + x)


class AdaptiveAggregation(nn.Module):
    """One AANet adaptive aggregation module over cost volumes at strides 8·2^k.

    Intra-scale: a BasicResBlock over each volume's disparity channels. Cross-scale, for output
    scale i from input scale j: identity (i = j); j finer: (i-j-1) stride-2 3×3 conv+BN+ReLU then a
    stride-2 3×3 conv+BN to D_i channels; j coarser: 1×1 conv+BN to D_i channels, bilinear
    ×2^(j-i). The sum goes through LeakyReLU(0.2).

    volumes: [(B,D_k,H_k,W_k)] finest first → the first ``num_outputs`` fused volumes.
    """

    def __init__(self, candidates: Sequence[int], num_outputs: int) -> None:
        super().__init__()
        self.intra = nn.ModuleList(BasicResBlock(d) for d in candidates)
        self.cross = nn.ModuleList()
        for i in range(num_outputs):
            row = nn.ModuleList()
            for j, d_in in enumerate(candidates):
                if i == j:
                    row.append(nn.Identity())
                elif j > i:
                    row.append(conv_bn(d_in, candidates[i], 1, relu=False))
                else:
                    chain = [conv_bn(d_in, d_in, 3, 2) for _ in range(i - j - 1)]
                    chain.append(conv_bn(d_in, candidates[i], 3, 2, relu=False))
                    row.append(nn.Sequential(*chain))
            self.cross.append(row)

    def forward(self, volumes: Sequence[Tensor], num_outputs: int | None = None) -> list[Tensor]:
        volumes = [block(v) for block, v in zip(self.intra, volumes)]
        fused = []
        for i, row in enumerate(self.cross[:num_outputs]):
            total = volumes[i]
            for j, layer in enumerate(row):
                if j == i:
                    continue
                exchange = layer(volumes[j])
                if j > i:
                    exchange = F.interpolate(exchange, scale_factor=float(2 ** (j - i)), mode="bilinear",
                                             align_corners=False)
                total = total + exchange
            fused.append(F.leaky_relu(total, 0.2))
        return fused


class DisparityRegression(nn.Module):
    """Soft-argmax over disparity candidates. logits (B,D,H,W) → (B,1,H,W) disparity as a fraction
    of ``max_disp`` (candidate d is d/D), which keeps int8 ranges small until the final scale."""

    def __init__(self, num_candidates: int) -> None:
        super().__init__()
        values = torch.arange(num_candidates, dtype=torch.float32).view(1, -1, 1, 1) / num_candidates
        self.register_buffer("values", values, persistent=False)
        self.softmax = ChannelSoftmax()

    def forward(self, logits: Tensor) -> Tensor:
        return (self.softmax(logits) * self.values).sum(1, keepdim=True)


class DeconvResidual(nn.Module):
    """CoEx's deconvolution residual module: 4×4 stride-2 transposed conv + BN + ReLU up to the finer
    level, sum with that level's features, 3×3 conv + BN + ReLU. x: (N,C,H,W), skip: (N,C,2H,2W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.ConvTranspose2d(channels, channels, 4, 2, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )
        self.fuse = conv_bn(channels, channels, 3)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.fuse(self.up(x) + skip)


class SuperpixelWeights(nn.Module):
    """Full-resolution weights over each pixel's 2×2 neighbourhood of 1/8 disparities (CoEx).

    half, quarter: left backbone features at 1/2 and 1/4; eighth: left FPN features at 1/8
    → (B,4,H,W) softmax weights.
    """

    def __init__(self, half_ch: int, quarter_ch: int, eighth_ch: int, channels: int) -> None:
        super().__init__()
        taps = _UNFOLD_KERNEL**2
        self.lateral_half = conv_bn(half_ch, channels, 3, relu=False)
        self.lateral_quarter = conv_bn(quarter_ch, channels, 3, relu=False)
        self.lateral_eighth = nn.Sequential(conv_bn(eighth_ch, channels, 3), conv_bn(channels, channels, 3, relu=False))
        self.up_quarter = DeconvResidual(channels)
        self.up_half = DeconvResidual(channels)
        self.up_full = nn.Sequential(
            nn.ConvTranspose2d(channels, taps, 4, 2, 1, bias=False), nn.BatchNorm2d(taps), nn.ReLU(inplace=True),
            nn.Conv2d(taps, taps, 3, 1, 1, bias=False),
        )
        self.softmax = ChannelSoftmax()

    def forward(self, half: Tensor, quarter: Tensor, eighth: Tensor) -> Tensor:
        x = self.up_quarter(self.lateral_eighth(eighth), self.lateral_quarter(quarter))
        x = self.up_half(x, self.lateral_half(half))
        return self.softmax(self.up_full(x))


class MatchingAtEighth(StereoModel):
    """The part StereoNetPlus and its v2 share: normalisation, backbone, FPN, the correlation volumes
    at 1/8, 1/16, 1/32 and the adaptive aggregation, plus the 1/8 and 1/16 candidate logits. The
    modules are attributes of the model itself, so the state-dict keys are the family's own."""

    divisor = _MAX_STRIDE

    def _build_matching(self, config: StereoNetPlusConfig) -> list[int]:
        """Create the shared modules; returns the candidates per volume (finest first)."""
        self.register_buffer("rgb_mean", torch.tensor(_RGB_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("rgb_scale", 1 / (torch.tensor(_RGB_STD).view(1, 3, 1, 1) * 255), persistent=False)
        self.backbone = Backbone(config)
        self.neck = FeaturePyramid(config.stage_channels[1:], config.feature_channels)
        candidates = [config.max_disp // stride for stride in _VOLUME_STRIDES]
        self.correlations = nn.ModuleList(Correlation1d(d) for d in candidates)
        # The last module also fuses the 1/16 volume: forward_train supervises it; forward skips it.
        self.aggregations = nn.ModuleList(
            AdaptiveAggregation(candidates, 2 if i == config.num_aggregations - 1 else len(candidates))
            for i in range(config.num_aggregations)
        )
        self.logits = nn.Conv2d(candidates[0], candidates[0], 1)
        self.logits_coarse = nn.Conv2d(candidates[1], candidates[1], 1)
        return candidates

    def _match(self, left: Tensor, right: Tensor, supervise: bool) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """(backbone features of both views at strides 2…32, FPN features of both views at 8, 16, 32,
        aggregated volumes: 1/8, and 1/16 when ``supervise``)."""
        check_stereo_inputs(left, right, self.divisor)
        batch = left.shape[0]
        images = (torch.cat([left, right], 0) - self.rgb_mean) * self.rgb_scale
        features = self.backbone(images)
        pyramid = self.neck(features[2:])
        volumes = [corr(f[:batch], f[batch:]) for corr, f in zip(self.correlations, pyramid)]
        for i, aggregate in enumerate(self.aggregations):
            last = i == len(self.aggregations) - 1
            volumes = aggregate(volumes, (2 if supervise else 1) if last else None)
        return features, pyramid, volumes

    def _residual_branches(self, module: nn.Module) -> list[nn.Module]:
        """The branches of ``module`` that end in a sum and start at zero."""
        if isinstance(module, BasicResBlock):
            return [module.conv2]
        if isinstance(module, GroupExpandBlock):
            return [module.project]
        if isinstance(module, AdaptiveAggregation):
            return [layer for row in module.cross for layer in row if not isinstance(layer, nn.Identity)]
        return []

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        # Residual branches and cross-scale exchanges start at zero (the scale of their last BN), so
        # the network begins as the identity through every sum: the stacks train stably (Goyal et
        # al., 2017), and a fresh model, whose BatchNorm has seen no data, keeps its cost volumes in
        # range in eval mode instead of growing them ×3 per aggregation module into a saturated softmax.
        for module in self.modules():
            for branch in self._residual_branches(module):
                last_norm = [m for m in branch.modules() if isinstance(m, nn.BatchNorm2d)][-1]
                nn.init.zeros_(last_norm.weight)


class StereoNetPlus(MatchingAtEighth):
    """StereoNetPlus (see the module docstring). left, right: (B,3,H,W) RGB in [0,255], H and W
    multiples of 32 → disparity (B,1,H,W) pixels in [0, max_disp)."""

    #: smooth-L1 on the 1/16, 1/8 and full-resolution predictions, weighted 1/3, 2/3, 1.
    training_loss = TrainingLoss("edgestereo.training.losses:MultiScaleSmoothL1Loss",
                                 {"weights": (1 / 3, 2 / 3, 1.0)})

    def __init__(self, config: StereoNetPlusConfig) -> None:
        super().__init__()
        _validate(config)
        self.config = config
        candidates = self._build_matching(config)
        self.regression = DisparityRegression(candidates[0])
        self.regression_coarse = DisparityRegression(candidates[1])
        self.unfold = NeighbourUnfold(1, _UNFOLD_KERNEL)
        self.superpixel = SuperpixelWeights(
            config.stem_channels, config.stage_channels[0], config.feature_channels, config.refine_channels
        )
        self._init_weights()

    def export_uses_deploy(self, profile: str) -> bool:
        """Always: the 4-D deploy path is also the faster graph for ONNX Runtime, whose NCHW Softmax
        transposes, and TensorRT parses every op of it."""
        return True

    def _disparities(self, left: Tensor, right: Tensor, supervise: bool) -> list[Tensor]:
        """[1/16 fraction (B,1,H/16,W/16) if ``supervise``, 1/8 fraction (B,1,H/8,W/8), full (B,1,H,W) px]."""
        batch = left.shape[0]
        features, pyramid, volumes = self._match(left, right, supervise)
        low = self.regression(self.logits(volumes[0]))
        weights = self.superpixel(features[0][:batch], features[1][:batch], pyramid[0][:batch])
        neighbours = F.interpolate(self.unfold(low), scale_factor=float(_VOLUME_STRIDES[0]), mode="nearest")
        full = (weights * neighbours).sum(1, keepdim=True) * self.config.max_disp
        if not supervise:
            return [low, full]
        return [self.regression_coarse(self.logits_coarse(volumes[1])), low, full]

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        """left, right: (B,3,H,W) RGB in [0,255] → disparity (B,1,H,W) pixels."""
        return self._disparities(left, right, supervise=False)[-1]

    def forward_train(self, left: Tensor, right: Tensor) -> list[Tensor]:
        """Predictions for the multi-scale loss, coarse to fine, all (B,1,H,W) in full-resolution
        pixels: the 1/16 and 1/8 soft-argmax disparities (bilinear ×16 and ×8) and the superpixel
        full-resolution disparity — weigh them [1/3, 2/3, 1]."""
        coarse, low, full = self._disparities(left, right, supervise=True)
        size = full.shape[-2:]
        upsampled = [F.interpolate(d, size=size, mode="bilinear", align_corners=False) * self.config.max_disp
                     for d in (coarse, low)]
        return [*upsampled, full]


_SMALL = {"stem_channels": 8, "stage_channels": (16, 24, 32, 48), "stage_blocks": (1, 1, 2, 1),
          "refine_channels": 8, "num_aggregations": 4}


register_model("stereonet-plus", StereoNetPlus, StereoNetPlusConfig(),
               description="StereoNetPlus: 4-D real-time network for NPUs, multi-scale correlation, adaptive "
               "aggregation, superpixel upsampling")
register_model("stereonet-plus-small", StereoNetPlus, StereoNetPlusConfig(**_SMALL),
               description="StereoNetPlus, ~1.5x faster: thinner backbone, 8-channel superpixel branch, 4 "
               "aggregation modules (the default model; weights trained on synthetic pairs)",
               packaged_weights="stereonet_plus_small_synthetic.safetensors")
