"""Training losses: each family's published loss, and a self-supervised objective for pairs without
ground truth. Models never compute losses; a family names its loss (``StereoModel.training_loss``)
and :func:`published_loss` builds it.

Conventions: disparities are (B,1,H,W) pixels of the input resolution; ``valid`` is (B,1,H,W) bool;
a batch is the dict :func:`edgestereo.data.collate_stereo` builds (``left``, ``right``, ``disp``,
``valid``, optionally ``disp_right``/``valid_right``). Each loss returns a dict with the scalar
``loss`` to minimise and detached parts for logging.

>>> import torch
>>> gt = torch.full((1, 1, 4, 4), 5.0)
>>> batch = {"disp": gt, "valid": torch.ones_like(gt, dtype=torch.bool)}
>>> terms = SequenceLoss()([gt + 2.0, gt + 1.0], batch)
>>> round(terms["loss"].item(), 4)  # 0.9**15 · 2 px + 1 px
1.4118
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgestereo.errors import EdgeStereoError
from edgestereo.models._base import left_predictions

__all__ = [
    "MultiScaleSmoothL1Loss",
    "RobustLeftRightLoss",
    "SelfSupervisedLoss",
    "SequenceLoss",
    "StereoLoss",
    "distribution_loss",
    "edge_aware_smoothness",
    "left_right_consistency",
    "loss_mask",
    "masked_mean",
    "occlusion_mask",
    "photometric_error",
    "pool_disparity",
    "published_loss",
    "reconstruction_cost",
    "robust_loss",
    "ssim_dissimilarity",
    "warp_right_to_left",
    "zncc_cost",
    "zncc_dissimilarity",
]


class StereoLoss(Protocol):
    """A supervised loss: ``forward_train`` outputs and the batch → {"loss": scalar, parts…}."""

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> dict[str, Tensor]: ...


# --------------------------------------------------------------------------- helpers
def loss_mask(gt: Tensor, valid: Tensor | None, max_disp: float | None) -> Tensor:
    """Pixels that carry supervision: ``valid``, finite ground truth, and ground truth < ``max_disp``.

    gt: (B,1,H,W) px; valid: (B,1,H,W) bool or None → (B,1,H,W) bool.
    """
    mask = torch.isfinite(gt)
    if valid is not None:
        mask &= valid.bool()
    if max_disp is not None:
        mask &= gt < max_disp
    return mask


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over ``mask``; 0 (with a zero gradient) when the mask is empty, so a crop
    without ground truth does not turn the whole batch into NaN."""
    mask = mask.expand_as(values)
    return torch.where(mask, values, 0.0).sum() / mask.sum().clamp(min=1)


