"""Trilinear up-sampling of a one-channel cost volume, and its separable rank-≤4 twin.

GwcNet up-samples its (D/4, H/4, W/4) cost to (D, H, W) with ``F.interpolate(mode="trilinear",
align_corners=False)``: a 5-D Resize. Trilinear interpolation is separable, so the deploy path does
the disparity axis as a 1×1 convolution whose constant (D_out, D_in) weight holds the linear
interpolation coefficients (two non-zeros a row, PyTorch's half-pixel source positions), at the
low resolution where it is cheapest, and then a bilinear 4-D resize of H and W.

>>> import torch
>>> cost = torch.randn(1, 12, 8, 16)                     # (B, D, H, W)
>>> up = CostVolumeUpsample()
>>> reference = up(cost, (48, 32, 64))
>>> up.switch_to_deploy()
>>> tuple(reference.shape), torch.allclose(up(cost, (48, 32, 64)), reference, atol=1e-5)
((1, 48, 32, 64), True)
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from edgestereo.ops.conv3d import static_shape
from edgestereo.ops.deploy_switch import DeploySwitch

__all__ = ["CostVolumeUpsample", "linear_resize_matrix", "upsample_cost_separable", "upsample_cost_trilinear"]


@functools.lru_cache(maxsize=32)
def _resize_rows(in_size: int, out_size: int, align_corners: bool) -> tuple[tuple[float, ...], ...]:
    # Plain Python, not tensor ops: built while tracing, tensor writes would be recorded in the graph.
    rows = []
    for dst in range(out_size):
        if align_corners:
            # the first and last samples of both grids coincide; one output sample reads input sample 0
            src = dst * (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        else:
            # PyTorch's half-pixel source index, clamped at the first sample.
            src = max((dst + 0.5) * in_size / out_size - 0.5, 0.0)
        low = min(int(src), in_size - 1)
        high = min(low + 1, in_size - 1)
        row = [0.0] * in_size
        row[low] += 1.0 - (src - low)
        row[high] += src - low
        rows.append(tuple(row))
    return tuple(rows)


def linear_resize_matrix(in_size: int, out_size: int, *, align_corners: bool = False,
                         device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """(out_size, in_size) matrix M with ``M @ v`` = 1-D linear resize of v, as ``F.interpolate``
    computes it with the same ``align_corners``."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got {in_size} → {out_size}")
    rows = _resize_rows(in_size, out_size, align_corners)
    return torch.tensor(rows, dtype=torch.float64).to(device=device, dtype=dtype)


def upsample_cost_trilinear(cost: Tensor, size: tuple[int, int, int]) -> Tensor:
    """Reference: (B,D,H,W) → (B,D',H',W') by trilinear interpolation of the (B,1,D,H,W) volume."""
    return F.interpolate(cost.unsqueeze(1), size=size, mode="trilinear", align_corners=False)[:, 0]


def upsample_cost_separable(cost: Tensor, size: tuple[int, int, int]) -> Tensor:
    """Deploy: (B,D,H,W) → (B,D',H',W') as a 1×1 convolution along D, then a bilinear resize of H, W."""
    _, depth, h, w = static_shape(cost)
    out_depth, out_h, out_w = size
    if depth != out_depth:
        matrix = linear_resize_matrix(depth, out_depth, device=cost.device, dtype=cost.dtype)
        cost = F.conv2d(cost, matrix[:, :, None, None])
    if (h, w) != (out_h, out_w):
        cost = F.interpolate(cost, size=(out_h, out_w), mode="bilinear", align_corners=False)
    return cost


class CostVolumeUpsample(DeploySwitch):
    """Parameter-free trilinear up-sampling of a (B,D,H,W) cost; deploy twin rank ≤ 4."""

    def forward(self, cost: Tensor, size: tuple[int, int, int]) -> Tensor:
        """cost: (B,D,H,W); size: (D',H',W') → (B,D',H',W')."""
        if cost.dim() != 4:
            raise ValueError(f"expected a (B,D,H,W) cost, got shape {tuple(cost.shape)}")
        if self.deploy_mode:
            return upsample_cost_separable(cost, size)
        return upsample_cost_trilinear(cost, size)
