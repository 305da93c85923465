"""Samples to tensors and batches: the shapes and dtypes training codes against."""

import numpy as np
import pytest
import torch

from edgestereo.data import collate_stereo, to_tensors
from edgestereo.errors import EdgeStereoError


def _sample(height=4, width=6, right=False, index=0):
    rng = np.random.default_rng(index)
    sample = {"left": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
              "right": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
              "disp": rng.uniform(0, 9, (height, width)).astype(np.float32),
              "valid": rng.random((height, width)) > 0.5, "meta": {"index": index}}
    if right:
        sample["disp_right"], sample["valid_right"] = sample["disp"] + 1, ~sample["valid"]
    return sample


def test_to_tensors_shapes_dtypes_and_values():
    sample = _sample(right=True)
    out = to_tensors(sample)
    assert out["left"].shape == (3, 4, 6) and out["left"].dtype == torch.float32
    assert out["left"][:, 1, 2].tolist() == sample["left"][1, 2].tolist()
    assert out["disp"].shape == (1, 4, 6) and out["valid"].dtype == torch.bool
    assert out["valid_right"].shape == (1, 4, 6) and out["meta"] is sample["meta"]
    again = to_tensors(out)
    assert torch.equal(again["left"], out["left"]) and torch.equal(again["valid"], out["valid"])
    with pytest.raises(EdgeStereoError, match=r"sample\['left'\]: expected a \(H,W,3\) image"):
        to_tensors({"left": np.zeros((4, 6), np.uint8)})


def test_collate_stacks_keeps_metas_and_drops_keys_missing_somewhere():
    batch = collate_stereo([_sample(right=True, index=0), _sample(index=1)])
    assert batch["left"].shape == (2, 3, 4, 6) and batch["valid"].shape == (2, 1, 4, 6)
    assert "disp_right" not in batch and [m["index"] for m in batch["meta"]] == [0, 1]
    with pytest.raises(EdgeStereoError, match="different sizes"):
        collate_stereo([_sample(), _sample(height=5)])