def gradient_loss(prediction: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    """Mean |∂prediction − ∂gt| over horizontal and over vertical neighbour pairs whose two pixels are in
    ``mask``, summed (px per px): steps the ground truth does not have (the cells of an upsampling)
    cost, and so do edges smeared or moved. prediction, gt: (B,1,H,W) px; mask: (B,1,H,W) bool."""
    terms = []
    for dim in (-1, -2):
        length = gt.shape[dim] - 1
        ahead = [t.narrow(dim, 1, length) for t in (prediction, gt, mask)]
        behind = [t.narrow(dim, 0, length) for t in (prediction, gt, mask)]
        step_error = (ahead[0] - behind[0]) - (ahead[1] - behind[1])
        terms.append(masked_mean(step_error.abs(), ahead[2] & behind[2]))
    return terms[0] + terms[1]


def _check_full_resolution(predictions: Sequence[Tensor], gt: Tensor, family: str) -> list[Tensor]:
    out = []
    for index, prediction in enumerate(predictions):
        if prediction.shape != gt.shape:
            raise EdgeStereoError(
                f"{family}: prediction {index} has shape {tuple(prediction.shape)}, the ground truth "
                f"{tuple(gt.shape)}; forward_train must return (B,1,H,W) full-resolution disparities"
            )
        # losses in float32 whatever the autocast dtype of the network
        out.append(prediction.float())
    return out


# --------------------------------------------------------------------------- RAFT-Stereo
@dataclass(frozen=True)
class SequenceLoss:
    """RAFT-Stereo's sequence loss: L1 of every iteration's prediction, weighted γ^(N−i−1) with γ
    adjusted to γ^(15/(N−1)) so the weights do not depend on the number of iterations N; pixels
    whose ground truth is ≥ ``max_disp`` (700 px in the paper) are excluded."""

    gamma: float = 0.9
    max_disp: float | None = 700.0

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        gt = batch["disp"].float()
        predictions = _check_full_resolution(left_predictions(outputs), gt, "sequence loss")
        mask = loss_mask(gt, batch.get("valid"), self.max_disp)
        count = len(predictions)
        gamma = self.gamma ** (15 / (count - 1)) if count > 1 else 1.0
        loss = sum(gamma ** (count - i - 1) * masked_mean((p - gt).abs(), mask) for i, p in enumerate(predictions))
        return {"loss": loss}


# --------------------------------------------------------------------------- StereoNet
def robust_loss(x: Tensor, alpha: float, scale: float) -> Tensor:
    """Barron's general and adaptive robust loss ρ(x, α, c), element-wise.

    α = 2 is L2, α = 1 the pseudo-Huber √((x/c)²+1)−1 that StereoNet uses (with c = 2), α = 0 the
    Cauchy/Lorentzian log(½(x/c)²+1), α → −∞ Welsch 1−exp(−½(x/c)²).

    >>> round(robust_loss(torch.tensor(2.0), alpha=1.0, scale=2.0).item(), 6)  # √2 − 1
    0.414214
    """
    if scale <= 0:
        raise EdgeStereoError(f"robust_loss scale must be > 0, got {scale}")
    squared = (x / scale) ** 2
    if alpha == 2:
        return 0.5 * squared
    if alpha == 0:
        return torch.log1p(0.5 * squared)
    if math.isinf(alpha) and alpha < 0:
        return -torch.expm1(-0.5 * squared)
    shift = abs(alpha - 2)
    return shift / alpha * ((squared / shift + 1) ** (alpha / 2) - 1)


@dataclass(frozen=True)
class RobustLeftRightLoss:
    """StereoNet: Barron's robust loss (α = 1, c = 2) on every refinement level, upsampled to full
    resolution, for the left disparity and, when the family predicts it and the data set has it,
    the right one; the two sides are averaged. Ground truth ≥ ``max_disp`` is excluded."""

    alpha: float = 1.0
    scale: float = 2.0
    max_disp: float | None = 192.0

    def _side(self, predictions: list[Tensor], gt: Tensor, valid: Tensor | None) -> Tensor:
        predictions = _check_full_resolution(predictions, gt, "robust loss")
        mask = loss_mask(gt, valid, self.max_disp)
        return torch.stack([masked_mean(robust_loss(p - gt, self.alpha, self.scale), mask) for p in predictions]).mean()

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        gt = batch["disp"].float()
        left = self._side(left_predictions(outputs), gt, batch.get("valid"))
        terms = {"loss_left": left.detach()}
        right_predictions = outputs.get("right") if isinstance(outputs, Mapping) else None
        if right_predictions is not None and batch.get("disp_right") is not None:
            right_gt = batch["disp_right"].float()
            right = self._side(left_predictions(right_predictions), right_gt, batch.get("valid_right"))
            terms["loss_right"] = right.detach()
            return {"loss": (left + right) / 2, **terms}
        return {"loss": left, **terms}


# --------------------------------------------------------------------------- GwcNet, StereoNetPlus
def pool_disparity(gt: Tensor, mask: Tensor, stride: int) -> tuple[Tensor, Tensor]:
    """Ground truth at 1/``stride``: the mean of each stride×stride block's supervised pixels, in
    candidate units (pixels / stride). gt, mask: (B,1,H,W) → ((B,1,H/s,W/s), bool mask of blocks with
    at least half their pixels supervised)."""
    weight = mask.float()
    total = F.avg_pool2d(torch.where(mask, gt, 0.0), stride)
    share = F.avg_pool2d(weight, stride)
    return total / share.clamp(min=1e-6) / stride, share >= 0.5


def distribution_loss(prob: Tensor, target: Tensor, mask: Tensor, scale: float) -> Tensor:
    """KL divergence from a discrete Laplacian around the ground truth to a candidate softmax.

    prob: (B,D,h,w) softmax over candidates 0 … D-1; target: (B,1,h,w) in candidate units; the
    Laplacian is ∝ exp(−|d − target| / ``scale``). Averaged over ``mask`` (B,1,h,w) bool. A
    distribution that puts its mass next to the ground truth scores 0, a broad one that only has the
    right mean does not (the soft-argmax of a broad distribution is pulled towards the middle).
    """
    prob = prob.float()
    candidates = torch.arange(prob.shape[1], device=prob.device, dtype=prob.dtype).view(1, -1, 1, 1)
    log_q = torch.log_softmax(-(candidates - target).abs() / scale, dim=1)
    kl = (log_q.exp() * (log_q - torch.log(prob.clamp(min=1e-8)))).sum(1, keepdim=True)
    return masked_mean(kl, mask)


@dataclass(frozen=True)
class MultiScaleSmoothL1Loss:
    """Smooth-L1 on each prediction (coarse to fine, full resolution), weighted: GwcNet
    (0.5, 0.5, 0.7, 1.0), StereoNetPlus (1/3, 2/3, 1). Ground truth ≥ ``max_disp`` is excluded.

    With ``distribution_weight`` > 0 and ``forward_train`` outputs that carry ``distributions``
    (a list of (softmax (B,D,h,w), stride)), each distribution also gets :func:`distribution_loss`
    against the block-averaged ground truth, Laplacian scale ``distribution_scale`` candidates. With
    ``gradient_weight`` > 0 the last (finest) prediction also gets :func:`gradient_loss`.
    """

    weights: tuple[float, ...]
    max_disp: float | None = 192.0
    distribution_weight: float = 0.0
    distribution_scale: float = 0.5
    gradient_weight: float = 0.0

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        gt = batch["disp"].float()
        predictions = _check_full_resolution(left_predictions(outputs), gt, "multi-scale smooth-L1 loss")
        if len(predictions) != len(self.weights):
            raise EdgeStereoError(
                f"multi-scale smooth-L1 loss has {len(self.weights)} weights but forward_train returned "
                f"{len(predictions)} predictions"
            )
        mask = loss_mask(gt, batch.get("valid"), self.max_disp)
        parts = [masked_mean(F.smooth_l1_loss(p, gt, reduction="none"), mask) for p in predictions]
        loss = sum(w * part for w, part in zip(self.weights, parts))
        terms = {f"loss_scale{i}": part.detach() for i, part in enumerate(parts)}
        distributions = outputs.get("distributions") if isinstance(outputs, Mapping) else None
        if self.distribution_weight > 0 and distributions:
            for prob, stride in distributions:
                target, block_mask = pool_disparity(gt, mask, stride)
                kl = distribution_loss(prob, target, block_mask, self.distribution_scale)
                loss = loss + self.distribution_weight * kl
                terms[f"loss_kl{stride}"] = kl.detach()
        if self.gradient_weight > 0:
            gradient = gradient_loss(predictions[-1], gt, mask)
            loss = loss + self.gradient_weight * gradient
            terms["loss_gradient"] = gradient.detach()
        return {"loss": loss, **terms}


# --------------------------------------------------------------------------- family → published loss
def published_loss(model: nn.Module, max_disp: float | None = None,
                   overrides: Mapping[str, Any] | None = None) -> StereoLoss:
    """The loss ``model``'s family was published with (its class's ``training_loss``, inherited by
    subclasses). ``max_disp`` (px) overrides the published ground-truth cut-off; by default the
    model's ``config.max_disp`` when it has one. ``overrides`` replace or add the loss's options
    (e.g. ``{"gradient_weight": 1.0}``); an option the loss does not have is a user error."""
    spec = getattr(type(model), "training_loss", None)
    if spec is None:
        name = getattr(model, "model_name", "") or type(model).__name__
        raise EdgeStereoError(f"no published loss for {name!r}: {type(model).__name__} declares no training_loss "
                              "(use the self-supervised loss, or declare one in the family's file)")
    module_name, _, attribute = spec.target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        raise EdgeStereoError(f"{type(model).__name__}.training_loss names {spec.target!r}, which cannot be "
                              "imported") from None
    if max_disp is None:
        max_disp = getattr(getattr(model, "config", None), "max_disp", None)
    options = {**spec.options, **(overrides or {})}
    if max_disp is not None:
        options["max_disp"] = float(max_disp)
    try:
        return factory(**options)
    except TypeError as exc:
        raise EdgeStereoError(f"loss options {sorted(overrides or {})} do not fit {spec.target}: {exc}") from None


# --------------------------------------------------------------------------- self-supervised
def warp_right_to_left(image: Tensor, disparity: Tensor) -> tuple[Tensor, Tensor]:
    """Sample ``image`` (a right-view tensor, (B,C,H,W)) at x − d: the left view reconstructed
    through the left disparity (B,1,H,W) px. Returns (warped (B,C,H,W), in_view (B,1,H,W) bool:
    the match falls inside the right image)."""
    b, _, h, w = image.shape
    xs = torch.arange(w, device=image.device, dtype=disparity.dtype).view(1, 1, 1, w)
    ys = torch.arange(h, device=image.device, dtype=disparity.dtype).view(1, 1, h, 1)
    source_x = xs - disparity
    in_view = (source_x >= 0) & (source_x <= w - 1)
    # grid_sample's CPU backward reads out of bounds at NaN coordinates (a diverged network): sample
    # those, like every other column outside the image, at the border (zero gradient either way)
    source_x = torch.nan_to_num(source_x, nan=-1.0).clamp(-1.0, float(w))
    grid_x = 2.0 * source_x / max(w - 1, 1) - 1.0
    grid_y = (2.0 * ys / max(h - 1, 1) - 1.0).expand(b, 1, h, w)
    grid = torch.cat([grid_x, grid_y], dim=1).permute(0, 2, 3, 1)
    warped = F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True)
    return warped, in_view


