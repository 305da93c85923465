"""Run an exported ONNX file in OpenVINO (CPU) behind the same interface as the other predictors.

OpenVINO compiles the graph for this CPU; ``precision`` chooses its inference precision: "fp32"
(exact, the same numbers as ONNX Runtime to float rounding), "bf16" (only where the CPU has native
bfloat16: AMX or AVX-512 BF16), or "auto" (OpenVINO's own choice: bf16 where native, else fp32).
The same padding, metadata and I/O contract checks as :class:`~edgestereo.runtime.onnx_predictor.OnnxPredictor`
apply. openvino is an optional extra (``pip install 'edgestereo[openvino]'``), imported here only.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from edgestereo.errors import EdgeStereoError, ReadError
from edgestereo.runtime.onnx_file import OnnxMetadata, graph_io, graph_precision, load_onnx
from edgestereo.runtime.onnx_predictor import GraphPredictor

__all__ = ["OPENVINO_PRECISIONS", "OpenVinoPredictor", "import_openvino", "native_bf16"]

#: --precision values for OpenVINO, and the inference-precision hint each sets (None: OpenVINO's choice)
OPENVINO_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "auto": None}
INSTALL_HINT = "pip install 'edgestereo[openvino]'"


def import_openvino() -> Any:
    """The openvino module, or a one-line error that says how to install it."""
    try:
        import openvino
    except ImportError:
        raise EdgeStereoError(f"--runtime openvino needs OpenVINO: {INSTALL_HINT}") from None
    return openvino


def native_bf16(core: Any = None) -> bool:
    """Whether OpenVINO's CPU plug-in runs bfloat16 natively on this CPU."""
    core = core if core is not None else import_openvino().Core()
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoPredictor(GraphPredictor):
    """Runs an ONNX stereo graph in OpenVINO on the CPU.

    threads: inference threads (default: OpenVINO's choice). precision: "fp32", "bf16" or "auto" (see
    the module docstring); ``precision`` then reports the graph's own ("fp32", "fp16", "int8") and
    ``inference_precision`` what OpenVINO computes in.
    """

    runtime = "openvino"

    def __init__(self, path: str | Path, threads: int | None = None, *, precision: str = "fp32") -> None:
        ov = import_openvino()
        self.path = Path(path)
        if not self.path.is_file():
            raise ReadError(self.path, "ONNX file not found" if not self.path.exists() else "is not a file")
        if threads is not None and threads < 1:
            raise EdgeStereoError(f"threads must be ≥ 1, got {threads}")
        if precision not in OPENVINO_PRECISIONS:
            raise EdgeStereoError(f"OpenVINO precision must be one of {', '.join(OPENVINO_PRECISIONS)}, got "
                                  f"{precision!r}")
        proto = load_onnx(self.path)
        self.metadata = OnnxMetadata.of(proto)
        self._take_io(*graph_io(proto))
        self.precision = self.metadata.precision or graph_precision(proto)
        del proto
        core = ov.Core()
        if precision == "bf16" and not native_bf16(core):
            raise EdgeStereoError("--precision bf16 with OpenVINO needs a CPU with native bfloat16 (AMX or "
                                  "AVX-512 BF16); this one has none: use fp32")
        config: dict[str, Any] = {}
        if OPENVINO_PRECISIONS[precision] is not None:
            config["INFERENCE_PRECISION_HINT"] = OPENVINO_PRECISIONS[precision]
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
        except RuntimeError as exc:
            detail = (str(exc).strip().splitlines() or ["?"])[0][:200]
            raise ReadError(self.path, f"OpenVINO cannot compile it ({detail})") from None
        hint = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.inference_precision = {"f32": "fp32", "f16": "fp16"}.get(hint, hint)
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._output = compiled.outputs[0]
        self.name = f"{self.metadata.model or self.path.stem} (openvino {self.inference_precision})"

    def _infer(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return self._request.infer({"left": left, "right": right})[self._output]

    def for_stream(self) -> OpenVinoPredictor:
        """The same compiled graph with an infer request of its own, for another thread."""
        stream = copy.copy(self)
        stream._request = self._compiled.create_infer_request()
        return stream
