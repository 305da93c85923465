"""Model registry: ``@register_model`` entry points, ``create_model``, ``list_models``."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgestereo.errors import EdgeStereoError
from edgestereo.models._base import StereoModel

__all__ = ["ModelEntry", "create_model", "default_weights", "get_model_entry", "list_models", "register_model"]

# One module per model family; imported on first use of the registry, not at `import edgestereo`.
_FAMILY_MODULES = (
    "edgestereo.models.sgbm",
    "edgestereo.models.stereonet_plus",
    "edgestereo.models.stereonet_plus2",
    "edgestereo.models.raft_stereo",
    "edgestereo.models.stereonet",
    "edgestereo.models.gwcnet",
)


@dataclass(frozen=True)
class ModelEntry:
    """A registered variant: its factory and a one-line description."""

    name: str
    factory: Callable[..., StereoModel]
    description: str
    #: file name of packaged weights under ``edgestereo/weights/`` (``pretrained=True``), if any.
    packaged_weights: str | None = None


_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False


def register_model(
    name: str, *, description: str, packaged_weights: str | None = None
) -> Callable[[Callable[..., StereoModel]], Callable[..., StereoModel]]:
    """Decorator that registers a factory ``f(**config_overrides) -> StereoModel`` under ``name``."""

    def decorate(factory: Callable[..., StereoModel]) -> Callable[..., StereoModel]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, factory, description, packaged_weights)
        return factory

    return decorate


def _load_families() -> None:
    global _loaded
    if not _loaded:
        for module in _FAMILY_MODULES:
            importlib.import_module(module)
        _loaded = True


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _load_families()
    return sorted(_REGISTRY)


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; the error lists the known names and close matches."""
    _load_families()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise EdgeStereoError(f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def default_weights(name: str, pretrained: bool | str | Path | None = None) -> bool | str | Path | None:
    """What the applications load for ``name``: ``pretrained`` when given, else True (the packaged
    weights) for a model that ships them, else None (random initialisation)."""
    if pretrained is not None:
        return pretrained
    return True if get_model_entry(name).packaged_weights else None


def create_model(
    name: str,
    pretrained: bool | str | Path | None = None,
    *,
    deploy: bool = False,
    **config: Any,
) -> StereoModel:
    """Build a registered model.

    pretrained: None/False for random initialisation; True for the weights packaged with edgestereo;
    a path to a checkpoint (safetensors, or a published ``.pth``/``.ckpt``, loaded with
    ``weights_only=True`` and strict key/shape checks). ``deploy`` switches to the export-safe path.
    ``config`` overrides fields of the family's config dataclass.
    """
    from edgestereo.models._checkpoint import load_pretrained, packaged_weights_path

    entry = get_model_entry(name)
    if pretrained is True:
        path = packaged_weights_path(entry)
        model = load_pretrained(entry, path, config)
    elif pretrained:
        model = load_pretrained(entry, Path(pretrained), config)
    else:
        model = entry.factory(**config)
        model.model_name = name
    if deploy:
        model.deploy()
    return model.eval()