def ssim_dissimilarity(x: Tensor, y: Tensor) -> Tensor:
    """(1 − SSIM)/2 over 3×3 windows (reflection padding), images in [0,1]: (B,C,H,W) → (B,C,H,W) in [0,1]."""
    c1, c2 = 0.01**2, 0.03**2
    x, y = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x**2
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y**2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2))
    return ((1 - ssim) / 2).clamp(0, 1)


def photometric_error(target: Tensor, reconstruction: Tensor, ssim_share: float = 0.85) -> Tensor:
    """α·(1−SSIM)/2 + (1−α)·|Δ| averaged over channels; images (B,3,H,W) in [0,255] → (B,1,H,W) in [0,1]."""
    target, reconstruction = target / 255.0, reconstruction / 255.0
    l1 = (target - reconstruction).abs().mean(1, keepdim=True)
    if ssim_share == 0:
        return l1
    ssim = ssim_dissimilarity(target, reconstruction).mean(1, keepdim=True)
    return ssim_share * ssim + (1 - ssim_share) * l1


def edge_aware_smoothness(disparity: Tensor, image: Tensor) -> Tensor:
    """Mean |∂d| · exp(−|∂I|) in x and y, on the disparity divided by its per-image mean (so the
    term does not push disparities towards zero); disparity (B,1,H,W) px, image (B,3,H,W) in [0,255]."""
    normalised = disparity / (disparity.mean(dim=(2, 3), keepdim=True) + 1e-7)
    image = image / 255.0
    grad_dx = (normalised[..., :, 1:] - normalised[..., :, :-1]).abs()
    grad_dy = (normalised[..., 1:, :] - normalised[..., :-1, :]).abs()
    weight_x = torch.exp(-(image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True))
    weight_y = torch.exp(-(image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True))
    return (grad_dx * weight_x).mean() + (grad_dy * weight_y).mean()


