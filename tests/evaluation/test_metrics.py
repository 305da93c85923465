import numpy as np
import pytest
import torch

from edgestereo.errors import EdgeStereoError
from edgestereo.evaluation.metrics import (
    LinearFit,
    block_pattern_ratio,
    disparity_metrics,
    linear_fit,
    near_depth_edge,
    occluded_in_right_view,
    right_view_masks,
    split_seen,
    textureless,
)


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

    gt = np.linspace(5, 60, 200).reshape(10, 20)
    slope, offset = linear_fit(0.88 * gt + 3.9, gt)
    assert slope == pytest.approx(0.88) and offset == pytest.approx(3.9)
    with pytest.raises(EdgeStereoError, match="two valid pixels"):
        linear_fit(gt[:1, :1], gt[:1, :1])


def test_occlusion_from_the_left_disparity_matches_the_renderer():
    from edgestereo.data.synthetic import SyntheticConfig, render_pair

    pair = render_pair(SyntheticConfig(height=96, width=192, max_disp=40.0), seed=3, index=1)
    inside = np.arange(192)[None, :] - pair.disp >= 0  # the renderer also marks pixels that leave the view
    estimate, truth = occluded_in_right_view(pair.disp) & inside, pair.occlusion & inside
    assert truth.sum() > 300
    # an estimate from the left view alone: most of what it marks is occluded, and it finds most of it
    assert (estimate & truth).sum() > 0.5 * estimate.sum()
    assert (estimate & truth).sum() > 0.6 * truth.sum()
    # the visible pixels: the renderer's non-occluded ones, out-of-view included (they are many here)
    assert (~inside).sum() > 300
    hidden = ~right_view_masks(pair.disp)["seen"]
    assert (hidden & pair.occlusion).sum() > 0.7 * hidden.sum()
    assert (hidden & pair.occlusion).sum() > 0.7 * pair.occlusion.sum()


# --------------------------------------------------------------------------- edges the definitions fix
# (found by mutation testing: docs/testing.md)
def test_thresholds_are_strict_and_max_disp_excludes_its_own_value():
    # errors 3.0 px at 10 px (D1 needs > 3 px), 3.0 px at 60 px (= 5 %), 4.0 px at 80 px (= 5 %), 0 at 20 px
    gt = np.array([[10.0, 60.0, 80.0, 20.0]])
    metrics = disparity_metrics(gt + np.array([[3.0, 3.0, 4.0, 0.0]]), gt)
    assert metrics["d1"] == 0.0 and metrics["bad3"] == 25.0 and metrics["bad4"] == 0.0
    assert disparity_metrics(gt, gt, max_disp=80.0)["valid_px"] == 3.0  # 80 is not below 80


def test_inputs_of_any_layout_dtype_and_autograd_state():
    gt = np.linspace(1.0, 40.0, 64).reshape(8, 8)
    pred = gt + np.random.default_rng(0).normal(0.0, 1.0, gt.shape)
    expected = disparity_metrics(pred, gt)
    # a (1,1,H,W) prediction, a tensor that needs grad, a (1,H,W) mask
    tensor = torch.tensor(pred, requires_grad=True).view(1, 1, 8, 8)
    assert disparity_metrics(tensor, gt, np.ones((1, 8, 8), bool)) == pytest.approx(expected)
    # float16 inputs are scored in float64, not rounded again on the way
    half_pred, half_gt = pred.astype(np.float16), gt.astype(np.float16)
    epe = np.abs(half_pred.astype(np.float64) - half_gt.astype(np.float64)).mean()
    assert disparity_metrics(half_pred, half_gt)["epe"] == pytest.approx(epe, abs=1e-12)


def test_a_mask_only_narrows_the_ground_truth():
    gt = np.array([[1.0, np.nan, np.inf, 0.0, 5.0]])
    assert disparity_metrics(gt, gt, np.ones_like(gt, bool))["valid_px"] == 2.0
    with pytest.raises(EdgeStereoError, match=r"no valid ground-truth pixel to score \(check the mask and max_disp\)"):
        disparity_metrics(gt, gt, np.zeros_like(gt, bool))


