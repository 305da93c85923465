"""RAFT-style 1-D all-pairs correlation pyramid and its lookup: reference and deploy twins.

The all-pairs volume holds, for every left pixel, its dot product with every right pixel of the same
row, divided by sqrt(C). Level ``l`` of the pyramid averages pairs of right pixels ``l`` times. A
lookup samples ``2r+1`` points around ``x / 2**l`` on every level (linear in x, zero outside the row)
and stacks them level-major into channels.

Reference twins follow the published computation (``einsum``, ``grid_sample``); deploy twins use only
4-D tensors, a batched matrix product, gather and elementwise ops, which NPU compilers accept.

>>> import torch
>>> pyramid_op = CorrelationPyramid1d(num_levels=2, radius=1)
>>> fmap1, fmap2 = torch.randn(1, 8, 4, 16), torch.randn(1, 8, 4, 16)
>>> x = torch.arange(16.0).view(1, 1, 1, 16).repeat(1, 1, 4, 1)
>>> tuple(pyramid_op.lookup(pyramid_op.build(fmap1, fmap2), x).shape)
(1, 6, 4, 16)
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from edgestereo.ops.deploy_switch import DeploySwitch

__all__ = [
    "CorrelationPyramid1d",
    "all_pairs_correlation_einsum",
    "all_pairs_correlation_matmul",
    "correlation_pyramid",
    "lookup_at_rest_features",
    "lookup_gather",
    "lookup_grid_sample",
    "pad_pyramid",
]

def _at_least_float32(tensor: Tensor) -> Tensor:
    """Half and bfloat16 up to float32 (the published "reg" volume is float32); float64 stays."""
    return tensor.float() if tensor.element_size() < 4 else tensor


def _no_autocast(device_type: str) -> contextlib.AbstractContextManager[None]:
    """Autocast off (meta tensors, for FLOP counting, have no autocast to turn off)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _check_feature_pair(fmap1: Tensor, fmap2: Tensor) -> None:
    if fmap1.dim() != 4 or fmap2.dim() != 4 or fmap1.shape[:3] != fmap2.shape[:3]:
        raise ValueError(f"expected (B,C,H,W1) and (B,C,H,W2) features, got {tuple(fmap1.shape)} "
                         f"and {tuple(fmap2.shape)}")


def all_pairs_correlation_einsum(fmap1: Tensor, fmap2: Tensor) -> Tensor:
    """Reference: fmap1 (B,C,H,W1), fmap2 (B,C,H,W2) → volume (B,H,W1,W2), dot products / sqrt(C)."""
    _check_feature_pair(fmap1, fmap2)
    return torch.einsum("bchi,bchj->bhij", fmap1, fmap2) / math.sqrt(fmap1.shape[1])


def all_pairs_correlation_matmul(fmap1: Tensor, fmap2: Tensor) -> Tensor:
    """Deploy twin of :func:`all_pairs_correlation_einsum`: one MatMul per row, batched over (B,H).

    (B,H,W1,C) @ (B,H,C,W2) → (B,H,W1,W2), no tensor over 4-D. The RK3588 compiler (rknn-toolkit2 2.5)
    runs it on its NPU at every size tried (features up to 68x120); the earlier broadcast multiply and
    channel sum, which it rewrites into matrix products itself, left reshapes of 2^17 columns on its
    CPU at 256x512 ("REGTASK", "Unknown op target").
    """
    _check_feature_pair(fmap1, fmap2)
    return torch.matmul(fmap1.permute(0, 2, 3, 1), fmap2.permute(0, 2, 1, 3)) / math.sqrt(fmap1.shape[1])


def correlation_pyramid(volume: Tensor, num_levels: int) -> list[Tensor]:
    """volume (B,H,W1,W2) → ``num_levels`` volumes (B,H,W1,W2 // 2**l), averaging right-pixel pairs."""
    levels = [volume]
    for _ in range(num_levels - 1):
        levels.append(F.avg_pool2d(levels[-1], kernel_size=(1, 2), stride=(1, 2)))
    return levels


