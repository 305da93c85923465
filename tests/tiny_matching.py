"""What makes the tiny test networks *match*: fixed matching filters, unit-length features and a sharp
soft-argmin, plus the pair and the check that prove it (importable from any test, ``pythonpath = tests``).

With PyTorch's default initialisation a tiny network barely reacts to its input (its output stayed within
0.3 px of 14 px), so an int8 or fp16 graph that returned a constant passed every closeness test. Here
every convolution gets orthogonal weights from a fixed seed and a near-zero bias; features are scaled to unit
RMS over channels, so their correlation is a cosine in [-1, 1]; ``SHARPNESS`` makes the soft-argmin
pick the matching candidate. On :func:`step_pair` the result is within a pixel of the truth.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

#: softmax temperature on the cosine correlation: a wrong candidate 0.3 below the match weighs e^-6.
SHARPNESS = 20.0
#: (near, far) disparities of :func:`step_pair`: multiples of 4, so networks matching at 1/4 resolution
#: have an exact candidate for each.
STEP_DISPARITIES = (16.0, 4.0)


def init_matching_filters(module: nn.Module, seed: int = 0) -> None:
    """Orthogonal weights from ``seed`` for every convolution in ``module``; biases near zero (std 0.01:
    distinct, so an exporter cannot merge them into one shared zero tensor)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in module.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.orthogonal_(conv.weight, generator=generator)
                if conv.bias is not None:
                    conv.bias.normal_(0.0, 0.01, generator=generator)


def unit_rms(features: Tensor) -> Tensor:
    """(B,C,H,W) scaled so that the mean over C of the squares is 1 at every pixel."""
    return features * torch.rsqrt((features * features).mean(1, keepdim=True) + 1e-6)


def step_pair(height: int = 64, width: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """left, right (H,W,3) uint8 random texture and the left disparity (H,W) float32: a far plane on the
    left half, a near plane on the right half (``STEP_DISPARITIES``). left(x) = right(x - d(x)) wherever
    x - d(x) ≥ 0; elsewhere the left pixel is fresh texture (seen by the left camera only)."""
    near, far = STEP_DISPARITIES
    rng = np.random.default_rng(seed)
    right = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    columns = np.arange(width)
    disparity = np.broadcast_to(np.where(columns < width // 2, far, near), (height, width)).astype(np.float32)
    source = columns[None, :] - disparity.astype(int)
    left = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    seen = source >= 0
    left[seen] = right[np.nonzero(seen)[0], source[seen]]
    return left, right, disparity


def step_pair_sample(height: int = 64, width: int = 128, seed: int = 0) -> dict:
    """:func:`step_pair` as a data-set sample (left, right, disp, valid), valid where both views see."""
    left, right, disparity = step_pair(height, width, seed)
    return {"left": left, "right": right, "disp": disparity, "valid": scored_pixels(height, width)}


def scored_pixels(height: int, width: int) -> np.ndarray:
    """(H,W) bool: pixels away from the left border (no match) and the depth step (upsampling blur)."""
    near, _ = STEP_DISPARITIES
    mask = np.zeros((height, width), bool)
    mask[:, int(near) + 4:] = True
    mask[:, width // 2 - 6: width // 2 + 6] = False
    return mask


def matching_error(disparity: np.ndarray, height: int, width: int) -> tuple[float, float]:
    """(mean |error| px, share of errors > 1 px) of a (H,W) prediction on :func:`step_pair`'s truth."""
    truth = step_pair(height, width)[2]
    error = np.abs(np.asarray(disparity, np.float32).reshape(height, width) - truth)[scored_pixels(height, width)]
    return float(error.mean()), float((error > 1.0).mean())


def assert_close_relative(actual: np.ndarray, expected: np.ndarray, mean_share: float, max_px: float) -> None:
    """|actual - expected| bounded relative to the spread of ``expected``: the mean by ``mean_share`` of
    its standard deviation, the maximum by ``max_px``; and ``expected`` itself must have a spread (a
    constant reference would make any bound meaningless)."""
    spread = float(np.std(expected))
    assert spread > 2.0 and len(np.unique(np.round(expected, 2))) > 50, f"degenerate reference: std {spread:.3f}"
    difference = np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))
    mean = difference.mean()
    assert mean <= mean_share * spread, f"mean |Δ| {mean:.4f} > {mean_share} × std {spread:.3f}"
    assert difference.max() <= max_px, f"max |Δ| {difference.max():.4f} px > {max_px}"
