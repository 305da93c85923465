"""Stereo data: file formats (:mod:`edgestereo.data.io`), built-in samples, data sets in their
published layouts, augmentation (:mod:`edgestereo.data.transforms`), LMDB packs and the synthetic
generator.

The public names below load their modules on first use, so ``edgestereo.data.io`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_dataset": "edgestereo.data.datasets",
    "list_datasets": "edgestereo.data.datasets",
    "StereoDataset": "edgestereo.data.datasets",
    "to_tensors": "edgestereo.data.collate",
    "collate_stereo": "edgestereo.data.collate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edgestereo.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
