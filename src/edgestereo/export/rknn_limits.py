"""What the RK3588 compiler (rknn-toolkit2) accepts on its NPU, as data and node rules for the ``rknn``
profile of :func:`~edgestereo.export.check.check_onnx`.

Sources, written out in edgestereo's own terms:

* the operator list: ONNX operators *not* marked "Not Supported" in RKNN-Toolkit2's operator support
  document of v2.1.0 (``RKNNToolKit2_OP_Support-v2.1.0.md``, opset 19); the SDK 1.6 release notes
  name opsets 12 to 19;
* the per-operator "NPU Limit" remarks of the v1.4.0 edition of that document, the last one that
  lists them (newer ones defer to the compiler's PDF operator list): kernel, stride and pad ranges
  of Conv, ConvTranspose and pooling, Resize scales 1-8, Softmax on axis 1 with at most 8192
  channels, Slice steps of 1, Pad in constant mode, and tensor extents of at most 8192 channels,
  8192 rows and 8176 columns;
* builds with rknn-toolkit2 2.5.0 (``edgestereo compile``), marked *observed*: operators the documents
  allow that the compiler still leaves on its CPU, most of them with the error "Unknown op target: 0".

A finding means the operator runs on the CPU beside the NPU (or, for extents, may not build), not that
the toolkit refuses the graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgestereo.export.node_facts import NodeFacts

__all__ = ["RKNN_NODE_RULES", "RKNN_OPS", "RKNN_OPSETS"]

_RKNN_OPS_TABLE = """
    Add And ArgMax ArgMin AveragePool BatchNormalization Cast Clip Concat Constant ConstantOfShape Conv
    ConvTranspose Cos DepthToSpace DequantizeLinear Div Dropout Elu Equal Erf Exp Expand EyeLike Flatten Floor
    Gather GatherElements Gemm GlobalAveragePool GlobalMaxPool Greater GreaterOrEqual GRU HardSigmoid HardSwish
    Identity If InstanceNormalization LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax
    LpNormalization LRN LSTM MatMul Max MaxPool MaxRoiPool MaxUnpool MeanVarianceNormalization Min Mish Mod Mul
    Pad Pow PRelu QuantizeLinear ReduceMax ReduceMean ReduceMin ReduceSum Relu Reshape Resize ReverseSequence
    RoiAlign ScatterND Shape Sigmoid Sin Size Slice Softmax Softplus SpaceToDepth Split Sqrt Squeeze Sub Tanh
    Tile Transpose Unsqueeze Where
