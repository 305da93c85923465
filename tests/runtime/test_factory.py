"""The one predictor factory, the frame writer and the batch loop, called as a library (typed
arguments, no argparse)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import edgestereo
from edgestereo.calibration import FocalBaseline
from edgestereo.data.io import read_pfm, write_image
from edgestereo.errors import EdgeStereoError, WeightsRequiredError
from edgestereo.geometry import StereoCalibration, disparity_to_depth
from edgestereo.models import create_model, save_pretrained
from edgestereo.runtime.batch_runner import BatchOptions, list_pairs, run_batch
from edgestereo.runtime.factory import create_predictor, load_network
from edgestereo.runtime.frame_writer import FRAME_FILES, PAIR_FILES, FrameWriter, depth_map
from stereo_fixtures import shifted_pair


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_name_gets_the_packaged_weights_and_a_bare_network_must_be_asked_for():
    assert create_predictor().name == edgestereo.DEFAULT_MODEL
    with pytest.raises(WeightsRequiredError, match="--pretrained"):
        create_predictor("stereonet")
    assert create_predictor("stereonet", random_weights=True).name == "stereonet"
    with pytest.raises(WeightsRequiredError):
        edgestereo.predict(*shifted_pair(16, 32), model="gwcnet-g")


def test_a_weights_file_names_its_model(tmp_path):
    torch.manual_seed(0)
    model = create_model("stereonet-plus", stem_channels=8)
    weights = save_pretrained(model, tmp_path / "snp.safetensors")
    for network in (load_network(weights), load_network(pretrained=weights), load_network(str(weights))):
        assert network.model_name == "stereonet-plus" and network.config == model.config
        torch.testing.assert_close(network.state_dict(), model.state_dict())


def test_threads_reach_pytorch_and_onnx_runtime(tmp_path, restore_threads):
    from edgestereo.export.exporter import export_onnx

    create_predictor("sgbm", threads=1)
    assert torch.get_num_threads() == 1
    create_predictor("sgbm", threads=2)
    assert torch.get_num_threads() == 2
    create_predictor("sgbm")  # no threads: the process's setting stays
    assert torch.get_num_threads() == 2
    onnx_file = export_onnx(create_model("stereonet-plus-small", max_disp=32), tmp_path / "m.onnx", 32, 64)
    predictor = create_predictor(onnx_file, threads=1)
    assert predictor.session.get_session_options().intra_op_num_threads == 1
    assert (predictor.runtime, predictor.precision) == ("onnxruntime", "fp32")
    with pytest.raises(EdgeStereoError, match="runs as it was exported; it cannot take pretrained weights"):
        create_predictor(onnx_file, pretrained="w.safetensors")
    with pytest.raises(EdgeStereoError, match="model must be"):
        create_predictor(3)


def test_depth_is_computed_in_one_place():
    calibration = StereoCalibration.from_focal(400.0, 0.1, 64, 32, doffs=2.0)
    disparity = np.full((32, 64), 8.0, np.float32)
    np.testing.assert_array_equal(depth_map(disparity, calibration), disparity_to_depth(disparity, 400.0, 0.1, 2.0))
    assert depth_map(disparity, None) is None
    result = edgestereo.predict(*shifted_pair(32, 64, disparity=8), model="sgbm", calib=calibration)
    np.testing.assert_array_equal(result.depth, depth_map(result.disparity, calibration))


def test_the_writer_names_files_by_its_layout_and_skips_depth_without_a_calibration(tmp_path):
    left, right = shifted_pair(32, 64)
    disparity = np.full((32, 64), 4.0, np.float32)
    writer = FrameWriter(["disparity", "panel", "depth", "ply"], FRAME_FILES, title="t")
    writer.set_ranges((0.0, 8.0))
    written = writer.write(tmp_path / "f", left, right, disparity)
    assert sorted(p.name for p in written.files.values()) == ["f.png", "f_disp.pfm"]
    assert written.pictures["panel"].shape[2] == 3
    writer = FrameWriter(["disparity", "depth"], PAIR_FILES, calibration=StereoCalibration.from_focal(400, 1, 64, 32))
    writer.set_ranges((0.0, 8.0))
    files = writer.write(tmp_path / "pair", left, right, disparity).files
    assert files["depth"] == tmp_path / "pair" / "depth.pfm"
    assert np.nanmedian(read_pfm(files["depth"])) == pytest.approx(100.0)
    with pytest.raises(EdgeStereoError, match="unknown output"):
        FrameWriter(["mesh"])


def test_a_batch_runs_from_the_library_with_typed_options(tmp_path):
    for index in range(2):
        left, right = shifted_pair(32, 64, disparity=4, seed=index)
        for side, image in (("left", left), ("right", right)):
            write_image(tmp_path / "in" / side / f"{index}.png", image)
    options = BatchOptions(out=tmp_path / "out", save=("disparity", "depth"), calibration=FocalBaseline(400.0, 0.1))
    jobs = list_pairs(folder=tmp_path / "in")
    summary = run_batch(jobs, create_predictor("sgbm", config={"max_disp": 16}), options, progress=False)
    assert (summary.done, summary.failed, summary.exit_code) == (2, [], 0)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.pfm")) == ["0_depth.pfm", "0_disp.pfm", "1_depth.pfm",
                                                                       "1_disp.pfm"]
    again = run_batch(jobs, create_predictor("sgbm", config={"max_disp": 16}), options, progress=False)
    assert (again.done, again.skipped) == (0, 2)
    with pytest.raises(EdgeStereoError, match="--save depth needs a calibration"):
        BatchOptions(out=tmp_path / "x", save=("depth",)).check()
