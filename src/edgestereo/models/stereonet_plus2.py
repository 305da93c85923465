"""StereoNetPlus v2: StereoNetPlus's 1/8 matching, then a 1/4 refinement stage and 3×3 convex upsampling.

backbone → FPN → correlation volumes at 1/8, 1/16, 1/32 → adaptive aggregation → 1/8 soft-argmax
(all as in :mod:`edgestereo.models.stereonet_plus`, whose blocks this file reuses), then:

- quarter-resolution matching features: the backbone's 1/4 features plus the upsampled 1/8 FPN
  features, a 3×3 conv; a 1/4 correlation volume over ``max_disp / 4`` candidates;
- local cost look-up: that volume read at ``2·radius + 1`` candidates around the 1/8 estimate
  (bilinear ×2 to 1/4), a linear interpolation along the candidates (:class:`~edgestereo.ops.LocalCost`:
  no warping, no gather on the deploy path);
- refinement at 1/4: left 1/4 features, the local costs and the estimate through residual blocks
  (dilations 1, 2, 4) → a disparity residual and 9·16 convex-upsampling logits;
- convex upsampling ×4 (RAFT): every full-resolution pixel is a softmax-weighted mix of its centred
  3×3 neighbourhood of 1/4 disparities (:class:`~edgestereo.ops.ConvexUpsample`, 4-D deploy twin),
  initialised as bilinear interpolation (:func:`~edgestereo.ops.convex_upsample.bilinear_mask_logits`).

Every tensor of the deploy path is 4-D; H and W must be multiples of 32. ``forward_train`` also
returns the 1/8 and 1/16 candidate distributions for a distribution loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgestereo.errors import EdgeStereoError
from edgestereo.models._base import TrainingLoss
from edgestereo.models._registry import register_model
from edgestereo.models.stereonet_plus import MatchingAtEighth, StereoNetPlusConfig, conv_bn
from edgestereo.models.stereonet_plus import _validate as validate_matching
from edgestereo.ops.convex_upsample import ConvexUpsample, bilinear_mask_logits
from edgestereo.ops.correlation import Correlation1d
from edgestereo.ops.local_cost import LocalCost
from edgestereo.ops.softmax import ChannelSoftmax

__all__ = ["StereoNetPlus2", "StereoNetPlus2Config"]

#: strides of the two supervised candidate distributions (1/8, 1/16)
_EIGHTH, _SIXTEENTH = 8, 16
#: resolution of the refinement stage; the convex upsampling goes from there to full resolution.
_REFINE_STRIDE = 4
#: the convex-upsampling logits are this times the mask head's output
_MASK_SCALE = 0.25


@dataclass(frozen=True)
class StereoNetPlus2Config:
    """StereoNetPlus v2 hyper-parameters.

    The 1/8 part (max_disp … num_aggregations) means what it means in :class:`StereoNetPlusConfig`.
    quarter_channels: 1/4 matching features. refine_channels / refine_dilations: the 1/4
    refinement blocks (one residual block per dilation). local_radius: candidates read on each side
    of the estimate at 1/4 (one candidate is 4 full-resolution pixels). mask_logit_bound: when > 0,
    each convex-upsampling logit stays within ± this of the bilinear one (a tanh of the learnt
    difference), so no upsampling weight moves more than e^(2·bound)× from bilinear interpolation's:
    the cap on the 4-px block pattern (docs/default-model.md; ±0.5 chosen there by an A/B on the
    validation sets); 0 leaves the logits free (the packaged weights before day 5).
    """

    max_disp: int = 192
    stem_channels: int = 16
    stage_channels: tuple[int, ...] = (24, 48, 64, 96)
    stage_blocks: tuple[int, ...] = (1, 2, 3, 2)
    expansion: int = 2
    group_width: int = 8
    feature_channels: int = 16
    num_aggregations: int = 4
    quarter_channels: int = 16
    refine_channels: int = 32
    refine_dilations: tuple[int, ...] = (1, 2, 4)
    local_radius: int = 4
    mask_logit_bound: float = 0.5

    def backbone_config(self) -> StereoNetPlusConfig:
        """The v1 config that the shared backbone, FPN and aggregation blocks read."""
        return StereoNetPlusConfig(
            max_disp=self.max_disp, stem_channels=self.stem_channels, stage_channels=self.stage_channels,
            stage_blocks=self.stage_blocks, expansion=self.expansion, group_width=self.group_width,
            feature_channels=self.feature_channels, num_aggregations=self.num_aggregations,
        )


def _validate(config: StereoNetPlus2Config) -> None:
    validate_matching(config.backbone_config())
    if config.quarter_channels < 1 or config.refine_channels < 1 or not config.refine_dilations:
        raise EdgeStereoError("quarter_channels and refine_channels must be ≥ 1 and refine_dilations non-empty")
    if config.local_radius < 0:
        raise EdgeStereoError(f"local_radius must be ≥ 0, got {config.local_radius}")
    if not config.mask_logit_bound >= 0:
        raise EdgeStereoError(f"mask_logit_bound must be ≥ 0 (0: unbounded), got {config.mask_logit_bound}")


class DilatedResBlock(nn.Module):
    """3×3 conv (dilation d) + BN + LeakyReLU, 3×3 conv (dilation d) + BN, identity, LeakyReLU.
    x: (N,C,H,W) → (N,C,H,W)."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, dilation, dilation, bias=False),
                                   nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, inplace=True))
        self.conv2 = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, dilation, dilation, bias=False),
                                   nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.conv2(self.conv1(x)) + x, 0.2)


