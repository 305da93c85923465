"""Softmax over the channels of a (B,C,H,W) map, and its elementwise twin.

ONNX Runtime runs ``Softmax(axis=1)`` on NCHW by transposing the channels last and back: for a
handful of channels at full resolution, extra passes over the largest tensors of the frame. The
deploy twin writes the same function as
a channel maximum, Sub, Exp, ReduceSum and Div: elementwise passes that every runtime and NPU carries,
with the maximum subtracted for the same numerical range as the fused op.

The channel maximum is a halving tree of elementwise Max over channel slices, not ReduceMax: the
RK3588 compiler (rknn-toolkit2 2.5) runs a ReduceMax over channels on the CPU ("Unknown op target: 0")
and, seeing ReduceMax → Sub → Exp → ReduceSum → Div, fails to fuse it ("Not support convert to softmax
in opset15"); with the Max tree every node stays on its NPU and Exp … Div fuse to one softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from edgestereo.ops.deploy_switch import DeploySwitch

__all__ = ["ChannelSoftmax", "channel_max", "channel_softmax_elementwise"]


def channel_max(x: Tensor) -> Tensor:
    """x: (B,C,...) → (B,1,...) maximum over dim 1, as ceil(log2 C) elementwise Max of two channel slices
    (overlapping by one channel when the count is odd), the same values as ``x.amax(1, keepdim=True)``.

    >>> import torch
    >>> x = torch.tensor([3.0, -1.0, 7.0, 2.0, 5.0]).view(1, 5, 1, 1)
    >>> channel_max(x).flatten().tolist()
    [7.0]
    """
    while x.shape[1] > 1:
        half = (x.shape[1] + 1) // 2
        x = torch.maximum(x[:, :half], x[:, x.shape[1] - half:])
    return x


def channel_softmax_elementwise(x: Tensor) -> Tensor:
    """x: (B,C,H,W) logits → (B,C,H,W) softmax over C, written out elementwise.

    >>> import torch
    >>> x = torch.tensor([0.0, 1.0, 2.0]).view(1, 3, 1, 1)
    >>> torch.allclose(channel_softmax_elementwise(x), torch.softmax(x, dim=1))
    True
    """
    exp = (x - channel_max(x)).exp()
    return exp / exp.sum(1, keepdim=True)


class ChannelSoftmax(DeploySwitch):
    """Softmax over dim 1 of (B,C,H,W); parameter-free. Reference: ``F.softmax``; deploy: the
    elementwise form (same values to float rounding)."""

    def forward(self, x: Tensor) -> Tensor:
        if self.deploy_mode:
            return channel_softmax_elementwise(x)
        return F.softmax(x, dim=1)
