"""Neighbourhood unfold: the one-hot convolution equals F.unfold, with the documented neighbour order."""

import pytest
import torch

from edgestereo.errors import EdgeStereoError
from edgestereo.ops.unfold import (
    NeighbourUnfold,
    neighbour_unfold_conv,
    neighbour_unfold_reference,
    one_hot_unfold_kernel,
)


@pytest.mark.parametrize("kernel_size", [1, 2, 3])
@pytest.mark.parametrize("channels", [1, 3])
def test_conv_twin_equals_reference(kernel_size, channels):
    x = torch.randn(2, channels, 5, 7, generator=torch.Generator().manual_seed(kernel_size))
    expected = neighbour_unfold_reference(x, kernel_size)
    assert expected.shape == (2, channels * kernel_size**2, 5, 7)
    torch.testing.assert_close(neighbour_unfold_conv(x, one_hot_unfold_kernel(channels, kernel_size)), expected)


def test_two_by_two_takes_upper_left_neighbours_with_zero_border():
    x = torch.arange(1.0, 7.0).view(1, 1, 2, 3)  # [[1, 2, 3], [4, 5, 6]]
    out = NeighbourUnfold(1, 2).forward(x)[0]
    assert out[:, 1, 2].tolist() == [2.0, 3.0, 5.0, 6.0]  # (y-1,x-1), (y-1,x), (y,x-1), (y,x)
    assert out[:, 0, 0].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_module_switch_keeps_state_dict_empty():
    module = NeighbourUnfold(1, 2)
    x = torch.randn(1, 1, 6, 8, dtype=torch.float64)
    reference = module(x)
    module.switch_to_deploy()
    torch.testing.assert_close(module(x), reference)
    assert not module.state_dict()
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(module, (x,))


def test_channel_mismatch_is_reported():
    with pytest.raises(EdgeStereoError, match=r"\(B,1,H,W\), got \(1, 2, 4, 4\)"):
        NeighbourUnfold(1, 2)(torch.zeros(1, 2, 4, 4))
    with pytest.raises(EdgeStereoError, match="kernel size"):
        one_hot_unfold_kernel(1, 0)