class QuarterRefinement(nn.Module):
    """1/4 refinement: (left features, local costs, estimate) → (residual (B,1,h,w) in 1/4 candidate
    units, convex-upsampling logits (B,9·16,h,w), within ± ``logit_bound`` of bilinear's when it is > 0)."""

    def __init__(self, feature_channels: int, cost_channels: int, channels: int, dilations: tuple[int, ...],
                 logit_bound: float = 0.0) -> None:
        super().__init__()
        self.logit_bound = logit_bound
        self.register_buffer("bilinear_logits", bilinear_mask_logits(_REFINE_STRIDE).view(1, -1, 1, 1),
                             persistent=False)
        self.inputs = conv_bn(feature_channels + cost_channels + 1, channels, 3)
        self.blocks = nn.Sequential(*(DilatedResBlock(channels, d) for d in dilations))
        self.residual = nn.Conv2d(channels, 1, 3, 1, 1)
        self.mask = nn.Sequential(conv_bn(channels, channels, 3), nn.Conv2d(channels, 9 * _REFINE_STRIDE**2, 1))

    def forward(self, features: Tensor, costs: Tensor, estimate: Tensor) -> tuple[Tensor, Tensor]:
        x = self.blocks(self.inputs(torch.cat([features, costs, estimate], 1)))
        return self.residual(x), self._mask_logits(self.mask[:-1](x))

    def _mask_logits(self, hidden: Tensor) -> Tensor:
        """Upsampling logits from the mask head's hidden features: 0.25·m (the 0.25 keeps the learnt part
        of the weights small at the start, as RAFT scales them), bounded: bilinear + b·tanh((0.25·m −
        bilinear)/b). m's 1×1 convolution takes the scale and the shift into its weights and bias,
        which an exported graph folds into one Conv: no full-size multiply or subtract."""
        head = self.mask[-1]
        if not self.logit_bound:
            return F.conv2d(hidden, head.weight * _MASK_SCALE, head.bias * _MASK_SCALE)
        bound = self.logit_bound
        shift = self.bilinear_logits.flatten() / bound
        learnt = F.conv2d(hidden, head.weight * (_MASK_SCALE / bound), head.bias * (_MASK_SCALE / bound) - shift)
        return self.bilinear_logits + bound * torch.tanh(learnt)