def lookup_grid_sample(pyramid: list[Tensor], x: Tensor, radius: int) -> Tensor:
    """Reference lookup with ``grid_sample`` (bilinear, zero padding, align_corners=True).

    pyramid: volumes (B,H,W1,W2_l); x: (B,1,H,W1) matching x in level-0 right pixels
    → (B, L*(2r+1), H, W1), level-major.
    """
    batch, _, height, width = x.shape
    offsets = torch.linspace(-radius, radius, 2 * radius + 1, device=x.device, dtype=x.dtype).view(1, 1, -1, 1)
    centres = x.reshape(batch * height * width, 1, 1, 1)
    samples = []
    for level, volume in enumerate(pyramid):
        right_width = volume.shape[-1]
        grid_x = 2 * (centres / 2**level + offsets) / (right_width - 1) - 1
        # the volume is sampled as B*H*W1 images of one row: y is 0 (the row centre) for every point
        grid = torch.cat([grid_x, torch.zeros_like(grid_x)], dim=-1)
        rows = volume.reshape(batch * height * width, 1, 1, right_width)
        sampled = F.grid_sample(rows, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        samples.append(sampled.view(batch, height, width, -1))
    return _at_least_float32(torch.cat(samples, dim=-1).permute(0, 3, 1, 2).contiguous())


def pad_pyramid(pyramid: list[Tensor]) -> list[Tensor]:
    """Each (B,H,W1,W2_l) volume with one zero column on both sides of W2, right pixels along channels:
    (B,W2_l+2,H,W1), as :func:`lookup_gather` needs. Laid out once per pair, so the lookups of every
    iteration gather along channels and come out in (B,C,H,W) order with no transpose: the RK3588
    compiler (rknn-toolkit2 2.5) overflowed a 13-bit register field ("REGTASK") on the transpose of the
    stacked lookups at 256x512."""
    return [F.pad(volume, (1, 1)).permute(0, 3, 1, 2) for volume in pyramid]


def lookup_gather(padded_pyramid: list[Tensor], x: Tensor, radius: int) -> Tensor:
    """Deploy twin of :func:`lookup_grid_sample`: gather and linear interpolation along x only.

    padded_pyramid: :func:`pad_pyramid` output, (B,W2_l+2,H,W1); x: (B,1,H,W1) level-0 right pixels
    → (B, L*(2r+1), H, W1). The 2r+1 sample points of a level share one fractional part, so 2r+2
    gathered neighbours give all of them; indices outside the row land on the zero columns.
    """
    points = 2 * radius + 1
    offsets = torch.arange(-radius, radius + 2, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    # neighbour k and neighbour k+1 minus neighbour k, as 1x1 convolutions: slices of the gathered
    # channels made the RK3588 compiler's slice fusion crash (rknn-toolkit2 2.5, "_p_fuse_focus_slice2")
    eye = torch.eye(points + 1, device=x.device, dtype=x.dtype)
    lower = eye[:points].reshape(points, points + 1, 1, 1)
    step = (eye[1:] - eye[:points]).reshape(points, points + 1, 1, 1)
    samples = []
    for level, padded in enumerate(padded_pyramid):
        scaled = x / 2**level
        floor = torch.floor(scaled)
        fraction = scaled - floor
        # +1: channel 0 of the padded volume is x = -1; anything farther out reads a zero column too
        index = torch.clamp(floor + 1 + offsets, 0, padded.shape[1] - 1).long()
        neighbours = torch.gather(padded, 1, index)  # (B,2r+2,H,W1)
        below, rise = F.conv2d(neighbours, lower.to(neighbours.dtype)), F.conv2d(neighbours, step.to(neighbours.dtype))
        samples.append(below + rise * fraction)
    return _at_least_float32(torch.cat(samples, dim=1))


def lookup_at_rest_features(fmap1: Tensor, fmap2: Tensor, num_levels: int, radius: int) -> Tensor:
    """:func:`lookup_gather` at x = each left pixel's own column (zero disparity), from the features.

    fmap1, fmap2: (B,C,H,W) → (B, L*(2r+1), H, W), level-major, equal to the lookup in the pyramid
    to float rounding. The volume is linear in fmap2, so level ``l`` is the correlation with fmap2
    averaged over 2**l columns; its sample points ``x / 2**l + o`` read that average nearest-upsampled
    to W and shifted by ``o * 2**l`` columns, and the fraction of ``x / 2**l`` is a constant of the
    column. Per level: the 2r+2 shifted windows side by side in channels, one Mul with fmap1 repeated
    as many times, one grouped 1x1 convolution (the channel sums, weights 1/sqrt(C)), a linear blend.
    No gather: the RK3588 compiler (rknn-toolkit2 2.5) turns a GatherElements with constant indices
    into a MatMul with reshapes that run on its CPU ("Unknown op target", "REGTASK" at 256x512). Few
    nodes: its build rewrites the graph node by node, and each rewrite of a RAFT-sized graph is slow.
    """
    if fmap1.dim() != 4 or fmap1.shape != fmap2.shape:
        raise ValueError(f"expected two (B,C,H,W) features of one shape, got {tuple(fmap1.shape)} "
                         f"and {tuple(fmap2.shape)}")
    channels, width = int(fmap1.shape[1]), int(fmap1.shape[3])
    windows = 2 * radius + 2  # the neighbours below and above every sample point
    channel_sums = torch.full((windows, channels, 1, 1), 1.0 / math.sqrt(channels), dtype=fmap1.dtype,
                              device=fmap1.device)
    left = torch.cat([fmap1] * windows, dim=1)  # (B, windows*C, H, W)
    samples = []
    right = fmap2
    for level in range(num_levels):
        step = 2**level
        if level:
            right = F.avg_pool2d(right, kernel_size=(1, 2), stride=(1, 2))
        fine = right if step == 1 else F.interpolate(right, scale_factor=(1, step), mode="nearest")
        # zeros outside the row, as the padded pyramid's zero columns give
        padded = F.pad(fine, (radius * step, (radius + 1) * step + width - int(fine.shape[3])))
        shifted = torch.cat([padded[..., offset * step : offset * step + width] for offset in range(windows)], dim=1)
        # (B, windows, H, W): window k at floor(x / 2**l) + k - r
        dots = F.conv2d(left * shifted, channel_sums, groups=windows)
        # built from Python numbers: a constant of the traced graph
        fraction = torch.tensor([(x % step) / step for x in range(width)], dtype=fmap1.dtype,
                                device=fmap1.device).view(1, 1, 1, width)
        samples.append(dots[:, :-1] * (1 - fraction) + dots[:, 1:] * fraction)
    return torch.cat(samples, dim=1)


class CorrelationPyramid1d(DeploySwitch):
    """The correlation as an object built once per pair and indexed every iteration.

    ``build(fmap1, fmap2)`` → pyramid; ``lookup(pyramid, x)`` → (B, L*(2r+1), H, W1) features. The
    volume is computed in (at least) float32 even under autocast, as the published "reg" implementation
    does.
    Parameter-free; ``switch_to_deploy`` selects the export-safe twins.
    """

    def __init__(self, num_levels: int = 4, radius: int = 4) -> None:
        super().__init__()
        self.num_levels = num_levels
        self.radius = radius

    @property
    def channels(self) -> int:
        """Number of lookup channels, L*(2r+1)."""
        return self.num_levels * (2 * self.radius + 1)

    def build(self, fmap1: Tensor, fmap2: Tensor) -> list[Tensor]:
        """fmap1 (B,C,H,W1), fmap2 (B,C,H,W2) → pyramid of (B,H,W1,W2_l) volumes (zero-padded in W2
        on the deploy path)."""
        with _no_autocast(fmap1.device.type):
            fmap1, fmap2 = _at_least_float32(fmap1), _at_least_float32(fmap2)
            if self.deploy_mode:
                return pad_pyramid(correlation_pyramid(all_pairs_correlation_matmul(fmap1, fmap2),
                                                       self.num_levels))
            return correlation_pyramid(all_pairs_correlation_einsum(fmap1, fmap2), self.num_levels)

    def lookup(self, pyramid: list[Tensor], x: Tensor) -> Tensor:
        """pyramid from :meth:`build`; x (B,1,H,W1) matching x in right pixels → (B, L*(2r+1), H, W1)."""
        if self.deploy_mode:
            return lookup_gather(pyramid, x, self.radius)
        return lookup_grid_sample(pyramid, x, self.radius)

    def lookup_at_rest(self, pyramid: list[Tensor], fmap1: Tensor, fmap2: Tensor) -> Tensor:
        """:meth:`lookup` at zero disparity (x = each left pixel's own column) → (B, L*(2r+1), H, W).
        The reference twin reads ``pyramid`` (from :meth:`build`); the deploy twin computes it from the
        features (B,C,H,W) x2 and needs no gather."""
        if self.deploy_mode:
            with _no_autocast(fmap1.device.type):
                return lookup_at_rest_features(_at_least_float32(fmap1), _at_least_float32(fmap2), self.num_levels,
                                               self.radius)
        batch, _, height, width = fmap1.shape
        x = torch.arange(width, device=fmap1.device, dtype=pyramid[0].dtype).view(1, 1, 1, width)
        return self.lookup(pyramid, x.repeat(batch, 1, height, 1))

    def forward(self, fmap1: Tensor, fmap2: Tensor, x: Tensor) -> Tensor:
        """One-shot :meth:`build` and :meth:`lookup`: (B,C,H,W1), (B,C,H,W2), (B,1,H,W1) → (B,L*(2r+1),H,W1)."""
        return self.lookup(self.build(fmap1, fmap2), x)

    def extra_repr(self) -> str:
        return f"num_levels={self.num_levels}, radius={self.radius}, {super().extra_repr()}"
