"""3-D convolution layers that run on a (B,C,D,H,W) volume or, on the deploy path, a (D, B·C, H, W)
slice stack (:mod:`edgestereo.ops.conv3d`).

They subclass ``nn.Conv3d``, ``nn.ConvTranspose3d`` and ``nn.BatchNorm3d``, so parameter names,
shapes and initialisation are PyTorch's and published checkpoints load unchanged; the parameter-free
op child that does the arithmetic holds the deploy switch.
"""

from __future__ import annotations

from torch import Tensor, nn

from edgestereo.ops.conv3d import Conv3dOp, ConvTranspose3dOp, static_shape

__all__ = ["VolumeBatchNorm3d", "VolumeConv3d", "VolumeConvTranspose3d", "conv_bn_3d"]


def _check_supported(layer: nn.modules.conv._ConvNd) -> None:
    if layer.groups != 1 or any(d != 1 for d in layer.dilation) or layer.padding_mode != "zeros":
        raise ValueError(f"{type(layer).__name__} supports groups=1, dilation=1 and zero padding only")


class VolumeConv3d(nn.Conv3d):
    """``nn.Conv3d`` (groups 1, no dilation, zero padding) on a volume or a slice stack."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _check_supported(self)
        self.op = Conv3dOp()

    def forward(self, x: Tensor) -> Tensor:
        """x: (B,Cin,D,H,W) or (D, B·Cin, H, W) → the same layout with Cout channels."""
        return self.op(x, self.weight, self.bias, self.stride, self.padding)


class VolumeConvTranspose3d(nn.ConvTranspose3d):
    """``nn.ConvTranspose3d`` (groups 1, no dilation, zero padding) on a volume or a slice stack;
    exported without output padding on either path."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _check_supported(self)
        self.op = ConvTranspose3dOp()

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """x: (B,Cin,D,H,W) or (D, B·Cin, H, W) → the same layout with Cout channels."""
        return self.op(x, self.weight, self.bias, self.stride, self.padding, self.output_padding)


class VolumeBatchNorm3d(nn.BatchNorm3d):
    """``nn.BatchNorm3d`` on a volume or a slice stack, with the same statistics either way (a slice
    stack is normalised as its (D·B, C, H, W) view, which holds the same values per channel)."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() not in (4, 5):
            raise ValueError(f"expected a (B,C,D,H,W) volume or a (D·B, C, H, W) view, got {input.dim()}-D input")

    def forward(self, x: Tensor) -> Tensor:
        """x: (B,C,D,H,W) or (D, B·C, H, W) → same shape."""
        if x.dim() == 5:
            return super().forward(x)
        d, bc, h, w = static_shape(x)
        rows = d * bc // self.num_features
        return super().forward(x.reshape(rows, self.num_features, h, w)).reshape(d, bc, h, w)


def conv_bn_3d(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> nn.Sequential:
    """3-D convolution without bias followed by batch norm: keys ``0.weight`` and ``1.*``."""
    return nn.Sequential(
        VolumeConv3d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False),
        VolumeBatchNorm3d(out_channels),
    )
