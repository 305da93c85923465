"""The one way from what a user names — a registered model, a weights file or an exported ``.onnx``
file — to a network or a predictor, for the Python API and every command.

The weights rule lives here (through :func:`edgestereo.models.resolve_weights`): the weights
given, else the ones packaged for the model, else a refusal that names ``--pretrained``, unless an
untrained network is asked for (``random_weights``). The thread count is applied here too, to
PyTorch, ONNX Runtime and OpenCV alike. Importing this module loads neither torch nor onnxruntime.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgestereo import DEFAULT_MODEL
from edgestereo.errors import EdgeStereoError
from edgestereo.runtime.memory import check_scale

if TYPE_CHECKING:
    from edgestereo.models import StereoModel
    from edgestereo.runtime.predictor import Predictor

__all__ = [
    "DEFAULT_THREADS", "RUNTIMES", "WEIGHTS_SUFFIXES", "create_predictor", "is_onnx", "load_network", "set_threads",
]

#: runtimes a predictor can run in (None: PyTorch for a model, ONNX Runtime for an ONNX file).
RUNTIMES = (None, "torch", "onnxruntime", "openvino")
#: what a weights file given in place of a model name ends in.
WEIGHTS_SUFFIXES = (".safetensors", ".pth", ".ckpt", ".pt")


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


#: the commands' default thread count: half the CPUs this process may use, at least 1. On a busy
#: 2-core machine PyTorch with every core took 0.9 s per 384x640 frame inside `batch` against 81 ms
#: with one thread (its OpenMP workers wait for a core the other process holds), and one thread was
#: as fast on an idle one, where the decode and encode threads of a batch need the second core.
DEFAULT_THREADS = max(1, _usable_cpus() // 2)


def set_threads(threads: int, *, torch: bool = True) -> None:
    """Intra-op threads of OpenCV and (with ``torch``) PyTorch for this process; ONNX Runtime takes
    them per session."""
    import cv2

    if threads < 1:
        raise EdgeStereoError(f"--threads must be ≥ 1, got {threads}")
    cv2.setNumThreads(threads)
    if torch:
        import torch as torch_module

        torch_module.set_num_threads(threads)


def is_onnx(model: Any) -> bool:
    """Whether ``model`` names an exported ONNX file."""
    return isinstance(model, (str, Path)) and str(model).endswith(".onnx")


def _is_weights_file(model: Any) -> bool:
    return isinstance(model, Path) or (isinstance(model, str) and model.endswith(WEIGHTS_SUFFIXES))


def load_network(
    model: str | Path | None = None,
    *,
    pretrained: str | Path | None = None,
    random_weights: bool = False,
    config: Mapping[str, Any] | None = None,
) -> StereoModel:
    """The network ``model`` names, with the weights the rule gives it, in eval mode.

    model: a registered name (default: the name a ``pretrained`` file records, else
    :data:`~edgestereo.models.DEFAULT_MODEL`) or a weights file (.safetensors/.pth/.ckpt; the
    model is the one it records). pretrained: weights to load; without them the packaged ones,
    else :class:`~edgestereo.errors.WeightsRequiredError` unless ``random_weights``. config: fields
    of the model's config to override.
    """
    from edgestereo.models import create_model, resolve_weights
    from edgestereo.models._checkpoint import checkpoint_model_name

    if is_onnx(model):
        raise EdgeStereoError(f"{model} is an exported ONNX file, not a PyTorch network")
    if _is_weights_file(model):
        if pretrained is not None:
            raise EdgeStereoError(f"{model} is a weights file; give the weights once")
        model, pretrained = None, model
    name = model
    if name is None and pretrained is not None:
        name = checkpoint_model_name(pretrained)
        if name is None:
            raise EdgeStereoError(f"{pretrained}: the file does not name its model; add --model NAME")
    name = name or DEFAULT_MODEL
    weights = resolve_weights(name, pretrained, random_weights=random_weights)
    return create_model(name, pretrained=weights, **dict(config or {}))


def create_predictor(
    model: Any = None,
    *,
    onnx: str | Path | None = None,
    pretrained: str | Path | None = None,
    random_weights: bool = False,
    device: str | None = None,
    precision: str = "fp32",
    threads: int | None = None,
    config: Mapping[str, Any] | None = None,
    scale: float = 1.0,
    max_memory: float | None = None,
    runtime: str | None = None,
) -> Predictor:
    """A predictor, (H,W,3) uint8 RGB ×2 → (H,W) float32 disparity in pixels, for what ``model`` names.

    model: a registered name or a weights file (PyTorch, see :func:`load_network`), the path of an
    ``.onnx`` file (ONNX Runtime), a :class:`~edgestereo.models.StereoModel`, or a predictor already
    (any callable of two images; returned as it is). onnx: an exported ONNX file whatever its name
    ends in, instead of ``model``. device: "cpu", "cuda", "cuda:N" or "auto"/None. precision:
    PyTorch autocast "fp32", "bf16" or "fp16"; OpenVINO "fp32", "bf16" or "auto". threads: intra-op
    threads (None leaves the process's settings as they are; the commands default to
    :data:`DEFAULT_THREADS`). scale: run on the views resized by this factor, the disparity coming back
    at the input's size (:class:`~edgestereo.runtime.predictor.ScaledPredictor`). max_memory: GB a
    PyTorch network may take on one pair (default :func:`~edgestereo.runtime.memory.memory_limit`);
    larger pairs are refused. runtime: for an ONNX file "onnxruntime" (default) or "openvino"
    (``pip install 'edgestereo[openvino]'``); a PyTorch model runs in PyTorch ("torch").
    """
    check_scale(scale)
    predictor = _unscaled_predictor(model, onnx=onnx, pretrained=pretrained, random_weights=random_weights,
                                    device=device, precision=precision, threads=threads, config=config,
                                    max_memory=max_memory, runtime=runtime)
    if scale == 1:
        return predictor
    from edgestereo.runtime.predictor import ScaledPredictor

    return ScaledPredictor(predictor, scale)


def _unscaled_predictor(model: Any, *, onnx: str | Path | None, pretrained: str | Path | None, random_weights: bool,
                        device: str | None, precision: str, threads: int | None, config: Mapping[str, Any] | None,
                        max_memory: float | None, runtime: str | None) -> Predictor:
    from edgestereo.models import StereoModel
    from edgestereo.runtime.predictor import TorchPredictor

    if onnx is not None and model is not None:
        raise EdgeStereoError(f"give a model or an ONNX file, not both ({model} and {onnx})")
    if onnx is None and is_onnx(model):
        onnx, model = model, None
    if runtime not in RUNTIMES:
        raise EdgeStereoError(f"unknown runtime {runtime!r}; choose {', '.join(r for r in RUNTIMES if r)}")
    if onnx is None and runtime in ("onnxruntime", "openvino"):
        raise EdgeStereoError(f"runtime {runtime} runs an exported file: give --onnx FILE (`edgestereo export` "
                              "writes one)")
    if onnx is not None and runtime == "torch":
        raise EdgeStereoError(f"{onnx} is an exported ONNX file: run it with onnxruntime or openvino, not torch")
    if threads is not None:
        set_threads(threads, torch=onnx is None)
    if onnx is not None:
        openvino = runtime == "openvino"
        given = [option for option, used in (("pretrained weights", pretrained is not None),
                                             ("random weights", random_weights), ("config overrides", bool(config)),
                                             (f"precision {precision}", precision != "fp32" and not openvino)) if used]
        if given:
            raise EdgeStereoError(f"{onnx} is an exported ONNX file and runs as it was exported; it cannot take "
                                  f"{', '.join(given)} (export with those instead)")
        if max_memory is not None:
            raise EdgeStereoError(f"{onnx}: a memory limit applies to PyTorch networks; an ONNX file runs at the "
                                  "size it was exported at")
        if openvino:
            from edgestereo.runtime.openvino_predictor import OpenVinoPredictor

            if device not in (None, "auto", "cpu"):
                raise EdgeStereoError(f"OpenVINO runs on the CPU here; device {device!r} is not available to it")
            return OpenVinoPredictor(onnx, threads=threads, precision=precision)
        from edgestereo.runtime.onnx_predictor import OnnxPredictor

        return OnnxPredictor(onnx, threads=threads, device=device)
    if isinstance(model, StereoModel):
        return TorchPredictor(model, device, precision, max_memory)
    if model is None or isinstance(model, (str, Path)):
        network = load_network(model, pretrained=pretrained, random_weights=random_weights, config=config)
        return TorchPredictor(network, device, precision, max_memory)
    if callable(model):
        if not hasattr(model, "name"):
            model.name = type(model).__name__
        return model
    raise EdgeStereoError(f"model must be a name, a weights or .onnx file, a StereoModel or a predictor, "
                          f"got {type(model).__name__}")
