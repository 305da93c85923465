import numpy as np
import pytest

from edgestereo.data.io import read_ply, write_ply
from edgestereo.errors import EdgeStereoError
from edgestereo.geometry import StereoCalibration, depth_to_disparity, disparity_to_depth, disparity_to_points


def test_depth_of_known_geometry():
    # focal 500 px, baseline 0.1 m: a point at 2 m has disparity 25 px; with doffs 5 the stored disparity is 20.
    assert disparity_to_depth(np.array([25.0]), 500, 0.1)[0] == pytest.approx(2.0)
    assert disparity_to_depth(np.array([20.0]), 500, 0.1, doffs=5.0)[0] == pytest.approx(2.0)


def test_invalid_depth_is_nan():
    depth = disparity_to_depth(np.array([0.0, -1.0, np.nan, np.inf, 2.0]), 100, 1.0, doffs=0.5)
    assert np.isnan(depth[[1, 2, 3]]).all()
    assert depth[0] == pytest.approx(200.0) and depth[4] == pytest.approx(40.0)
    assert np.isnan(disparity_to_depth(np.array([1.0]), 100, 1.0, doffs=-1.0)).all()  # denominator 0


def test_depth_disparity_round_trip():
    disparity = np.random.default_rng(0).uniform(1, 200, size=(8, 9)).astype(np.float32)
    depth = disparity_to_depth(disparity, 721.5, 0.54, doffs=3.0)
    np.testing.assert_allclose(depth_to_disparity(depth, 721.5, 0.54, doffs=3.0), disparity, rtol=1e-5)
    assert np.isnan(depth_to_disparity(np.array([0.0, -2.0, np.nan]), 1, 1)).all()


def test_point_cloud_back_projects_a_plane_and_keeps_colours(tmp_path):
    calib = StereoCalibration(fx=100, fy=100, cx=4.5, cy=3.5, baseline=0.2)
    disparity = np.full((8, 10), 10.0, np.float32)  # z = 100·0.2/10 = 2
    disparity[0, 0] = np.nan
    image = np.random.default_rng(0).integers(0, 256, size=(8, 10, 3), dtype=np.uint8)
    points, colors = disparity_to_points(disparity, calib, image)
    assert points.shape == (79, 3) and colors.shape == (79, 3)
    np.testing.assert_allclose(points[:, 2], 2.0)
    # pixel (v=0, u=1) is the first kept point: x = (1 - 4.5)·2/100, y = (0 - 3.5)·2/100
    np.testing.assert_allclose(points[0], [-0.07, -0.07, 2.0], atol=1e-6)
    np.testing.assert_array_equal(colors[0], image[0, 1])
    write_ply(tmp_path / "c.ply", points, colors)
    back, back_colors = read_ply(tmp_path / "c.ply")
    np.testing.assert_array_equal(back, points)
    np.testing.assert_array_equal(back_colors, colors)


def test_point_cloud_max_depth_and_stride():
    calib = StereoCalibration.from_focal(100, 1.0, width=10, height=8)
    disparity = np.tile(np.linspace(5, 50, 10, dtype=np.float32), (8, 1))  # depth 20 … 2
    points, colors = disparity_to_points(disparity, calib, max_depth=10.0, stride=2)
    assert colors is None
    assert (points[:, 2] <= 10.0).all() and len(points) == 4 * sum(100 / d <= 10 for d in disparity[0, ::2])
    with pytest.raises(EdgeStereoError, match="stride"):
        disparity_to_points(disparity, calib, stride=0)


def test_calibration_scaling_and_validation():
    calib = StereoCalibration(1000, 1000, 499.5, 299.5, 0.1, doffs=10)
    half = calib.scaled(0.5)
    assert (half.fx, half.cx, half.cy, half.doffs) == (500, 249.5, 149.5, 5)
    with pytest.raises(EdgeStereoError, match="baseline"):
        StereoCalibration(1, 1, 0, 0, baseline=0)
