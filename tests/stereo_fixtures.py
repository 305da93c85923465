"""Small synthetic stereo pairs with exact disparity, importable from any test (``pythonpath = tests``)."""

from __future__ import annotations

import numpy as np


def shifted_pair(height: int = 48, width: int = 96, disparity: int = 6, seed: int = 0):
    """A random-texture left image and its right view for a fronto-parallel plane at ``disparity`` px.

    left(x) = right(x - d): every left pixel at x ≥ d has its match d pixels to its left in the right view.
    """
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height, width + disparity, 3), dtype=np.uint8)
    left = np.ascontiguousarray(base[:, :width])
    right = np.ascontiguousarray(base[:, disparity:])
    return left, right
