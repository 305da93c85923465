"""Reading, checking and writing weights.

Published ``.pth``/``.ckpt`` files are read with ``torch.load(weights_only=True)`` and never
unpickled otherwise; edgestereo's own format is safetensors with the model name and config in its
header (and the same config in a ``.json`` beside it, for people).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgestereo.errors import EdgeStereoError, ReadError

__all__ = [
    "NETWORK_KEY",
    "Checkpoint",
    "checkpoint_model_name",
    "load_state_dict_strict",
    "read_checkpoint",
    "training_network",
    "weights_model_name",
    "write_weights",
]

_FORMAT = "edgestereo-v1"
#: entry of an ``edgestereo train`` (Lightning) checkpoint with the network's registry name and full
#: config; its weights are the state dict's ``model.*`` keys (``StereoLitModule.on_save_checkpoint``).
NETWORK_KEY = "edgestereo_network"
_NETWORK_PREFIX = "model."


@dataclass
class Checkpoint:
    """A state dict (``module.`` prefixes removed) and what else the file carried."""

    state_dict: dict[str, torch.Tensor]
    #: edgestereo files: ``model`` and ``config``; Lightning files: ``hyper_parameters``.
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _strip_prefix(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state_dict and all(key.startswith(prefix) for key in state_dict):
        return {key[len(prefix) :]: value for key, value in state_dict.items()}
    return state_dict


def _tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


#: what a file given as weights often is instead, by its first bytes.
_OTHER_FORMATS = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"PF", "a PFM file"),
                  (b"Pf", "a PFM file"), (b"\x93NUMPY", "a NumPy .npy file"))


def read_checkpoint(path: str | Path, *, safe_globals: list[Any] | None = None) -> Checkpoint:
    """Read weights from safetensors or a PyTorch file (``weights_only=True``).

    Recognises bare state dicts and ``{"state_dict": …}`` (Lightning, with ``hyper_parameters``),
    ``{"model": …}`` and ``{"model_state_dict": …}`` wrappers; strips ``module.`` (DataParallel).
    ``safe_globals`` extends what ``weights_only`` may rebuild (for published files that pickle
    plain objects beside their tensors).
    """
    path = Path(path)
    if not path.is_file():
        raise ReadError(path, "checkpoint file not found")
    if path.stat().st_size == 0:
        raise ReadError(path, "checkpoint file is empty")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    with path.open("rb") as handle:
        head = handle.read(8)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save: a zip archive, or a legacy pickle
        kind = next((what for magic, what in _OTHER_FORMATS if head.startswith(magic)), "neither a zip nor a pickle")
        raise ReadError(path, f"not a PyTorch checkpoint ({kind}); weights are .safetensors, or .pth/.ckpt files "
                              "written by torch.save")
    try:
        if safe_globals:
            with torch.serialization.safe_globals(safe_globals):
                obj = torch.load(path, map_location="cpu", weights_only=True)
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ReadError(
            path, "refused to load: the file pickles objects other than tensors (weights_only=True): "
            f"{_refused_globals(path, safe_globals, exc)}"
        ) from None
    except Exception as exc:  # torch.load raises many types on a file that is not a checkpoint
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise ReadError(path, f"not a PyTorch checkpoint ({type(exc).__name__}: {detail})") from None
    meta: dict[str, Any] = {}
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        meta = {k: v for k, v in obj.items() if k != "state_dict"}
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and not _tensor_dict(obj):
        for key in ("model", "model_state_dict", "net", "params"):
            if _tensor_dict(obj.get(key)):
                meta = {k: v for k, v in obj.items() if k != key}
                obj = obj[key]
                break
    if not _tensor_dict(obj):
        raise ReadError(path, "no state dict of tensors found in the checkpoint")
    return Checkpoint(_strip_prefix(dict(obj), "module."), meta, path)


def _refused_globals(path: Path, allowed: list[Any] | None, exc: Exception) -> str:
    """Name the globals ``weights_only`` refused (torch's own message is a paragraph of advice)."""
    allowed_names = {f"{g.__module__}.{g.__qualname__}" for g in allowed or []}
    try:
        names = [n for n in torch.serialization.get_unsafe_globals_in_checkpoint(path) if n not in allowed_names]
    except Exception:  # older torch, or a pickle too broken to scan: fall back to torch's first line
        names = []
    if names:
        return "unsupported global(s) " + ", ".join(names)
    return (str(exc).strip().splitlines() or ["unsupported global"])[0]


def _read_safetensors(path: Path) -> Checkpoint:
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise ReadError(path, f"not a valid safetensors file ({exc})") from None
    meta: dict[str, Any] = {}
    if header.get("format") == _FORMAT:
        meta = {"model": header.get("model", ""), "config": json.loads(header.get("config", "{}"))}
    return Checkpoint(_strip_prefix(state_dict, "module."), meta, path)


def training_network(checkpoint: Checkpoint) -> Checkpoint:
    """An ``edgestereo train`` checkpoint as the network it trains: the ``model.*`` weights (a QAT
    run's fake-quantization graph and other training state left out), its name and config."""
    network = checkpoint.meta.get(NETWORK_KEY)
    if not isinstance(network, dict) or not network.get("model"):
        return checkpoint
    state_dict = {key[len(_NETWORK_PREFIX):]: value for key, value in checkpoint.state_dict.items()
                  if key.startswith(_NETWORK_PREFIX)}
    meta = {**checkpoint.meta, "model": network["model"], "config": network.get("config") or {}}
    return Checkpoint(state_dict, meta, checkpoint.path)


def checkpoint_model_name(path: str | Path) -> str | None:
    """The registry name a weights file records (edgestereo safetensors, ``edgestereo train``
    checkpoints), or None (published files do not say)."""
    name = training_network(read_checkpoint(path)).meta.get("model")
    return str(name) if name else None


def load_state_dict_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load with strict key and shape checks; the error names the first few offending keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if keys:
            more = f" (+{len(keys) - 4} more)" if len(keys) > 4 else ""
            problems.append(f"{len(keys)} {label}: {', '.join(keys[:4])}{more}")
    if problems:
        name = getattr(model, "model_name", "") or type(model).__name__
        raise EdgeStereoError(f"{source} does not fit {name}: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)


def write_weights(path: str | Path, model_name: str, config: dict[str, Any],
                  state_dict: dict[str, torch.Tensor]) -> Path:
    """Write ``state_dict`` as safetensors with ``model_name`` and ``config`` in its header, plus the
    same as ``<stem>.json`` beside it (for people), each atomically."""
    from safetensors.torch import save_file

    from edgestereo.data.io import atomic_path

    path = Path(path)
    if path.suffix != ".safetensors":
        raise EdgeStereoError(f"{path}: weights are saved as .safetensors")
    header = {"format": _FORMAT, "model": model_name, "config": json.dumps(config)}
    tensors: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for key, value in state_dict.items():
        tensor = value.detach().cpu().contiguous()
        # safetensors refuses tensors that share memory; a module registered under two names (as in
        # published RAFT-Stereo checkpoints) gives such tensors, so each name gets its own copy
        storage = tensor.untyped_storage().data_ptr()
        tensors[key] = tensor.clone() if storage in storages else tensor
        storages.add(storage)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"model": model_name, "config": config}, indent=2) + "\n")
    return path


def weights_model_name(path: str | Path) -> str:
    """The registry name in the header of an edgestereo ``.safetensors`` file (read without its tensors)."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        raise ReadError(path, "expected an edgestereo .safetensors weights file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ReadError(path, f"not a valid safetensors file ({exc})") from None
    if header.get("format") != _FORMAT or not header.get("model"):
        raise ReadError(path, "not an edgestereo weights file (no model name in its header); "
                        "use create_model(name, pretrained=path)")
    return str(header["model"])
