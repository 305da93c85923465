"""Check an ONNX graph against what a deployment target accepts (:mod:`edgestereo.export.profiles`).

All profiles run the ONNX checker and report tensors whose rank shape inference cannot find.
Works on any ONNX file, not only edgestereo's; the report also says whether the graph keeps the
stereo I/O contract edgestereo's runtimes need (:data:`~edgestereo.runtime.onnx_file.STEREO_CONTRACT`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgestereo.export.node_facts import NodeFacts
from edgestereo.export.profiles import ExportProfile, get_profile
from edgestereo.runtime.onnx_file import STEREO_CONTRACT, TensorInfo, graph_io, load_onnx, stereo_io_problems

if TYPE_CHECKING:
    import onnx

__all__ = ["CheckReport", "NodeFacts", "Violation", "check_onnx"]

_STANDARD_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class Violation:
    """One reason the graph does not fit the profile; ``node`` names the node (or graph input,
    initializer) at fault."""

    node: str
    reason: str

    def __str__(self) -> str:
        return f"{self.node}: {self.reason}"


@dataclass
class CheckReport:
    """What :func:`check_onnx` found."""

    source: str
    profile: str
    opset: int
    #: op type (with its domain when not standard ONNX) → number of nodes, subgraphs included.
    op_histogram: Counter[str]
    #: highest rank among the tensors whose rank shape inference found (0 for an empty graph).
    max_rank: int
    violations: list[Violation] = field(default_factory=list)
    #: tensors whose rank shape inference could not find.
    unknown_rank: list[str] = field(default_factory=list)
    #: the graph's inputs and outputs, and what keeps them from the stereo I/O contract (empty: kept).
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    stereo_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the graph fits the profile."""
        return not self.violations

    @property
    def stereo_ok(self) -> bool:
        """True when edgestereo's runtimes can run the graph: it keeps :data:`STEREO_CONTRACT`."""
        return not self.stereo_problems

    @property
    def num_nodes(self) -> int:
        return sum(self.op_histogram.values())

    def format(self) -> str:
        """A human-readable report: header, op histogram, max rank, violations."""
        ops = ", ".join(f"{op} {n}" for op, n in sorted(self.op_histogram.items(), key=lambda kv: (-kv[1], kv[0])))
        lines = [
            f"file        {self.source}",
            f"profile     {self.profile} (opset {self.opset}, {self.num_nodes} nodes)",
            f"ops         {ops or '-'}",
            f"max rank    {self.max_rank}",
        ]
        if self.unknown_rank:
            more = f" (+{len(self.unknown_rank) - 8} more)" if len(self.unknown_rank) > 8 else ""
            lines.append(f"rank unknown {len(self.unknown_rank)}: {', '.join(self.unknown_rank[:8])}{more}")
        io = f"{', '.join(map(str, self.inputs))} → {', '.join(map(str, self.outputs))}"
        if self.stereo_ok:
            lines.append(f"stereo I/O  {io}")
        else:
            lines.append(f"stereo I/O  {io}: not the contract edgestereo runs ({STEREO_CONTRACT}): "
                         f"{'; '.join(self.stereo_problems)}")
        if self.ok and self.stereo_ok:
            lines.append(f"result      ok: fits {self.profile}")
        elif self.ok:
            lines.append(f"result      fits {self.profile}, but edgestereo cannot run it (stereo I/O above)")
        else:
            lines.append(f"result      {len(self.violations)} violation(s) of {self.profile}:")
            lines.extend(f"  {v}" for v in self.violations)
        return "\n".join(lines)


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The graph and every subgraph of Loop/If/Scan bodies, depth first."""
    import onnx

    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    yield from _graphs(sub)


def _node_label(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}#{index}"


def _op_key(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in _STANDARD_DOMAINS else f"{node.domain}::{node.op_type}"


def _dims(tensor_type: onnx.TypeProto.Tensor) -> list[str] | None:
    """Dimension strings ("3", "batch", "?") or None when the rank is unknown."""
    if not tensor_type.HasField("shape"):
        return None
    out = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            out.append(str(dim.dim_value))
        else:
            out.append(dim.dim_param or "?")
    return out


class _Collector:
    """Tensor shapes of one model after shape inference, and the node each tensor is reported at:
    its producer, or for a weight its first consumer."""

    def __init__(self, proto: onnx.ModelProto) -> None:
        self.shapes: dict[str, list[str] | None] = {}
        self.producer: dict[str, str] = {}
        self.node_outputs: list[str] = []
        self.graph_inputs: set[str] = set()
        for graph in _graphs(proto.graph):
            unclaimed_weights = set()
            for init in graph.initializer:
                self.shapes[init.name] = [str(d) for d in init.dims]
                self.producer[init.name] = f"initializer {init.name}"
                unclaimed_weights.add(init.name)
            for value in [*graph.input, *graph.output, *graph.value_info]:
                if value.type.HasField("tensor_type"):
                    dims = _dims(value.type.tensor_type)
                    if dims is not None or value.name not in self.shapes:
                        self.shapes[value.name] = dims
            for value in graph.input:
                self.graph_inputs.add(value.name)
                self.producer.setdefault(value.name, f"graph input {value.name}")
            for index, node in enumerate(graph.node):
                label = _node_label(node, index)
                for name in unclaimed_weights.intersection(node.input):
                    self.producer[name] = label
                    unclaimed_weights.discard(name)
                for name in node.output:
                    if name:
                        self.producer[name] = label
                        self.node_outputs.append(name)
                if node.op_type == "Constant" and node.domain in _STANDARD_DOMAINS and node.output:
                    value = next((a.t for a in node.attribute if a.name == "value"), None)
                    if value is not None and node.output[0] not in self.shapes:
                        self.shapes[node.output[0]] = [str(d) for d in value.dims]


def _infer(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True), None
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError) as exc:
        return proto, str(exc).splitlines()[0][:160]


def _checker_problem(proto: onnx.ModelProto, path: Path | None) -> str | None:
    import onnx

    try:
        # From the file when there is one: external weights are checked beside it, and files over
        # the 2 GB protobuf limit are supported.
        onnx.checker.check_model(str(path) if path is not None else proto)
    except (onnx.checker.ValidationError, ValueError) as exc:
        return str(exc).strip().splitlines()[0][:200]
    return None


def _ort_problem(proto: onnx.ModelProto, path: Path | None) -> str | None:
    import onnxruntime as ort

    from edgestereo.runtime.onnx_predictor import ort_error_message

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # From the file when there is one, so external weights resolve beside it.
    model = str(path) if path is not None else proto.SerializeToString()
    try:
        ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own zoo of exception types for unsupported graphs
        return f"ONNX Runtime cannot run it: {ort_error_message(exc)}"
    return None


def _constants(proto: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """Initializers and Constant outputs (with a ``value`` tensor) of every graph, by name."""
    constants: dict[str, onnx.TensorProto] = {}
    for graph in _graphs(proto.graph):
        constants.update((init.name, init) for init in graph.initializer)
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in _STANDARD_DOMAINS and node.output:
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    constants[node.output[0]] = value
    return constants


def _opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in _STANDARD_DOMAINS), 0)


def _operator_problem(node: onnx.NodeProto, target: ExportProfile) -> str | None:
    """Why ``target`` refuses the operator of ``node``, or None."""
    standard = node.domain in _STANDARD_DOMAINS
    if target.standard_domain_only and not standard:
        return f"{_op_key(node)} is not a standard ONNX operator"
    if node.op_type in target.banned_ops:
        return f"{node.op_type} is not supported on {target.target}"
    if target.allowed_ops is not None and not (standard and node.op_type in target.allowed_ops):
        return f"{_op_key(node)} is not on {target.allowed_ops_source}"
    return None


def check_onnx(model: str | Path | onnx.ModelProto, profile: str = "npu4d") -> CheckReport:
    """Check an ONNX file or ModelProto against ``profile`` ("npu4d", "tensorrt", "rknn", "generic").

    Raises :class:`~edgestereo.errors.EdgeStereoError` for an unknown profile or a file that is
    not ONNX; everything wrong *inside* the graph is a :class:`Violation` in the report.
    """
    import onnx

    target = get_profile(profile)
    path = None
    if isinstance(model, onnx.ModelProto):
        proto, source = model, model.graph.name or "<ModelProto>"
    else:
        path = Path(model)
        proto, source = load_onnx(path), str(path)
    violations: list[Violation] = []
    opset = _opset(proto)

    checker = _checker_problem(proto, path)
    if checker:
        violations.append(Violation("model", f"ONNX checker: {checker}"))
    inferred, inference_problem = _infer(proto)
    if inference_problem:
        violations.append(Violation("model", f"shape inference failed: {inference_problem}"))
    tensors = _Collector(inferred)

    histogram: Counter[str] = Counter()
    constants = _constants(inferred) if target.node_rules else {}
    for graph in _graphs(inferred.graph):
        for index, node in enumerate(graph.node):
            histogram[_op_key(node)] += 1
            problem = _operator_problem(node, target)
            if problem:
                violations.append(Violation(_node_label(node, index), problem))
            facts = NodeFacts(node, tensors.shapes, constants)
            violations.extend(Violation(_node_label(node, index), reason)
                              for rule in target.node_rules if (reason := rule(facts)))

    if target.opsets is not None and not target.opsets[0] <= opset <= target.opsets[1]:
        violations.append(Violation("model", f"opset {opset} is outside what {target.target} parses "
                                             f"({target.opsets[0]} to {target.opsets[1]})"))

    ranks = [len(dims) for dims in tensors.shapes.values() if dims is not None]
    unknown = [name for name in dict.fromkeys([*tensors.graph_inputs, *tensors.node_outputs])
               if tensors.shapes.get(name) is None]
    for name, dims in tensors.shapes.items():
        if dims is None:
            continue
        where = tensors.producer.get(name, name)
        shape = f"[{','.join(dims)}]"
        if target.max_rank is not None and len(dims) > target.max_rank:
            violations.append(Violation(where, f"tensor {name} {shape} has rank {len(dims)} > {target.max_rank}"))
        dynamic = [d for d in dims if not d.isdigit()]
        if target.static_shapes and dynamic:
            violations.append(Violation(where, f"tensor {name} {shape} has dynamic dimension(s) {', '.join(dynamic)}"))
    if target.static_shapes:
        violations.extend(Violation(tensors.producer.get(name, name),
                                    f"tensor {name}: rank unknown after shape inference (shape not static)")
                          for name in unknown)
    if target.onnxruntime_session:
        problem = _ort_problem(proto, path)
        if problem:
            violations.append(Violation("model", problem))
    inputs, outputs = graph_io(proto)
    return CheckReport(source, profile, opset, histogram, max(ranks, default=0), violations, unknown, inputs, outputs,
                       stereo_io_problems(inputs, outputs))
