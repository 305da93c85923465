"""Pad a stereo pair to a model's divisor and crop the disparity back."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["InputPadder"]


class InputPadder:
    """Pads (…,H,W) tensors so H and W become multiples of ``divisor`` (edge replication, split
    evenly between the two sides) and crops outputs back to (H,W).

    >>> import torch
    >>> padder = InputPadder((1, 3, 50, 70), divisor=32)
    >>> left, right = padder.pad(torch.zeros(1, 3, 50, 70), torch.zeros(1, 3, 50, 70))
    >>> tuple(left.shape), tuple(padder.unpad(left[:, :1]).shape)
    ((1, 3, 64, 96), (1, 1, 50, 70))
    """

    def __init__(self, shape: tuple[int, ...], divisor: int, mode: str = "replicate") -> None:
        h, w = shape[-2:]
        pad_h = (-h) % divisor
        pad_w = (-w) % divisor
        # F.pad order: left, right, top, bottom
        self.padding = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        self.size = (h, w)
        self.mode = mode

    @property
    def padded_size(self) -> tuple[int, int]:
        """(H, W) after padding."""
        left, right, top, bottom = self.padding
        return self.size[0] + top + bottom, self.size[1] + left + right

    def pad(self, *tensors: Tensor) -> list[Tensor]:
        """Pad each (B,C,H,W) tensor."""
        if not any(self.padding):
            return list(tensors)
        return [F.pad(t, self.padding, mode=self.mode) for t in tensors]

    def unpad(self, tensor: Tensor) -> Tensor:
        """Crop a (…,H',W') tensor back to the original (H,W)."""
        left, _, top, _ = self.padding
        h, w = self.size
        return tensor[..., top : top + h, left : left + w]
