"""Each family's published loss, the family → loss table, and the self-supervised terms."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from edgestereo.data import collate_stereo, create_dataset, to_tensors
from edgestereo.errors import EdgeStereoError
from edgestereo.evaluation.metrics import occluded_in_right_view
from edgestereo.models import create_model, get_model_entry, list_models
from edgestereo.training.losses import (
    MultiScaleSmoothL1Loss,
    RobustLeftRightLoss,
    SelfSupervisedLoss,
    SequenceLoss,
    distribution_loss,
    edge_aware_smoothness,
    gradient_loss,
    left_right_consistency,
    masked_mean,
    occlusion_mask,
    photometric_error,
    pool_disparity,
    published_loss,
    reconstruction_cost,
    robust_loss,
    ssim_dissimilarity,
    warp_right_to_left,
    zncc_cost,
    zncc_dissimilarity,
)
from stereo_fixtures import shifted_pair


def _batch(gt: torch.Tensor, valid: torch.Tensor | None = None, **extra) -> dict:
    return {"disp": gt, "valid": torch.ones_like(gt, dtype=torch.bool) if valid is None else valid, **extra}


def _pair_tensors(disparity: int = 6, height: int = 24, width: int = 48):
    left, right = shifted_pair(height, width, disparity)
    as_tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float()  # noqa: E731
    return as_tensor(left), as_tensor(right)


# --------------------------------------------------------------------------- sequence loss
def test_sequence_loss_weights_follow_the_adjusted_gamma():
    gt = torch.full((2, 1, 4, 6), 10.0)
    errors = [3.0, 2.0, 1.0, 0.5]
    predictions = [gt + e for e in errors]
    gamma = 0.9 ** (15 / 3)
    expected = sum(gamma ** (3 - i) * e for i, e in enumerate(errors))
    assert SequenceLoss()(predictions, _batch(gt))["loss"].item() == pytest.approx(expected, rel=1e-6)


def test_sequence_loss_of_one_prediction_is_its_l1():
    gt = torch.full((1, 1, 4, 4), 3.0)
    assert SequenceLoss()([gt - 1.5], _batch(gt))["loss"].item() == pytest.approx(1.5)


def test_sequence_loss_ignores_invalid_and_too_large_ground_truth():
    gt = torch.tensor([[[[5.0, 5.0, 800.0, 5.0]]]])
    valid = torch.tensor([[[[True, True, True, False]]]])
    prediction = torch.tensor([[[[6.0, 4.0, 0.0, 100.0]]]])
    assert SequenceLoss(max_disp=700)([prediction], _batch(gt, valid))["loss"].item() == pytest.approx(1.0)


def test_empty_mask_gives_zero_loss_and_zero_gradient_not_nan():
    gt = torch.full((1, 1, 4, 4), 5.0)
    prediction = torch.zeros_like(gt, requires_grad=True)
    loss = SequenceLoss()([prediction], _batch(gt, torch.zeros_like(gt, dtype=torch.bool)))["loss"]
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(prediction.grad, torch.zeros_like(gt))


def test_predictions_must_be_full_resolution():
    gt = torch.zeros(1, 1, 8, 8)
    with pytest.raises(EdgeStereoError, match=r"prediction 0 has shape \(1, 1, 4, 4\)"):
        SequenceLoss()([torch.zeros(1, 1, 4, 4)], _batch(gt))


# --------------------------------------------------------------------------- robust loss (StereoNet)
def test_robust_loss_special_cases():
    x = torch.tensor([-3.0, -0.5, 0.0, 1.0, 4.0], dtype=torch.float64)
    c = 2.0
    assert torch.allclose(robust_loss(x, 2.0, c), 0.5 * (x / c) ** 2)
    assert torch.allclose(robust_loss(x, 1.0, c), torch.sqrt((x / c) ** 2 + 1) - 1)
    assert torch.allclose(robust_loss(x, 0.0, c), torch.log(0.5 * (x / c) ** 2 + 1))
    assert torch.allclose(robust_loss(x, -math.inf, c), 1 - torch.exp(-0.5 * (x / c) ** 2))
    # the general formula approaches its α = 2 and α = 0 limits continuously
    assert torch.allclose(robust_loss(x, 2.0 + 1e-6, c), robust_loss(x, 2.0, c), atol=1e-5)
    assert torch.allclose(robust_loss(x, 1e-6, c), robust_loss(x, 0.0, c), atol=1e-5)


def test_robust_loss_gradient_and_bad_scale():
    x = torch.randn(6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: robust_loss(v, 1.0, 2.0), (x,))
    with pytest.raises(EdgeStereoError, match="scale must be > 0"):
        robust_loss(x, 1.0, 0.0)


def test_stereonet_loss_averages_levels_and_both_views():
    gt = torch.full((1, 1, 4, 4), 8.0)
    per_error = lambda e: math.sqrt((e / 2) ** 2 + 1) - 1  # noqa: E731
    outputs = {"left": [gt + 2.0, gt], "right": [gt + 4.0, gt + 4.0]}
    loss = RobustLeftRightLoss()(outputs, _batch(gt, disp_right=gt, valid_right=torch.ones_like(gt, dtype=torch.bool)))
    left, right = per_error(2.0) / 2, per_error(4.0)
    assert loss["loss"].item() == pytest.approx((left + right) / 2, rel=1e-6)
    # without right-view ground truth only the left view is supervised
    assert RobustLeftRightLoss()(outputs, _batch(gt))["loss"].item() == pytest.approx(left, rel=1e-6)


# --------------------------------------------------------------------------- smooth L1 (GwcNet, StereoNetPlus)
def test_multiscale_smooth_l1_weights_each_prediction():
    gt = torch.full((1, 1, 4, 4), 20.0)
    predictions = [gt + 2.0, gt + 0.5, gt]  # smooth-L1: 1.5 (linear part), 0.125 (quadratic part), 0
    loss = MultiScaleSmoothL1Loss(weights=(1 / 3, 2 / 3, 1.0))(predictions, _batch(gt))
    assert loss["loss"].item() == pytest.approx(1.5 / 3 + 0.125 * 2 / 3, rel=1e-6)
    with pytest.raises(EdgeStereoError, match="3 weights but forward_train returned 2"):
        MultiScaleSmoothL1Loss(weights=(1 / 3, 2 / 3, 1.0))(predictions[:2], _batch(gt))


def test_multiscale_smooth_l1_masks_ground_truth_above_max_disp():
    gt = torch.tensor([[[[10.0, 300.0]]]])
    loss = MultiScaleSmoothL1Loss(weights=(1.0,), max_disp=192)([torch.tensor([[[[12.0, 0.0]]]])], _batch(gt))
    assert loss["loss"].item() == pytest.approx(1.5)


def test_pool_disparity_averages_supervised_pixels_in_candidate_units():
    gt = torch.tensor([[8.0, 24.0, 80.0, 80.0], [8.0, 24.0, 80.0, 0.0]]).view(1, 1, 2, 4)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]]).view(1, 1, 2, 4)
    target, block_mask = pool_disparity(gt, mask, 2)
    assert target[0, 0, 0, 0].item() == pytest.approx(16.0 / 2)  # mean of 8, 24, 8, 24 over stride 2
    assert block_mask.flatten().tolist() == [True, False]  # one supervised pixel of four: no target


def test_distribution_loss_is_zero_for_the_target_and_penalises_a_broad_distribution_with_the_right_mean():
    candidates = torch.arange(24.0).view(1, -1, 1, 1)
    target = torch.full((1, 1, 1, 1), 10.3)
    mask = torch.ones(1, 1, 1, 1, dtype=torch.bool)
    laplacian = torch.softmax(-(candidates - target).abs() / 0.5, dim=1)
    assert distribution_loss(laplacian, target, mask, 0.5).item() == pytest.approx(0.0, abs=1e-5)
    broad = torch.softmax(-((candidates - target) / 6) ** 2, dim=1)
    assert (broad * candidates).sum().item() == pytest.approx(10.3, abs=0.6)  # about the right mean …
    assert distribution_loss(broad, target, mask, 0.5).item() > 1.0  # … but far from sharp
    peak_elsewhere = torch.softmax(-(candidates - 15).abs() / 0.5, dim=1)
    assert distribution_loss(peak_elsewhere, target, mask, 0.5) > distribution_loss(broad, target, mask, 0.5)


def test_multiscale_loss_adds_the_distribution_term_only_when_asked_and_given():
    gt = torch.full((1, 1, 16, 16), 40.0)
    prob = torch.softmax(torch.randn(1, 24, 2, 2), dim=1)
    outputs = {"left": [gt + 1.0], "distributions": [(prob, 8)]}
    plain = MultiScaleSmoothL1Loss(weights=(1.0,))(outputs, _batch(gt))
    assert set(plain) == {"loss", "loss_scale0"}
    with_kl = MultiScaleSmoothL1Loss(weights=(1.0,), distribution_weight=0.5)(outputs, _batch(gt))
    expected_kl = distribution_loss(prob, torch.full((1, 1, 2, 2), 5.0), torch.ones(1, 1, 2, 2, dtype=torch.bool), 0.5)
    assert with_kl["loss_kl8"].item() == pytest.approx(expected_kl.item(), rel=1e-5)
    assert with_kl["loss"].item() == pytest.approx(plain["loss"].item() + 0.5 * expected_kl.item(), rel=1e-5)


def test_gradient_loss_prices_blocks_on_a_slanted_plane_and_ignores_an_offset():
    rows, columns = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    plane = (20.0 + 0.5 * columns + 0.25 * rows).view(1, 1, 16, 16)
    mask = torch.ones_like(plane, dtype=torch.bool)
    assert gradient_loss(plane + 3.0, plane, mask).item() == 0.0  # a constant offset has the right steps
    blocks = plane.view(1, 1, 4, 4, 4, 4)[:, :, :, :1, :, :1].expand(1, 1, 4, 4, 4, 4).reshape(1, 1, 16, 16)
    # per row (column) of 15 steps: 12 inside the blocks miss the slope, 3 at their borders are 4 slopes high
    expected = (12 * 0.5 + 3 * (2.0 - 0.5)) / 15 + (12 * 0.25 + 3 * (1.0 - 0.25)) / 15
    assert gradient_loss(blocks, plane, mask).item() == pytest.approx(expected, rel=1e-5)
    # pairs with an unsupervised pixel do not count
    half = mask.clone()
    half[..., :8] = False  # the pairs that straddle column 7 | 8 have one unsupervised pixel
    assert gradient_loss(torch.where(half, plane, plane + 100.0), plane, half).item() == 0.0


def test_multiscale_loss_adds_the_gradient_term_on_the_finest_prediction():
    gt = (10.0 + torch.arange(8.0)).expand(8, 8).reshape(1, 1, 8, 8)
    coarse, fine = torch.full_like(gt, 10.0), gt.flip(-1)  # fine: right values, wrong direction
    plain = MultiScaleSmoothL1Loss(weights=(0.5, 1.0))({"left": [coarse, fine]}, _batch(gt))
    with_gradient = MultiScaleSmoothL1Loss(weights=(0.5, 1.0), gradient_weight=2.0)({"left": [coarse, fine]},
                                                                                     _batch(gt))
    assert "loss_gradient" not in plain and with_gradient["loss_gradient"].item() == pytest.approx(2.0)
    assert with_gradient["loss"].item() == pytest.approx(plain["loss"].item() + 2.0 * 2.0)


def test_published_loss_options_can_be_changed_and_unknown_ones_are_refused():
    model = create_model("stereonet-plus2-small")
    loss = published_loss(model, overrides={"gradient_weight": 1.0})
    assert loss.gradient_weight == 1.0 and loss.distribution_weight == 0.5
    with pytest.raises(EdgeStereoError, match="do not fit"):
        published_loss(model, overrides={"gradient_wieght": 1.0})


# --------------------------------------------------------------------------- family → loss
def test_published_losses_of_the_families():
    """Each family names its loss in its own file; every trainable registered model's loss resolves."""
    table = {}
    for name in list_models():
        family = get_model_entry(name).model_class
        if family.training_loss is not None and family.__name__ not in table:
            with torch.device("meta"):  # the class and config are what matter, not the weights
                model = create_model(name)
            table[family.__name__] = dataclasses.replace(published_loss(model), max_disp=None)
    assert table["RAFTStereo"] == SequenceLoss(gamma=0.9, max_disp=None)
    assert table["StereoNet"] == RobustLeftRightLoss(alpha=1.0, scale=2.0, max_disp=None)
    assert table["GwcNet"].weights == (0.5, 0.5, 0.7, 1.0)
    assert table["StereoNetPlus"].weights == pytest.approx((1 / 3, 2 / 3, 1.0))


