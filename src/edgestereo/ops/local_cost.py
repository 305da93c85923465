"""Local cost look-up: a cost volume read at a few candidates around a per-pixel estimate.

Given a volume ``(B,D,H,W)`` over candidates ``0 … D-1`` and a fractional position ``p`` per pixel
(candidate units), entry ``k`` of the output is the volume linearly interpolated at ``p + offset_k``
(offsets ``-r … r``), 0 outside ``[0, D-1]``. This is what a refinement stage needs to look at the
matching costs next to its current disparity, without warping the right image.

- :func:`local_cost_reference`: ``torch.gather`` of the two neighbouring candidates and a linear blend;
- :func:`local_cost_hat`: each output is ``Σ_d volume_d · max(0, 1 − |d − (p + offset)|)``, the same
  interpolation written with a hat kernel: Sub, Max, Relu, Mul and ReduceSum on 4-D tensors, ops that
  NPU compilers and int8 QDQ graphs carry (no GatherElements, no GridSample; no Abs, Min or Pad of
  the channel axis, which the RK3588 compiler runs on its CPU).

>>> import torch
>>> volume = torch.arange(5.0).view(1, 5, 1, 1)          # cost d at candidate d
>>> position = torch.full((1, 1, 1, 1), 1.25)
>>> local_cost_hat(volume, position, 1)[0, :, 0, 0]
tensor([0.2500, 1.2500, 2.2500])
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgestereo.errors import EdgeStereoError
from edgestereo.ops.deploy_switch import DeploySwitch

__all__ = ["LocalCost", "local_cost_hat", "local_cost_reference"]


def _check(volume: Tensor, position: Tensor, radius: int) -> None:
    if volume.dim() != 4 or position.dim() != 4 or position.shape[1] != 1:
        raise EdgeStereoError(f"local cost needs a volume (B,D,H,W) and a position (B,1,H,W), got "
                              f"{tuple(volume.shape)} and {tuple(position.shape)}")
    if position.shape[0] != volume.shape[0] or position.shape[2:] != volume.shape[2:]:
        raise EdgeStereoError(f"volume {tuple(volume.shape)} and position {tuple(position.shape)} differ in "
                              "batch or size")
    if radius < 0:
        raise EdgeStereoError(f"local cost radius must be ≥ 0, got {radius}")


def local_cost_reference(volume: Tensor, position: Tensor, radius: int) -> Tensor:
    """volume (B,D,H,W), position (B,1,H,W) in candidate units → (B,2r+1,H,W) interpolated costs."""
    _check(volume, position, radius)
    candidates = volume.shape[1]
    offsets = torch.arange(-radius, radius + 1, device=volume.device, dtype=position.dtype).view(1, -1, 1, 1)
    where = position + offsets  # (B,K,H,W)
    below = where.floor()
    fraction = where - below  # NaN where the position is NaN: the costs there are NaN, as in the hat twin
    padded = torch.nn.functional.pad(volume, (0, 0, 0, 0, 1, 1))  # candidate -1 and D are 0
    # positions outside [-1, D] read the zero padding on both sides; a NaN position reads it too (a NaN
    # index would be -2^63 as an integer)
    below = torch.nan_to_num(below, nan=-2.0)
    low_index = (below.clamp(-1, candidates) + 1).long()
    high_index = (below.clamp(-2, candidates - 1) + 2).long()
    low = padded.gather(1, low_index)
    high = padded.gather(1, high_index)
    return low * (1 - fraction) + high * fraction


def local_cost_hat(volume: Tensor, position: Tensor, radius: int) -> Tensor:
    """Deploy twin of :func:`local_cost_reference` with rank ≤ 4 elementwise ops and a channel sum.

    The hat weights are built once, for offset 0, over candidates -r … D-1+r, as
    ``relu(1 − max(t, −t))`` with ``t = p − d`` (``|t|`` exactly). Offset k
    reads them shifted by k candidates along the channels, since Σ_d V[d]·hat(d − p − k) =
    Σ_d V[d]·hat((d − k) − p): a slice of the weights, so the volume needs no zero padding.
    """
    _check(volume, position, radius)
    candidates = volume.shape[1]
    span = candidates + 2 * radius
    values = torch.arange(-radius, span - radius, device=volume.device, dtype=volume.dtype).view(1, -1, 1, 1)
    distance = position - values  # (B,D+2r,H,W); the tensor first: a broadcast constant first runs on the CPU
    weights = torch.relu(1 - torch.maximum(distance, distance * -1.0))  # |t| as Max: Abs and Min run on the CPU
    costs = [(volume * weights[:, radius - offset : radius - offset + candidates]).sum(1, keepdim=True)
             for offset in range(-radius, radius + 1)]
    return torch.cat(costs, 1)


class LocalCost(DeploySwitch):
    """Parameter-free local cost look-up with a deploy twin.

    forward(volume (B,D,H,W), position (B,1,H,W) candidate units) → (B,2·radius+1,H,W).
    """

    def __init__(self, radius: int) -> None:
        super().__init__()
        if radius < 0:
            raise EdgeStereoError(f"local cost radius must be ≥ 0, got {radius}")
        self.radius = radius

    def forward(self, volume: Tensor, position: Tensor) -> Tensor:
        if self.deploy_mode:
            return local_cost_hat(volume, position, self.radius)
        return local_cost_reference(volume, position, self.radius)

    def extra_repr(self) -> str:
        return f"radius={self.radius}, {super().extra_repr()}"
