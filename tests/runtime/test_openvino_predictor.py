"""OpenVINO as a runtime for exported files: the same padding, I/O contract and outputs as ONNX Runtime,
fp32 parity on a real network, bf16 only where the CPU has it, and a one-line error without the extra."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgestereo.errors import EdgeStereoError, ReadError
from edgestereo.runtime.factory import create_predictor

ov = pytest.importorskip("openvino")

from edgestereo.runtime.openvino_predictor import OpenVinoPredictor, native_bf16  # noqa: E402


def _channel_mean_model(path, height, width, out_channels=1):
    """disparity = mean_c(left) + 2·mean_c(right) (repeated to ``out_channels``): each output pixel
    depends on its own input pixel, so a misplaced pad or crop shows."""
    nodes = [
        helper.make_node("ReduceMean", ["left"], ["left_mean"], axes=[1], keepdims=1),
        helper.make_node("ReduceMean", ["right"], ["right_mean"], axes=[1], keepdims=1),
        helper.make_node("Add", ["right_mean", "right_mean"], ["right_twice"]),
        helper.make_node("Add", ["left_mean", "right_twice"], ["sum"] if out_channels > 1 else ["disparity"]),
    ]
    if out_channels > 1:
        nodes.append(helper.make_node("Concat", ["sum"] * out_channels, ["disparity"], axis=1))
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 3, height, width])
              for name in ("left", "right")]
    output = helper.make_tensor_value_info("disparity", TensorProto.FLOAT, [1, out_channels, height, width])
    model = helper.make_model(helper.make_graph(nodes, "mean", inputs, [output]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.save(model, str(path))
    return path


def _images(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2))


def test_pads_to_the_graph_size_and_crops_back(tmp_path):
    path = _channel_mean_model(tmp_path / "mean.onnx", 32, 64)
    predictor = create_predictor(onnx=path, runtime="openvino", threads=1)
    assert isinstance(predictor, OpenVinoPredictor) and predictor.runtime == "openvino"
    left, right = _images(27, 50)
    expected = left.astype(np.float32).mean(2) + 2 * right.astype(np.float32).mean(2)
    disparity = predictor(left, right)
    assert disparity.shape == (27, 50)
    np.testing.assert_allclose(disparity, expected, rtol=0, atol=1e-3)
    with pytest.raises(EdgeStereoError, match="larger than the 64x32 input"):
        predictor(*_images(40, 50))


def test_a_graph_that_breaks_the_stereo_contract_is_refused_at_load(tmp_path):
    path = _channel_mean_model(tmp_path / "three.onnx", 32, 64, out_channels=3)
    with pytest.raises(ReadError, match=r"output disparity \(1,3,32,64\) is not \(1,1,H,W\)"):
        OpenVinoPredictor(path)


@pytest.fixture(scope="module")
def default_model_onnx(tmp_path_factory):
    from edgestereo.export import export_onnx
    from edgestereo.runtime.factory import load_network

    path = tmp_path_factory.mktemp("ov") / "default.onnx"
    return export_onnx(load_network(), path, 64, 128)


def test_fp32_matches_onnx_runtime_on_the_default_network(default_model_onnx):
    from stereo_fixtures import shifted_pair

    left, right = shifted_pair(64, 128, disparity=9, seed=3)
    reference = create_predictor(onnx=default_model_onnx, threads=1)(left, right)
    openvino = create_predictor(onnx=default_model_onnx, runtime="openvino", precision="fp32", threads=1)(left, right)
    assert reference.std() > 0.5 and len(np.unique(np.round(reference, 2))) > 100  # a map that reacts to the input
    difference = np.abs(openvino - reference)
    assert difference.mean() < 1e-3 and difference.max() < 1e-2


def test_bf16_only_where_the_cpu_runs_it(default_model_onnx):
    if native_bf16():
        predictor = OpenVinoPredictor(default_model_onnx, threads=1, precision="bf16")
        assert predictor.inference_precision == "bf16"
        assert predictor(*_images(64, 128)).shape == (64, 128)
    else:
        with pytest.raises(EdgeStereoError, match="needs a CPU with native bfloat16"):
            OpenVinoPredictor(default_model_onnx, precision="bf16")
    assert OpenVinoPredictor(default_model_onnx, precision="fp32").inference_precision == "fp32"
    with pytest.raises(EdgeStereoError, match="OpenVINO precision must be one of fp32, bf16, auto"):
        OpenVinoPredictor(default_model_onnx, precision="fp16")


def test_runtime_options_are_checked(default_model_onnx):
    with pytest.raises(EdgeStereoError, match="runtime openvino runs an exported file"):
        create_predictor("sgbm", runtime="openvino")
    with pytest.raises(EdgeStereoError, match="unknown runtime 'tensorrt'"):
        create_predictor(onnx=default_model_onnx, runtime="tensorrt")
    with pytest.raises(EdgeStereoError, match="OpenVINO runs on the CPU"):
        create_predictor(onnx=default_model_onnx, runtime="openvino", device="cuda")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgestereo.apps.cli", *map(str, args)], capture_output=True,
                          text=True)


def test_infer_with_openvino_matches_onnx_runtime(default_model_onnx, tmp_path):
    import cv2

    from edgestereo.data.io import read_disparity
    from stereo_fixtures import shifted_pair

    left, right = shifted_pair(64, 128, disparity=9, seed=4)
    cv2.imwrite(str(tmp_path / "l.png"), left[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "r.png"), right[:, :, ::-1])
    for runtime in ("onnxruntime", "openvino"):
        done = _cli("infer", tmp_path / "l.png", tmp_path / "r.png", "--onnx", default_model_onnx, "--runtime", runtime,
                    "--out", tmp_path / runtime)
        assert done.returncode == 0, done.stderr
    difference = np.abs(read_disparity(tmp_path / "openvino/disparity.pfm")
                        - read_disparity(tmp_path / "onnxruntime/disparity.pfm"))
    assert difference.mean() < 1e-3
    refused = _cli("infer", tmp_path / "l.png", tmp_path / "r.png", "--runtime", "openvino", "--out", tmp_path / "x")
    assert refused.returncode == 2 and "give --onnx FILE" in refused.stderr and "Traceback" not in refused.stderr


def test_bench_times_openvino(default_model_onnx):
    done = _cli("bench", "--onnx", default_model_onnx, "--runtime", "openvino", "--iters", 2, "--warmup", 1,
                "--threads", 1, "--streams", 2)
    assert done.returncode == 0, done.stderr
    assert "openvino" in done.stdout and "fp32 inference" in done.stdout


def test_without_openvino_the_option_says_how_to_install_it(default_model_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(EdgeStereoError, match=r"pip install 'edgestereo\[openvino\]'"):
        create_predictor(onnx=default_model_onnx, runtime="openvino")
