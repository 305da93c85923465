import numpy as np
import pytest
import torch

import edgestereo
from edgestereo.errors import EdgeStereoError
from edgestereo.geometry import StereoCalibration
from stereo_fixtures import shifted_pair


def test_predict_from_arrays_with_calibration():
    left, right = shifted_pair(48, 128, disparity=8)
    calib = StereoCalibration.from_focal(400.0, 0.1, 128, 48)
    result = edgestereo.predict(left, right, model="sgbm", calib=calib)
    assert result.disparity.shape == (48, 128) and result.valid.dtype == bool
    assert np.median(result.disparity[:, 40:]) == pytest.approx(8.0, abs=0.2)
    assert np.nanmedian(result.depth[:, 40:]) == pytest.approx(400 * 0.1 / 8, rel=0.03)
    assert result.timings["inference_ms"] > 0 and result.meta["model"] == "sgbm"


def test_predict_accepts_paths_tensors_and_grey(tmp_path):
    from edgestereo.data.io import write_image

    left, right = shifted_pair(32, 96, disparity=4)
    write_image(tmp_path / "l.png", left)
    grey_right = right.mean(axis=2).astype(np.uint8)
    write_image(tmp_path / "r.png", grey_right)
    from_paths = edgestereo.predict(tmp_path / "l.png", str(tmp_path / "r.png"))
    tensor_left = torch.from_numpy(left).permute(2, 0, 1).float()
    from_tensors = edgestereo.predict(tensor_left, np.repeat(grey_right[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(from_paths.disparity, from_tensors.disparity)
    assert from_paths.depth is None


def test_predict_with_a_custom_predictor():
    left, right = shifted_pair(16, 32)
    result = edgestereo.predict(left, right, model=lambda lt, rt: np.full(lt.shape[:2], 3.0, np.float32))
    assert (result.disparity == 3).all()


def test_predict_errors():
    left, right = shifted_pair(16, 32)
    with pytest.raises(EdgeStereoError, match="differ in size"):
        edgestereo.predict(left, right[:, :20])
    with pytest.raises(EdgeStereoError, match="uint8"):
        edgestereo.predict(left.astype(np.float32), right)
    with pytest.raises(EdgeStereoError, match="model must be"):
        edgestereo.predict(left, right, model=3)


def test_predict_runs_an_onnx_file(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("ReduceMean", ["left"], ["disparity"], axes=[1], keepdims=1),
             helper.make_node("Identity", ["right"], ["unused"])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 16, 32]) for n in ("left", "right")]
    outputs = [helper.make_tensor_value_info("disparity", TensorProto.FLOAT, [1, 1, 16, 32])]
    graph = helper.make_model(helper.make_graph(nodes, "mean", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.save(graph, str(tmp_path / "mean.onnx"))
    left, right = shifted_pair(16, 32)
    result = edgestereo.predict(left, right, model=str(tmp_path / "mean.onnx"))
    np.testing.assert_allclose(result.disparity, left.astype(np.float32).mean(2), rtol=1e-5)