class StereoNetPlus2(MatchingAtEighth):
    """StereoNetPlus v2 (see the module docstring). left, right: (B,3,H,W) RGB in [0,255], H and W
    multiples of 32 → disparity (B,1,H,W) pixels in [0, max_disp]."""

    #: multi-scale smooth-L1 on the four predictions, plus the distribution term on the 1/16 and 1/8 softmaxes
    training_loss = TrainingLoss("edgestereo.training.losses:MultiScaleSmoothL1Loss",
                                 {"weights": (0.25, 0.5, 0.75, 1.0), "distribution_weight": 0.5})

    def __init__(self, config: StereoNetPlus2Config) -> None:
        super().__init__()
        _validate(config)
        self.config = config
        base = config.backbone_config()
        candidates = self._build_matching(base)
        self.softmax = ChannelSoftmax()
        self.register_buffer("candidates_eighth", torch.arange(candidates[0], dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("candidates_sixteenth",
                             torch.arange(candidates[1], dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        # 1/4 matching features from the backbone's 1/4 level and the FPN's 1/8 level
        self.quarter_lateral = conv_bn(base.stage_channels[0], config.quarter_channels, 1, relu=False)
        self.quarter_top = conv_bn(base.feature_channels, config.quarter_channels, 1, relu=False)
        self.quarter_out = conv_bn(config.quarter_channels, config.quarter_channels, 3, relu=False)
        self.quarter_correlation = Correlation1d(config.max_disp // _REFINE_STRIDE)
        self.local_cost = LocalCost(config.local_radius)
        self.refine = QuarterRefinement(config.quarter_channels, 2 * config.local_radius + 1,
                                        config.refine_channels, config.refine_dilations, config.mask_logit_bound)
        self.upsample = ConvexUpsample(_REFINE_STRIDE)
        self._init_weights()
        # the refinement starts as "keep the estimate", the upsampling as bilinear interpolation: a
        # uniform mask would give every fine pixel of a cell one value (4x4 blocks) until it is learnt
        nn.init.zeros_(self.refine.residual.weight)
        with torch.no_grad():
            self.refine.mask[-1].bias.copy_(self.refine.bilinear_logits.flatten() / _MASK_SCALE)

    def _residual_branches(self, module: nn.Module) -> list[nn.Module]:
        if isinstance(module, DilatedResBlock):
            return [module.conv2]
        return super()._residual_branches(module)

    def export_uses_deploy(self, profile: str) -> bool:
        """Always: the 4-D deploy path is also the faster ONNX Runtime graph (elementwise softmax)."""
        return True

    def _quarter_features(self, quarter: Tensor, eighth: Tensor) -> Tensor:
        top = F.interpolate(self.quarter_top(eighth), scale_factor=2.0, mode="nearest")
        return self.quarter_out(self.quarter_lateral(quarter) + top)

    def _run(self, left: Tensor, right: Tensor, supervise: bool) -> dict[str, Tensor]:
        """Disparities in full-resolution pixels at their own resolution: ``eighth`` (B,1,H/8,W/8),
        ``quarter`` (B,1,H/4,W/4), ``full`` (B,1,H,W); with ``supervise`` also ``sixteenth`` and the
        softmax distributions ``prob_eighth`` (B,D/8,H/8,W/8), ``prob_sixteenth`` (B,D/16,H/16,W/16)."""
        batch = left.shape[0]
        features, pyramid, volumes = self._match(left, right, supervise)
        prob_eighth = self.softmax(self.logits(volumes[0]))
        # candidate units of 1/8 (one candidate = 8 px); ×2 gives 1/4 candidate units
        eighth = (prob_eighth * self.candidates_eighth).sum(1, keepdim=True)
        quarter_features = self._quarter_features(features[1], pyramid[0])
        quarter_volume = self.quarter_correlation(quarter_features[:batch], quarter_features[batch:])
        estimate = F.interpolate(eighth * 2.0, scale_factor=2.0, mode="bilinear", align_corners=False)
        costs = self.local_cost(quarter_volume, estimate.detach())
        scale = float(self.config.max_disp // _REFINE_STRIDE)
        residual, mask = self.refine(quarter_features[:batch], costs, estimate / scale)
        quarter = torch.relu(estimate + residual)  # 1/4 candidate units = 1/4-resolution pixels
        full = self.upsample(quarter, mask)  # ×4: full-resolution pixels
        out = {"eighth": eighth * _EIGHTH, "quarter": quarter * _REFINE_STRIDE, "full": full}
        if supervise:
            prob_sixteenth = self.softmax(self.logits_coarse(volumes[1]))
            out["sixteenth"] = (prob_sixteenth * self.candidates_sixteenth).sum(1, keepdim=True) * _SIXTEENTH
            out["prob_eighth"], out["prob_sixteenth"] = prob_eighth, prob_sixteenth
        return out

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        """left, right: (B,3,H,W) RGB in [0,255] → disparity (B,1,H,W) pixels."""
        return self._run(left, right, supervise=False)["full"]

    def forward_train(self, left: Tensor, right: Tensor) -> dict[str, object]:
        """``left``: predictions coarse to fine, all (B,1,H,W) full-resolution pixels (1/16, 1/8, 1/4
        bilinearly upsampled, then the convex-upsampled output); ``distributions``: the 1/16 and 1/8
        candidate softmaxes with their strides, for a distribution loss."""
        out = self._run(left, right, supervise=True)
        size = out["full"].shape[-2:]
        upsampled = [F.interpolate(out[key], size=size, mode="bilinear", align_corners=False)
                     for key in ("sixteenth", "eighth", "quarter")]
        distributions = [(out["prob_sixteenth"], _SIXTEENTH), (out["prob_eighth"], _EIGHTH)]
        return {"left": [*upsampled, out["full"]], "distributions": distributions}


_SMALL = {"stem_channels": 8, "stage_channels": (16, 24, 32, 48), "stage_blocks": (1, 1, 2, 1),
          "num_aggregations": 4, "quarter_channels": 8, "refine_channels": 16, "refine_dilations": (1, 2, 4),
          "local_radius": 2}


register_model("stereonet-plus2", StereoNetPlus2, StereoNetPlus2Config(),
               description="StereoNetPlus v2: 1/8 matching and aggregation, 1/4 local-cost refinement, 3x3 convex "
               "upsampling; 4-D for NPUs")
register_model("stereonet-plus2-small", StereoNetPlus2, StereoNetPlus2Config(**_SMALL),
               description="StereoNetPlus v2 with stereonet-plus-small's backbone: thinner 1/8 part, 16-channel "
               "refinement",
               packaged_weights="stereonet_plus2_small_synthetic.safetensors")
