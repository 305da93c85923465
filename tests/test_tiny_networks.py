"""The tiny test networks must match: export, fp16 and int8 tests bound errors relative to their output,
which only means something if that output follows the input."""

import numpy as np
import pytest
import torch

from tiny_matching import assert_close_relative, matching_error, step_pair
from tiny_qat_stereo import tiny_qat_factory
from tiny_stereo import tiny_factory


def _predict(model, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    def tensor(image):
        return torch.from_numpy(image).permute(2, 0, 1)[None].float()

    with torch.no_grad():
        return model.eval()(tensor(left), tensor(right))[0, 0].numpy()


@pytest.mark.parametrize("factory", [tiny_factory, tiny_qat_factory])
@pytest.mark.parametrize(("height", "width", "max_epe", "max_bad1"), [(32, 64, 0.5, 0.12), (64, 128, 0.25, 0.05)])
def test_tiny_networks_recover_a_step_pair_within_a_pixel(factory, height, width, max_epe, max_bad1):
    left, right, _ = step_pair(height, width)
    for deploy in (False, True):
        epe, bad1 = matching_error(_predict(factory().deploy(deploy), left, right), height, width)
        assert epe <= max_epe and bad1 <= max_bad1, (deploy, epe, bad1)


@pytest.mark.parametrize("factory", [tiny_factory, tiny_qat_factory])
def test_tiny_networks_follow_the_example_inputs(factory):
    """model.example_inputs is a 4 px / 12 px pair: the output must show both planes."""
    model = factory().eval()
    with torch.no_grad():
        disparity = model(*model.example_inputs(64, 128))[0, 0].numpy()
    assert np.median(disparity[4:28, 8:112]) == pytest.approx(4.0, abs=0.5)
    assert np.median(disparity[36:60, 16:112]) == pytest.approx(12.0, abs=0.5)


def test_relative_closeness_refuses_a_constant_and_a_constant_reference():
    _, _, step = step_pair()
    truth = step + np.random.default_rng(0).normal(0.0, 0.05, step.shape)  # a prediction-like reference
    assert_close_relative(truth + 0.1, truth, mean_share=0.05, max_px=0.2)
    with pytest.raises(AssertionError, match="mean"):
        assert_close_relative(np.full_like(truth, truth.mean()), truth, mean_share=0.05, max_px=100.0)
    with pytest.raises(AssertionError, match="degenerate"):
        assert_close_relative(truth, np.full_like(truth, 4.0), mean_share=0.05, max_px=100.0)
