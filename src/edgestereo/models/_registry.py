"""Model registry: ``register_model`` per variant, ``list_models``, ``get_model_entry``.

A family registers its variants in its own file under ``edgestereo/models/`` (any public module or
package there is imported on first use of the registry, not at ``import edgestereo``): the model
class, the variant's config, a description and the packaged weights, if any. The class itself
carries the rest of the family's contract: its training loss (``training_loss``) and its checkpoint
adapter (``adapt_checkpoint``). Building and loading live in :mod:`edgestereo.models._factory`.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgestereo import DEFAULT_MODEL
from edgestereo.errors import EdgeStereoError
from edgestereo.models._base import StereoModel, build_config

__all__ = ["DEFAULT_MODEL", "ModelEntry", "get_model_entry", "list_models", "register_model"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered variant: its class, its default config (a frozen dataclass) and a description.

    packaged_weights: a file name under ``edgestereo/weights/``, or an absolute path (a family that
    lives outside the package), for ``pretrained=True``; None when the variant ships no weights.
    """

    name: str
    model_class: type[StereoModel]
    config: Any
    description: str
    packaged_weights: str | Path | None = None

    def build(self, **overrides: Any) -> StereoModel:
        """A freshly initialised model: the default config with ``overrides`` on top."""
        model = self.model_class(build_config(self.config, overrides))
        model.model_name = self.name
        return model


_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False


def register_model(name: str, model_class: type[StereoModel], config: Any, *, description: str,
                   packaged_weights: str | Path | None = None) -> ModelEntry:
    """Register the variant ``name`` of a family: ``model_class(config)`` with config overrides on top.

    >>> register_model("stereonet-plus", StereoNetPlus, StereoNetPlusConfig(),  # doctest: +SKIP
    ...                description="StereoNetPlus: 4-D real-time network for NPUs")
    """
    if name in _REGISTRY:
        raise EdgeStereoError(f"model {name!r} is registered twice")
    entry = ModelEntry(name, model_class, config, description, packaged_weights)
    _REGISTRY[name] = entry
    return entry


def _load_families() -> None:
    """Import every public module of this package once: each family registers itself on import."""
    global _loaded
    if _loaded:
        return
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")
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
