"""Bilinear align_corners=True resize: the MatMul twin equals F.interpolate."""

import pytest
import torch
import torch.nn.functional as F

from edgestereo.ops.resize2d import AlignedBilinearResize, resize_aligned_matmul, resize_aligned_reference
from edgestereo.ops.upsample3d import linear_resize_matrix


@pytest.mark.parametrize(("size_in", "size_out"), [
    ((16, 32), (32, 64)),   # RAFT-Stereo realtime at 256x512: 1/16 → 1/8
    ((5, 7), (13, 20)),     # ratios that are not integers
    ((8, 12), (3, 5)),      # down-sampling
    ((1, 6), (4, 6)),       # one input row; width unchanged
    ((4, 6), (1, 1)),       # one output sample
])
def test_matmul_twin_equals_interpolate(size_in, size_out):
    x = torch.randn(2, 3, *size_in, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = F.interpolate(x, size=size_out, mode="bilinear", align_corners=True)
    torch.testing.assert_close(resize_aligned_reference(x, size_out), expected)
    torch.testing.assert_close(resize_aligned_matmul(x, size_out), expected)


def test_aligned_matrix_keeps_both_ends_and_rows_are_interpolation_weights():
    matrix = linear_resize_matrix(4, 10, align_corners=True, dtype=torch.float64)
    torch.testing.assert_close(matrix.sum(dim=1), torch.ones(10, dtype=torch.float64))
    assert matrix[0].tolist() == [1.0, 0.0, 0.0, 0.0] and matrix[-1].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert ((matrix > 0).sum(dim=1) <= 2).all()


def test_gradcheck_matmul_twin():
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: resize_aligned_matmul(t, (5, 7)), (x,), fast_mode=True)


def test_module_has_no_state_switches_and_checks_shapes():
    x = torch.randn(1, 4, 3, 5)
    op = AlignedBilinearResize()
    assert not list(op.state_dict())
    reference = op(x, (6, 10))
    op.switch_to_deploy()
    torch.testing.assert_close(op(x, (6, 10)), reference, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"expected a \(B,C,H,W\) map and a size \(H',W'\), got \(4, 3, 5\)"):
        op(x[0], (6, 10))
