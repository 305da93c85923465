"""StereoNet (Khamis et al., ECCV 2018), checkpoint-compatible with andrewlstewart/StereoNet_PyTorch.

Feature extractor (``k_downsampling_layers`` 5×5 stride-2 convolutions, six residual blocks) →
difference cost volume over ``(max_disp + 1) // 2**k`` candidates at 1/2**k resolution → four
3-D conv + BN + LeakyReLU layers and a 3-D conv to one channel → soft argmin over candidates spread
evenly on [0, max_disp] → a cascade of ``k_refinement_layers`` edge-aware refinements, each at
twice the previous resolution, the last at full resolution.

Published checkpoints are Lightning ``.ckpt`` files; their ``hyper_parameters`` set the
architecture (Lightning is not needed to read them, and the optimizer factories they pickle are
rebuilt under ``weights_only=True`` from an allow-list). The images are normalised inside the model
with the statistics the checkpoint was trained with: the KeystoneDepth checkpoint is grey
(``in_channels=1``, left/right mean 111.5684/113.6528, std 61.9625/62.0313 on [0,255]); the older
SceneFlow checkpoint is RGB scaled to [−1, 1]. A 1-channel model converts colour input to BT.601
luma; a 3-channel model repeats a grey input.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgestereo.errors import EdgeStereoError
from edgestereo.models._base import StereoModel, TrainingLoss, check_stereo_inputs
from edgestereo.models._checkpoint import Checkpoint
from edgestereo.models._registry import register_model
from edgestereo.models.blocks.image import as_rgb, normalize, rgb_to_grey
from edgestereo.models.blocks.volume3d import VolumeBatchNorm3d, VolumeConv3d
from edgestereo.ops.conv3d import static_shape
from edgestereo.ops.cost_volume3d import VolumeLayout, difference_maps, disparity_regression

__all__ = ["DEFAULT_NORMALIZATION", "StereoNet", "StereoNetConfig"]

#: (mean, std) on [0,255] per input channel, left view's channels then the right view's, by in_channels.
DEFAULT_NORMALIZATION: dict[int, tuple[tuple[float, ...], tuple[float, ...]]] = {
    1: ((111.5684, 113.6528), (61.9625, 62.0313)),  # KeystoneDepth checkpoint (seed README)
    3: ((127.5,) * 6, (127.5,) * 6),  # SceneFlow checkpoint: [0,1] images rescaled to [-1,1]
}

#: Lightning hyper-parameter → config field.
_HPARAMS = {
    "in_channels": "in_channels",
    "k_downsampling_layers": "k_downsampling_layers",
    "k_refinement_layers": "k_refinement_layers",
    "candidate_disparities": "max_disp",
    "feature_extractor_filters": "feature_extractor_filters",
    "cost_volumizer_filters": "cost_volumizer_filters",
}
#: the candidate range changes nothing in the weights (the 3-D filter slides along disparity), so a
#: requested max_disp overrides the checkpoint's; any other disagreement is an error.
_OVERRIDABLE = {"max_disp"}


def _optimizer_factory_globals() -> tuple[Any, ...]:
    """What StereoNet_PyTorch's Hydra config pickles in ``hyper_parameters``: ``functools.partial``
    of a torch optimizer and of an LR scheduler. Constructing these runs no user code."""
    optimizers = [cls for cls in vars(torch.optim).values()
                  if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)]
    schedulers = [getattr(torch.optim.lr_scheduler, name) for name in (
        "ExponentialLR", "StepLR", "MultiStepLR", "CosineAnnealingLR", "OneCycleLR", "ReduceLROnPlateau")]
    return (functools.partial, *optimizers, *schedulers)


@dataclass(frozen=True)
class StereoNetConfig:
    """StereoNet hyper-parameters, named as StereoNet_PyTorch names them (``max_disp`` is its
    ``candidate_disparities``). ``mean``/``std``: 2·in_channels values on [0,255], the left view's
    channels then the right view's; None takes :data:`DEFAULT_NORMALIZATION`."""

    max_disp: int = 256
    in_channels: int = 3
    k_downsampling_layers: int = 3
    k_refinement_layers: int = 3
    feature_extractor_filters: int = 32
    cost_volumizer_filters: int = 32
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


