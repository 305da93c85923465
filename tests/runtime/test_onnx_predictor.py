"""OnnxPredictor on small graphs built with onnx.helper: padding and cropping, size limits, bad files."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgestereo.errors import EdgeStereoError
from edgestereo.runtime.onnx_predictor import OnnxPredictor, ort_error_message, providers_for_device


def _channel_mean_model(path, height, width, dtype=TensorProto.FLOAT, metadata=None):
    """disparity = mean_c(left) + 2·mean_c(right): every output pixel depends on its own input pixel,
    so any misplaced padding or crop shows."""
    nodes = [
        helper.make_node("ReduceMean", ["left"], ["left_mean"], axes=[1], keepdims=1),
        helper.make_node("ReduceMean", ["right"], ["right_mean"], axes=[1], keepdims=1),
        helper.make_node("Add", ["right_mean", "right_mean"], ["right_twice"]),
        helper.make_node("Add", ["left_mean", "right_twice"], ["sum"]),
        helper.make_node("Cast", ["sum"], ["disparity"], to=TensorProto.FLOAT),
    ]
    inputs = [helper.make_tensor_value_info(name, dtype, [1, 3, height, width]) for name in ("left", "right")]
    output = helper.make_tensor_value_info("disparity", TensorProto.FLOAT, [1, 1, height, width])
    model = helper.make_model(helper.make_graph(nodes, "mean", inputs, [output]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def _images(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2))


def _expected(left, right):
    return left.astype(np.float32).mean(2) + 2 * right.astype(np.float32).mean(2)


def test_same_size_runs_and_reads_the_graph(tmp_path):
    predictor = OnnxPredictor(_channel_mean_model(tmp_path / "m.onnx", 16, 24), threads=1)
    assert predictor.input_size == (16, 24) and predictor.name == "m (onnx)"
    left, right = _images(16, 24)
    out = predictor(left, right)
    assert out.shape == (16, 24) and out.dtype == np.float32
    np.testing.assert_allclose(out, _expected(left, right), atol=1e-4)


@pytest.mark.parametrize(("height", "width"), [(29, 48), (32, 33), (17, 21)])
def test_smaller_image_is_padded_and_cropped_back(tmp_path, height, width):
    predictor = OnnxPredictor(_channel_mean_model(tmp_path / "m.onnx", 32, 48))
    left, right = _images(height, width)
    out = predictor(left, right)
    assert out.shape == (height, width)
    np.testing.assert_allclose(out, _expected(left, right), atol=1e-4)


def test_padding_replicates_edges_like_input_padder(tmp_path):
    predictor = OnnxPredictor(_channel_mean_model(tmp_path / "m.onnx", 20, 20))
    left, right = _images(18, 17)
    padded = predictor.run_tensors(*(np.pad(im, ((1, 1), (1, 2), (0, 0)), mode="edge").transpose(2, 0, 1)[None]
                                     .astype(np.float32) for im in (left, right)))
    cropped = predictor(left, right)
    np.testing.assert_allclose(padded[1:19, 1:18], cropped, atol=1e-5)
    np.testing.assert_allclose(cropped, _expected(left, right), atol=1e-4)  # and the graph really ran


def test_larger_image_is_refused(tmp_path):
    predictor = OnnxPredictor(_channel_mean_model(tmp_path / "m.onnx", 16, 24))
    with pytest.raises(EdgeStereoError, match=r"image 25x16 is larger than the 24x16 input of .*m\.onnx"):
        predictor(*_images(16, 25))
    with pytest.raises(EdgeStereoError, match=r"expected two \(H,W,3\) images"):
        predictor(np.zeros((16, 24, 3), np.uint8), np.zeros((16, 20, 3), np.uint8))


def test_float16_inputs_and_metadata_name(tmp_path):
    path = _channel_mean_model(tmp_path / "h.onnx", 16, 16, TensorProto.FLOAT16, {"model": "tiny"})
    predictor = OnnxPredictor(path)
    assert predictor.name == "tiny (onnx)"
    left, right = _images(16, 16)
    np.testing.assert_allclose(predictor(left, right), _expected(left, right), rtol=2e-3, atol=0.5)


def test_dynamic_size_graph_pads_to_its_divisor(tmp_path):
    path = _channel_mean_model(tmp_path / "d.onnx", "height", "width", metadata={"divisor": "4"})
    predictor = OnnxPredictor(path)
    assert predictor.input_size == (None, None) and predictor.divisor == 4
    left, right = _images(18, 21)
    np.testing.assert_allclose(predictor(left, right), _expected(left, right), atol=1e-4)


@pytest.mark.parametrize("content", [b"not onnx at all", b""])
def test_not_onnx_file_names_the_file(tmp_path, content):
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(EdgeStereoError, match=r"broken\.onnx: ONNX Runtime cannot load it"):
        OnnxPredictor(path)


def test_missing_file_bad_threads_and_providers(tmp_path):
    with pytest.raises(EdgeStereoError, match=r"nothing\.onnx: ONNX file not found"):
        OnnxPredictor(tmp_path / "nothing.onnx")
    path = _channel_mean_model(tmp_path / "m.onnx", 8, 8)
    with pytest.raises(EdgeStereoError, match="threads must be ≥ 1"):
        OnnxPredictor(path, threads=0)
    with pytest.raises(EdgeStereoError, match="NoSuchExecutionProvider not available"):
        OnnxPredictor(path, providers=["NoSuchExecutionProvider"])


def test_graph_with_wrong_inputs_is_refused(tmp_path):
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10),
              str(tmp_path / "one.onnx"))
    with pytest.raises(EdgeStereoError, match=r"one\.onnx: not a stereo graph edgestereo can run .*: inputs are "
                                              r"x \(1,3,8,8\), expected left and right"):
        OnnxPredictor(tmp_path / "one.onnx")


def test_device_to_providers():
    import onnxruntime as ort

    assert providers_for_device("cpu") == ["CPUExecutionProvider"]
    assert providers_for_device("auto")[-1] == "CPUExecutionProvider"
    with pytest.raises(EdgeStereoError, match="unknown device 'tpu'"):
        providers_for_device("tpu")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(EdgeStereoError, match="no CUDA provider"):
            providers_for_device("cuda:0")
    else:
        assert providers_for_device("cuda:0")[0] == "CUDAExecutionProvider"


def test_ort_error_message_keeps_the_reason():
    raw = ("[ONNXRuntimeError] : 1 : FAIL : /onnxruntime_src/core/graph/model.cc:256 onnxruntime::Model::Model("
           "onnx::ModelProto&&, const onnxruntime::PathString&) Unsupported model IR version: 14\nmore")
    assert ort_error_message(RuntimeError(raw)) == "Unsupported model IR version: 14"
    assert ort_error_message(RuntimeError("plain")) == "plain"
