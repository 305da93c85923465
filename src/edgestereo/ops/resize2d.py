"""Bilinear resize with ``align_corners=True`` of a (B,C,H,W) map, and its MatMul twin.

RAFT-Stereo's GRU levels pass hidden states between resolutions with this interpolation (its published
weights were trained with it). The RK3588 compiler (rknn-toolkit2 2.5) runs a Resize with
``coordinate_transformation_mode=align_corners`` on the CPU ("Unknown op target: 0"). Bilinear
interpolation is separable, so the deploy twin is two MatMuls with constant interpolation matrices
(two non-zeros a row): ``rows @ x @ cols.T``, which the compiler keeps on its NPU.

>>> import torch
>>> x = torch.randn(1, 4, 6, 8)
>>> resize = AlignedBilinearResize()
>>> reference = resize(x, (12, 16))
>>> resize.switch_to_deploy()
>>> tuple(reference.shape), torch.allclose(resize(x, (12, 16)), reference, atol=1e-5)
((1, 4, 12, 16), True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from edgestereo.ops.conv3d import static_shape
from edgestereo.ops.deploy_switch import DeploySwitch
from edgestereo.ops.upsample3d import linear_resize_matrix

__all__ = ["AlignedBilinearResize", "resize_aligned_matmul", "resize_aligned_reference"]


def _check(x: Tensor, size: tuple[int, int]) -> None:
    if x.dim() != 4 or len(size) != 2:
        raise ValueError(f"expected a (B,C,H,W) map and a size (H',W'), got {tuple(x.shape)} and {tuple(size)}")


def resize_aligned_reference(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Reference: (B,C,H,W) → (B,C,H',W'), ``F.interpolate`` bilinear with ``align_corners=True``."""
    _check(x, size)
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def resize_aligned_matmul(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Deploy twin of :func:`resize_aligned_reference`: (B,C,H,W) → (B,C,H',W') as two MatMuls with
    constant (H',H) and (W,W') interpolation matrices (the same values to float rounding)."""
    _check(x, size)
    _, _, height, width = static_shape(x)
    out_height, out_width = (int(s) for s in size)
    if width != out_width:
        cols = linear_resize_matrix(width, out_width, align_corners=True, device=x.device, dtype=x.dtype)
        x = torch.matmul(x, cols.t())
    if height != out_height:
        rows = linear_resize_matrix(height, out_height, align_corners=True, device=x.device, dtype=x.dtype)
        x = torch.matmul(rows, x)
    return x


class AlignedBilinearResize(DeploySwitch):
    """Parameter-free bilinear ``align_corners=True`` resize; ``switch_to_deploy`` selects the MatMul twin.

    forward(x (B,C,H,W), size (H',W')) → (B,C,H',W').
    """

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        if self.deploy_mode:
            return resize_aligned_matmul(x, size)
        return resize_aligned_reference(x, size)
