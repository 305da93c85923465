"""check_onnx --profile rknn on small graphs: the RK3588 operator list, opsets, attribute and shape limits."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgestereo.apps.cli import main
from edgestereo.export.check import check_onnx


def _model(nodes, in_shape, out_shape, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _const(name, values, dtype=np.int64):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def _conv(kernel, stride=1, pad=0, channels=4):
    weight = numpy_helper.from_array(np.zeros((channels, channels, kernel, kernel), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[kernel, kernel],
                            strides=[stride, stride], pads=[pad] * 4)
    size = (64 + 2 * pad - kernel) // stride + 1
    return _model([node], [1, channels, 64, 64], [1, channels, size, size], [weight])


def _resize(transform, factor=2):
    sizes = _const("sizes", [1, 4, 8 * factor, 8 * factor])
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="resize", mode="linear",
                            coordinate_transformation_mode=transform)
    return _model([node], [1, 4, 8, 8], [1, 4, 8 * factor, 8 * factor], [sizes])


def _reasons(model):
    report = check_onnx(model, "rknn")
    return [f"{v.node}: {v.reason}" for v in report.violations]


def test_a_clean_graph_fits():
    assert _reasons(_conv(3, stride=2, pad=1)) == []
    assert _reasons(_resize("half_pixel")) == []


@pytest.mark.parametrize(("model", "expected"), [
    (_conv(33, pad=1), "conv: Conv kernel [33, 33] outside 1-31"),
    (_conv(3, stride=8, pad=1), "conv: Conv stride [8, 8] not in 1-7"),
    (_conv(3, pad=16), "conv: Conv pads [16, 16, 16, 16] outside 0-15"),
    (_resize("align_corners"), "resize: Resize with align_corners runs on the CPU"),
    (_resize("half_pixel", factor=16), "resize: Resize scale 16, 16 outside 1-8"),
])
def test_attribute_limits(model, expected):
    reasons = _reasons(model)
    assert len(reasons) == 1 and reasons[0].startswith(expected), reasons


def test_reduce_max_over_channels_is_flagged_and_over_space_is_not():
    for axes, flagged in (([1], True), ([-3], True), ([3], False)):
        out = [1, 1, 8, 8] if axes != [3] else [1, 4, 8, 1]
        node = helper.make_node("ReduceMax", ["x"], ["y"], name="max", axes=axes, keepdims=1)
        reasons = _reasons(_model([node], [1, 4, 8, 8], out))
        assert bool(reasons) == flagged and all("ReduceMax over channels" in r for r in reasons), (axes, reasons)


def test_pad_of_the_channel_axis_and_softmax_axis():
    pad = helper.make_node("Pad", ["x", "pads"], ["y"], name="pad", mode="constant")
    assert "Pad of the batch or channel axis" in _reasons(
        _model([pad], [1, 1, 8, 8], [1, 2, 8, 8], [_const("pads", [0, 0, 0, 0, 0, 1, 0, 0])]))[0]
    assert _reasons(_model([pad], [1, 1, 8, 8], [1, 1, 10, 10], [_const("pads", [0, 0, 1, 1, 0, 0, 1, 1])])) == []
    softmax = helper.make_node("Softmax", ["x"], ["y"], name="softmax", axis=-1)
    assert _reasons(_model([softmax], [1, 4, 8, 8], [1, 4, 8, 8])) == [
        "softmax: Softmax on axis 3 (the NPU's is axis 1)"]


def test_gather_elements_with_constant_indices_is_flagged_and_with_computed_ones_is_not():
    gather = helper.make_node("GatherElements", ["x", "index"], ["y"], name="gather", axis=3)
    index = _const("index", np.zeros((1, 4, 8, 2)))
    assert _reasons(_model([gather], [1, 4, 8, 8], [1, 4, 8, 2], [index])) == [
        "gather: GatherElements with constant indices becomes a MatMul with reshapes on the CPU (observed, "
        "rknn-toolkit2 2.5: \"Unknown op target\", \"REGTASK\" at widths of 2048)"]
    cast = helper.make_node("Cast", ["x"], ["computed"], name="cast", to=TensorProto.INT64)
    slice_ = helper.make_node("Slice", ["computed", "starts", "ends", "axes"], ["index"], name="slice")
    bounds = [_const("starts", [0]), _const("ends", [2]), _const("axes", [3])]
    assert _reasons(_model([cast, slice_, gather], [1, 4, 8, 8], [1, 4, 8, 2], bounds)) == []


def test_a_broadcast_constant_minus_a_tensor_is_flagged_and_the_other_way_round_is_not():
    row = numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(1, 1, 1, 8), "row")
    minus = helper.make_node("Sub", ["row", "x"], ["y"], name="minus")
    assert _reasons(_model([minus], [1, 1, 4, 8], [1, 1, 4, 8], [row])) == [
        "minus: a constant minus a tensor, the constant broadcast along an axis, runs on the CPU (observed, "
        "rknn-toolkit2 2.5); subtract the other way round and negate with a 1x1 convolution of weight -1"]
    other_way = helper.make_node("Sub", ["x", "row"], ["y"], name="other_way")
    assert _reasons(_model([other_way], [1, 1, 4, 8], [1, 1, 4, 8], [row])) == []
    full = numpy_helper.from_array(np.zeros((1, 1, 4, 8), np.float32), "row")
    assert _reasons(_model([minus], [1, 1, 4, 8], [1, 1, 4, 8], [full])) == []  # no broadcast
    one = numpy_helper.from_array(np.ones((1,), np.float32), "row")
    assert _reasons(_model([minus], [1, 1, 4, 8], [1, 1, 4, 8], [one])) == []  # 1 - z of a GRU: on the NPU


def test_min_is_flagged_and_max_is_not():
    for op, flagged in (("Min", True), ("Max", False)):
        node = helper.make_node(op, ["x", "x"], ["y"], name="pick")
        reasons = _reasons(_model([node], [1, 4, 8, 8], [1, 4, 8, 8]))
        assert bool(reasons) == flagged and all("elementwise Min runs on the CPU" in r for r in reasons), reasons


def test_operator_list_extents_and_opset():
    abs_node = helper.make_node("Abs", ["x"], ["y"], name="abs")
    assert _reasons(_model([abs_node], [1, 4, 8, 8], [1, 4, 8, 8])) == [
        "abs: Abs is not on RKNN-Toolkit2's ONNX operator list"]
    relu = helper.make_node("Relu", ["x"], ["y"], name="relu")
    assert _reasons(_model([relu], [1, 4, 2, 9000], [1, 4, 2, 9000]))[0].startswith(
        "relu: output y [1, 4, 2, 9000] exceeds the NPU's extents")
    assert _reasons(_model([relu], [1, 4, 8, 8], [1, 4, 8, 8], opset=20)) == [
        "model: opset 20 is outside what the RK3588 NPU parses (12 to 19)"]


def test_cli_exit_status(tmp_path, capsys):
    import onnx

    path = tmp_path / "align.onnx"
    onnx.save(_resize("align_corners"), str(path))
    assert main(["check-onnx", str(path), "--profile", "rknn"]) == 1
    assert "1 violation(s) of rknn" in capsys.readouterr().out
