"""RerunLogger from a loop of one's own: what it logs (read back with the SDK), the colour range it
keeps, the file only after success, viewer addresses, and that nothing loads the SDK before it is used."""

import socket
import subprocess
import sys

import numpy as np
import pytest

import edgestereo
from edgestereo.errors import EdgeStereoError
from edgestereo.geometry import StereoCalibration, disparity_to_points
from edgestereo.runtime.frame_writer import stable_ranges
from edgestereo.runtime.rerun_logger import RerunLogger, runtime_label, viewer_url
from edgestereo.viz import colorize_disparity
from recording_fixtures import CALIBRATED_ENTITIES, FRAME_ENTITIES, frames, needs_rerun, points, read_recording, rgb
from stereo_fixtures import shifted_pair


@needs_rerun
def test_a_loop_of_predictions_logged_by_hand(tmp_path):
    calibration = StereoCalibration.from_focal(400.0, 0.1, 128, 48)
    path = tmp_path / "loop.rrd"
    disparities = []
    with edgestereo.RerunLogger(path, max_depth=6.0, cloud_stride=2, wall_clock=True) as recording:
        recording.log_model("sgbm", "torch fp32 cpu")
        for index, disparity_px in enumerate((8, 4)):
            left, right = shifted_pair(48, 128, disparity=disparity_px, seed=index)
            result = edgestereo.predict(left, right, model="sgbm", calib=calibration)
            recording.log_frame(index, left, right, result.disparity, calibration=calibration,
                                latency_ms=result.timings["inference_ms"], depth=result.depth)
            disparities.append((left, result.disparity))
        assert recording.frames == 2
    logged = read_recording(path)
    assert set(logged) == FRAME_ENTITIES | CALIBRATED_ENTITIES | {"/world", "/model"}
    assert frames(logged["/world/points"]) == [0, 1] and all("time" in row for row in logged["/left"])
    first_range = stable_ranges(disparities[0][1], None)[0]
    for row_points, row_disparity, (left, disparity) in zip(logged["/world/points"], logged["/disparity"],
                                                           disparities):
        expected, _ = disparity_to_points(disparity, calibration, left, max_depth=6.0, stride=2)
        np.testing.assert_allclose(points(row_points), expected)  # no unit: the baseline's
        # the first frame's colour range is kept, so the nearer plane of frame 1 is not recoloured
        np.testing.assert_array_equal(rgb(row_disparity), colorize_disparity(disparity, *first_range))
    # at 4 px the plane is 10 m away: beyond max_depth, nothing is left
    assert len(points(logged["/world/points"][0])) > 1000 and len(points(logged["/world/points"][1])) == 0


@needs_rerun
def test_an_error_in_the_loop_leaves_no_file(tmp_path):
    left, right = shifted_pair(16, 32)
    with pytest.raises(ValueError, match="stop"), RerunLogger(tmp_path / "broken.rrd") as recording:
        recording.log_frame(0, left, right, np.full((16, 32), 3.0, np.float32))
        raise ValueError("stop")
    assert list(tmp_path.iterdir()) == []


def test_viewer_addresses():
    assert viewer_url("9877") == "rerun+http://127.0.0.1:9877/proxy"
    assert viewer_url("robot.local:9000") == "rerun+http://robot.local:9000/proxy"
    assert viewer_url("rerun+https://host/proxy") == "rerun+https://host/proxy"
    with pytest.raises(EdgeStereoError, match="expected HOST:PORT"):
        viewer_url("robot.local")


@needs_rerun
def test_a_viewer_address_that_is_no_viewer_is_refused():
    with socket.socket() as server:  # something listens, but the URL is not a viewer's
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(EdgeStereoError, match="expected HOST:PORT"):
            RerunLogger(connect=f"rerun+http://127.0.0.1:{port}/elsewhere")
        with pytest.raises(EdgeStereoError, match="expected HOST:PORT"):
            RerunLogger(connect=f"http://127.0.0.1:{port}/proxy")


def test_a_logger_needs_somewhere_to_log():
    with pytest.raises(EdgeStereoError, match="needs a file to write or a viewer"):
        RerunLogger()


def test_runtime_label():
    class Predictor:
        runtime, precision, device = "onnxruntime", "fp16", ""

    assert runtime_label(Predictor()) == "onnxruntime fp16"
    assert runtime_label(lambda left, right: left) == ""


def test_the_commands_do_not_load_the_sdk_until_asked():
    code = "import sys, edgestereo, edgestereo.apps.cli; edgestereo.RerunLogger; print(int('rerun' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "0"
