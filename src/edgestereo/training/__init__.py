"""Training on PyTorch Lightning: the only package of edgestereo that imports ``lightning``.

:class:`StereoLitModule` wraps any registered model with its published loss (``losses``),
:class:`StereoDataModule` serves any registered data set, :func:`run_training` is ``edgestereo
train``, :func:`export_weights` turns a run into safetensors that :func:`edgestereo.load_model` reads.
"""

from edgestereo.training.datamodule import StereoDataModule
from edgestereo.training.lightning_cli import run_training
from edgestereo.training.lit_module import StereoLitModule
from edgestereo.training.weights import export_weights

__all__ = ["StereoDataModule", "StereoLitModule", "export_weights", "run_training"]