"""
#: ONNX operators RKNN-Toolkit2's support list (v2.1.0) does not mark "Not Supported".
RKNN_OPS = frozenset(_RKNN_OPS_TABLE.split())
#: the ONNX opsets the toolkit parses.
RKNN_OPSETS = (12, 19)

#: documented NPU extents of a (N,C,H,W) tensor.
MAX_CHANNELS, MAX_HEIGHT, MAX_WIDTH = 8192, 8192, 8176


def _ints(facts: NodeFacts, name: str) -> list[int]:
    value = facts.attribute(name)
    return [int(v) for v in value] if value is not None else []


def _window_problem(facts: NodeFacts, kernel: tuple[int, int] | None, strides: set[int] | range,
                    pads: tuple[int, int]) -> str | None:
    """Kernel (inclusive range), stride (allowed values) and pad (inclusive range) limits of a window op."""
    kernel_shape = _ints(facts, "kernel_shape")
    if not kernel_shape and facts.node.op_type in ("Conv", "ConvTranspose"):
        weight = facts.input_shape(1)
        kernel_shape = [int(d) for d in weight[2:]] if weight and all(isinstance(d, int) for d in weight) else []
    if kernel is not None and any(not kernel[0] <= k <= kernel[1] for k in kernel_shape):
        return f"kernel {kernel_shape} outside {kernel[0]}-{kernel[1]}"
    stride = _ints(facts, "strides")
    if any(s not in strides for s in stride):
        allowed = (f"{strides.start}-{strides.stop - 1}" if isinstance(strides, range)
                   else ", ".join(map(str, sorted(strides))))
        return f"stride {stride} not in {allowed}"
    pad = _ints(facts, "pads")
    if any(not pads[0] <= p <= pads[1] for p in pad):
        return f"pads {pad} outside {pads[0]}-{pads[1]}"
    auto_pad = facts.attribute("auto_pad")
    if auto_pad not in (None, b"NOTSET", "NOTSET") and facts.node.op_type in ("AveragePool", "MaxPool"):
        return f"auto_pad {auto_pad!r} (only NOTSET)"
    if facts.attribute("ceil_mode") not in (None, 0):
        return "ceil_mode 1 (only 0)"
    return None


def _conv(facts: NodeFacts) -> str | None:
    if facts.node.op_type == "Conv":
        problem = _window_problem(facts, (1, 31), range(1, 8), (0, 15))
    elif facts.node.op_type == "ConvTranspose":
        problem = _window_problem(facts, (1, 31), {2, 4, 8}, (0, 15))
    elif facts.node.op_type in ("AveragePool", "MaxPool"):
        problem = _window_problem(facts, None, range(1, 9), (0, 7))
    else:
        return None
    return f"{facts.node.op_type} {problem}: beyond the NPU's documented limits" if problem else None


def _resize(facts: NodeFacts) -> str | None:
    if facts.node.op_type != "Resize":
        return None
    mode = facts.attribute("mode") or b"nearest"
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("nearest", "linear"):
        return f"Resize mode {mode} (the NPU has nearest and bilinear)"
    transform = facts.attribute("coordinate_transformation_mode") or b"half_pixel"
    transform = transform.decode() if isinstance(transform, bytes) else transform
    if transform == "align_corners":
        return "Resize with align_corners runs on the CPU (observed, rknn-toolkit2 2.5: \"Unknown op target\")"
    before, after = facts.input_shape(0), facts.output_shape(0)
    if before and after and len(before) == len(after) == 4 and all(isinstance(d, int) for d in [*before, *after]):
        scales = [a / b for a, b in zip(after[2:], before[2:]) if b]
        if any(not 1 <= s <= 8 for s in scales):
            return f"Resize scale {', '.join(f'{s:g}' for s in scales)} outside 1-8"
    return None


def _softmax(facts: NodeFacts) -> str | None:
    if facts.node.op_type != "Softmax":
        return None
    shape = facts.input_shape(0)
    axis = facts.attribute("axis")
    axis = -1 if axis is None else int(axis)
    if shape is not None and axis < 0:
        axis += len(shape)
    if axis != 1:
        return f"Softmax on axis {axis} (the NPU's is axis 1)"
    if shape and isinstance(shape[1], int) and shape[1] > MAX_CHANNELS:
        return f"Softmax over {shape[1]} channels > {MAX_CHANNELS}"
    return None


def _slice(facts: NodeFacts) -> str | None:
    if facts.node.op_type != "Slice":
        return None
    steps = facts.constant(4)
    if steps is not None and any(int(s) != 1 for s in steps.ravel()):
        return f"Slice steps {steps.ravel().tolist()} (the NPU's are 1)"
    return None


def _pad(facts: NodeFacts) -> str | None:
    if facts.node.op_type != "Pad":
        return None
    mode = facts.attribute("mode") or b"constant"
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant":
        return f"Pad mode {mode} (the NPU pads with a constant)"
    pads = facts.constant(1)
    if pads is not None and pads.size == 8 and any(int(pads.ravel()[i]) for i in (0, 1, 4, 5)):
        return "Pad of the batch or channel axis runs on the CPU (observed, rknn-toolkit2 2.5: \"Unknown op target\")"
    return None


def _reduce_max(facts: NodeFacts) -> str | None:
    if facts.node.op_type != "ReduceMax":
        return None
    axes = facts.attribute("axes")
    if axes is None:
        constant = facts.constant(1)
        axes = constant.ravel().tolist() if constant is not None else None
    shape = facts.input_shape(0)
    rank = len(shape) if shape is not None else 4
    if axes is not None and 1 in [a + rank if a < 0 else a for a in axes]:
        return "ReduceMax over channels runs on the CPU (observed, rknn-toolkit2 2.5: \"Unknown op target\"); " \
               "use a tree of elementwise Max (edgestereo.ops.softmax.channel_max)"
    return None


def _gather_elements(facts: NodeFacts) -> str | None:
    if facts.node.op_type != "GatherElements" or facts.constant(1) is None:
        return None
    return "GatherElements with constant indices becomes a MatMul with reshapes on the CPU (observed, " \
           "rknn-toolkit2 2.5: \"Unknown op target\", \"REGTASK\" at widths of 2048)"


def _constant_minus_broadcast(facts: NodeFacts) -> str | None:
    first = facts.constant(0)
    if facts.node.op_type != "Sub" or first is None or first.size == 1:  # one minus a tensor runs on the NPU
        return None
    out = facts.output_shape(0)
    if out is not None and list(first.shape) == list(out):
        return None
    return ("a constant minus a tensor, the constant broadcast along an axis, runs on the CPU (observed, "
            "rknn-toolkit2 2.5); subtract the other way round and negate with a 1x1 convolution of weight -1")


def _min(facts: NodeFacts) -> str | None:
    if facts.node.op_type != "Min":
        return None
    return ("elementwise Min runs on the CPU (observed, rknn-toolkit2 2.5); Max runs on the NPU: "
            "min(a, b) = -max(-a, -b)")


def _extents(facts: NodeFacts) -> str | None:
    for index, name in enumerate(facts.node.output):
        shape = facts.output_shape(index)
        if not name or shape is None or len(shape) != 4 or not all(isinstance(d, int) for d in shape):
            continue
        _, channels, height, width = shape
        if channels > MAX_CHANNELS or height > MAX_HEIGHT or width > MAX_WIDTH:
            return (f"output {name} {list(shape)} exceeds the NPU's extents (C ≤ {MAX_CHANNELS}, H ≤ {MAX_HEIGHT}, "
                    f"W ≤ {MAX_WIDTH})")
    return None


#: each rule: why the node does not fit the RK3588 NPU, or None.
RKNN_NODE_RULES: tuple[Callable[[NodeFacts], str | None], ...] = (
    _conv, _resize, _softmax, _slice, _pad, _reduce_max, _gather_elements, _constant_minus_broadcast, _min,
    _extents,
)
