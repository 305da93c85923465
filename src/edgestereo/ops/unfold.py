"""Neighbourhood unfold: every pixel's k×k neighbours as channels, and its one-hot convolution twin.

CoEx-style superpixel upsampling weighs each full-resolution pixel's low-resolution neighbours; the
neighbours come from an unfold. ``F.unfold`` exports as Im2Col index arithmetic that NPUs lack, so the
deploy twin is a fixed one-hot k×k convolution after a zero pad: one Conv that every compiler and
int8 QDQ graph carries (StereoNetPlus's UnfoldConv).

Output channel ``c·k² + i·k + j`` at (y, x) is input channel c at (y + i - ⌊k/2⌋, x + j - ⌊k/2⌋),
zero outside the image. For k = 2 that is the pixel, its left, upper and upper-left neighbours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from edgestereo.errors import EdgeStereoError
from edgestereo.ops.deploy_switch import DeploySwitch

__all__ = ["NeighbourUnfold", "neighbour_unfold_conv", "neighbour_unfold_reference", "one_hot_unfold_kernel"]


def _padding(kernel_size: int) -> tuple[int, int, int, int]:
    before, after = kernel_size // 2, (kernel_size - 1) // 2
    return (before, after, before, after)  # F.pad order: left, right, top, bottom


def _check_kernel(kernel_size: int) -> None:
    if kernel_size < 1:
        raise EdgeStereoError(f"unfold kernel size must be ≥ 1, got {kernel_size}")


def one_hot_unfold_kernel(channels: int, kernel_size: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(C·k², 1, k, k) weights of a grouped convolution (groups = C) that copies each neighbour to a channel."""
    _check_kernel(kernel_size)
    taps = kernel_size * kernel_size
    eye = torch.eye(taps, dtype=dtype).view(taps, 1, kernel_size, kernel_size)
    return eye.repeat(channels, 1, 1, 1)


def neighbour_unfold_reference(x: Tensor, kernel_size: int) -> Tensor:
    """x: (B,C,H,W) → (B,C·k²,H,W) neighbours, with ``F.unfold``.

    >>> x = torch.arange(4.0).view(1, 1, 2, 2)
    >>> neighbour_unfold_reference(x, 2)[0, :, 1, 1]
    tensor([0., 1., 2., 3.])
    """
    _check_kernel(kernel_size)
    b, c, h, w = x.shape
    return F.unfold(F.pad(x, _padding(kernel_size)), kernel_size).view(b, c * kernel_size**2, h, w)


def neighbour_unfold_conv(x: Tensor, kernel: Tensor) -> Tensor:
    """x: (B,C,H,W), kernel from :func:`one_hot_unfold_kernel` → (B,C·k²,H,W) neighbours, as one Conv."""
    kernel_size = kernel.shape[-1]
    return F.conv2d(F.pad(x, _padding(kernel_size)), kernel.to(x.dtype), groups=x.shape[1])


class NeighbourUnfold(DeploySwitch):
    """k×k neighbourhood unfold of a (B,C,H,W) map → (B,C·k²,H,W); parameter-free, with a deploy twin.

    The one-hot kernel is a non-persistent buffer, so the state dict is the same on both paths.
    """

    def __init__(self, channels: int = 1, kernel_size: int = 2) -> None:
        super().__init__()
        self.channels = channels
        self.kernel_size = kernel_size
        self.register_buffer("kernel", one_hot_unfold_kernel(channels, kernel_size), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise EdgeStereoError(f"unfold expects (B,{self.channels},H,W), got {tuple(x.shape)}")
        if self.deploy_mode:
            return neighbour_unfold_conv(x, self.kernel)
        return neighbour_unfold_reference(x, self.kernel_size)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, {super().extra_repr()}"
