import numpy as np
import pytest
import torch

from edgestereo.errors import EdgeStereoError
from edgestereo.evaluation.metrics import disparity_metrics


def test_metrics_by_hand():
    gt = np.array([[10.0, 20.0, 100.0, 0.0], [np.inf, 4.0, 50.0, np.nan]])
    pred = np.array([[10.4, 21.5, 103.5, 7.0], [3.0, 8.0, 52.5, 1.0]])
    # valid: 10, 20, 100, 4, 50 -> errors 0.4, 1.5, 3.5, 4.0, 2.5
    m = disparity_metrics(pred, gt)
    assert m["valid_px"] == 5
    assert m["epe"] == pytest.approx((0.4 + 1.5 + 3.5 + 4.0 + 2.5) / 5)
    assert m["bad0.5"] == pytest.approx(80.0)
    assert m["bad1"] == pytest.approx(80.0)
    assert m["bad2"] == pytest.approx(60.0)
    assert m["bad3"] == pytest.approx(40.0)
    assert m["bad4"] == pytest.approx(0.0)
    # D1: > 3 px AND > 5 %: 3.5 of 100 (3.5 %) fails the second, 4.0 of 4 passes both
    assert m["d1"] == pytest.approx(20.0)


def test_mask_and_max_disp_and_tensors():
    gt = torch.tensor([[[1.0, 2.0, 300.0]]])
    pred = torch.tensor([[[1.0, 3.0, 0.0]]])
    m = disparity_metrics(pred, gt, max_disp=192)
    assert m["valid_px"] == 2 and m["epe"] == pytest.approx(0.5)
    m = disparity_metrics(pred, gt, valid=torch.tensor([[[False, True, True]]]), max_disp=192)
    assert m["valid_px"] == 1 and m["epe"] == pytest.approx(1.0)


def test_non_finite_prediction_scores_as_zero():
    m = disparity_metrics(np.array([np.nan, 5.0]), np.array([2.0, 5.0]))
    assert m["epe"] == pytest.approx(1.0)


def test_errors():
    with pytest.raises(EdgeStereoError, match="does not match"):
        disparity_metrics(np.zeros(3), np.zeros(4))
    with pytest.raises(EdgeStereoError, match="no valid ground-truth"):
        disparity_metrics(np.zeros(3), np.zeros(3))
