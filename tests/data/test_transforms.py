"""Augmentation keeps the geometry exact: after every spatial transform the right view, warped by the
ground truth, still reproduces the left view; and every pipeline is reproducible."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgestereo.data import create_dataset
from edgestereo.data.synthetic import SyntheticConfig, render_pair
from edgestereo.data.synthetic.dataset import _sample_from_pair
from edgestereo.data.transforms import (
    RECIPES,
    ColorJitter,
    Compose,
    Eraser,
    RandomCrop,
    RandomScale,
    SwapFlip,
    VerticalFlip,
    build_augmentation,
    training_transform,
)
from edgestereo.errors import EdgeStereoError


def exact_sample(index: int = 0) -> dict:
    """A matte synthetic pair with right disparity; ``valid`` = seen by both cameras."""
    pair = render_pair(SyntheticConfig.lambertian(height=96, width=192, max_disp=32.0), seed=11, index=index)
    sample = _sample_from_pair(pair, noc=True)
    sample["meta"] = {"index": index}
    return sample


def warp_error(sample: dict) -> float:
    """Mean |left − right(x − d)| over valid pixels whose match is inside the right view (and one pixel
    away from the borders)."""
    disp, left, right = sample["disp"], sample["left"].astype(np.float32), sample["right"]
    height, width = disp.shape
    map_x = np.arange(width, dtype=np.float32)[None, :] - disp
    map_y = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    warped = cv2.remap(right, map_x, map_y, cv2.INTER_LINEAR).astype(np.float32)
    mask = sample["valid"] & (map_x >= 0)  # a crop can cut a match off the right view
    mask[[0, -1]] = False
    mask[:, [0, -1]] = False
    return float(np.abs(warped - left).mean(axis=2)[mask].mean())


def test_random_crop_is_the_same_window_everywhere_and_pads_small_samples():
    sample = exact_sample()
    out = RandomCrop((64, 128))(sample, np.random.default_rng(0))
    assert out["left"].shape == (64, 128, 3) and out["disp_right"].shape == (64, 128)
    assert warp_error(out) < 3.0
    padded = RandomCrop((120, 200))(sample, np.random.default_rng(0))
    assert padded["left"].shape == (120, 200, 3)
    assert not padded["valid"][96:].any() and not padded["valid"][:, 192:].any()


@pytest.mark.parametrize("seed", range(3))
def test_random_scale_and_stretch_scale_the_disparity(seed):
    sample = exact_sample(seed)
    before = warp_error(sample)
    transform = RandomScale(-0.5, 0.5, stretch_prob=1.0, max_stretch=0.3)
    out = transform(sample, np.random.default_rng(seed))
    assert out["left"].shape[:2] != sample["left"].shape[:2]
    assert out["disp"].shape == out["left"].shape[:2] == out["valid"].shape
    assert warp_error(out) < before + 2.0


def test_a_scale_that_forgot_the_disparity_fails_the_same_check():
    out = RandomScale(0.5, 0.5, stretch_prob=0.0)(exact_sample(), np.random.default_rng(0))
    assert out["left"].shape == (136, 272, 3)
    unscaled = dict(out, disp=out["disp"] / np.float32(272 / 192))
    assert warp_error(unscaled) > 2 * warp_error(out) + 1.0


def test_min_size_keeps_the_sample_large_enough_to_crop():
    out = RandomScale(-1.0, -1.0, min_size=(80, 150))(exact_sample(), np.random.default_rng(0))
    assert out["left"].shape[0] >= 80 and out["left"].shape[1] >= 150


def test_swap_flip_uses_the_right_disparity():
    sample = exact_sample()
    out = SwapFlip(prob=1.0)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(out["left"], sample["right"][:, ::-1])
    np.testing.assert_array_equal(out["disp"], sample["disp_right"][:, ::-1])
    assert warp_error(out) < 3.0
    without_right = {k: v for k, v in sample.items() if k not in ("disp_right", "valid_right")}
    unchanged = SwapFlip(prob=1.0)(without_right, np.random.default_rng(0))
    np.testing.assert_array_equal(unchanged["left"], sample["left"])


def test_vertical_flip_keeps_rows_aligned():
    sample = exact_sample()
    out = VerticalFlip(prob=1.0)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(out["disp"], sample["disp"][::-1])
    assert warp_error(out) == pytest.approx(warp_error(sample), abs=0.05)


def test_colour_jitter_can_treat_the_views_differently():
    sample = exact_sample()
    same = ColorJitter(asymmetric_prob=0.0)(sample, np.random.default_rng(1))
    apart = ColorJitter(asymmetric_prob=1.0)(sample, np.random.default_rng(1))
    np.testing.assert_array_equal(same["left"], apart["left"])
    assert warp_error(apart) > warp_error(same)
    assert same["left"].dtype == np.uint8 and same["disp"] is sample["disp"]


def test_eraser_changes_only_the_right_view():
    sample = exact_sample()
    out = Eraser(prob=1.0, max_patches=3, size_range=(10, 20))(sample, np.random.default_rng(2))
    np.testing.assert_array_equal(out["left"], sample["left"])
    assert not np.array_equal(out["right"], sample["right"])
    assert not np.array_equal(sample["right"], out["right"]) and sample["right"] is not out["right"]


def test_seeded_pipeline_is_reproducible_per_sample_and_epoch():
    pipeline = build_augmentation("synthetic", crop_size=(64, 96), seed=3)
    dataset = create_dataset("synthetic", num=3, size=(96, 192), max_disp=32, seed=1, transform=pipeline)
    first, again = dataset[1], dataset[1]
    for key in ("left", "right", "disp", "valid"):
        np.testing.assert_array_equal(first[key], again[key])
    assert first["left"].shape == (64, 96, 3)
    pipeline.set_epoch(1)
    assert not np.array_equal(dataset[1]["left"], first["left"])


def test_unseeded_pipeline_follows_torch_manual_seed():
    import torch

    sample = exact_sample()
    pipeline = build_augmentation("sceneflow", crop_size=(64, 96))
    torch.manual_seed(5)
    first = pipeline(sample)
    torch.manual_seed(5)
    np.testing.assert_array_equal(pipeline(sample)["left"], first["left"])


def test_recipes_and_training_transform():
    for recipe in RECIPES:
        pipeline = build_augmentation(recipe, crop_size=(48, 64), seed=0)
        out = pipeline(exact_sample())
        assert out["left"].shape == ((48, 64, 3) if recipe != "none" else (96, 192, 3))
    out = training_transform(None, augment=True)(exact_sample(), np.random.default_rng(0))
    assert out["left"].shape == (96, 192, 3)
    crop_only = training_transform((32, 32), augment=False)
    assert [type(t) for t in crop_only.transforms] == [RandomCrop]
    with pytest.raises(EdgeStereoError, match="recipe"):
        build_augmentation("imagenet", (32, 32))
    with pytest.raises(EdgeStereoError, match=r"meta\['index'\]"):
        Compose([RandomCrop((8, 8))], seed=0)({"left": np.zeros((9, 9, 3), np.uint8)})
