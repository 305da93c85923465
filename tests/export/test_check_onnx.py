"""check_onnx on small graphs built with onnx.helper: each profile's rules, reports, bad files."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgestereo.errors import EdgeStereoError
from edgestereo.export.check import check_onnx
from edgestereo.export.profiles import TENSORRT_OPS


def _model(nodes, inputs, outputs, initializers=(), opset=17, extra_opsets=()):
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializer=list(initializers))
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in extra_opsets)]
    # onnx.helper writes its newest IR version by default, which onnxruntime may not read yet
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


def _tensor(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def _relu_model(shape=(1, 3, 8, 8)):
    return _model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [_tensor("x", shape)], [_tensor("y", shape)])


def _stereo_model(output_channels=1):
    """left, right (1,3,8,8) → disparity (1,output_channels,8,8): the stereo contract when output_channels is 1."""
    nodes = [helper.make_node("Sub", ["left", "right"], ["difference"], name="sub"),
             helper.make_node("ReduceMean", ["difference"], ["disparity"], name="mean", axes=[1], keepdims=1)]
    if output_channels != 1:
        nodes[1] = helper.make_node("Relu", ["difference"], ["disparity"], name="relu")
    return _model(nodes, [_tensor("left", [1, 3, 8, 8]), _tensor("right", [1, 3, 8, 8])],
                  [_tensor("disparity", [1, output_channels, 8, 8])], opset=17)


def test_clean_graph_passes_every_profile():
    for profile in ("npu4d", "tensorrt", "generic"):
        report = check_onnx(_relu_model(), profile)
        assert report.ok, report.format()
        assert report.op_histogram == {"Relu": 1} and report.max_rank == 4 and report.opset == 17
    report = check_onnx(_stereo_model(), "npu4d")
    assert report.ok and report.stereo_ok
    assert "stereo I/O  left (1,3,8,8), right (1,3,8,8) → disparity (1,1,8,8)" in report.format()
    assert "result      ok: fits npu4d" in report.format()


def test_a_graph_that_breaks_the_stereo_contract_is_flagged():
    report = check_onnx(_stereo_model(output_channels=3), "npu4d")
    assert report.ok and not report.stereo_ok
    assert report.stereo_problems == ["output disparity (1,3,8,8) is not (1,1,H,W)"]
    assert "result      fits npu4d, but edgestereo cannot run it" in report.format()
    assert "ok: fits" not in report.format()
    assert not check_onnx(_relu_model()).stereo_ok


def test_npu4d_catches_gridsample():
    model = _model(
        [helper.make_node("GridSample", ["x", "grid"], ["y"], name="warp", align_corners=1)],
        [_tensor("x", [1, 3, 8, 8]), _tensor("grid", [1, 8, 8, 2])], [_tensor("y", [1, 3, 8, 8])])
    report = check_onnx(model, "npu4d")
    assert [(v.node, v.reason) for v in report.violations] == [("warp", "GridSample is not supported on npu4d targets")]
    assert check_onnx(model, "tensorrt").ok  # TensorRT 10 runs 4-D GridSample


def test_npu4d_catches_a_5d_tensor_with_its_producer():
    shape5 = np.array([1, 3, 2, 4, 8], dtype=np.int64)
    model = _model(
        [helper.make_node("Reshape", ["x", "shape5"], ["volume"], name="to_5d"),
         helper.make_node("ReduceMean", ["volume"], ["y"], name="mean", axes=[2], keepdims=0)],
        [_tensor("x", [1, 3, 8, 8])], [_tensor("y", [1, 3, 4, 8])], [numpy_helper.from_array(shape5, "shape5")])
    report = check_onnx(model, "npu4d")
    assert report.max_rank == 5
    assert [v.node for v in report.violations] == ["to_5d"]
    assert "tensor volume [1,3,2,4,8] has rank 5 > 4" in report.violations[0].reason
    assert check_onnx(model, "generic").ok


def test_a_5d_weight_is_reported_at_the_node_that_uses_it():
    kernel = numpy_helper.from_array(np.ones((4, 3, 1, 3, 3), np.float32), "kernel3d")
    model = _model([helper.make_node("Conv", ["x", "kernel3d"], ["y"], name="/agg/Conv", pads=[0, 1, 1, 0, 1, 1])],
                   [_tensor("x", [1, 3, 2, 8, 8])], [_tensor("y", [1, 4, 2, 8, 8])], [kernel])
    reasons = {str(v) for v in check_onnx(model, "npu4d").violations}
    assert "/agg/Conv: tensor kernel3d [4,3,1,3,3] has rank 5 > 4" in reasons
    assert "graph input x: tensor x [1,3,2,8,8] has rank 5 > 4" in reasons


def test_npu4d_catches_einsum_and_scatternd():
    model = _model(
        [helper.make_node("Einsum", ["a", "b"], ["c"], name="corr", equation="bchw,bchw->bhw"),
         helper.make_node("ScatterND", ["c", "idx", "upd"], ["y"], name="scatter")],
        [_tensor("a", [1, 4, 8, 8]), _tensor("b", [1, 4, 8, 8]), _tensor("idx", [1, 1, 3], TensorProto.INT64),
         _tensor("upd", [1, 1], TensorProto.FLOAT)],
        [_tensor("y", [1, 8, 8])])
    report = check_onnx(model, "npu4d")
    assert {v.node: v.reason.split()[0] for v in report.violations} == {"corr": "Einsum", "scatter": "ScatterND"}
    assert not report.ok
    assert "2 violation(s) of npu4d" in report.format() and "corr: Einsum" in report.format()


def test_npu4d_and_tensorrt_catch_a_dynamic_dimension():
    model = _relu_model(("batch", 3, 8, 8))
    for profile in ("npu4d", "tensorrt"):
        reasons = [str(v) for v in check_onnx(model, profile).violations]
        assert any("graph input x" in r and "dynamic dimension(s) batch" in r for r in reasons), reasons
    assert check_onnx(model, "generic").ok


def test_q_dq_is_fine_on_npu4d():
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    zero = numpy_helper.from_array(np.array(0, np.int8), "zero")
    model = _model(
        [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"], name="q"),
         helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"], name="dq")],
        [_tensor("x", [1, 3, 8, 8])], [_tensor("y", [1, 3, 8, 8])], [scale, zero])
    assert check_onnx(model, "npu4d").ok


def test_unknown_rank_is_reported():
    # the output of a custom-domain op has no shape inference, so its rank stays unknown
    model = _model([helper.make_node("Mystery", ["x"], ["y"], name="custom", domain="example.ops")],
                   [_tensor("x", [1, 3, 8, 8])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                   extra_opsets=[("example.ops", 1)])
    report = check_onnx(model, "npu4d")
    assert report.unknown_rank == ["y"]
    reasons = {str(v) for v in report.violations}
    assert "custom: example.ops::Mystery is not a standard ONNX operator" in reasons
    assert "custom: tensor y: rank unknown after shape inference (shape not static)" in reasons
    assert "rank unknown 1: y" in report.format()


def test_tensorrt_rejects_ops_off_its_list_and_new_opsets():
    assert "Unique" not in TENSORRT_OPS and {"Conv", "GridSample", "QuantizeLinear"} <= TENSORRT_OPS
    model = _model([helper.make_node("Unique", ["x"], ["y"], name="uniq")],
                   [_tensor("x", [16])], [_tensor("y", [16])])
    report = check_onnx(model, "tensorrt")
    assert [str(v) for v in report.violations] == ["uniq: Unique is not on TensorRT's ONNX operator list"]
    newer = _relu_model()
    newer.opset_import[0].version = 21
    assert any("opset 21" in v.reason for v in check_onnx(newer, "tensorrt").violations)


def test_generic_fails_what_onnxruntime_cannot_run():
    model = _model([helper.make_node("Mystery", ["x"], ["y"], name="custom", domain="example.ops")],
                   [_tensor("x", [4])], [_tensor("y", [4])], extra_opsets=[("example.ops", 1)])
    report = check_onnx(model, "generic")
    assert any("ONNX Runtime cannot run it" in v.reason for v in report.violations), report.format()


def test_file_and_proto_give_the_same_report(tmp_path):
    path = tmp_path / "relu.onnx"
    onnx.save(_relu_model(), str(path))
    from_file = check_onnx(path, "npu4d")
    assert from_file.source == str(path) and from_file.op_histogram == check_onnx(_relu_model()).op_histogram


def test_subgraph_ops_are_counted_and_checked():
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["a"], name="inner_relu")], "then", [], [
        _tensor("a", [1, 3, 8, 8])])
    other = helper.make_graph([helper.make_node("GridSample", ["x", "g"], ["b"], name="inner_warp")], "else", [], [
        _tensor("b", [1, 3, 8, 8])])
    model = _model([helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then, else_branch=other)],
                   [_tensor("cond", [], TensorProto.BOOL), _tensor("x", [1, 3, 8, 8]), _tensor("g", [1, 8, 8, 2])],
                   [_tensor("y", [1, 3, 8, 8])])
    report = check_onnx(model, "npu4d")
    assert report.op_histogram == {"If": 1, "Relu": 1, "GridSample": 1}
    assert {v.node for v in report.violations} >= {"branch", "inner_warp"}


@pytest.mark.parametrize("content", [b"this is not a model\n", b"\x08\x07\xff\xff\xff\xff", b""])
def test_not_onnx_file_is_a_user_error_naming_the_file(tmp_path, content):
    path = tmp_path / "fake.onnx"
    path.write_bytes(content)
    with pytest.raises(EdgeStereoError, match=r"fake\.onnx: not an ONNX file"):
        check_onnx(path, "npu4d")


def test_missing_file_and_unknown_profile(tmp_path):
    with pytest.raises(EdgeStereoError, match=r"missing\.onnx: file not found"):
        check_onnx(tmp_path / "missing.onnx")
    with pytest.raises(EdgeStereoError, match="unknown profile 'npu'"):
        check_onnx(_relu_model(), "npu")
