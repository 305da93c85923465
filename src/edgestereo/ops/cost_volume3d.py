"""Cost volumes for 3-D aggregation, built as lists of 4-D per-disparity maps.

Each builder returns one ``(B,C,H,W)`` map per candidate disparity d, zero where the shifted view
has no pixel (the left d columns for the left view). :class:`VolumeLayout` then holds them either
as the reference ``(B,C,D,H,W)`` volume or, on the deploy path, as the slice stack
``(D, B·C, H, W)`` that :mod:`edgestereo.ops.conv3d` convolves with 4-D tensors only. The maps
themselves never exceed rank 4 (the group-wise mean is a reduction over a ``(B, G, C/G, H·W)``
view), and they are written with pads and concatenations rather than in-place slice writes, so
neither path exports a ScatterND.

>>> import torch
>>> left, right = torch.randn(1, 8, 4, 6), torch.randn(1, 8, 4, 6)
>>> maps = groupwise_correlation_maps(left, right, num_disp=3, num_groups=2)
>>> layout = VolumeLayout()
>>> tuple(layout(maps).shape)
(1, 2, 3, 4, 6)
>>> layout.switch_to_deploy()
>>> tuple(layout(maps).shape)
(3, 2, 4, 6)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from edgestereo.ops.conv3d import static_shape
from edgestereo.ops.deploy_switch import DeploySwitch

__all__ = [
    "VolumeLayout",
    "concatenation_maps",
    "difference_maps",
    "disparity_regression",
    "groupwise_correlation",
    "groupwise_correlation_maps",
]


def _check_pair(reference: Tensor, target: Tensor, num_disp: int) -> None:
    if reference.dim() != 4 or reference.shape != target.shape:
        raise ValueError(f"expected two (B,C,H,W) feature maps of one shape, got {tuple(reference.shape)} "
                         f"and {tuple(target.shape)}")
    if num_disp < 1:
        raise ValueError(f"num_disp must be ≥ 1, got {num_disp}")


def _disparity_maps(reference: Tensor, target: Tensor, num_disp: int, side: str,
                    combine: Callable[[Tensor, Tensor], Tensor]) -> list[Tensor]:
    """``combine(reference(x), target(x ∓ d))`` on the overlapping columns, zero-padded back to W."""
    _check_pair(reference, target, num_disp)
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    width = static_shape(reference)[-1]
    maps: list[Tensor] = []
    for d in range(num_disp):
        if d >= width:  # no column has a match this far: an all-zero map, as in the published models
            maps.append(torch.zeros_like(maps[0]))
        elif d == 0:
            maps.append(combine(reference, target))
        elif side == "left":  # reference x matches target x − d
            maps.append(F.pad(combine(reference[..., d:], target[..., :-d]), (d, 0)))
        else:  # reference x matches target x + d
            maps.append(F.pad(combine(reference[..., :-d], target[..., d:]), (0, d)))
    return maps


def difference_maps(reference: Tensor, target: Tensor, num_disp: int, side: str = "left") -> list[Tensor]:
    """StereoNet's difference volume as maps: ``reference(x) − target(x ∓ d)`` for d < num_disp.

    reference, target: (B,C,H,W) features; side "left" (reference is the left view, the target is
    sampled at x − d) or "right" (x + d) → num_disp maps (B,C,H,W), zero where unmatched.
    """
    return _disparity_maps(reference, target, num_disp, side, torch.sub)


def groupwise_correlation(reference: Tensor, target: Tensor, num_groups: int) -> Tensor:
    """Mean of ``reference · target`` over each of ``num_groups`` channel groups.

    reference, target: (B,C,H,W) with C divisible by num_groups → (B,G,H,W). Computed on a
    (B, G, C/G, H·W) view, so it stays 4-D.
    """
    b, c, h, w = static_shape(reference)
    if c % num_groups:
        raise ValueError(f"{c} feature channels do not split into {num_groups} groups")
    product = (reference * target).reshape(b, num_groups, c // num_groups, h * w)
    return product.mean(dim=2).reshape(b, num_groups, h, w)


def groupwise_correlation_maps(reference: Tensor, target: Tensor, num_disp: int, num_groups: int) -> list[Tensor]:
    """GwcNet's group-wise correlation volume as maps (left reference, target sampled at x − d).

    reference, target: (B,C,H,W) → num_disp maps (B,G,H,W), zero in the d left columns.
    """
    return _disparity_maps(reference, target, num_disp, "left",
                           lambda ref, tgt: groupwise_correlation(ref, tgt, num_groups))


def concatenation_maps(reference: Tensor, target: Tensor, num_disp: int) -> list[Tensor]:
    """GwcNet-gc's concatenation volume as maps: ``[reference(x), target(x − d)]``.

    reference, target: (B,C,H,W) → num_disp maps (B,2C,H,W), both halves zero in the d left columns.
    """
    return _disparity_maps(reference, target, num_disp, "left", lambda ref, tgt: torch.cat((ref, tgt), dim=1))


def disparity_regression(probabilities: Tensor, disparities: Tensor) -> Tensor:
    """Soft argmin/argmax: the expected disparity, a multiply-sum over the disparity channels.

    probabilities: (B,D,H,W) summing to 1 over D; disparities: (D,) pixels → (B,1,H,W) pixels.
    Already 4-D, so both paths use it as is.
    """
    if probabilities.dim() != 4 or disparities.shape != (probabilities.shape[1],):
        raise ValueError(f"expected (B,D,H,W) probabilities and (D,) disparities, got "
                         f"{tuple(probabilities.shape)} and {tuple(disparities.shape)}")
    return (probabilities * disparities.reshape(1, -1, 1, 1)).sum(dim=1, keepdim=True)


class VolumeLayout(DeploySwitch):
    """Parameter-free: how the 3-D aggregation holds its cost volume.

    Reference: (B,C,D,H,W). Deploy: the slice stack (D, B·C, H, W) of :mod:`edgestereo.ops.conv3d`.
    ``forward`` stacks per-disparity maps; :meth:`cost_maps` turns a one-channel result back into
    (B,D,H,W) for the soft argmin.
    """

    def forward(self, maps: list[Tensor]) -> Tensor:
        """maps: D tensors (B,C,H,W) → (B,C,D,H,W) or (D, B·C, H, W)."""
        if self.deploy_mode:
            b, c, h, w = static_shape(maps[0])
            return torch.cat([m.reshape(1, b * c, h, w) for m in maps], dim=0)
        return torch.stack(maps, dim=2)

    def cost_maps(self, volume: Tensor) -> Tensor:
        """A one-channel volume (B,1,D,H,W) or slice stack (D,B,H,W) → (B,D,H,W)."""
        if self.deploy_mode:
            if volume.dim() != 4:
                raise ValueError(f"deploy path expects a (D,B,H,W) slice stack, got {tuple(volume.shape)}")
            return volume.permute(1, 0, 2, 3)
        if volume.dim() != 5 or volume.shape[1] != 1:
            raise ValueError(f"expected a (B,1,D,H,W) cost volume, got {tuple(volume.shape)}")
        # Indexing rather than squeeze(): an explicit axis, nothing for an exporter to guess.
        return volume[:, 0]
