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

__all__ = [
    "MultiScaleSmoothL1Loss",
    "RobustLeftRightLoss",
    "SelfSupervisedLoss",
    "SequenceLoss",
    "StereoLoss",
    "distribution_loss",
    "edge_aware_smoothness",
    "left_predictions",
    "loss_mask",
    "masked_mean",
    "photometric_error",
    "pool_disparity",
    "published_loss",
    "robust_loss",
    "ssim_dissimilarity",
    "warp_right_to_left",
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


def left_predictions(outputs: Any) -> list[Tensor]:
    """The left-view predictions of ``forward_train`` outputs, coarse to fine: a tensor, a list of
    tensors, or a dict with a ``left`` entry (families that also predict the right view)."""
    if isinstance(outputs, Tensor):
        return [outputs]
    if isinstance(outputs, Mapping):
        if "left" not in outputs:
            raise EdgeStereoError(f"forward_train returned a dict without 'left' (keys: {', '.join(outputs)})")
        return left_predictions(outputs["left"])
    return list(outputs)


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
    against the block-averaged ground truth, Laplacian scale ``distribution_scale`` candidates.
    """

    weights: tuple[float, ...]
    max_disp: float | None = 192.0
    distribution_weight: float = 0.0
    distribution_scale: float = 0.5

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
        return {"loss": loss, **terms}


# --------------------------------------------------------------------------- family → published loss
def published_loss(model: nn.Module, max_disp: float | None = None) -> StereoLoss:
    """The loss ``model``'s family was published with (its class's ``training_loss``, inherited by
    subclasses). ``max_disp`` (px) overrides the published ground-truth cut-off; by default the
    model's ``config.max_disp`` when it has one."""
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
    options = dict(spec.options)
    if max_disp is not None:
        options["max_disp"] = float(max_disp)
    return factory(**options)


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


@dataclass(frozen=True)
class SelfSupervisedLoss:
    """Fine-tuning without ground truth (Monodepth-style, on rectified pairs):

    - photometric: the left image reconstructed from the right one through the predicted left
      disparity, α·(1−SSIM)/2 + (1−α)·L1 with α = ``ssim_share``, where the match is in view;
    - smoothness: edge-aware first-order smoothness of the mean-normalised disparity;
    - left-right consistency: |d_L − d_R(x − d_L)| where the right disparity d_R is predicted by
      running the model on the horizontally mirrored, swapped pair (costs a second forward pass;
      ``lr_weight`` = 0 skips it).

    Photometric and smoothness terms apply to every prediction ``forward_train`` returns (coarse to
    fine, averaged); left-right consistency to the final one.
    """

    photometric_weight: float = 1.0
    ssim_share: float = 0.85
    smoothness_weight: float = 0.1
    lr_weight: float = 1.0

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
            reconstruction, in_view = warp_right_to_left(right, disparity)
            photometric.append(masked_mean(photometric_error(left, reconstruction, self.ssim_share), in_view))
            smoothness.append(edge_aware_smoothness(disparity, left))
        terms = {"photometric": torch.stack(photometric).mean(), "smoothness": torch.stack(smoothness).mean()}
        loss = self.photometric_weight * terms["photometric"] + self.smoothness_weight * terms["smoothness"]
        if self.lr_weight > 0:
            if right_disparity is None:
                raise EdgeStereoError("self-supervised loss: lr_weight > 0 needs the right-view disparity")
            final = predictions[-1].float()
            projected, in_view = warp_right_to_left(right_disparity.float(), final)
            terms["lr_consistency"] = masked_mean((final - projected).abs(), in_view)
            loss = loss + self.lr_weight * terms["lr_consistency"]
        return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}
