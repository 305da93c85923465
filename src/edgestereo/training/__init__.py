"""Training on PyTorch Lightning: the only package of edgestereo that imports ``lightning``.

:class:`StereoLitModule` wraps any registered model with its published loss (``losses``),
:class:`StereoDataModule` serves any registered data set, :func:`run_training` is ``edgestereo
train``, :func:`export_weights` turns a run into safetensors that :func:`edgestereo.load_model` reads.
The four load on first use, so the Lightning-free modules (``progress``, reading a run's logs) import
without Lightning's seconds of start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgestereo.training.datamodule import StereoDataModule
    from edgestereo.training.lightning_cli import run_training
    from edgestereo.training.lit_module import StereoLitModule
    from edgestereo.training.weights import export_weights

__all__ = ["StereoDataModule", "StereoLitModule", "export_weights", "run_training"]

#: public name → the module of this package that defines it
_HOMES = {"StereoDataModule": "datamodule", "StereoLitModule": "lit_module", "export_weights": "weights",
          "run_training": "lightning_cli"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
