"""edgestereo: deep stereo depth estimation, from training to edge deployment.

``import edgestereo`` stays light; the public names below load their modules on first use.

>>> import edgestereo
>>> "sgbm" in edgestereo.list_models()
True
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
#: the model used when none is named: StereoNetPlus v2 small with the weights packaged with edgestereo
#: (trained on the built-in synthetic set; docs/default-model.md).
DEFAULT_MODEL = "stereonet-plus2-small"

_EXPORTS = {
    "create_model": "edgestereo.models",
    "list_models": "edgestereo.models",
    "load_model": "edgestereo.models",
    "save_pretrained": "edgestereo.models",
    "StereoModel": "edgestereo.models",
    "predict": "edgestereo.api",
    "create_predictor": "edgestereo.runtime.factory",
    "RerunLogger": "edgestereo.runtime.rerun_logger",
    "StereoResult": "edgestereo.api",
    "StereoCalibration": "edgestereo.geometry",
    "EdgeStereoError": "edgestereo.errors",
}

__all__ = sorted([*_EXPORTS, "DEFAULT_MODEL"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edgestereo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
