"""Augmentation for stereo training: transforms that take a sample dict and return one.

Every random transform is called as ``t(sample, rng=None)``. ``Compose`` draws one generator per
sample and hands it down, so a pipeline is reproducible:

* with ``seed`` set, sample ``i`` in epoch ``e`` is augmented from ``default_rng([seed, e, i])``
  (``i`` = ``meta["index"]``), whatever the number of DataLoader workers or their order;
  ``set_epoch(e)`` changes the draws from one epoch to the next;
* without a seed, each sample's generator is seeded from PyTorch's global generator, which PyTorch
  seeds apart in every DataLoader worker and which ``torch.manual_seed`` makes reproducible.

Geometry is kept exact: scaling multiplies the disparity by the horizontal scale and resamples
disparity and validity with nearest neighbours (no blend across depth edges, sparse ground truth stays
sparse); swap-and-flip mirrors both views and exchanges them, which needs the right-view disparity.

>>> import numpy as np
>>> sample = {"left": np.zeros((40, 60, 3), np.uint8), "right": np.zeros((40, 60, 3), np.uint8),
...           "disp": np.ones((40, 60), np.float32), "valid": np.ones((40, 60), bool), "meta": {"index": 0}}
>>> out = build_augmentation("synthetic", crop_size=(32, 48), seed=0)(sample)
>>> out["left"].shape, out["disp"].shape
((32, 48, 3), (32, 48))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from edgestereo.errors import EdgeStereoError

__all__ = [
    "RECIPES",
    "ColorJitter",
    "Compose",
    "Eraser",
    "RandomCrop",
    "RandomScale",
    "SwapFlip",
    "VerticalFlip",
    "build_augmentation",
    "training_transform",
]

Sample = dict[str, Any]
_IMAGES = ("left", "right")
_MAPS = ("disp", "valid", "disp_right", "valid_right")


def _default_rng() -> np.random.Generator:
    """A generator seeded from PyTorch's global generator: reproducible under ``torch.manual_seed`` and
    different in every DataLoader worker (PyTorch seeds each worker apart)."""
    import torch

    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


def _present(sample: Sample, keys: Sequence[str]) -> list[str]:
    return [key for key in keys if key in sample]


class RandomTransform:
    """Base class: ``__call__(sample, rng=None)``; without ``rng`` one is seeded from PyTorch's generator."""

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        return self.apply(dict(sample), rng if rng is not None else _default_rng())

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class RandomCrop(RandomTransform):
    """The same (H,W) window from every image and map; smaller samples are padded at the bottom and
    right first (images with 0, ``valid`` False)."""

    def __init__(self, size: tuple[int, int]) -> None:
        if len(size) != 2 or min(size) < 1:
            raise EdgeStereoError(f"crop size must be (H, W) ≥ 1, got {size}")
        self.size = (int(size[0]), int(size[1]))

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample["left"].shape[:2]
        crop_h, crop_w = self.size
        pad_h, pad_w = max(0, crop_h - height), max(0, crop_w - width)
        if pad_h or pad_w:
            for key in _present(sample, (*_IMAGES, *_MAPS)):
                array = sample[key]
                widths = ((0, pad_h), (0, pad_w)) + (((0, 0),) if array.ndim == 3 else ())
                sample[key] = np.pad(array, widths)
            height, width = height + pad_h, width + pad_w
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        for key in _present(sample, (*_IMAGES, *_MAPS)):
            sample[key] = np.ascontiguousarray(sample[key][top : top + crop_h, left : left + crop_w])
        return sample


