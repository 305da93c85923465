"""Run an exported ONNX file in ONNX Runtime behind the same interface as :class:`TorchPredictor`
(:class:`GraphPredictor` is the part every graph runtime shares; OpenVINO's is in
:mod:`edgestereo.runtime.openvino_predictor`).

The graph's input size is static (edgestereo exports are), so a smaller image is padded up to it
by edge replication, split evenly between the two sides as :class:`InputPadder` does, and the
disparity is cropped back; a larger image is refused. onnxruntime is imported when a predictor
is built, not at ``import edgestereo``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from edgestereo.data.io import check_pair_size
from edgestereo.errors import EdgeStereoError, ReadError
from edgestereo.runtime.onnx_file import OnnxMetadata, TensorInfo, graph_precision, require_stereo_io

__all__ = ["GraphPredictor", "OnnxPredictor", "ort_error_message", "providers_for_device"]

_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_SOURCE_LOCATION = re.compile(r"^\S+\.(?:cc|cpp|h):\d+ ")


def ort_error_message(exc: BaseException, limit: int = 200) -> str:
    """The useful part of an onnxruntime exception: its first line without the error-code prefix and
    the C++ source location and function signature."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = _ORT_PREFIX.sub("", text)
    if _SOURCE_LOCATION.match(text):
        # skip "file.cc:123 Namespace::Function(args …) " up to its balanced closing parenthesis
        depth, start = 0, text.find("(")
        for index in range(max(start, 0), len(text)):
            depth += {"(": 1, ")": -1}.get(text[index], 0)
            if start >= 0 and depth == 0:
                text = text[index + 1 :].strip()
                break
    return text[:limit]


