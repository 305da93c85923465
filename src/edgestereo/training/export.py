"""Trained weights out of Lightning: safetensors + JSON config that :func:`edgestereo.load_model`
and ``create_model(name, pretrained=path)`` read, with no Lightning needed at inference."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgestereo.errors import EdgeStereoError

if TYPE_CHECKING:
    from edgestereo.training.lit_module import StereoLitModule

__all__ = ["NETWORK_KEY", "export_weights"]

#: checkpoint entry with the network's registry name and full config (``StereoLitModule.on_save_checkpoint``).
NETWORK_KEY = "edgestereo_network"
#: attribute of :class:`StereoLitModule` that holds the network (its keys' prefix in checkpoints).
_NETWORK_PREFIX = "model."


def export_weights(source: StereoLitModule | str | Path, path: str | Path) -> Path:
    """Write the network of a :class:`StereoLitModule`, or of a checkpoint ``edgestereo train``
    wrote (read with ``weights_only=True``), to ``path`` (``.safetensors``; ``<stem>.json`` beside it).
    """
    from edgestereo.models import create_model, save_pretrained
    from edgestereo.models._checkpoint import load_state_dict_strict, read_checkpoint

    if not isinstance(source, (str, Path)):
        return save_pretrained(source.model, path)
    checkpoint = read_checkpoint(source)
    network = checkpoint.meta.get(NETWORK_KEY)
    if not isinstance(network, dict) or not network.get("model"):
        raise EdgeStereoError(f"{source}: not a checkpoint written by `edgestereo train` (no {NETWORK_KEY!r} entry)")
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in (network.get("config") or {}).items()}
    model = create_model(network["model"], **config)
    state_dict = {
        key.removeprefix(_NETWORK_PREFIX): value
        for key, value in checkpoint.state_dict.items()
        if key.startswith(_NETWORK_PREFIX)
    }
    load_state_dict_strict(model, state_dict, str(source))
    return save_pretrained(model, path)
