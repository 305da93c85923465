"""The edges of the deploy ops' contracts that their parity tests do not reach: each input check with
one argument wrong and its message, the smallest sizes that are valid, the default arguments, biases.
Found by mutation testing (docs/testing.md)."""

import pytest
import torch
import torch.nn.functional as F

from edgestereo.errors import EdgeStereoError
from edgestereo.ops.conv3d import (
    ConvTranspose3dOp,
    conv3d_slices,
    conv_transpose3d_cropped,
    conv_transpose3d_slices,
    slices_to_volume,
    volume_to_slices,
)
from edgestereo.ops.convex_upsample import convex_upsample_4d, convex_upsample_reference
from edgestereo.ops.correlation import Correlation1d, correlation_volume_reference, correlation_volume_shift
from edgestereo.ops.correlation_pyramid import CorrelationPyramid1d, all_pairs_correlation_matmul
from edgestereo.ops.cost_volume3d import VolumeLayout, difference_maps
from edgestereo.ops.local_cost import LocalCost, local_cost_hat, local_cost_reference
from edgestereo.ops.unfold import NeighbourUnfold
from edgestereo.ops.upsample3d import linear_resize_matrix


def _rand(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))


def test_each_input_check_refuses_one_wrong_argument_and_says_what_it_expected():
    with pytest.raises(ValueError, match=r"expected flow \(B,D,H,W\) and mask \(B,144,H,W\) for factor 4, "
                                         r"got \(1, 1, 4, 4\) and \(1, 144, 4\)"):
        convex_upsample_reference(_rand(1, 1, 4, 4), _rand(1, 144, 4), 4)
    with pytest.raises(ValueError, match=r"got \(1, 4, 4\) and \(1, 144, 4, 4\)"):
        convex_upsample_4d(_rand(1, 4, 4), _rand(1, 144, 4, 4), 4)
    with pytest.raises(ValueError, match=r"expected \(B,C,H,W1\) and \(B,C,H,W2\) features, got \(1, 2, 3, 4\)"):
        all_pairs_correlation_matmul(_rand(1, 2, 3, 4), _rand(1, 2, 3))
    with pytest.raises(ValueError, match=r"got \(2, 3, 4\)"):
        all_pairs_correlation_matmul(_rand(2, 3, 4), _rand(1, 2, 3, 4))
    with pytest.raises(EdgeStereoError, match=r"local cost needs a volume \(B,D,H,W\) and a position \(B,1,H,W\)"):
        local_cost_reference(_rand(1, 6, 4, 4), _rand(1, 4, 4), 1)
    with pytest.raises(EdgeStereoError, match=r"local cost needs a volume"):
        local_cost_hat(_rand(6, 4, 4), _rand(1, 1, 4, 4), 1)
    with pytest.raises(EdgeStereoError, match="local cost radius must be ≥ 0, got -1"):
        local_cost_reference(_rand(1, 6, 4, 4), _rand(1, 1, 4, 4), -1)
    with pytest.raises(EdgeStereoError, match="correlation needs at least one candidate disparity, got 0"):
        correlation_volume_reference(_rand(1, 2, 4, 4), _rand(1, 2, 4, 4), 0)
    with pytest.raises(ValueError, match=r"expected two \(B,C,H,W\) feature maps of one shape, got \(2, 3, 4\) "
                                         r"and \(2, 3, 4\)"):
        difference_maps(_rand(2, 3, 4), _rand(2, 3, 4), 2)
    with pytest.raises(ValueError, match="num_disp must be ≥ 1, got 0"):
        difference_maps(_rand(1, 2, 3, 4), _rand(1, 2, 3, 4), 0)
    with pytest.raises(ValueError, match="side must be 'left' or 'right', got 'up'"):
        difference_maps(_rand(1, 2, 3, 4), _rand(1, 2, 3, 4), 2, side="up")
    with pytest.raises(ValueError, match=r"expected a \(B,1,D,H,W\) cost volume, got \(1, 2, 3, 4, 4\)"):
        VolumeLayout().cost_maps(_rand(1, 2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"expected a \(B,1,D,H,W\) cost volume, got \(1, 3, 4, 4\)"):
        VolumeLayout().cost_maps(_rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"expected a \(B,C,D,H,W\) volume, got shape \(1, 2, 3, 4\)"):
        volume_to_slices(_rand(1, 2, 3, 4))
    with pytest.raises(ValueError, match=r"expected an int or three ints, got \(1, 2\)"):
        conv3d_slices(_rand(4, 2, 5, 5), _rand(3, 2, 3, 3, 3), stride=(1, 2))
    with pytest.raises(ValueError, match="depth 2 is too small for kernel 3 with padding 0"):
        conv3d_slices(_rand(2, 2, 5, 5), _rand(3, 2, 3, 3, 3))
    with pytest.raises(ValueError, match="depth kernel 1 smaller than depth stride 2 is not supported"):
        conv_transpose3d_slices(_rand(2, 2, 5, 5), _rand(2, 3, 1, 3, 3), stride=(2, 1, 1))
    with pytest.raises(ValueError, match="sizes must be positive, got 0 → 4"):
        linear_resize_matrix(0, 4)
    with pytest.raises(ValueError, match="sizes must be positive, got 4 → 0"):
        linear_resize_matrix(4, 0)


def test_the_smallest_valid_sizes_are_accepted():
    left, right = _rand(1, 2, 3, 5), _rand(1, 2, 3, 5)
    for deploy in (False, True):
        one = Correlation1d(1)
        one.switch_to_deploy(deploy)
        torch.testing.assert_close(one(left, right), (left * right).mean(1, keepdim=True))
    torch.testing.assert_close(correlation_volume_shift(left, right, 1), correlation_volume_reference(left, right, 1))
    volume, position = _rand(1, 6, 3, 4), torch.full((1, 1, 3, 4), 2.0)
    for deploy in (False, True):
        zero = LocalCost(0)
        zero.switch_to_deploy(deploy)
        torch.testing.assert_close(zero(volume, position), volume[:, 2:3])
    assert linear_resize_matrix(1, 3).tolist() == [[1.0], [1.0], [1.0]]
    assert linear_resize_matrix(3, 1).shape == (1, 3)
    # a kernel as deep as the volume: output depth 1
    slices, weight = _rand(3, 2, 5, 5), _rand(4, 2, 3, 3, 3)
    expected = F.conv3d(slices_to_volume(slices, 2), weight)
    torch.testing.assert_close(slices_to_volume(conv3d_slices(slices, weight), 4), expected)
    # one disparity: a one-slice stack
    layout = VolumeLayout()
    layout.switch_to_deploy(True)
    assert layout([_rand(1, 2, 3, 4)]).shape == (1, 2, 3, 4)


def test_default_arguments_are_the_plain_operations():
    volume, weight = _rand(1, 2, 4, 5, 5), _rand(3, 2, 2, 3, 3)
    torch.testing.assert_close(slices_to_volume(conv3d_slices(volume_to_slices(volume), weight), 3),
                               F.conv3d(volume, weight))
    up = _rand(2, 3, 2, 3, 3)  # (Cin, Cout, kd, kh, kw)
    torch.testing.assert_close(conv_transpose3d_cropped(volume, up), F.conv_transpose3d(volume, up))
    torch.testing.assert_close(slices_to_volume(conv_transpose3d_slices(volume_to_slices(volume), up), 3),
                               F.conv_transpose3d(volume, up))
    pyramid = CorrelationPyramid1d()
    assert (pyramid.num_levels, pyramid.radius, pyramid.channels) == (4, 4, 36)  # RAFT-Stereo's published setting
    unfold = NeighbourUnfold()
    assert unfold(_rand(1, 1, 4, 4)).shape == (1, 4, 4, 4)


def test_the_transposed_convolution_op_adds_its_bias_on_both_paths():
    volume, weight, bias = _rand(1, 2, 3, 4, 4), _rand(2, 3, 3, 3, 3), _rand(3)
    expected = F.conv_transpose3d(volume, weight, bias, (2, 2, 2), (1, 1, 1), (1, 1, 1))
    op = ConvTranspose3dOp()
    reference = op(volume, weight, bias, (2, 2, 2), (1, 1, 1), (1, 1, 1))
    op.switch_to_deploy(True)
    deployed = slices_to_volume(op(volume_to_slices(volume), weight, bias, (2, 2, 2), (1, 1, 1), (1, 1, 1)), 3)
    torch.testing.assert_close(reference, expected)
    torch.testing.assert_close(deployed, expected)


def test_disparity_maps_use_the_width_and_fill_unreachable_disparities_with_zeros():
    # fewer channels than disparities (a width read from the wrong axis would zero d ≥ C)
    reference = _rand(1, 2, 3, 8)
    target = reference.flip(-1)
    maps = difference_maps(reference, target, 4)
    torch.testing.assert_close(maps[3][..., 3:], reference[..., 3:] - target[..., :-3])
    assert maps[3][..., 3:].abs().sum() > 0 and (maps[3][..., :3] == 0).all()
    narrow = difference_maps(_rand(1, 2, 3, 1), _rand(1, 2, 3, 1) + 1.0, 3)  # a 1-px wide map: d = 1, 2 unreachable
    assert [float(m.abs().sum()) > 0 for m in narrow] == [True, False, False]


def test_a_fresh_op_is_on_its_reference_path_and_says_so():
    op = Correlation1d(4)
    assert op.deploy_mode is False and "deploy=False" in repr(op)
