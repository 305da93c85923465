"""1-D correlation cost volume: for each candidate disparity, the channel mean of left × shifted right.

Two twins build the same ``(B,D,H,W)`` volume:

- :func:`correlation_volume_reference`: one broadcast product over a ``(B,C,H,D,W)`` window view,
  short to read and one kernel on a GPU;
- :func:`correlation_volume_shift`: one zero pad, then per candidate a slice, a product and a channel
  mean, concatenated. Every tensor stays 4-D and every op (Pad, Slice, Mul, Conv, Concat) is one
  that NPU compilers and int8 QDQ graphs carry (AANet's and CoEx's export-friendly volume).

The channel mean of the deploy twin is a 1×1 convolution with weights 1/C, not ReduceMean: the RK3588
compiler (rknn-toolkit2 2.5) merges the D parallel ReduceMeans into one batched matrix product, whose
int8 form overflows a 13-bit register field at 1/8 of 384×640 ("REGTASK: The bit width of field
value exceeds the limit"); the convolutions it compiles as they are. ONNX Runtime runs both alike.

Entry ``d`` at column ``x`` is ``mean_c left[c, y, x] · right[c, y, x - d]``, and 0 where
``x - d`` falls left of the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from edgestereo.errors import EdgeStereoError
from edgestereo.ops.deploy_switch import DeploySwitch

__all__ = ["Correlation1d", "correlation_volume_reference", "correlation_volume_shift"]


def _check_features(left: Tensor, right: Tensor, num_disp: int) -> None:
    if left.dim() != 4 or left.shape != right.shape:
        raise EdgeStereoError(
            f"correlation needs two (B,C,H,W) features of one shape, got {tuple(left.shape)} and {tuple(right.shape)}"
        )
    if num_disp < 1:
        raise EdgeStereoError(f"correlation needs at least one candidate disparity, got {num_disp}")


def correlation_volume_reference(left: Tensor, right: Tensor, num_disp: int) -> Tensor:
    """left, right: (B,C,H,W) features → (B,D,H,W) correlation, D = ``num_disp`` candidates.

    >>> left = torch.ones(1, 2, 1, 4)
    >>> correlation_volume_reference(left, 2 * left, 3)[0, :, 0]
    tensor([[2., 2., 2., 2.],
            [0., 2., 2., 2.],
            [0., 0., 2., 2.]])
    """
    _check_features(left, right, num_disp)
    width = left.shape[-1]
    # Column x + k of the padded right view holds right[x + k - (D-1)]: window k is disparity D-1-k.
    windows = F.pad(right, (num_disp - 1, 0)).unfold(-1, width, 1).flip(3)  # (B,C,H,D,W)
    return (left.unsqueeze(3) * windows).mean(1).permute(0, 2, 1, 3).contiguous()


def correlation_volume_shift(left: Tensor, right: Tensor, num_disp: int) -> Tensor:
    """left, right: (B,C,H,W) features → (B,D,H,W) correlation, with rank ≤ 4 tensors only.

    The right view is zero-padded once by D-1 columns on the left; candidate d is then a slice of it,
    a product with the left view and a channel mean as a 1×1 convolution (the padding makes the
    product 0 where x < d).

    >>> left = torch.ones(1, 2, 1, 4)
    >>> torch.equal(correlation_volume_shift(left, 2 * left, 3), correlation_volume_reference(left, 2 * left, 3))
    True
    """
    _check_features(left, right, num_disp)
    width = left.shape[-1]
    padded = F.pad(right, (num_disp - 1, 0))
    mean = torch.full((1, left.shape[1], 1, 1), 1.0 / left.shape[1], dtype=left.dtype, device=left.device)
    costs = [F.conv2d(left * padded[..., num_disp - 1 - d : num_disp - 1 - d + width], mean)
             for d in range(num_disp)]
    return torch.cat(costs, 1)


class Correlation1d(DeploySwitch):
    """Correlation cost volume over ``num_disp`` candidates; parameter-free, with a deploy twin.

    forward: left, right (B,C,H,W) → (B,D,H,W). The reference path is the window product, the deploy
    path the shift-and-pad loop; both give the same numbers.
    """

    def __init__(self, num_disp: int) -> None:
        super().__init__()
        if num_disp < 1:
            raise EdgeStereoError(f"correlation needs at least one candidate disparity, got {num_disp}")
        self.num_disp = num_disp

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        if self.deploy_mode:
            return correlation_volume_shift(left, right, self.num_disp)
        return correlation_volume_reference(left, right, self.num_disp)

    def extra_repr(self) -> str:
        return f"num_disp={self.num_disp}, {super().extra_repr()}"
