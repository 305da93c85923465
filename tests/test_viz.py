import numpy as np

from edgestereo.viz import colorize_depth, colorize_disparity, make_panel, value_range


def test_invalid_pixels_are_black_and_near_is_warm():
    disparity = np.array([[1.0, 50.0, np.nan, 0.0]], dtype=np.float32)
    rgb = colorize_disparity(disparity, 1.0, 50.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 4, 3)
    assert (rgb[0, 2] == 0).all() and (rgb[0, 3] == 0).all()
    assert rgb[0, 1, 0] > rgb[0, 1, 2]  # large disparity (near): red over blue
    assert rgb[0, 0, 2] > rgb[0, 0, 0]  # small disparity (far): blue over red
    depth = colorize_depth(np.array([[1.0, 100.0, np.nan]]), 1.0, 100.0)
    assert depth[0, 0, 0] > depth[0, 0, 2] and depth[0, 1, 2] > depth[0, 1, 0] and (depth[0, 2] == 0).all()


def test_fixed_range_is_stable_across_frames():
    a = colorize_disparity(np.full((2, 2), 10.0), 0, 20)
    b = colorize_disparity(np.array([[10.0, 30.0], [10.0, 10.0]]), 0, 20)
    np.testing.assert_array_equal(a[0, 0], b[0, 0])


def test_value_range_ignores_non_finite():
    assert value_range(np.array([np.nan, np.inf])) == (0.0, 1.0)
    low, high = value_range(np.arange(101.0), 0, 100)
    assert (low, high) == (0.0, 100.0)


def test_panel_layout_with_and_without_depth():
    h, w = 40, 60
    image = np.zeros((h, w, 3), np.uint8)
    disparity = np.random.default_rng(0).uniform(1, 20, (h, w)).astype(np.float32)
    with_depth = make_panel(image, image, disparity, 100.0 / disparity, title="sgbm")
    without = make_panel(image, image, disparity)
    assert with_depth.dtype == np.uint8 and with_depth.shape[0] > h
    assert with_depth.shape[1] > 4 * w and without.shape[1] > 3 * w
    assert with_depth.shape[1] > without.shape[1]