def test_block_pattern_ratio_edges():
    smooth = np.tile(np.arange(64.0) * 0.3, (16, 1))
    assert block_pattern_ratio(smooth) == pytest.approx(1.0) and block_pattern_ratio(np.zeros((16, 64))) == 1.0
    steps = np.tile(np.repeat(np.arange(8.0), 8) * 0.5, (16, 1))  # 0.5 px steps every 8 columns, flat between
    assert block_pattern_ratio(steps) == float("inf")
    # a 1 px ramp with a 5 px jump every 8 columns: jumps are clipped at 4 px, so the ratio is 4
    ramp = np.tile(np.arange(64.0) + 4.0 * (np.arange(64) // 8), (16, 1))
    assert block_pattern_ratio(ramp) == pytest.approx(4.0)
    assert block_pattern_ratio(ramp[None, None]) == pytest.approx(4.0)
    assert block_pattern_ratio(ramp.T) == pytest.approx(4.0)  # rows count as well as columns


def test_linear_fit_edges():
    gt = np.array([[4.0, 8.0, 12.0, 16.0, 20.0]])
    pred = 0.5 * gt + 3.0
    pred[0, 4] = np.nan  # a non-finite prediction is left out, not fitted
    assert linear_fit(pred[None, None], gt) == pytest.approx((0.5, 3.0))
    outlier = pred.copy()
    outlier[0, 3] = 100.0
    valid = np.array([[True, True, True, False, True]])
    assert linear_fit(outlier, gt, valid) == pytest.approx((0.5, 3.0))
    assert linear_fit(pred[:, :2], gt[:, :2]) == pytest.approx((0.5, 3.0))  # two pixels are enough
    with pytest.raises(EdgeStereoError, match="linear fit needs at least two valid pixels"):
        linear_fit(pred[:, :1], gt[:, :1])
    with pytest.raises(EdgeStereoError, match="ground truth that varies"):
        linear_fit(pred[:, :2], np.full((1, 2), 7.0))


def test_a_pooled_linear_fit_is_the_fit_of_all_pixels_together():
    rng = np.random.default_rng(0)
    maps = [(rng.uniform(5, 60, (6, 9)), rng.uniform(0, 1, (6, 9)) > 0.2) for _ in range(3)]
    preds = [0.9 * gt + 2.0 + rng.normal(0, 1 + i, gt.shape) for i, (gt, _) in enumerate(maps)]
    pooled = LinearFit()
    for pred, (gt, valid) in zip(preds, maps):
        pooled.add(pred, gt, valid)
    together = linear_fit(np.concatenate(preds, 1), np.concatenate([gt for gt, _ in maps], 1),
                          np.concatenate([valid for _, valid in maps], 1))
    assert pooled.result() == pytest.approx(together, rel=1e-12)
    # not the mean of the per-pair fits: the pairs' pixels and spreads differ
    separate = np.mean([linear_fit(p, gt, v) for p, (gt, v) in zip(preds, maps)], axis=0)
    assert pooled.result() != pytest.approx(tuple(separate), rel=1e-6)


def test_occlusion_edges():
    # x = 1 lands at 0; its right neighbour lands at 0 − 0.5 (exactly the tolerance: visible) or 0 − 0.3
    assert not occluded_in_right_view(np.array([[1.0, 1.0, 2.5]]))[0, 1]
    assert not occluded_in_right_view(np.array([[1.0, 1.0, 2.3]]))[0, 1]
    assert occluded_in_right_view(np.array([[1.0, 1.0, 2.6]]))[0, 1]
    d = np.array([[1.0, 1, 1, 1, 5, 5, 5]])
    expected = [[False, True, True, True, False, False, False]]
    assert occluded_in_right_view(d[None]).tolist() == expected
    unknown = d.copy()
    unknown[0, 5:] = np.nan  # unknown pixels never occlude
    assert occluded_in_right_view(unknown).tolist() == [[False, True, True, True, False, False, False]]
    unknown[0, 4] = np.nan
    assert not occluded_in_right_view(unknown).any()


def test_the_right_view_splits_known_pixels_into_seen_covered_and_outside():
    d = np.array([[2.0, 2, 2, 2, 2, 4, 4, 4, 2.0]])
    # x = 0, 1 land left of the right image (−2, −1); x = 4 lands at 2, behind x = 5 (lands at 1)
    masks = right_view_masks(d)
    assert masks["seen"].tolist() == [[False, False, True, True, False, True, True, True, True]]
    assert masks["covered"].tolist() == [[False, False, False, False, True, False, False, False, False]]
    assert masks["outside"].tolist() == [[True, True, False, False, False, False, False, False, False]]
    assert right_view_masks(np.array([[0.0, 1.0, 2.0, 3.5]]))["seen"].tolist() == [[True, True, True, False]]
    # outside wins over covered: x = 0 lands at −3, and x = 1 lands further left still (−4)
    both = right_view_masks(np.array([[3.0, 5.0, 1.0]]))
    assert both["outside"][0, 0] and not both["covered"][0, 0]
    # unknown pixels are in no class
    unknown = right_view_masks(np.array([[np.nan, np.inf, 0.0]]))
    assert [mask[0, :2].any() for mask in unknown.values()] == [False, False, False] and unknown["seen"][0, 2]


def test_near_depth_edge_marks_both_sides_of_a_jump_and_their_surroundings():
    d = np.full((7, 9), 10.0)
    d[:, 5:] = 20.0  # a vertical depth edge between x = 4 and x = 5
    assert np.flatnonzero(near_depth_edge(d, radius=0)[3]).tolist() == [4, 5]
    assert np.flatnonzero(near_depth_edge(d, radius=2)[3]).tolist() == [2, 3, 4, 5, 6, 7]
    d = np.full((7, 9), 10.0)
    d[4:] = 10.5  # a jump of 0.5 px between rows 3 and 4: not an edge at jump 1, an edge at jump 0.25
    assert not near_depth_edge(d).any()
    assert np.flatnonzero(near_depth_edge(d, jump=0.25, radius=1)[:, 0]).tolist() == [2, 3, 4, 5]
    assert not near_depth_edge(np.array([[1.0, 2.0]]), jump=1.0).any()  # the jump must exceed `jump`
    # unknown pixels are never on an edge, and a known one beside an unknown one is not on one either
    d = np.array([[5.0, np.inf, 30.0, np.nan, 5.0, 5.0]])
    assert not near_depth_edge(d, radius=0).any()
    assert near_depth_edge(np.array([[5.0, 30.0, np.nan]]), radius=2).tolist() == [[True, True, False]]


def test_textureless_pixels_are_those_of_a_flat_neighbourhood():
    image = np.full((20, 30, 3), 128, np.uint8)
    assert textureless(image).all()
    image[:, 15:] = np.indices((20, 15)).sum(axis=0)[..., None] % 2 * 255  # a checkerboard on the right
    flat = textureless(image)
    assert flat[:, :11].all() and not flat[:, 11:].any()  # 9×9 windows reach 4 px to the right
    assert np.array_equal(textureless(image[..., 0]), flat)  # grey input as RGB
    ramp = np.tile(np.arange(30, dtype=np.uint8), (20, 1))  # one level per pixel: std 2.58 over 9 columns
    assert not textureless(ramp)[:, 4:26].any()  # (the border is mirrored: less spread there)
    assert textureless(ramp, below=2.6)[:, 4:26].all() and not textureless(ramp, below=2.55)[:, 4:26].any()
    assert not textureless(ramp, window=15, below=3.0)[:, 7:23].any()  # 15 columns: std 4.32
    line = np.full((20, 40), 128, np.uint8)
    line[:, 20] = 255  # one bright column: a 15-px window sees it from 7 px away
    assert np.flatnonzero(~textureless(line, window=15)[10]).tolist() == list(range(13, 28))


def test_split_seen_parts_the_seen_pixels_by_edge_then_texture():
    d = np.full((12, 40), 4.0)
    d[:, 20:] = 8.0  # a depth edge between x = 19 and 20; x < 4 lands outside the right image
    left = np.full((12, 40, 3), 100, np.uint8)
    left[:, 30:] = np.indices((12, 10)).sum(axis=0)[..., None] % 2 * 200  # texture from x = 30 on
    seen = right_view_masks(d)["seen"]
    parts = split_seen(seen, d, left)
    assert list(parts) == ["near a depth edge", "textureless", "textured"]
    stacked = np.stack(list(parts.values()))
    assert np.array_equal(stacked.sum(axis=0), seen.astype(int))  # disjoint, and together the seen pixels
    row = {name: np.flatnonzero(mask[6]).tolist() for name, mask in parts.items()}
    seen_row = np.flatnonzero(seen[6]).tolist()
    # x = 19 and 20 make the edge, x = 16..23 are within 3 px of it (17..19 are covered), flat or not
    assert row["near a depth edge"] == [16, 20, 21, 22, 23]
    assert row["textured"] == list(range(26, 40))  # 9×9 windows reach texture from x = 26
    assert row["textureless"] == [x for x in seen_row if x < 16 or 24 <= x < 26]
    with pytest.raises(EdgeStereoError, match="differ in size"):
        split_seen(seen, d, left[:, :39])
