"""Trained weights out of Lightning: safetensors + JSON config that :func:`edgestereo.load_model`
and ``create_model(name, pretrained=path)`` read, with no Lightning needed at inference."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from edgestereo.errors import EdgeStereoError
from edgestereo.models import StereoModel, create_model, save_pretrained
from edgestereo.models._checkpoint import NETWORK_KEY, read_checkpoint

__all__ = ["export_weights"]


class TrainsANetwork(Protocol):
    """What :func:`export_weights` needs of a training module (:class:`~edgestereo.training.StereoLitModule`)."""

    def trained_network(self) -> StereoModel: ...


def export_weights(source: TrainsANetwork | str | Path, path: str | Path) -> Path:
    """Write the network of a :class:`~edgestereo.training.StereoLitModule` (its current weights; a QAT
    run's written back from the fake-quantized graph), or of a checkpoint ``edgestereo train`` wrote
    (read with ``weights_only=True``), to ``path`` (``.safetensors``; ``<stem>.json`` beside it).
    """

    if not isinstance(source, (str, Path)):
        return save_pretrained(source.trained_network(), path)
    network = read_checkpoint(source).meta.get(NETWORK_KEY)
    if not isinstance(network, dict) or not network.get("model"):
        raise EdgeStereoError(f"{source}: not a checkpoint written by `edgestereo train` (no {NETWORK_KEY!r} entry)")
    # create_model reads the network's weights and config out of a training checkpoint
    return save_pretrained(create_model(network["model"], pretrained=source), path)