def test_published_loss_takes_the_model_max_disp_and_refuses_sgbm():
    model = create_model("stereonet-plus-small", max_disp=96)
    assert published_loss(model).max_disp == 96
    assert published_loss(model, max_disp=64).max_disp == 64
    with pytest.raises(EdgeStereoError, match="no published loss for 'sgbm'"):
        published_loss(create_model("sgbm"))


def _small_config(name: str) -> dict:
    """Fewer refinement steps and a shorter disparity range where the family has those fields."""
    fields = {f.name for f in dataclasses.fields(create_model(name).config)}
    return {key: value for key, value in (("train_iters", 2), ("max_disp", 64)) if key in fields}


@pytest.mark.parametrize("name", [name for name in list_models() if create_model(name).exportable])
def test_every_network_trains_with_its_published_loss(name):
    """forward_train of every registered network fits its loss, and gradients reach the weights."""
    torch.manual_seed(0)
    model = create_model(name, **_small_config(name)).train()
    size = max(32, 2 * model.divisor)
    left, right = _pair_tensors(4, size, 2 * size)
    gt = torch.full((1, 1, size, 2 * size), 4.0)
    batch = _batch(gt, disp_right=gt, valid_right=torch.ones_like(gt, dtype=torch.bool))
    loss = published_loss(model)(model.forward_train(left, right), batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


# --------------------------------------------------------------------------- self-supervised
def test_warp_reconstructs_the_left_view_at_the_true_disparity():
    left, right = _pair_tensors(disparity=6)
    warped, in_view = warp_right_to_left(right, torch.full((1, 1, 24, 48), 6.0))
    assert not in_view[..., :6].any() and in_view[..., 6:].all()
    assert torch.allclose(warped[..., 6:].expand_as(left[..., 6:]), left[..., 6:], atol=1e-3)


def test_warping_through_non_finite_disparities_is_out_of_view_and_backpropagates():
    _, right = _pair_tensors(disparity=6)
    disparity = torch.full((1, 1, 24, 48), 6.0)
    disparity[..., 3, 10:20] = float("nan")
    disparity[..., 4, 10:20] = float("inf")
    disparity.requires_grad_(True)
    warped, in_view = warp_right_to_left(right.requires_grad_(True), disparity)
    assert not in_view[..., 3:5, 10:20].any() and in_view[..., 5:, 6:].all()
    warped.sum().backward()  # NaN sampling coordinates crashed grid_sample's CPU backward
    assert torch.isfinite(right.grad).all()


def test_photometric_error_is_lowest_at_the_true_disparity():
    left, right = _pair_tensors(disparity=6)

    def error(d: float) -> float:
        warped, in_view = warp_right_to_left(right, torch.full((1, 1, 24, 48), d))
        return masked_mean(photometric_error(left, warped), in_view[..., :, :] & (torch.arange(48) >= 10)).item()

    assert error(6.0) < 1e-4
    assert error(6.0) < error(5.0) and error(6.0) < error(7.5)
    assert ssim_dissimilarity(left / 255, left / 255).abs().max().item() < 1e-6


def test_smoothness_is_zero_on_a_constant_disparity_and_lower_across_image_edges():
    image = torch.zeros(1, 3, 8, 8)
    image[..., 4:] = 255.0  # a vertical edge between columns 3 and 4
    assert edge_aware_smoothness(torch.full((1, 1, 8, 8), 5.0), image).item() == 0.0
    step_at_edge = torch.ones(1, 1, 8, 8)
    step_at_edge[..., 4:] = 2.0
    step_elsewhere = torch.ones(1, 1, 8, 8)
    step_elsewhere[..., 2:] = 2.0
    assert edge_aware_smoothness(step_at_edge, image) < edge_aware_smoothness(step_elsewhere, image)


@pytest.fixture(scope="module")
def synthetic_pair() -> dict:
    """Two textured 64×128 synthetic pairs (photometric differences between the views included) with
    exact left and right disparity."""
    pairs = create_dataset("synthetic", split="val", num=2, size=(64, 128), max_disp=24)
    return collate_stereo([to_tensors(pairs[i]) for i in range(2)])


def _noisy(disparity: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    return disparity + std * torch.randn(disparity.shape, generator=torch.Generator().manual_seed(seed))


def test_occlusion_mask_is_the_evaluation_rule(synthetic_pair):
    disparity = synthetic_pair["disp"]
    mask = occlusion_mask(disparity)
    for index in range(disparity.shape[0]):
        expected = occluded_in_right_view(disparity[index, 0].numpy())
        assert np.array_equal(mask[index, 0].numpy(), expected)
    assert 0 < mask.float().mean() < 0.2
    assert not occlusion_mask(torch.full((1, 1, 4, 8), 3.0)).any()
    # the photometric term does not score what the right camera cannot see, even at the truth
    _, scored = reconstruction_cost(synthetic_pair["left"], synthetic_pair["right"], disparity)
    assert not (scored & mask).any()


def test_textureless_and_unscorable_pixels_cost_the_identity_error_without_gradient():
    left, right = _pair_tensors(disparity=6)
    left[..., :, 20:30] = right[..., :, 20:30] = 128.0  # a flat band: zero disparity matches as well there
    disparity = torch.full((1, 1, 24, 48), 6.0, requires_grad=True)
    cost, scored = reconstruction_cost(left, right, disparity)
    identity = photometric_error(left, right)
    assert not scored[..., :6].any()  # the match falls left of the right image
    assert not scored[..., 22:28].any()  # inside the flat band
    # left 30–35 match the flat band of the right view: no longer scored; 36 on are textured again
    assert scored[..., 8:18].all() and scored[..., 38:46].all()
    assert torch.equal(cost[~scored], identity[~scored])
    assert (cost[scored] < identity[scored]).all()
    (gradient,) = torch.autograd.grad(cost[~scored].sum(), disparity)
    assert (gradient == 0).all()


def test_left_right_consistency_is_relative():
    """3 px of disagreement weigh less at 60 px than at 6 px; agreement costs nothing."""
    mask = torch.ones(1, 1, 4, 128, dtype=torch.bool)
    near, far = torch.full((1, 1, 4, 128), 60.0), torch.full((1, 1, 4, 128), 6.0)
    assert left_right_consistency(far, far, mask).item() == 0.0
    assert left_right_consistency(far, far + 3, mask).item() == pytest.approx(3 / 16)
    assert left_right_consistency(near, near + 3, mask).item() == pytest.approx(3 / 124)


def test_the_terms_are_balanced_at_a_perturbed_start(synthetic_pair):
    """At a prediction like a pretrained model's (the truth, 1 px noise), no weighted term outweighs
    the photometric one, and per pixel of disparity the left-right term (weight 1) pulls about as
    hard as the photometric one (their local gradients are within a factor 3)."""
    left, right, truth = synthetic_pair["left"], synthetic_pair["right"], synthetic_pair["disp"]
    start = _noisy(truth, 1.0).requires_grad_(True)
    right_start = _noisy(synthetic_pair["disp_right"], 1.0, seed=1)
    loss = SelfSupervisedLoss(lr_weight=1.0)
    terms = loss(left, right, [start], right_start)
    photometric = terms["photometric"].item()
    assert 0.05 < photometric < 0.5
    assert 0.2 * photometric < loss.lr_weight * terms["lr_consistency"].item() < photometric
    assert 0.01 * photometric < loss.smoothness_weight * terms["smoothness"].item() < photometric

    def pull(value: torch.Tensor) -> float:
        """Mean |∂value/∂d| over the pixels that have a gradient, per pixel (value is a mean)."""
        (gradient,) = torch.autograd.grad(value, start)
        return (gradient.abs().sum() / (gradient != 0).sum() * gradient.numel()).item()

    photometric_pull = pull(reconstruction_cost(left, right, start)[0].mean())
    lr_pull = pull(left_right_consistency(start, right_start, ~occlusion_mask(start)))
    smoothness_pull = loss.smoothness_weight * pull(edge_aware_smoothness(start, left))
    assert 1 / 3 < lr_pull / photometric_pull < 3
    assert smoothness_pull < photometric_pull


@pytest.mark.parametrize("lr_weight", [0.0, 1.0])
def test_the_objective_is_lowest_at_the_true_disparity(synthetic_pair, lr_weight):
    left, right = synthetic_pair["left"], synthetic_pair["right"]
    truth, right_truth = synthetic_pair["disp"], synthetic_pair["disp_right"]
    loss = SelfSupervisedLoss(lr_weight=lr_weight)

    def objective(disparity: torch.Tensor) -> float:
        return loss(left, right, [disparity], right_truth)["loss"].item()

    at_truth = objective(truth)
    for wrong in (truth - 2, truth - 1, truth - 0.5, truth + 0.5, truth + 1, truth + 2, truth * 0.9, truth * 1.1,
                  _noisy(truth, 0.5), truth * 0):
        assert objective(wrong) > at_truth


def test_zncc_ignores_gain_and_offset_and_scores_flat_windows_as_uncorrelated():
    left, _ = _pair_tensors(disparity=6)
    assert zncc_dissimilarity(left, 0.5 * left + 40).max().item() < 1e-3
    assert zncc_dissimilarity(left, 255 - left).min().item() > 0.999
    # a grey-level spread of 0.1/255: flat, whatever its faint noise correlates with
    flat = 90.0 + 0.1 * torch.randn(left.shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(zncc_dissimilarity(left, flat), torch.full((1, 1, 24, 48), 0.5))


def test_zncc_cost_grows_with_the_disparity_error_and_hiding_pixels_does_not_pay(synthetic_pair):
    left, right, truth = synthetic_pair["left"], synthetic_pair["right"], synthetic_pair["disp"]
    costs = [zncc_cost(left, right, _noisy(truth, std)).mean().item() for std in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert costs == sorted(costs) and costs[-1] > 1.5 * costs[0]
    # a wall 30 px nearer on the right third hides most of the image behind it in the right view
    hiding = truth.clone()
    hiding[..., 86:] += 30
    hidden = occlusion_mask(hiding) | (torch.arange(128) < hiding)
    assert hidden.float().mean() > 0.2
    assert (zncc_cost(left, right, hiding)[hidden] == 0.5).all()
    assert zncc_cost(left, right, hiding).mean() > costs[1]


def test_self_supervised_loss_logs_its_terms_and_needs_the_right_view_for_consistency():
    left, right = _pair_tensors(disparity=6)
    truth = torch.full((1, 1, 24, 48), 6.0)
    assert set(SelfSupervisedLoss()(left, right, [truth])) == {"loss", "photometric", "smoothness", "scored"}
    consistent = SelfSupervisedLoss(lr_weight=1.0)(left, right, [truth - 1, truth], right_disparity=truth)
    assert consistent["lr_consistency"].item() == 0.0
    with pytest.raises(EdgeStereoError, match="needs the right-view disparity"):
        SelfSupervisedLoss(lr_weight=1.0)(left, right, [truth])
    with pytest.raises(EdgeStereoError, match="not full resolution"):
        SelfSupervisedLoss()(left, right, [truth[..., ::2, ::2]])
