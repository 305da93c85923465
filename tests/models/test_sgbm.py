import numpy as np
import pytest

from edgestereo.errors import EdgeStereoError
from edgestereo.models import create_model
from edgestereo.models.sgbm import fill_invalid_background
from stereo_fixtures import shifted_pair


def test_sgbm_recovers_a_constant_shift():
    left, right = shifted_pair(64, 160, disparity=7, seed=3)
    disparity = create_model("sgbm", max_disp=32).match(left, right)
    inner = disparity[8:-8, 40:-8]
    assert np.median(inner) == pytest.approx(7.0, abs=0.1)
    assert np.mean(np.abs(inner - 7.0) < 1.0) > 0.95


def test_max_disp_rounds_up_to_a_multiple_of_16_and_validates():
    assert create_model("sgbm", max_disp=70).num_disparities == 80
    with pytest.raises(EdgeStereoError, match="block_size"):
        create_model("sgbm", block_size=4)
    with pytest.raises(EdgeStereoError, match="max_disp"):
        create_model("sgbm", max_disp=0)


def test_without_fill_invalid_pixels_are_nan():
    left, right = shifted_pair(32, 96, disparity=5)
    right[:, 40:60] = 0  # textureless band: SGBM cannot match it
    disparity = create_model("sgbm", max_disp=16, fill_invalid=False).match(left, right)
    assert np.isnan(disparity).any()
    assert np.isfinite(create_model("sgbm", max_disp=16).match(left, right)).all()


def test_background_fill_takes_the_smaller_neighbour_and_extrapolates_at_ends():
    row = np.array([[np.nan, 5.0, np.nan, np.nan, 9.0, 0.0, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(fill_invalid_background(row), [[5, 5, 5, 5, 9, 9, 9]])
    assert (fill_invalid_background(np.full((1, 3), np.nan)) == 0).all()
