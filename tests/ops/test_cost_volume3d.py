"""Cost volumes as per-disparity maps: equal to the in-place 5-D volumes of the published models."""

import pytest
import torch

from edgestereo.ops.conv3d import volume_to_slices
from edgestereo.ops.cost_volume3d import (
    VolumeLayout,
    concatenation_maps,
    difference_maps,
    disparity_regression,
    groupwise_correlation,
    groupwise_correlation_maps,
)


def _features(channels=8, height=3, width=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(2, channels, height, width, generator=generator, dtype=torch.float64),
            torch.randn(2, channels, height, width, generator=generator, dtype=torch.float64))


def _written_volume(reference, target, num_disp, channels_out, value):
    """Oracle: the volume written slice by slice into zeros, as StereoNet_PyTorch and GwcNet do it."""
    b, _, h, w = reference.shape
    volume = reference.new_zeros(b, channels_out, num_disp, h, w)
    for d in range(num_disp):
        if d == 0:
            volume[:, :, 0] = value(reference, target)
        elif d < w:
            volume[:, :, d, :, d:] = value(reference[..., d:], target[..., :-d])
    return volume


@pytest.mark.parametrize("num_disp", [1, 4, 9])  # 9 > width: the far candidates stay zero
def test_difference_volume_left(num_disp):
    left, right = _features()
    expected = _written_volume(left, right, num_disp, 8, torch.sub)
    torch.testing.assert_close(torch.stack(difference_maps(left, right, num_disp), dim=2), expected)


def test_difference_volume_right_side_matches_x_plus_d():
    right, left = _features()
    maps = difference_maps(right, left, 3, side="right")
    torch.testing.assert_close(maps[2][..., :-2], right[..., :-2] - left[..., 2:])
    assert (maps[2][..., -2:] == 0).all()


def test_groupwise_correlation_is_group_mean_of_products():
    left, right = _features(channels=12)
    expected = (left * right).view(2, 3, 4, 3, 7).mean(dim=2)
    torch.testing.assert_close(groupwise_correlation(left, right, 3), expected)
    with pytest.raises(ValueError, match="groups"):
        groupwise_correlation(left, right, 5)


def test_groupwise_and_concatenation_volumes():
    left, right = _features(channels=12)
    gwc = _written_volume(left, right, 5, 4, lambda r, t: groupwise_correlation(r, t, 4))
    torch.testing.assert_close(torch.stack(groupwise_correlation_maps(left, right, 5, 4), dim=2), gwc)
    concat = _written_volume(left, right, 5, 24, lambda r, t: torch.cat((r, t), dim=1))
    torch.testing.assert_close(torch.stack(concatenation_maps(left, right, 5), dim=2), concat)


def test_layout_stacks_volume_or_slices():
    left, right = _features()
    maps = difference_maps(left, right, 4)
    layout = VolumeLayout()
    volume = layout(maps)
    assert volume.shape == (2, 8, 4, 3, 7)
    layout.switch_to_deploy()
    torch.testing.assert_close(layout(maps), volume_to_slices(volume))


def test_cost_maps_from_either_layout():
    cost = torch.randn(2, 1, 5, 3, 4)
    layout = VolumeLayout()
    expected = cost[:, 0]
    torch.testing.assert_close(layout.cost_maps(cost), expected)
    layout.switch_to_deploy()
    torch.testing.assert_close(layout.cost_maps(volume_to_slices(cost)), expected)
    with pytest.raises(ValueError, match="slice stack"):
        layout.cost_maps(cost)


def test_disparity_regression_is_expectation():
    probabilities = torch.softmax(torch.randn(2, 6, 3, 4), dim=1)
    disparities = torch.linspace(0, 10, 6)
    expected = (probabilities * disparities.view(1, 6, 1, 1)).sum(1, keepdim=True)
    torch.testing.assert_close(disparity_regression(probabilities, disparities), expected)
    one_hot = torch.nn.functional.one_hot(torch.full((1, 2, 2), 3), 6).permute(0, 3, 1, 2).float()
    assert (disparity_regression(one_hot, disparities) == 6.0).all()
    with pytest.raises(ValueError, match="disparities"):
        disparity_regression(probabilities, disparities[:5])
