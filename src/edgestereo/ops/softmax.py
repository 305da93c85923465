"""Softmax over the channels of a (B,C,H,W) map, and its elementwise twin.

ONNX Runtime runs ``Softmax(axis=1)`` on NCHW by transposing the channels last and back; for a
handful of channels at full resolution that costs more than the convolutions around it (about a
third of StereoNetPlus's CPU time at 384×640). The deploy twin writes the same function as
ReduceMax, Sub, Exp, ReduceSum and Div: elementwise passes that every runtime and NPU carries, with
the maximum subtracted for the same numerical range as the fused op.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from edgestereo.ops.deploy_switch import DeploySwitch

__all__ = ["ChannelSoftmax", "channel_softmax_elementwise"]


def channel_softmax_elementwise(x: Tensor) -> Tensor:
    """x: (B,C,H,W) logits → (B,C,H,W) softmax over C, written out elementwise.

    >>> import torch
    >>> x = torch.tensor([0.0, 1.0, 2.0]).view(1, 3, 1, 1)
    >>> torch.allclose(channel_softmax_elementwise(x), torch.softmax(x, dim=1))
    True
    """
    exp = (x - x.amax(1, keepdim=True)).exp()
    return exp / exp.sum(1, keepdim=True)


class ChannelSoftmax(DeploySwitch):
    """Softmax over dim 1 of (B,C,H,W); parameter-free. Reference: ``F.softmax``; deploy: the
    elementwise form (same values to float rounding)."""

    def forward(self, x: Tensor) -> Tensor:
        if self.deploy_mode:
            return channel_softmax_elementwise(x)
        return F.softmax(x, dim=1)
