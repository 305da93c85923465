"""Trilinear cost up-sampling: the separable rank-≤4 form equals PyTorch's trilinear interpolation."""

import pytest
import torch
import torch.nn.functional as F

from edgestereo.ops.upsample3d import (
    CostVolumeUpsample,
    linear_resize_matrix,
    upsample_cost_separable,
    upsample_cost_trilinear,
)


@pytest.mark.parametrize(("size_in", "size_out"), [
    ((12, 8, 16), (48, 32, 64)),   # GwcNet: ×4 on every axis
    ((5, 7, 9), (13, 20, 31)),     # ratios that are not integers
    ((6, 4, 4), (6, 16, 16)),      # disparity axis unchanged
    ((7, 6, 6), (3, 6, 6)),        # down-sampling along disparity only
])
def test_separable_equals_trilinear(size_in, size_out):
    cost = torch.randn(2, *size_in, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = F.interpolate(cost[:, None], size=size_out, mode="trilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(upsample_cost_trilinear(cost, size_out), expected)
    torch.testing.assert_close(upsample_cost_separable(cost, size_out), expected)


def test_resize_matrix_rows_are_interpolation_weights():
    matrix = linear_resize_matrix(3, 12, dtype=torch.float64)
    assert matrix.shape == (12, 3)
    torch.testing.assert_close(matrix.sum(dim=1), torch.ones(12, dtype=torch.float64))
    assert ((matrix > 0).sum(dim=1) <= 2).all()
    ramp = torch.arange(3, dtype=torch.float64)
    expected = F.interpolate(ramp.view(1, 1, 3), size=12, mode="linear", align_corners=False).view(12)
    torch.testing.assert_close(matrix @ ramp, expected)


def test_gradcheck_separable():
    cost = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: upsample_cost_separable(c, (6, 4, 5)), (cost,), fast_mode=True)


def test_module_switch_and_shape_check():
    cost = torch.randn(1, 4, 3, 5)
    up = CostVolumeUpsample()
    reference = up(cost, (16, 12, 20))
    up.switch_to_deploy()
    torch.testing.assert_close(up(cost, (16, 12, 20)), reference, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(B,D,H,W\)"):
        up(cost[:, None], (16, 12, 20))
