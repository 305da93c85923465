"""From sample dicts to model tensors: :func:`to_tensors` for one sample, :func:`collate_stereo` for a
DataLoader batch.

>>> import numpy as np
>>> sample = {"left": np.zeros((4, 6, 3), np.uint8), "right": np.zeros((4, 6, 3), np.uint8),
...           "disp": np.ones((4, 6), np.float32), "valid": np.ones((4, 6), bool), "meta": {"index": 0}}
>>> batch = collate_stereo([sample, sample])
>>> tuple(batch["left"].shape), batch["left"].dtype, tuple(batch["valid"].shape), len(batch["meta"])
((2, 3, 4, 6), torch.float32, (2, 1, 4, 6), 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from edgestereo.errors import EdgeStereoError

__all__ = ["collate_stereo", "to_tensors"]

_IMAGES = ("left", "right")
_MAPS = {"disp": torch.float32, "disp_right": torch.float32, "valid": torch.bool, "valid_right": torch.bool}


def _image_tensor(key: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.dim() != 3 or value.shape[0] != 3:
            raise EdgeStereoError(f"sample[{key!r}]: expected a (3,H,W) tensor, got {tuple(value.shape)}")
        return value.float()
    array = np.asarray(value)
    if array.ndim != 3 or array.shape[2] != 3:
        raise EdgeStereoError(f"sample[{key!r}]: expected a (H,W,3) image, got shape {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float()


def _map_tensor(key: str, value: Any, dtype: torch.dtype) -> torch.Tensor:
    tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
    if tensor.dim() == 2:
        tensor = tensor[None]
    if tensor.dim() != 3 or tensor.shape[0] != 1:
        raise EdgeStereoError(f"sample[{key!r}]: expected a (H,W) map, got shape {tuple(tensor.shape)}")
    return tensor.to(dtype)


def to_tensors(sample: dict[str, Any]) -> dict[str, Any]:
    """``left``/``right`` → float32 (3,H,W) in [0,255]; ``disp``/``disp_right`` → float32 (1,H,W)
    pixels; ``valid``/``valid_right`` → bool (1,H,W); ``meta`` and anything else kept as is.
    Samples that are already tensors pass through."""
    out = dict(sample)
    for key in _IMAGES:
        if key in out:
            out[key] = _image_tensor(key, out[key])
    for key, dtype in _MAPS.items():
        if key in out:
            out[key] = _map_tensor(key, out[key], dtype)
    return out


def collate_stereo(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of samples for a DataLoader: tensors become (B,…), ``meta`` a list of B dicts.

    Keys not present in every sample (``disp_right`` when data sets are mixed) are dropped; samples of
    different sizes are an error (crop them to one size first).
    """
    if not batch:
        raise EdgeStereoError("collate_stereo: empty batch")
    samples = [to_tensors(sample) for sample in batch]
    keys = [key for key in samples[0] if key != "meta" and all(key in s for s in samples)]
    out: dict[str, Any] = {}
    for key in keys:
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise EdgeStereoError(f"collate_stereo: samples of different sizes in one batch ({key}: "
                                      f"{sorted(shapes)}); crop them to one size")
            out[key] = torch.stack(values)
        else:
            out[key] = values
    out["meta"] = [s.get("meta", {}) for s in samples]
    return out
