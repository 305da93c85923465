"""Building models from the registry, with or without weights, and saving them.

The one weights rule of the applications is :func:`resolve_weights`: the weights given, else the
packaged ones, else a refusal (unless an untrained network is asked for).
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

from edgestereo.errors import EdgeStereoError, WeightsRequiredError
from edgestereo.models._base import StereoModel
from edgestereo.models._checkpoint import (
    load_state_dict_strict,
    read_checkpoint,
    training_network,
    weights_model_name,
    write_weights,
)
from edgestereo.models._registry import ModelEntry, get_model_entry, list_models

__all__ = ["create_model", "load_model", "load_pretrained", "packaged_weights_path",
           "resolve_weights", "save_pretrained"]


def create_model(
    name: str,
    pretrained: bool | str | Path | None = None,
    *,
    deploy: bool = False,
    **config: Any,
) -> StereoModel:
    """Build a registered model, in eval mode.

    pretrained: None/False for random initialisation; True for the weights packaged with edgestereo;
    a path to a checkpoint (safetensors, or a published ``.pth``/``.ckpt``, loaded with
    ``weights_only=True`` and strict key/shape checks). ``deploy`` switches to the export-safe path.
    ``config`` overrides fields of the family's config dataclass.
    """
    entry = get_model_entry(name)
    if pretrained is True:
        model = load_pretrained(entry, packaged_weights_path(entry), config)
    elif pretrained:
        model = load_pretrained(entry, Path(pretrained), config)
    else:
        model = entry.build(**config)
    if deploy:
        model.deploy()
    return model.eval()


def resolve_weights(name: str, pretrained: str | Path | None = None, *,
                    random_weights: bool = False) -> bool | Path | None:
    """The weights the applications load for ``name`` (``pretrained`` of :func:`create_model`).

    The file ``pretrained`` when given; None (random initialisation) when ``random_weights`` asks for
    an untrained network, or for a method without weights (SGBM); else True, the packaged weights,
    for a model that ships them. Otherwise :class:`~edgestereo.errors.WeightsRequiredError`: a
    network with random weights gives output that looks like a result and is not one.
    """
    if pretrained is not None and random_weights:
        raise EdgeStereoError("--pretrained and --random-weights exclude each other")
    entry = get_model_entry(name)
    if pretrained is not None:
        return Path(pretrained)
    if random_weights or not entry.model_class.has_weights:
        return None
    if entry.packaged_weights:
        return True
    raise WeightsRequiredError(name)


def load_pretrained(entry: ModelEntry, path: Path, config: dict[str, Any]) -> StereoModel:
    """Build ``entry`` from a checkpoint file once: the file's config, then ``config`` on top of it,
    through the family's checkpoint adapter."""
    family = entry.model_class
    # A family lists the plain objects its published files pickle beside the tensors (e.g. optimizer
    # factories in Lightning hyper-parameters); weights_only stays on, extended by exactly those.
    checkpoint = training_network(read_checkpoint(path, safe_globals=list(family.checkpoint_safe_globals)))
    saved_name = checkpoint.meta.get("model")
    if saved_name and saved_name != entry.name:
        raise EdgeStereoError(f"{path} holds weights of {saved_name!r}, not {entry.name!r}")
    # fields the file records that this version's config still has, then the caller's
    fields = {f.name for f in dataclasses.fields(entry.config)}
    saved_config = checkpoint.meta.get("config") or {}
    merged = {**{k: v for k, v in saved_config.items() if k in fields}, **config}
    state_dict, merged = family.adapt_checkpoint(checkpoint, entry.config, merged)
    model = entry.build(**merged)
    load_state_dict_strict(model, state_dict, str(path))
    return model


def packaged_weights_path(entry: ModelEntry) -> Path:
    """The weights file shipped for ``entry`` (inside the package, or at the absolute path it names)."""
    if not entry.packaged_weights:
        shipped = [name for name in list_models() if get_model_entry(name).packaged_weights]
        listed = ", ".join(shipped) if shipped else "none yet"
        raise EdgeStereoError(f"no weights ship with edgestereo for {entry.name!r} (models with weights: {listed})")
    path = Path(entry.packaged_weights)
    if not path.is_absolute():
        path = Path(str(resources.files("edgestereo") / "weights" / path))
    if not path.is_file():
        raise EdgeStereoError(f"packaged weights {path} are missing from this installation")
    return path


def save_pretrained(model: StereoModel, path: str | Path) -> Path:
    """Write ``model`` as safetensors (name and config in the header) plus ``<stem>.json``, atomically."""
    if not model.model_name:
        raise EdgeStereoError("model has no registry name; build it with create_model()")
    config = dataclasses.asdict(model.config) if model.config is not None else {}
    return write_weights(path, model.model_name, config, model.state_dict())


def load_model(path: str | Path, *, deploy: bool = False) -> StereoModel:
    """Load a model saved by :func:`save_pretrained`: the name and config come from the file."""
    return create_model(weights_model_name(path), pretrained=path, deploy=deploy)