class RandomScale(RandomTransform):
    """Resize by 2^u, u ~ U(min_scale, max_scale) (log2 units); with probability ``stretch_prob`` the
    two axes are stretched apart by a further 2^±max_stretch each. Disparity is multiplied by the
    horizontal scale. ``min_size`` (H,W): never shrink below it (the crop that follows). Applied
    with probability ``prob``."""

    def __init__(self, min_scale: float = -0.2, max_scale: float = 0.4, stretch_prob: float = 0.8,
                 max_stretch: float = 0.2, prob: float = 1.0, min_size: tuple[int, int] | None = None) -> None:
        if min_scale > max_scale:
            raise EdgeStereoError(f"min_scale {min_scale} is above max_scale {max_scale}")
        self.min_scale, self.max_scale = min_scale, max_scale
        self.stretch_prob, self.max_stretch, self.prob = stretch_prob, max_stretch, prob
        self.min_size = min_size

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.prob:
            return sample
        scale = 2.0 ** rng.uniform(self.min_scale, self.max_scale)
        scale_x = scale_y = scale
        if rng.random() < self.stretch_prob:
            scale_x *= 2.0 ** rng.uniform(-self.max_stretch, self.max_stretch)
            scale_y *= 2.0 ** rng.uniform(-self.max_stretch, self.max_stretch)
        height, width = sample["left"].shape[:2]
        if self.min_size is not None:
            scale_y = max(scale_y, (self.min_size[0] + 0.5) / height)
            scale_x = max(scale_x, (self.min_size[1] + 0.5) / width)
        size = (max(1, round(width * scale_x)), max(1, round(height * scale_y)))
        scale_x = size[0] / width  # the scale actually applied, so disparities stay exact
        for key in _present(sample, _IMAGES):
            sample[key] = cv2.resize(sample[key], size, interpolation=cv2.INTER_LINEAR)
        for key in _present(sample, _MAPS):
            resized = cv2.resize(sample[key].astype(np.uint8) if key.startswith("valid") else sample[key], size,
                                 interpolation=cv2.INTER_NEAREST)
            sample[key] = resized.astype(bool) if key.startswith("valid") else resized * np.float32(scale_x)
        return sample


class ColorJitter(RandomTransform):
    """Brightness, contrast, saturation (factors in 1 ± value), hue (fraction of the colour circle)
    and gamma (range). With probability ``asymmetric_prob`` the right view gets its own draw, as two
    real cameras would."""

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.05,
                 gamma: tuple[float, float] = (0.8, 1.2), asymmetric_prob: float = 0.2) -> None:
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.gamma, self.asymmetric_prob = tuple(gamma), asymmetric_prob

    def _draw(self, rng: np.random.Generator) -> tuple[float, ...]:
        return (rng.uniform(1 - self.brightness, 1 + self.brightness),
                rng.uniform(1 - self.contrast, 1 + self.contrast),
                rng.uniform(1 - self.saturation, 1 + self.saturation),
                rng.uniform(-self.hue, self.hue),
                rng.uniform(*self.gamma))

    @staticmethod
    def _jitter(image: np.ndarray, params: tuple[float, ...]) -> np.ndarray:
        brightness, contrast, saturation, hue, gamma = params
        if hue:
            hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
            hsv[:, :, 0] = ((hsv[:, :, 0].astype(np.int16) + round(hue * 180)) % 180).astype(np.uint8)
            image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        pixels = image.astype(np.float32)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)[:, :, None]
        pixels = grey + np.float32(saturation) * (pixels - grey)
        pixels = np.float32(grey.mean()) + np.float32(contrast) * (pixels - np.float32(grey.mean()))
        pixels = np.clip(pixels * np.float32(brightness), 0, 255) / 255.0
        return cv2.convertScaleAbs(cv2.pow(pixels, gamma), alpha=255.0)

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        params = self._draw(rng)
        right_params = self._draw(rng) if rng.random() < self.asymmetric_prob else params
        sample["left"] = self._jitter(sample["left"], params)
        sample["right"] = self._jitter(sample["right"], right_params)
        return sample


class Eraser(RandomTransform):
    """Occlusion patches: with probability ``prob``, 1 to ``max_patches`` rectangles of the right view
    (sides in ``size_range`` pixels) are filled with its mean colour, so the network learns to fill
    in where the right view shows nothing useful."""

    def __init__(self, prob: float = 0.5, max_patches: int = 2, size_range: tuple[int, int] = (50, 100)) -> None:
        self.prob, self.max_patches, self.size_range = prob, max_patches, tuple(size_range)

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.prob:
            return sample
        right = sample["right"].copy()
        height, width = right.shape[:2]
        mean = right.reshape(-1, 3).mean(axis=0).astype(right.dtype)
        for _ in range(int(rng.integers(1, self.max_patches + 1))):
            patch_w, patch_h = (int(rng.integers(self.size_range[0], self.size_range[1] + 1)) for _ in range(2))
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
            right[y : y + patch_h, x : x + patch_w] = mean
        sample["right"] = right
        return sample