def providers_for_device(device: str | None) -> list[str]:
    """ONNX Runtime execution providers for a ``--device`` value: "auto"/None → CUDA when this
    onnxruntime has it, else CPU; "cpu"; "cuda"/"cuda:N" (checked)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device in (None, "auto"):
        return [_CUDA, _CPU] if _CUDA in available else [_CPU]
    if device == "cpu":
        return [_CPU]
    if device == "cuda" or (device or "").startswith("cuda:"):
        if _CUDA not in available:
            raise EdgeStereoError(f"device {device!r} asked for, but this onnxruntime has no CUDA provider "
                                  f"(available: {', '.join(available)}); install onnxruntime-gpu")
        return [_CUDA, _CPU]
    raise EdgeStereoError(f"unknown device {device!r} for ONNX Runtime (use cpu, cuda or auto)")


def _provider_options(providers: list[str], device: str | None) -> list[dict[str, Any]]:
    index = device.split(":", 1)[1] if device and device.startswith("cuda:") else None
    return [{"device_id": index} if (p == _CUDA and index is not None) else {} for p in providers]


class GraphPredictor:
    """An exported stereo graph (inputs ``left``, ``right`` (1,3,H,W) in [0,255]; output ``disparity``
    (1,1,H,W) pixels) behind the interface of :class:`TorchPredictor`: images of another size are
    padded to the graph's by edge replication and the disparity is cropped back. Subclasses load the
    graph in a runtime, set ``path``, ``metadata``, ``input_size``, ``name``, ``precision`` and run it
    in :meth:`_infer`."""

    runtime = ""
    path: Path
    metadata: OnnxMetadata
    #: the graph's input (H, W); None for a dynamic dimension
    input_size: tuple[int | None, int | None]
    name: str
    precision: str
    _dtype: np.dtype = np.dtype(np.float32)

    @property
    def divisor(self) -> int:
        """What a dynamic-size graph needs H and W to be multiples of (edgestereo metadata; else 1)."""
        return self.metadata.divisor

    def _target_size(self, height: int, width: int) -> tuple[int, int]:
        graph_h, graph_w = self.input_size
        if (graph_h is not None and height > graph_h) or (graph_w is not None and width > graph_w):
            raise EdgeStereoError(
                f"image {width}x{height} is larger than the {graph_w}x{graph_h} input of {self.path}; "
                f"export the model at a size at least as large as the images"
            )
        step = self.divisor
        return (graph_h if graph_h is not None else -(-height // step) * step,
                graph_w if graph_w is not None else -(-width // step) * step)

    def run_tensors(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """left, right: (1,3,H,W) float RGB in [0,255] at the graph's size → disparity (H,W) float32."""
        out = self._infer(left.astype(self._dtype, copy=False), right.astype(self._dtype, copy=False))
        if out.shape != (1, 1, *left.shape[2:]):
            raise EdgeStereoError(f"{self.path}: output disparity is {out.shape} for inputs {left.shape}, expected "
                                  f"(1,1,{left.shape[2]},{left.shape[3]})")
        return np.asarray(out[0, 0], dtype=np.float32)

    def __call__(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """left, right: (H,W,3) uint8 RGB → disparity (H,W) float32 pixels."""
        if left.shape != right.shape or left.ndim != 3 or left.shape[2] != 3:
            raise EdgeStereoError(f"expected two (H,W,3) images of one size, got {left.shape} and {right.shape}")
        check_pair_size(left, right)
        height, width = left.shape[:2]
        target_h, target_w = self._target_size(height, width)
        pad_h, pad_w = target_h - height, target_w - width
        top, left_pad = pad_h // 2, pad_w // 2
        padding = ((top, pad_h - top), (left_pad, pad_w - left_pad), (0, 0))

        def prepare(image: np.ndarray) -> np.ndarray:
            padded = np.pad(image, padding, mode="edge") if pad_h or pad_w else image
            return np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)

        disparity = self.run_tensors(prepare(left), prepare(right))
        return disparity[top : top + height, left_pad : left_pad + width]

    def _infer(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Run the graph on (1,3,H,W) inputs of its dtype → its output array."""
        raise NotImplementedError

    def _take_io(self, inputs: list[TensorInfo], outputs: list[TensorInfo]) -> None:
        """Check the stereo I/O contract and read the input dtype and size from the graph's inputs."""
        require_stereo_io(self.path, inputs, outputs)
        left = next(tensor for tensor in inputs if tensor.name == "left")
        self._dtype = np.dtype(np.float16 if left.dtype == "float16" else np.float32)
        height, width = (d if isinstance(d, int) else None for d in left.shape[2:])
        self.input_size = (height, width)


class OnnxPredictor(GraphPredictor):
    """Runs an ONNX stereo graph in ONNX Runtime.

    threads: intra-op threads (default: ONNX Runtime's choice). providers: execution providers in
    order of preference (default: CUDA when available, then CPU); ``device`` picks them like
    ``--device`` does when ``providers`` is not given. ``precision`` is the graph's ("fp32", "fp16",
    "int8"), as its metadata or, failing that, its operators say.
    """

    runtime = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        providers: list[str] | None = None,
        *,
        device: str | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ReadError(self.path, "ONNX file not found" if not self.path.exists() else "is not a file")
        if threads is not None and threads < 1:
            raise EdgeStereoError(f"threads must be ≥ 1, got {threads}")
        available = ort.get_available_providers()
        if providers is None:
            providers = providers_for_device(device)
        missing = [p for p in providers if p not in available]
        if missing:
            raise EdgeStereoError(f"execution provider(s) {', '.join(missing)} not available in this onnxruntime "
                                  f"(available: {', '.join(available)})")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the graph warnings ORT prints are not for users
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers,
                                                provider_options=_provider_options(providers, device))
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidProtobuf, …)
            raise ReadError(self.path, f"ONNX Runtime cannot load it ({ort_error_message(exc)})") from None
        self.metadata = OnnxMetadata.from_props(self.session.get_modelmeta().custom_metadata_map)
        self._take_io([TensorInfo.from_ort(arg) for arg in self.session.get_inputs()],
                      [TensorInfo.from_ort(arg) for arg in self.session.get_outputs()])
        self.name = f"{self.metadata.model or self.path.stem} (onnx)"
        self.precision = self.metadata.precision or graph_precision(self.path)

    def _infer(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return self.session.run(["disparity"], {"left": left, "right": right})[0]

