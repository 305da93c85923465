"""ONNX files as edgestereo reads and writes them: the graph (without its external weights), the
metadata an export records in it, and the precision its graph runs at.

:class:`OnnxMetadata` is the one description of the metadata: ``edgestereo export`` writes it,
``edgestereo quantize`` extends it, the predictors and tools read it; its keys appear nowhere else.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgestereo.errors import ReadError

if TYPE_CHECKING:
    import onnx

__all__ = ["QUANTIZED_OPS", "OnnxMetadata", "graph_precision", "load_onnx"]

#: operators whose presence means a graph is quantized (QDQ pairs or integer kernels).
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                           "MatMulInteger", "DynamicQuantizeLinear"})
_FLOAT16 = 10  # onnx.TensorProto.FLOAT16


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file's graph (external weights are not loaded); ReadError if it is not ONNX."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise ReadError(path, "file not found" if not path.exists() else "is not a file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError, RuntimeError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise ReadError(path, f"not an ONNX file ({detail})") from None
    if not proto.graph.node and not proto.graph.output:
        raise ReadError(path, "not an ONNX file (no graph in it)")
    return proto


@dataclass(frozen=True)
class OnnxMetadata:
    """What an edgestereo ONNX file says about itself (``metadata_props``, all strings in the file).

    model: registry name; config: the model's config fields; divisor: what H and W must be multiples
    of; profile: the export target; path: the PyTorch path traced ("deploy" or "reference");
    precision: "fp32", "fp16" or "int8" ("" when the file does not say); quantization: how an int8
    file was calibrated; extra: other keys of the file, kept as they are.
    """

    model: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    divisor: int = 1
    profile: str = ""
    path: str = "deploy"
    precision: str = ""
    quantization: str = ""
    edgestereo_version: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_props(cls, props: Mapping[str, str]) -> OnnxMetadata:
        """From the key → value strings of a file (an InferenceSession's ``custom_metadata_map``)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values: dict[str, Any] = {k: v for k, v in props.items() if k in known}
        try:
            config = json.loads(values.get("config") or "{}")
        except json.JSONDecodeError:
            config = {}
        values["config"] = config if isinstance(config, dict) else {}
        values["divisor"] = int(values["divisor"]) if str(values.get("divisor", "")).isdigit() else 1
        return cls(**values, extra={k: v for k, v in props.items() if k not in known})

    @classmethod
    def of(cls, proto: onnx.ModelProto) -> OnnxMetadata:
        """The metadata of a loaded graph."""
        return cls.from_props({entry.key: entry.value for entry in proto.metadata_props})

    @classmethod
    def read(cls, path: str | Path) -> OnnxMetadata:
        """The metadata of an ONNX file (its weights are not read)."""
        return cls.of(load_onnx(path))

    @property
    def max_disp(self) -> float | None:
        """The model's ``max_disp`` (px) when its config records one."""
        value = self.config.get("max_disp")
        return float(value) if isinstance(value, (int, float)) else None

    def to_props(self) -> dict[str, str]:
        """Key → value strings as the file holds them (empty fields left out)."""
        values = {
            "edgestereo_version": self.edgestereo_version,
            "model": self.model,
            "config": json.dumps(self.config, default=str),
            "divisor": str(self.divisor),
            "profile": self.profile,
            "path": self.path,
            "precision": self.precision,
            "quantization": self.quantization,
        }
        return {**self.extra, **{k: v for k, v in values.items() if v}}

    def write(self, proto: onnx.ModelProto) -> None:
        """Replace the metadata of ``proto`` with this one (edgestereo as its producer)."""
        del proto.metadata_props[:]
        for key, value in self.to_props().items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "edgestereo"
        if self.edgestereo_version:
            proto.producer_version = self.edgestereo_version


def graph_precision(model: str | Path | onnx.ModelProto) -> str:
    """"int8" for a QDQ / integer graph, "fp16" for float16 weights, else "fp32" (read from the
    graph itself, so it holds for files from any tool). model: a file or a loaded graph."""
    proto = load_onnx(model) if isinstance(model, (str, Path)) else model
    if any(node.op_type in QUANTIZED_OPS for node in proto.graph.node):
        return "int8"
    if any(init.data_type == _FLOAT16 for init in proto.graph.initializer):
        return "fp16"
    return "fp32"