class VerticalFlip(RandomTransform):
    """Flip every image and map upside down (rectification is kept) with probability ``prob``."""

    def __init__(self, prob: float = 0.1) -> None:
        self.prob = prob

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() < self.prob:
            for key in _present(sample, (*_IMAGES, *_MAPS)):
                sample[key] = np.ascontiguousarray(sample[key][::-1])
        return sample


class SwapFlip(RandomTransform):
    """With probability ``prob``: mirror both views and swap them (the mirrored right view becomes the
    left one), with the right-view disparity as the new ground truth. Samples without
    ``disp_right`` are left unchanged."""

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if "disp_right" not in sample or rng.random() >= self.prob:
            return sample

        def mirror(key: str) -> np.ndarray:
            return np.ascontiguousarray(sample[key][:, ::-1])

        sample["left"], sample["right"] = mirror("right"), mirror("left")
        sample["disp"], sample["disp_right"] = mirror("disp_right"), mirror("disp")
        if "valid_right" in sample:
            sample["valid"], sample["valid_right"] = mirror("valid_right"), mirror("valid")
        else:
            sample["valid"] = sample["disp"] > 0
        return sample


class Compose:
    """Apply transforms in order with one generator per sample (see the module docstring)."""

    def __init__(self, transforms: Sequence[RandomTransform], seed: int | None = None) -> None:
        self.transforms = list(transforms)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw different augmentations in this epoch (only with a seed; worker processes that persist
        across epochs keep the epoch they were started with)."""
        self.epoch = int(epoch)

    def rng_for(self, sample: Sample) -> np.random.Generator:
        if self.seed is None:
            return _default_rng()
        index = sample.get("meta", {}).get("index")
        if index is None:
            raise EdgeStereoError("a seeded augmentation needs meta['index'] in the sample (data sets set it)")
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        rng = rng if rng is not None else self.rng_for(sample)
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}], seed={self.seed})"


#: the augmentation recipes: name → what :func:`build_augmentation` puts in the pipeline.
RECIPES = {
    "sceneflow": "ColorJitter(asym 0.2) → RandomScale(2^[-0.2,0.4], stretch 0.8·2^±0.2) → RandomCrop → "
                 "Eraser(0.5) → SwapFlip(0.5, with right disparity)",
    "synthetic": "as sceneflow, plus VerticalFlip(0.1)",
    "kitti": "ColorJitter(asym 0.2) → RandomScale(2^[-0.2,0.4], stretch 0.8·2^±0.2) → RandomCrop → Eraser(0.5)",
    "middlebury": "ColorJitter(asym 0.5) → RandomScale(2^[-1,-0.2], stretch 0.8·2^±0.2) → RandomCrop → "
                  "Eraser(0.5) → SwapFlip(0.5, with right disparity)",
    "none": "nothing (evaluation)",
}


def build_augmentation(recipe: str, crop_size: tuple[int, int] | None = None, seed: int | None = None) -> Compose:
    """The pipeline of a recipe (see :data:`RECIPES`). ``crop_size`` (H,W): the random crop; None
    keeps whole images and then also skips the rescaling (so equal-sized samples stay equal)."""
    if recipe not in RECIPES:
        raise EdgeStereoError(f"unknown augmentation recipe {recipe!r}; choose {', '.join(RECIPES)}")
    if recipe == "none":
        return Compose([], seed)
    scales = {"middlebury": (-1.0, -0.2)}.get(recipe, (-0.2, 0.4))
    pipeline: list[RandomTransform] = [ColorJitter(asymmetric_prob=0.5 if recipe == "middlebury" else 0.2)]
    if crop_size is not None:
        pipeline += [RandomScale(*scales, min_size=crop_size), RandomCrop(crop_size)]
    pipeline.append(Eraser())
    if recipe != "kitti":
        pipeline.append(SwapFlip())
    if recipe == "synthetic":
        pipeline.append(VerticalFlip())
    return Compose(pipeline, seed)


def training_transform(crop_size: tuple[int, int] | None, augment: bool = True, recipe: str = "synthetic",
                       seed: int | None = None) -> Compose:
    """What training applies to each sample: the recipe's augmentation, or with ``augment=False`` only
    the random crop (nothing if ``crop_size`` is None). Call it as ``t(sample, rng)``."""
    if augment:
        return build_augmentation(recipe, crop_size, seed)
    return Compose([RandomCrop(crop_size)] if crop_size is not None else [], seed)
