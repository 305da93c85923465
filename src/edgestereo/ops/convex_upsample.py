"""Convex upsampling (RAFT): every fine pixel is a softmax-weighted mix of its coarse 3x3 neighbourhood.

The mask holds 9 logits per fine pixel: channel ``k*f*f + a*f + b`` weighs neighbour ``k`` (row-major
3x3, zero outside the image) for the fine pixel at offset ``(a, b)`` inside its coarse cell. Values
are multiplied by ``f`` because a displacement of one coarse pixel is ``f`` fine pixels.

The reference twin is the published computation (``unfold`` and 7-D views). The deploy twin has no
reshape: a depth-to-space of the mask puts every logit at its fine pixel, (B,9,f*H,f*W), the softmax runs
over those 9 channels, and the 3x3 neighbours (shifted slices of the zero-padded field) are repeated to
the fine grid by nearest up-sampling. The RK3588 compiler (rknn-toolkit2 2.5) keeps all of it on its NPU;
the earlier 4-D form, whose reshapes of the mask to (B,9,f*f,H*W) are 2048 columns wide at 1/8 of
256x512, overflowed a 13-bit register field ("REGTASK") and ran on the CPU.

A mask of :func:`bilinear_mask_logits` (the same 9·f·f logits at every pixel) makes the upsampling
bilinear (``align_corners=False``) up to its floor; a constant mask makes it a 3x3 box average, the
same value in every fine pixel of a cell: 4x4 blocks.

>>> import torch
>>> flow, mask = torch.randn(2, 1, 6, 8), torch.randn(2, 9 * 16, 6, 8)
>>> tuple(convex_upsample_4d(flow, mask, 4).shape)
(2, 1, 24, 32)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from edgestereo.ops.deploy_switch import DeploySwitch
from edgestereo.ops.softmax import channel_softmax_elementwise

__all__ = ["ConvexUpsample", "bilinear_mask_logits", "convex_upsample_4d", "convex_upsample_reference"]


def _check(flow: Tensor, mask: Tensor, factor: int) -> None:
    if flow.dim() != 4 or mask.dim() != 4 or mask.shape[1] != 9 * factor * factor:
        raise ValueError(f"expected flow (B,D,H,W) and mask (B,{9 * factor * factor},H,W) for factor {factor}, "
                         f"got {tuple(flow.shape)} and {tuple(mask.shape)}")
    if flow.shape[0] != mask.shape[0] or flow.shape[2:] != mask.shape[2:]:
        raise ValueError(f"flow {tuple(flow.shape)} and mask {tuple(mask.shape)} differ in batch or size")


def bilinear_mask_logits(factor: int, floor: float = 0.01) -> Tensor:
    """Logits (9·f·f,) in the mask's channel order whose softmax gives every fine pixel the bilinear
    (``align_corners=False``) weights of its 3x3 coarse neighbours; a neighbour bilinear leaves out
    gets ``floor`` (before normalisation) instead of zero, so every logit stays finite.

    >>> w = torch.softmax(bilinear_mask_logits(4, floor=1e-9).view(9, 4, 4), dim=0)
    >>> [round(float(v), 4) for v in w[:, 0, 0]]  # the top-left fine pixel of a cell
    [0.1406, 0.2344, 0.0, 0.2344, 0.3906, 0.0, 0.0, 0.0, 0.0]
    """
    if factor < 1 or not 0.0 < floor < 1.0:
        raise ValueError(f"expected factor >= 1 and 0 < floor < 1, got factor {factor}, floor {floor}")
    # the fine pixel a sits (a + 0.5) / f - 0.5 coarse px from its cell centre; tent weights on -1, 0, +1
    axis = [[max(0.0, 1.0 - abs((a + 0.5) / factor - 0.5 - offset)) for offset in (-1, 0, 1)] for a in range(factor)]
    logits = [math.log(max(axis[a][dy] * axis[b][dx], floor))
              for dy in range(3) for dx in range(3) for a in range(factor) for b in range(factor)]
    return torch.tensor(logits, dtype=torch.float32)


def convex_upsample_reference(flow: Tensor, mask: Tensor, factor: int) -> Tensor:
    """flow (B,D,H,W) coarse pixels, mask (B,9*f*f,H,W) logits → (B,D,f*H,f*W) fine pixels."""
    _check(flow, mask, factor)
    batch, channels, height, width = flow.shape
    weights = torch.softmax(mask.view(batch, 1, 9, factor, factor, height, width), dim=2)
    neighbours = F.unfold(factor * flow, [3, 3], padding=1).view(batch, channels, 9, 1, 1, height, width)
    fine = torch.sum(weights * neighbours, dim=2)  # (B,D,f,f,H,W)
    return fine.permute(0, 1, 4, 2, 5, 3).reshape(batch, channels, factor * height, factor * width)


def convex_upsample_4d(flow: Tensor, mask: Tensor, factor: int) -> Tensor:
    """Deploy twin of :func:`convex_upsample_reference`; no tensor exceeds 4-D and nothing is reshaped.

    flow (B,D,H,W) coarse pixels, mask (B,9*f*f,H,W) logits → (B,D,f*H,f*W) fine pixels.
    """
    _check(flow, mask, factor)
    height, width = flow.shape[2:]
    # channel k*f*f + a*f + b at (h, w) → channel k at (h*f + a, w*f + b): (B,9,f*H,f*W)
    # the softmax written elementwise: ONNX Runtime's Softmax on a non-last axis transposes the tensor twice
    weights = channel_softmax_elementwise(F.pixel_shuffle(mask, factor))
    outputs = []
    for channel in range(flow.shape[1]):
        padded = F.pad(factor * flow[:, channel : channel + 1], (1, 1, 1, 1))
        # the 3x3 neighbours as shifted views, row-major as unfold lists them: exact in any precision
        neighbours = torch.cat([padded[:, :, dy : dy + height, dx : dx + width]
                                for dy in range(3) for dx in range(3)], dim=1)  # (B,9,H,W)
        neighbours = F.interpolate(neighbours, scale_factor=factor, mode="nearest")  # (B,9,f*H,f*W)
        outputs.append((weights * neighbours).sum(dim=1, keepdim=True))
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)


class ConvexUpsample(DeploySwitch):
    """Parameter-free convex upsampling by ``factor``; ``switch_to_deploy`` selects the 4-D twin.

    forward(flow (B,D,H,W), mask (B,9*f*f,H,W)) → (B,D,f*H,f*W).
    """

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, flow: Tensor, mask: Tensor) -> Tensor:
        if self.deploy_mode:
            return convex_upsample_4d(flow, mask, self.factor)
        return convex_upsample_reference(flow, mask, self.factor)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, {super().extra_repr()}"
