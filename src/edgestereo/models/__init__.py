"""Stereo models: one file per family, one registry entry per variant."""

from edgestereo.models._base import StereoModel, TrainingLoss
from edgestereo.models._checkpoint import read_checkpoint
from edgestereo.models._factory import create_model, load_model, resolve_weights, save_pretrained
from edgestereo.models._registry import DEFAULT_MODEL, get_model_entry, list_models, register_model

__all__ = [
    "DEFAULT_MODEL",
    "StereoModel",
    "TrainingLoss",
    "create_model",
    "get_model_entry",
    "list_models",
    "load_model",
    "read_checkpoint",
    "register_model",
    "resolve_weights",
    "save_pretrained",
]
