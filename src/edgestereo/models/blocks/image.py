"""Input handling shared by the networks: grey/colour conversion and per-channel normalisation."""

from __future__ import annotations

import torch
from torch import Tensor

from edgestereo.errors import EdgeStereoError

__all__ = ["LUMA_WEIGHTS", "as_rgb", "normalize", "rgb_to_grey"]

#: ITU-R BT.601 luma, as OpenCV's RGB2GRAY and PIL's "L" mode compute grey.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def as_rgb(image: Tensor, what: str = "image") -> Tensor:
    """(B,1,H,W) grey → (B,3,H,W) by repeating the channel; (B,3,H,W) unchanged."""
    if image.dim() == 4 and image.shape[1] == 1:
        return image.expand(-1, 3, -1, -1)
    if image.dim() != 4 or image.shape[1] != 3:
        raise EdgeStereoError(f"expected {what} of shape (B,3,H,W) or (B,1,H,W), got {tuple(image.shape)}")
    return image


def rgb_to_grey(image: Tensor) -> Tensor:
    """(B,3,H,W) RGB → (B,1,H,W) BT.601 luma, same range."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=image.dtype, device=image.device).reshape(1, 3, 1, 1)
    return (image * weights).sum(dim=1, keepdim=True)


def normalize(image: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """(B,C,H,W) → (image − mean) / std per channel; mean, std: C values in the image's units."""
    shape = (1, len(mean), 1, 1)
    mean_t = torch.tensor(mean, dtype=image.dtype, device=image.device).reshape(shape)
    std_t = torch.tensor(std, dtype=image.dtype, device=image.device).reshape(shape)
    return (image - mean_t) / std_t
