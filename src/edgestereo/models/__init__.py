"""Stereo models: one file per family, one registry entry per variant."""

from edgestereo.models._base import StereoModel
from edgestereo.models._checkpoint import load_model, read_checkpoint, save_pretrained
from edgestereo.models._registry import create_model, default_weights, get_model_entry, list_models, register_model

__all__ = [
    "StereoModel",
    "create_model",
    "default_weights",
    "get_model_entry",
    "list_models",
    "load_model",
    "read_checkpoint",
    "register_model",
    "save_pretrained",
]