def occlusion_mask(disparity: Tensor, tolerance: float = 0.5) -> Tensor:
    """Left pixels the right camera does not see, from the left disparity alone: x is hidden when a
    pixel to its right lands left of it in the right image (x' − d(x') < x − d(x) − ``tolerance``),
    i.e. a nearer surface covers it. disparity (B,1,H,W) px → (B,1,H,W) bool; no gradient.

    >>> d = torch.tensor([[[[1.0, 1, 1, 1, 5, 5, 5]]]])  # a near surface from x = 4 lands at −1, 0, 1
    >>> occlusion_mask(d).int().flatten().tolist()       # x = 1, 2, 3 land at 0, 1, 2: behind it
    [0, 1, 1, 1, 0, 0, 0]
    """
    disparity = disparity.detach()
    xs = torch.arange(disparity.shape[-1], device=disparity.device, dtype=disparity.dtype)
    landing = xs - disparity
    # the smallest landing column among the pixels strictly to the right of each pixel
    right_min = torch.flip(torch.cummin(torch.flip(landing, dims=[-1]), dim=-1).values, dims=[-1])
    right_min = F.pad(right_min[..., 1:], (0, 1), value=math.inf)
    return right_min < landing - tolerance


def reconstruction_cost(
    left: Tensor, right: Tensor, disparity: Tensor, ssim_share: float = 0.85, occlusion_tolerance: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Per-pixel photometric cost of a left disparity, comparable between predictions.

    Where the match is in view and not occluded (:func:`occlusion_mask`), the cost is the smaller of
    the reconstruction error (:func:`photometric_error` of the left view against the right one warped
    through ``disparity``) and the identity error (the right view unwarped, disparity 0); elsewhere
    the identity error. So a textureless or distant pixel, where zero disparity matches as well
    (auto-masking), and a pixel the objective cannot score cost a constant with no gradient: they
    neither pull the disparity nor change the count a mean is taken over.

    left, right: (B,3,H,W) in [0,255]; disparity: (B,1,H,W) px → (cost (B,1,H,W) in [0,1], scored:
    (B,1,H,W) bool, the pixels whose cost is the reconstruction error).
    """
    left, right, disparity = left.float(), right.float(), disparity.float()
    reconstruction, in_view = warp_right_to_left(right, disparity)
    error = photometric_error(left, reconstruction, ssim_share)
    identity = photometric_error(left, right, ssim_share)
    scored = in_view & ~occlusion_mask(disparity, occlusion_tolerance) & (error < identity)
    return torch.where(scored, error, identity), scored


def left_right_consistency(disparity: Tensor, right_disparity: Tensor, mask: Tensor) -> Tensor:
    """Mean relative left-right disagreement |d_L − d_R(x − d_L)| / (d_L + d_R(x − d_L) + 1) over
    ``mask``: in [0,1), so it weighs the same at every depth and cannot outweigh the photometric term.
    disparity, right_disparity: (B,1,H,W) px of the left and right views; mask: (B,1,H,W) bool."""
    projected, in_view = warp_right_to_left(right_disparity.float(), disparity.float())
    relative = (disparity - projected).abs() / (disparity.abs() + projected.abs() + 1.0)
    return masked_mean(relative, mask & in_view)


def zncc_dissimilarity(x: Tensor, y: Tensor, window: int = 7) -> Tensor:
    """(1 − ZNCC)/2 of the grey ``window``×``window`` neighbourhoods (reflection padding): 0 where
    they agree up to gain and offset (exposure, white balance), 0.5 uncorrelated or flat, 1 inverted.
    x, y: (B,3,H,W) in [0,255] → (B,1,H,W) in [0,1]."""
    pad = window // 2

    def local_mean(t: Tensor) -> Tensor:
        return F.avg_pool2d(F.pad(t, (pad, pad, pad, pad), mode="reflect"), window, 1)

    a, b = x.float().mean(1, keepdim=True) / 255.0, y.float().mean(1, keepdim=True) / 255.0
    mean_a, mean_b = local_mean(a), local_mean(b)
    var_a = (local_mean(a * a) - mean_a**2).clamp(min=0)
    var_b = (local_mean(b * b) - mean_b**2).clamp(min=0)
    covariance = local_mean(a * b) - mean_a * mean_b
    # a flat window (variance below 1e-6: a grey-level spread under 0.3/255) correlates with nothing
    flat = (var_a < 1e-6) | (var_b < 1e-6)
    zncc = torch.where(flat, 0.0, covariance / torch.sqrt(var_a * var_b).clamp(min=1e-12))
    return ((1 - zncc) / 2).clamp(0, 1)


def zncc_cost(
    left: Tensor, right: Tensor, disparity: Tensor, window: int = 7, occlusion_tolerance: float = 0.5
) -> Tensor:
    """Per-pixel :func:`zncc_dissimilarity` of the left view and the right one warped through the left
    ``disparity``, and 0.5 (uncorrelated) where the match is out of view or occluded
    (:func:`occlusion_mask`): a prediction cannot lower its mean by hiding pixels. The validation
    metric of self-supervised runs; unlike SSIM + L1 it ignores the gain and offset between the views.

    left, right: (B,3,H,W) in [0,255]; disparity: (B,1,H,W) px → (B,1,H,W) in [0,1].
    """
    disparity = disparity.float()
    reconstruction, in_view = warp_right_to_left(right.float(), disparity)
    visible = in_view & ~occlusion_mask(disparity, occlusion_tolerance)
    return torch.where(visible, zncc_dissimilarity(left, reconstruction, window), 0.5)


@dataclass(frozen=True)
class SelfSupervisedLoss:
    """Fine-tuning without ground truth, on rectified pairs. The terms are scale-free, so one set of
    weights serves any image size and disparity range:

    - photometric (the main term): :func:`reconstruction_cost`, α·(1−SSIM)/2 + (1−α)·L1 in [0,1]
      with α = ``ssim_share``, of the left view against the right one warped through the predicted
      left disparity; occluded and out-of-view pixels, and pixels where zero disparity matches as
      well (textureless, far: auto-masking), cost the identity warp's error, with no gradient;
    - smoothness: edge-aware first-order smoothness of the mean-normalised disparity;
    - left-right consistency (with ``lr_weight`` > 0): :func:`left_right_consistency`, relative, in
      [0,1), on the pixels the left disparity does not occlude (:func:`occlusion_mask`). The right
      disparity comes from running the model on the mirrored, swapped pair (a second forward pass).

    At a prediction 1 px noisy around the truth no weighted term outweighs the photometric one, and
    per pixel of disparity the left-right term at weight 1 pulls within a factor 3 of the photometric
    one (``tests/training/test_losses.py``). It is off by default: fine-tuning the packaged weights
    with it adapted less (``benchmarks/bench_self_supervised.py --lr-weight``); agreeing with a poor
    right-view prediction is cheaper than matching the images.

    Photometric and smoothness terms apply to every prediction ``forward_train`` returns (coarse to
    fine, averaged); left-right consistency to the final one. ``scored`` (logged, not optimised) is
    the share of pixels the final prediction's photometric term scores.
    """

    photometric_weight: float = 1.0
    ssim_share: float = 0.85
    smoothness_weight: float = 0.02
    lr_weight: float = 0.0
    occlusion_tolerance: float = 0.5

    def __call__(
        self, left: Tensor, right: Tensor, predictions: Sequence[Tensor], right_disparity: Tensor | None = None
    ) -> dict[str, Tensor]:
        """left, right: (B,3,H,W) in [0,255]; predictions: left disparities (B,1,H,W) px, coarse to
        fine; right_disparity: (B,1,H,W) px of the right view, needed when ``lr_weight`` > 0."""
        left, right = left.float(), right.float()
        photometric, smoothness = [], []
        for disparity in predictions:
            disparity = disparity.float()
            if disparity.shape[-2:] != left.shape[-2:]:
                raise EdgeStereoError(f"self-supervised loss: prediction {tuple(disparity.shape)} is not full "
                                      f"resolution {tuple(left.shape[-2:])}")
            cost, scored = reconstruction_cost(left, right, disparity, self.ssim_share, self.occlusion_tolerance)
            photometric.append(cost.mean())
            smoothness.append(edge_aware_smoothness(disparity, left))
        terms = {"photometric": torch.stack(photometric).mean(), "smoothness": torch.stack(smoothness).mean()}
        loss = self.photometric_weight * terms["photometric"] + self.smoothness_weight * terms["smoothness"]
        if self.lr_weight > 0:
            if right_disparity is None:
                raise EdgeStereoError("self-supervised loss: lr_weight > 0 needs the right-view disparity")
            final = predictions[-1].float()
            visible = ~occlusion_mask(final, self.occlusion_tolerance)
            terms["lr_consistency"] = left_right_consistency(final, right_disparity, visible)
            loss = loss + self.lr_weight * terms["lr_consistency"]
        terms["scored"] = scored.float().mean()
        return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}
