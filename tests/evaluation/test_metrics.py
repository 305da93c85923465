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


def test_block_pattern_ratio_sees_an_8px_grid_and_not_a_smooth_map():
    from edgestereo.evaluation.metrics import block_pattern_ratio

    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:64, 0:96]
    smooth = 20 + 0.1 * xs + 0.05 * ys + 3 * np.sin(xs / 7.0) * np.cos(ys / 5.0) + rng.normal(0, 0.2, (64, 96))
    assert block_pattern_ratio(smooth) < 1.2
    blocks = np.kron(rng.uniform(0, 30, (8, 12)), np.ones((8, 8))) + rng.normal(0, 0.05, (64, 96))
    assert block_pattern_ratio(blocks) > 5
    # rows alone carry the pattern: the larger of the two directions counts
    rows = np.repeat(np.kron(rng.uniform(0, 30, (8, 1)), np.ones((8, 1))), 96, axis=1) + smooth
    assert block_pattern_ratio(rows) > 2


def test_linear_fit_recovers_a_compressed_range():
    from edgestereo.evaluation.metrics import linear_fit

    gt = np.linspace(5, 60, 200).reshape(10, 20)
    slope, offset = linear_fit(0.88 * gt + 3.9, gt)
    assert slope == pytest.approx(0.88) and offset == pytest.approx(3.9)
    with pytest.raises(EdgeStereoError, match="two valid pixels"):
        linear_fit(gt[:1, :1], gt[:1, :1])


def test_occlusion_from_the_left_disparity_matches_the_renderer():
    from edgestereo.data.synthetic import SyntheticConfig, render_pair
    from edgestereo.evaluation.metrics import occluded_in_right_view

    pair = render_pair(SyntheticConfig(height=96, width=192, max_disp=40.0), seed=3, index=1)
    inside = np.arange(192)[None, :] - pair.disp >= 0  # the renderer also marks pixels that leave the view
    estimate, truth = occluded_in_right_view(pair.disp) & inside, pair.occlusion & inside
    assert truth.sum() > 300
    # an estimate from the left view alone: most of what it marks is occluded, and it finds most of it
    assert (estimate & truth).sum() > 0.5 * estimate.sum()
    assert (estimate & truth).sum() > 0.6 * truth.sum()