class ResBlock(nn.Module):
    """conv-BN-LeakyReLU-conv-BN, plus the input, then LeakyReLU (keys ``conv_1`` … ``batch_norm_2``)."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv_1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.batch_norm_1 = nn.BatchNorm2d(channels)
        self.activation_1 = nn.LeakyReLU(0.2)
        self.conv_2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.batch_norm_2 = nn.BatchNorm2d(channels)
        self.activation_2 = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        residual = self.batch_norm_2(self.conv_2(self.activation_1(self.batch_norm_1(self.conv_1(x)))))
        return self.activation_2(x + residual)


class FeatureExtractor(nn.Module):
    """(B,in,H,W) → (B,filters,H/2**k,W/2**k)."""

    def __init__(self, in_channels: int, filters: int, k_downsampling_layers: int) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i in range(k_downsampling_layers):
            layers[f"segment_0_conv_{i}"] = nn.Conv2d(in_channels if i == 0 else filters, filters, 5, 2, 2)
        for i in range(6):
            layers[f"segment_1_res_{i}"] = ResBlock(filters)
        layers["segment_2_conv_0"] = nn.Conv2d(filters, filters, 3, padding=1)
        self.net = nn.Sequential(layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class CostFilter(nn.Module):
    """Four 3-D conv + BN + LeakyReLU(0.2) layers and a 3-D conv to one channel.

    (B,C,D,H,W) → (B,1,D,H,W), or slice stacks (D,B·C,H,W) → (D,B,H,W) on the deploy path.
    """

    def __init__(self, in_channels: int, filters: int) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i in range(4):
            layers[f"segment_0_conv_{i}"] = VolumeConv3d(in_channels if i == 0 else filters, filters, 3, padding=1)
            layers[f"segment_0_bn_{i}"] = VolumeBatchNorm3d(filters)
            layers[f"segment_0_act_{i}"] = nn.LeakyReLU(0.2)
        layers["segment_1_conv_0"] = VolumeConv3d(filters, 1, 3, padding=1)
        self.net = nn.Sequential(layers)

    def forward(self, volume: Tensor) -> Tensor:
        return self.net(volume)


class Refinement(nn.Module):
    """Edge-aware refinement: (B,in+1,H,W) image ⊕ disparity → (B,1,H,W) residual."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["segment_0_conv_0"] = nn.Conv2d(in_channels, 32, 3, padding=1)
        for i, dilation in enumerate((1, 2, 4, 8, 1, 1)):
            layers[f"segment_1_res_{i}"] = ResBlock(32, dilation)
        layers["segment_2_conv_0"] = nn.Conv2d(32, 1, 3, padding=1)
        self.net = nn.Sequential(layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class StereoNet(StereoModel):
    """StereoNet: (B,3,H,W) RGB in [0,255] (or (B,1,H,W) grey) → disparity (B,1,H,W) pixels.

    H and W must be multiples of ``divisor`` = 2**max(k_downsampling_layers, k_refinement_layers).
    """

    checkpoint_safe_globals: ClassVar[tuple[Any, ...]] = _optimizer_factory_globals()
    #: Barron's robust loss (α = 1, c = 2) on every refinement level, left and right views.
    training_loss = TrainingLoss("edgestereo.training.losses:RobustLeftRightLoss")

    def __init__(self, config: StereoNetConfig) -> None:
        super().__init__()
        _check_config(config)
        self.config = config
        self.divisor = 2 ** max(config.k_downsampling_layers, config.k_refinement_layers)
        self.num_candidates = (config.max_disp + 1) // 2**config.k_downsampling_layers
        default_mean, default_std = DEFAULT_NORMALIZATION[config.in_channels]
        self.mean = tuple(config.mean) if config.mean is not None else default_mean
        self.std = tuple(config.std) if config.std is not None else default_std
        self.feature_extractor = FeatureExtractor(config.in_channels, config.feature_extractor_filters,
                                                  config.k_downsampling_layers)
        self.cost_volumizer = CostFilter(config.feature_extractor_filters, config.cost_volumizer_filters)
        self.refiners = nn.ModuleList(Refinement(config.in_channels + 1) for _ in range(config.k_refinement_layers))
        self.volume_layout = VolumeLayout()

    def _normalized_pair(self, left: Tensor, right: Tensor) -> tuple[Tensor, Tensor]:
        """RGB/grey pair in [0,255] → the pair the network was trained on, (B,in_channels,H,W) each."""
        left, right = as_rgb(left, "left"), as_rgb(right, "right")
        check_stereo_inputs(left, right, self.divisor)
        channels = self.config.in_channels
        if channels == 1:
            left, right = rgb_to_grey(left), rgb_to_grey(right)
        return (normalize(left, self.mean[:channels], self.std[:channels]),
                normalize(right, self.mean[channels:], self.std[channels:]))

    def _pyramid(self, reference: Tensor, target: Tensor, side: str) -> list[Tensor]:
        """Disparities of the ``reference`` view, coarse to fine: (B,1,H/2**k,W/2**k) … (B,1,H,W) pixels."""
        maps = difference_maps(self.feature_extractor(reference), self.feature_extractor(target),
                               self.num_candidates, side)
        cost = self.volume_layout.cost_maps(self.cost_volumizer(self.volume_layout(maps)))
        candidates = torch.linspace(0, self.config.max_disp, self.num_candidates, device=cost.device,
                                    dtype=cost.dtype)
        pyramid = [disparity_regression(F.softmax(-cost, dim=1), candidates)]
        height, width = static_shape(reference)[-2:]
        levels = len(self.refiners)
        for level, refiner in enumerate(self.refiners, start=1):
            size = (height >> (levels - level), width >> (levels - level))
            image = F.interpolate(reference, size=size, mode="bilinear", align_corners=True)
            coarse = F.interpolate(pyramid[-1], size=size, mode="bilinear", align_corners=True)
            pyramid.append(F.relu(refiner(torch.cat((image, coarse), dim=1)) + coarse))
        return pyramid

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        """left, right: (B,3,H,W) RGB or (B,1,H,W) grey in [0,255] → left disparity (B,1,H,W) pixels."""
        left, right = self._normalized_pair(left, right)
        return self._pyramid(left, right, "left")[-1]

    def forward_train(self, left: Tensor, right: Tensor) -> dict[str, list[Tensor]]:
        """The left *and* right disparity pyramids, as StereoNet_PyTorch trains them.

        Returns ``{"left": [...], "right": [...]}``: k_refinement_layers + 1 predictions each, coarse
        to fine, each up-sampled (bilinear, align_corners=True) to (B,1,H,W) pixels; the published
        loss (``training.losses.RobustLeftRightLoss``) averages the robust loss over all of them and
        both views.
        """
        left, right = self._normalized_pair(left, right)
        size = static_shape(left)[-2:]
        out = {}
        for side, (reference, target) in (("left", (left, right)), ("right", (right, left))):
            out[side] = [F.interpolate(d, size=size, mode="bilinear", align_corners=True)
                         for d in self._pyramid(reference, target, side)]
        return out

    @classmethod
    def adapt_checkpoint(cls, checkpoint: Checkpoint, base: StereoNetConfig, config: dict[str, Any]
                         ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Take the architecture from a Lightning file's ``hyper_parameters``; refuse a requested
        configuration that disagrees with it (naming the field)."""
        state_dict = checkpoint.state_dict
        hparams = checkpoint.meta.get("hyper_parameters") or {}
        from_file = {field: hparams[key] for key, field in _HPARAMS.items() if key in hparams}
        first_conv = state_dict.get("feature_extractor.net.segment_0_conv_0.weight")
        if "in_channels" not in from_file and hparams and first_conv is not None:
            # The older SceneFlow checkpoint predates the in_channels hyper-parameter (it was RGB).
            from_file["in_channels"] = int(first_conv.shape[1])
        for field, value in from_file.items():
            if field in config and field not in _OVERRIDABLE and config[field] != value:
                raise EdgeStereoError(f"{checkpoint.path}: the checkpoint was trained with {field}={value!r} "
                                      f"but {field}={config[field]!r} was requested")
        return state_dict, {**from_file, **config}


def _check_config(config: StereoNetConfig) -> None:
    if config.in_channels not in (1, 3):
        raise EdgeStereoError(f"stereonet: in_channels must be 1 (grey) or 3 (RGB), got {config.in_channels}")
    if config.k_downsampling_layers < 1 or config.k_refinement_layers < 1:
        raise EdgeStereoError("stereonet: k_downsampling_layers and k_refinement_layers must be ≥ 1 (the last "
                              f"refinement gives full resolution), got {config.k_downsampling_layers} and "
                              f"{config.k_refinement_layers}")
    step = 2**config.k_downsampling_layers
    if (config.max_disp + 1) // step < 2:
        raise EdgeStereoError(f"stereonet: max_disp {config.max_disp} leaves fewer than 2 candidate disparities "
                              f"at 1/{step} resolution; use max_disp ≥ {2 * step - 1}")
    for name in ("mean", "std"):
        values = getattr(config, name)
        if values is not None and len(values) != 2 * config.in_channels:
            raise EdgeStereoError(f"stereonet: {name} needs {2 * config.in_channels} values (left then right "
                                  f"channels), got {len(values)}")
    if config.std is not None and any(v <= 0 for v in config.std):
        raise EdgeStereoError(f"stereonet: std values must be positive, got {config.std}")


register_model("stereonet", StereoNet, StereoNetConfig(),
               description="StereoNet (ECCV 2018), 3-D cost filtering + hierarchical refinement; loads "
               "StereoNet_PyTorch Lightning checkpoints")
