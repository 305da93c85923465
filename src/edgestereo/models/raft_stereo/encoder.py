"""RAFT-Stereo's feature and context encoders.

Module and parameter names follow princeton-vl/RAFT-Stereo (``core/extractor.py``) so that the
published checkpoints load unchanged.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["NORMS", "BasicEncoder", "MultiBasicEncoder", "ResidualBlock"]

#: normalisations the encoders accept (the published ``--context_norm`` choices).
NORMS = ("group", "batch", "instance", "none")


def make_norm(kind: str, channels: int, groups: int) -> nn.Module:
    """A normalisation layer; "instance" has no parameters and "none" is the identity."""
    if kind == "group":
        return nn.GroupNorm(num_groups=groups, num_channels=channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}; known: {', '.join(NORMS)}")


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection; a strided 1x1 projection when the shape changes.

    x (B,C_in,H,W) → (B,C_out,H/stride,W/stride).
    """

    def __init__(self, in_planes: int, planes: int, norm: str = "group", stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.norm1 = make_norm(norm, planes, planes // 8)
        self.norm2 = make_norm(norm, planes, planes // 8)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            # registered twice (norm3 and downsample.1), as in the published checkpoints
            self.norm3 = make_norm(norm, planes, planes // 8)
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride), self.norm3)

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


def _stage(in_planes: int, planes: int, norm: str, stride: int) -> nn.Sequential:
    return nn.Sequential(ResidualBlock(in_planes, planes, norm, stride), ResidualBlock(planes, planes, norm, 1))


class _Trunk(nn.Module):
    """The part both encoders share: 7x7 stem and three residual stages.

    image (B,3,H,W) → (B,128,H/2**d,W/2**d), d = ``downsample`` (0 to 3).
    """

    def __init__(self, norm: str, downsample: int) -> None:
        super().__init__()
        self.norm1 = make_norm(norm, 64, 8)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=1 + (downsample > 2), padding=3)
        self.relu1 = nn.ReLU(inplace=True)
        self.layer1 = _stage(64, 64, norm, stride=1)
        self.layer2 = _stage(64, 96, norm, stride=1 + (downsample > 1))
        self.layer3 = _stage(96, 128, norm, stride=1 + (downsample > 0))

    def trunk(self, x: Tensor) -> Tensor:
        x = self.relu1(self.norm1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def initialise(self) -> None:
        """He-normal convolutions, unit-scale norms (the published initialisation)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


class BasicEncoder(_Trunk):
    """Matching features: image (B,3,H,W) → (B,output_dim,H/2**d,W/2**d), d = ``downsample``."""

    def __init__(self, output_dim: int = 256, norm: str = "instance", downsample: int = 2) -> None:
        super().__init__(norm, downsample)
        self.conv2 = nn.Conv2d(128, output_dim, kernel_size=1)
        self.initialise()

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.trunk(x))


class MultiBasicEncoder(_Trunk):
    """Context encoder: per GRU level (1/2**d, 1/2**(d+1), 1/2**(d+2)) one head per output group.

    ``output_dims``: one (dim at 1/2**(d+2), dim at 1/2**(d+1), dim at 1/2**d) triple per group (hidden
    state, context). forward(x, num_layers) → a list per level, finest first, of per-group
    (B,dim,h,w) maps; with ``dual_input`` the batch holds left and right images, the heads see only
    the left half, and the trunk's (2B,128,H/2**d,W/2**d) output is returned last.
    """

    def __init__(self, output_dims: list[tuple[int, int, int]], norm: str = "batch", downsample: int = 2) -> None:
        super().__init__(norm, downsample)
        self.layer4 = _stage(128, 128, norm, stride=2)
        self.layer5 = _stage(128, 128, norm, stride=2)
        self.outputs08 = nn.ModuleList(
            nn.Sequential(ResidualBlock(128, 128, norm, 1), nn.Conv2d(128, dims[2], 3, padding=1))
            for dims in output_dims
        )
        self.outputs16 = nn.ModuleList(
            nn.Sequential(ResidualBlock(128, 128, norm, 1), nn.Conv2d(128, dims[1], 3, padding=1))
            for dims in output_dims
        )
        self.outputs32 = nn.ModuleList(nn.Conv2d(128, dims[0], 3, padding=1) for dims in output_dims)
        self.initialise()

    def forward(self, x: Tensor, num_layers: int = 3, dual_input: bool = False) -> list:
        trunk = self.trunk(x)
        x = trunk[: trunk.shape[0] // 2] if dual_input else trunk
        levels = [[head(x) for head in self.outputs08]]
        if num_layers > 1:
            x = self.layer4(x)
            levels.append([head(x) for head in self.outputs16])
        if num_layers > 2:
            x = self.layer5(x)
            levels.append([head(x) for head in self.outputs32])
        return [*levels, trunk] if dual_input else levels
