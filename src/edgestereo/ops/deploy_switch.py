"""The deploy switch every op twin shares.

An op twin is a parameter-free module with two implementations of one function: the reference one
(short, fast on a GPU) and an export-safe one (4-D tensors, standard ONNX operators).
:meth:`edgestereo.models.StereoModel.deploy` flips every twin of a model through
:meth:`DeploySwitch.switch_to_deploy`; the ``state_dict`` never changes, so one checkpoint serves both.
"""

from __future__ import annotations

from torch import nn

__all__ = ["DeploySwitch"]


class DeploySwitch(nn.Module):
    """Base class of the op twins: ``forward`` runs the export-safe twin while ``deploy_mode`` is set.

    >>> class Twice(DeploySwitch):
    ...     def forward(self, x):
    ...         return x + x if self.deploy_mode else 2 * x
    >>> op = Twice()
    >>> op.switch_to_deploy()
    >>> op
    Twice(deploy=True)
    """

    def __init__(self) -> None:
        super().__init__()
        self.deploy_mode = False

    def switch_to_deploy(self, enabled: bool = True) -> None:
        """Run the export-safe twin when ``enabled``, the reference one otherwise."""
        self.deploy_mode = enabled

    def extra_repr(self) -> str:
        return f"deploy={self.deploy_mode}"
