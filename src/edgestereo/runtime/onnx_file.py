"""ONNX files as edgestereo reads and writes them: the graph (without its external weights), the
metadata an export records in it, the precision its graph runs at, and the stereo I/O contract
every runtime needs (:func:`stereo_io_problems`).

:class:`OnnxMetadata` is the one description of the metadata: ``edgestereo export`` writes it,
``edgestereo quantize`` extends it, the predictors and tools read it; its keys appear nowhere else.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgestereo.errors import ReadError

if TYPE_CHECKING:
    import onnx

__all__ = ["QUANTIZED_OPS", "STEREO_CONTRACT", "OnnxMetadata", "TensorInfo", "graph_io", "graph_precision", "load_onnx",
           "require_stereo_io", "stereo_io_problems", "subgraph_boundary"]

#: operators whose presence means a graph is quantized (QDQ pairs or integer kernels).
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                           "MatMulInteger", "DynamicQuantizeLinear"})
_FLOAT16 = 10  # onnx.TensorProto.FLOAT16
#: what edgestereo's runtimes feed a graph and read back, for messages.
STEREO_CONTRACT = "inputs left, right (1,3,H,W) float → output disparity (1,1,H,W)"
_FLOAT_TYPES = ("float", "float16")


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


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: name, shape (ints, names of dynamic dimensions, or None for a
    dimension without either; None for an unknown rank) and element type ("float", "float16", …)."""

    name: str
    shape: tuple[int | str | None, ...] | None
    dtype: str

    def __str__(self) -> str:
        if self.shape is None:
            return f"{self.name} (rank unknown)"
        return f"{self.name} ({','.join('?' if d is None else str(d) for d in self.shape)})"

    @classmethod
    def from_ort(cls, arg: Any) -> TensorInfo:
        """From an onnxruntime ``NodeArg`` (``session.get_inputs()`` …)."""
        shape = None if arg.shape is None else tuple(arg.shape)
        return cls(arg.name, shape, str(arg.type).removeprefix("tensor(").removesuffix(")"))


def graph_io(proto: onnx.ModelProto) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """The inputs (weights excluded) and outputs of a loaded graph."""
    import onnx

    def info(value: onnx.ValueInfoProto) -> TensorInfo:
        tensor = value.type.tensor_type
        shape = None
        if tensor.HasField("shape"):
            shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
        return TensorInfo(value.name, shape, onnx.TensorProto.DataType.Name(tensor.elem_type).lower())

    weights = {init.name for init in proto.graph.initializer}
    return ([info(v) for v in proto.graph.input if v.name not in weights], [info(v) for v in proto.graph.output])


def subgraph_boundary(proto: onnx.ModelProto, node_names: Sequence[str]) -> list[tuple[str, str]]:
    """Where the part of a graph made of the nodes ``node_names`` begins and ends: (entering, leaving)
    tensor pairs joined by a path through those nodes, in graph order. An entering tensor is read by
    one of the nodes and made elsewhere (graph inputs included, weights and constants not); a leaving
    one is made by one of them and read elsewhere, or is a graph output.

    >>> import onnx.helper as h
    >>> g = h.make_graph([h.make_node("Relu", ["x"], ["a"], name="/f/Relu"), h.make_node("Neg", ["a"], ["b"],
    ...     name="/g/Neg"), h.make_node("Add", ["a", "b"], ["y"], name="/h/Add")], "g", [],
    ...     [h.make_tensor_value_info("y", 1, None)])
    >>> subgraph_boundary(h.make_model(g), ["/g/Neg", "/h/Add"])
    [('a', 'y')]
    """
    chosen = set(node_names)
    nodes = [node for node in proto.graph.node if node.name in chosen]
    outside = [node for node in proto.graph.node if node.name not in chosen]
    made_inside = {tensor for node in nodes for tensor in node.output}
    constants = {init.name for init in proto.graph.initializer} | {
        tensor for node in outside if node.op_type == "Constant" for tensor in node.output}
    read_outside = {tensor for node in outside for tensor in node.input} | {v.name for v in proto.graph.output}
    entering = list(dict.fromkeys(tensor for node in nodes for tensor in node.input
                                  if tensor and tensor not in made_inside and tensor not in constants))
    leaving = [tensor for node in nodes for tensor in node.output if tensor in read_outside]
    pairs = []
    for source in entering:
        reached = {source}
        for node in nodes:  # graph order is topological: one pass follows every path
            if reached.intersection(node.input):
                reached.update(node.output)
        pairs += [(source, sink) for sink in leaving if sink in reached]
    return pairs


def _fits(shape: tuple[int | str | None, ...] | None, channels: int) -> bool:
    """Whether ``shape`` can be (1, channels, H, W): rank 4, the batch and channels 1 / ``channels`` or dynamic."""
    return shape is not None and len(shape) == 4 and all(
        not isinstance(dim, int) or dim == want for dim, want in zip(shape[:2], (1, channels)))


def stereo_io_problems(inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> list[str]:
    """What keeps a graph from the contract edgestereo's runtimes rely on (:data:`STEREO_CONTRACT`):
    inputs ``left`` and ``right`` of one (1,3,H,W) float shape, one output ``disparity`` (1,1,H,W) of
    the same H and W. Empty when the graph keeps it."""
    problems = []
    if sorted(t.name for t in inputs) != ["left", "right"]:
        problems.append(f"inputs are {', '.join(str(t) for t in inputs) or 'none'}, expected left and right")
    for tensor in inputs:
        if not _fits(tensor.shape, 3):
            problems.append(f"input {tensor} is not (1,3,H,W)")
        if tensor.dtype not in _FLOAT_TYPES:
            problems.append(f"input {tensor.name} is {tensor.dtype}, expected float or float16")
    if len(inputs) == 2 and inputs[0].shape != inputs[1].shape:
        problems.append(f"inputs {inputs[0]} and {inputs[1]} differ in shape")
    if [t.name for t in outputs] != ["disparity"]:
        problems.append(f"outputs are {', '.join(str(t) for t in outputs) or 'none'}, expected disparity alone")
    if outputs:
        output = outputs[0]
        if not _fits(output.shape, 1):
            problems.append(f"output {output} is not (1,1,H,W)")
        elif inputs and _fits(inputs[0].shape, 3):
            size, expected = output.shape[2:], inputs[0].shape[2:]
            if all(isinstance(d, int) for d in (*size, *expected)) and size != expected:
                problems.append(f"output {output} has another size than the inputs ({inputs[0]})")
        if output.dtype not in _FLOAT_TYPES:
            problems.append(f"output {output.name} is {output.dtype}, expected float or float16")
    return problems


def require_stereo_io(path: str | Path, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> None:
    """Raise :class:`~edgestereo.errors.ReadError` naming ``path`` and each problem unless the graph
    keeps the stereo I/O contract (:func:`stereo_io_problems`)."""
    problems = stereo_io_problems(inputs, outputs)
    if problems:
        raise ReadError(path, f"not a stereo graph edgestereo can run ({STEREO_CONTRACT}): {'; '.join(problems)}")
