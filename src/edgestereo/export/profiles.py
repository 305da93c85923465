"""Deployment targets as data: what :func:`~edgestereo.export.exporter.export_onnx` traces for each
and what :func:`~edgestereo.export.check.check_onnx` holds a graph to.

* ``npu4d`` — mobile/automotive NPUs (Qualcomm HTP, Horizon BPU …): every tensor at most 4-D, no
  GridSample, Einsum, Scatter/ScatterND/ScatterElements, NonZero, Loop or If, no operator outside
  the standard ONNX domain, no dynamic dimension. QuantizeLinear/DequantizeLinear are fine.
* ``tensorrt`` — every operator on TensorRT's ONNX support list (:data:`TENSORRT_OPS`), opset within
  what TensorRT parses, static shapes.
* ``rknn`` — the Rockchip RK3588 NPU (rknn-toolkit2): the operators, opsets and per-operator limits
  its documents list, and what its 2.5 compiler was seen to leave on the CPU
  (:mod:`edgestereo.export.rknn_limits`); static shapes; the deploy path.
* ``generic`` — whatever ONNX Runtime (CPU) can build a session for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgestereo.errors import EdgeStereoError
from edgestereo.export.rknn_limits import RKNN_NODE_RULES, RKNN_OPS, RKNN_OPSETS

if TYPE_CHECKING:
    from edgestereo.export.node_facts import NodeFacts

__all__ = ["NPU4D_BANNED_OPS", "PROFILES", "TENSORRT_OPS", "ExportProfile", "get_profile"]

#: ops NPU compilers reject or run on the CPU: data-dependent gathers/scatters, sampling, control flow.
NPU4D_BANNED_OPS = frozenset(
    {"GridSample", "Einsum", "Scatter", "ScatterND", "ScatterElements", "NonZero", "Loop", "If"}
)

#: ONNX operators marked supported ("Y") in TensorRT's ONNX operator support matrix,
#: onnx-tensorrt docs/operators.md of the "ONNX-TensorRT 10.1 GA release" (commit 96e7811, TensorRT 10.0,
#: opsets 9 to 20). Restrictions listed there (e.g. Resize modes, 2-D/3-D pooling only) are not checked.
_TENSORRT_OPS_TABLE = """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike
    Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace
    DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements
    GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
    GroupNormalization GRU HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf
    IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool
    MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot
    Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
    RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean
    ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round
    ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice
    Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK
    Transpose Trilu Unsqueeze Upsample Where Xor
"""
TENSORRT_OPS = frozenset(_TENSORRT_OPS_TABLE.split())


@dataclass(frozen=True)
class ExportProfile:
    """One deployment target.

    deploy_path: True traces the model's deploy path always; False lets the model choose
    (:meth:`~edgestereo.models.StereoModel.export_uses_deploy`). max_rank: the highest tensor rank
    allowed. banned_ops: operators refused. allowed_ops: the only operators accepted (None: any), as
    listed by ``allowed_ops_source``. standard_domain_only: refuse operators outside the ONNX domain.
    static_shapes: refuse dynamic dimensions and tensors of unknown rank. opsets: the opset range the
    target parses. onnxruntime_session: ONNX Runtime (CPU) must build a session for the graph.
    node_rules: functions of a node's facts (:class:`~edgestereo.export.node_facts.NodeFacts`) that return
    why the target refuses it, or None: attribute and shape limits.
    """

    name: str
    #: who the target is, for messages ("TensorRT").
    target: str
    deploy_path: bool = False
    max_rank: int | None = None
    banned_ops: frozenset[str] = frozenset()
    allowed_ops: frozenset[str] | None = None
    allowed_ops_source: str = ""
    standard_domain_only: bool = False
    static_shapes: bool = False
    opsets: tuple[int, int] | None = None
    onnxruntime_session: bool = False
    node_rules: tuple[Callable[[NodeFacts], str | None], ...] = ()


#: target profiles by name; the first is the default of every command.
PROFILES: dict[str, ExportProfile] = {profile.name: profile for profile in (
    ExportProfile("npu4d", "npu4d targets", deploy_path=True, max_rank=4, banned_ops=NPU4D_BANNED_OPS,
                  standard_domain_only=True, static_shapes=True),
    ExportProfile("tensorrt", "TensorRT", allowed_ops=TENSORRT_OPS, allowed_ops_source="TensorRT's ONNX operator list",
                  static_shapes=True, opsets=(9, 20)),
    ExportProfile("rknn", "the RK3588 NPU", deploy_path=True, allowed_ops=RKNN_OPS,
                  allowed_ops_source="RKNN-Toolkit2's ONNX operator list", standard_domain_only=True,
                  static_shapes=True, opsets=RKNN_OPSETS, node_rules=RKNN_NODE_RULES),
    ExportProfile("generic", "ONNX Runtime", onnxruntime_session=True),
)}


def get_profile(name: str) -> ExportProfile:
    """The profile called ``name``; the error lists the known ones."""
    if name not in PROFILES:
        raise EdgeStereoError(f"unknown profile {name!r} (choose from {', '.join(PROFILES)})")
    return PROFILES[name]
