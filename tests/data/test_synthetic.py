"""The synthetic generator: exact ground truth, reproducibility, the data set on the fly and on disk."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from edgestereo.data import collate_stereo, create_dataset
from edgestereo.data.synthetic import SyntheticConfig, render_pair
from edgestereo.data.synthetic.dataset import write_synthetic
from edgestereo.data.synthetic.scene import disparity_at, solve_left_column
from edgestereo.data.synthetic.textures import NATURAL_IMAGES
from edgestereo.errors import EdgeStereoError

SMALL = {"height": 96, "width": 192, "max_disp": 40.0}
#: mean |left − right warped by the ground truth| over pixels both cameras see, in 8-bit levels, for
#: matte surfaces and identical cameras. What remains is interpolation and anti-aliased edges (most in
#: photograph scenes, whose detail reaches closer to the pixel pitch).
WARP_MAE_BOUND = 3.0


def warp_right_to_left(right: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """right sampled at (x − d(x,y), y): the left image as the ground truth predicts it."""
    height, width = disp.shape
    map_x = np.arange(width, dtype=np.float32)[None, :] - disp
    map_y = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    return cv2.remap(right, map_x, map_y, cv2.INTER_LINEAR)


def warp_error(left: np.ndarray, right: np.ndarray, disp: np.ndarray, mask: np.ndarray) -> float:
    predicted = warp_right_to_left(right, disp).astype(np.float32)
    return float(np.abs(predicted - left.astype(np.float32)).mean(axis=2)[mask].mean())


@pytest.mark.parametrize("index", range(4))
def test_right_view_warped_by_ground_truth_reproduces_the_left_view(index):
    pair = render_pair(SyntheticConfig.lambertian(**SMALL), seed=5, index=index)
    visible = ~pair.occlusion
    assert visible.mean() > 0.5
    exact = warp_error(pair.left, pair.right, pair.disp, visible)
    assert exact < WARP_MAE_BOUND
    # exact to a fraction of a pixel: half a pixel either way is clearly worse
    for offset in (-0.5, 0.5):
        assert exact < 0.75 * warp_error(pair.left, pair.right, pair.disp + offset, visible)
    # and the other way round, with the right disparity
    mirrored = (pair.right[:, ::-1], pair.left[:, ::-1], pair.disp_right[:, ::-1], ~pair.occlusion_right[:, ::-1])
    flipped = warp_error(*mirrored)
    assert flipped < WARP_MAE_BOUND


def test_the_check_fails_for_a_wrong_ground_truth():
    pair = render_pair(SyntheticConfig.lambertian(**SMALL), seed=5, index=0)
    visible = ~pair.occlusion
    exact = warp_error(pair.left, pair.right, pair.disp, visible)
    wrong = warp_error(pair.left, pair.right, pair.disp + 3, visible)
    assert wrong > 2 * WARP_MAE_BOUND and wrong > 4 * exact


def test_left_and_right_disparities_agree_where_both_cameras_see():
    pair = render_pair(SyntheticConfig(**SMALL), seed=1, index=2)
    height, width = pair.disp.shape
    x_right = np.arange(width)[None, :] - pair.disp
    rows = np.repeat(np.arange(height)[:, None], width, axis=1)
    visible = ~pair.occlusion
    sampled = pair.disp_right[rows[visible], np.clip(np.round(x_right[visible]).astype(int), 0, width - 1)]
    assert np.median(np.abs(sampled - pair.disp[visible])) < 0.05


def test_disparities_are_positive_below_max_disp_and_spread_out():
    config = SyntheticConfig(**SMALL)
    disps = np.concatenate([render_pair(config, 2, i).disp.ravel() for i in range(6)])
    assert disps.min() >= 1.0 and disps.max() < config.max_disp
    # most pixels small or medium, as in real scenes, but the range is used
    assert np.median(disps) < 0.35 * config.max_disp
    assert np.percentile(disps, 99) > 0.4 * config.max_disp


def test_left_border_strip_is_occluded_and_occlusion_follows_the_disparity():
    pair = render_pair(SyntheticConfig(**SMALL), seed=3, index=0)
    columns = np.arange(pair.disp.shape[1])[None, :]
    assert pair.occlusion[columns < pair.disp - 1].all()  # the right camera does not see that far left
    assert 0.01 < pair.occlusion.mean() < 0.6


def test_sample_is_a_pure_function_of_seed_stream_and_index():
    config = SyntheticConfig(**SMALL)
    first, again = render_pair(config, 7, 3), render_pair(config, 7, 3)
    for name in ("left", "right", "disp", "disp_right", "occlusion", "occlusion_right"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.left, render_pair(config, 7, 4).left)
    assert not np.array_equal(first.left, render_pair(config, 8, 3).left)
    assert not np.array_equal(first.left, render_pair(config, 7, 3, stream=1).left)


def test_photometric_differences_between_the_views():
    pair = render_pair(SyntheticConfig(**SMALL), seed=4, index=1)
    lambertian = render_pair(SyntheticConfig.lambertian(**SMALL), seed=4, index=1)
    visible = ~pair.occlusion
    assert warp_error(pair.left, pair.right, pair.disp, visible) > warp_error(
        lambertian.left, lambertian.right, lambertian.disp, visible)


def test_quadratic_surface_solution_is_exact():
    coeffs = np.array([12.0, 0.2, -0.05, -1e-3, 4e-4, -2e-4])
    x_left = np.linspace(0, 150, 40)[None, :]
    y = np.linspace(0, 90, 30)[:, None]
    x_right = x_left - disparity_at(coeffs, x_left, y)
    np.testing.assert_allclose(solve_left_column(coeffs, x_right, y), np.broadcast_to(x_left, x_right.shape),
                               atol=1e-9)


def test_the_evaluation_image_is_never_a_texture():
    assert "stereo_motorcycle" not in NATURAL_IMAGES


def test_config_validation():
    with pytest.raises(EdgeStereoError, match="max_disp"):
        SyntheticConfig(width=64, max_disp=64)
    with pytest.raises(EdgeStereoError, match="unknown synthetic option"):
        create_dataset("synthetic", num=2, sparkle=True)


def test_dataset_on_the_fly_and_dataloader_workers_agree():
    dataset = create_dataset("synthetic", num=4, size=(48, 96), max_disp=16, seed=9)
    sample = dataset[2]
    assert set(sample) == {"left", "right", "disp", "valid", "disp_right", "valid_right", "meta"}
    assert sample["valid"].all() and sample["meta"]["index"] == 2 and sample["meta"]["dataset"] == "synthetic"
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_stereo)
    batches = list(loader)
    np.testing.assert_array_equal(batches[1]["disp"][0, 0].numpy(), sample["disp"])
    noc = create_dataset("synthetic", num=4, size=(48, 96), max_disp=16, seed=9, noc=True)[2]
    assert not noc["valid"].all() and noc["valid"].any()
    assert not np.array_equal(dataset[0]["left"], create_dataset("synthetic", split="test", num=1, size=(48, 96),
                                                                    max_disp=16, seed=9)[0]["left"])


def test_written_set_reads_back_identically_and_resumes(tmp_path):
    config = SyntheticConfig(height=48, width=96, max_disp=16)
    calls = []
    write_synthetic(tmp_path, 3, config, seed=2, progress=lambda done, total: calls.append(done))
    assert calls[-1] == 3
    on_disk = create_dataset("synthetic", tmp_path, noc=True)
    on_the_fly = create_dataset("synthetic", num=3, size=(48, 96), max_disp=16, seed=2, noc=True)
    for index in range(3):
        a, b = on_disk[index], on_the_fly[index]
        for key in ("left", "right", "disp", "valid", "disp_right", "valid_right"):
            np.testing.assert_array_equal(a[key], b[key])
        assert a["meta"]["files"]["left"].endswith(f"left/{index:06d}.png")

    (tmp_path / "disp" / "000001.pfm").unlink()
    calls.clear()
    write_synthetic(tmp_path, 4, config, seed=2, progress=lambda done, total: calls.append(done))
    assert calls[0] == 2  # two samples were complete, two are rendered
    np.testing.assert_array_equal(create_dataset("synthetic", tmp_path, noc=True)[1]["disp"], on_the_fly[1]["disp"])
    assert json.loads((tmp_path / "manifest.json").read_text())["num"] == 4

    with pytest.raises(EdgeStereoError, match="other settings"):
        write_synthetic(tmp_path, 4, config, seed=3)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(EdgeStereoError, match="not empty and is not a synthetic set"):
        write_synthetic(tmp_path / "other", 2, config)
    with pytest.raises(EdgeStereoError, match=r"no manifest\.json"):
        create_dataset("synthetic", tmp_path / "other")
