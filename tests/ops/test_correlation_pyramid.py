import pytest
import torch

from edgestereo.ops.correlation_pyramid import (
    CorrelationPyramid1d,
    all_pairs_correlation_einsum,
    all_pairs_correlation_matmul,
    correlation_pyramid,
    lookup_at_rest_features,
    lookup_gather,
    lookup_grid_sample,
    pad_pyramid,
)


def _features(batch=2, channels=40, height=3, width=21, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, channels, height, width, generator=generator, dtype=dtype),
            torch.randn(batch, channels, height, width + 3, generator=generator, dtype=dtype))


def _positions(batch, height, width, right_width, seed=1, dtype=torch.float32):
    """Sub-pixel positions from far left of the row to far right of it, plus exact borders."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, height, width, generator=generator, dtype=dtype) * (right_width + 24) - 12
    x[0, 0, 0, :6] = torch.tensor([0.0, 1.0, right_width - 1.0, -1.0, right_width, -0.5], dtype=dtype)
    return x


@pytest.mark.parametrize("channels", [1, 32, 40, 256])
def test_matmul_correlation_equals_einsum(channels):
    fmap1, fmap2 = _features(channels=channels)
    reference = all_pairs_correlation_einsum(fmap1, fmap2)
    assert reference.shape == (2, 3, 21, 24)
    torch.testing.assert_close(all_pairs_correlation_matmul(fmap1, fmap2), reference, atol=1e-5, rtol=1e-5)


def test_correlation_is_the_scaled_dot_product_of_a_row():
    fmap1, fmap2 = _features(batch=1, channels=16)
    volume = all_pairs_correlation_einsum(fmap1, fmap2)
    expected = (fmap1[0, :, 2, 5] * fmap2[0, :, 2, 11]).sum() / 4.0
    torch.testing.assert_close(volume[0, 2, 5, 11], expected)


def test_pyramid_halves_the_right_width_by_averaging_pairs():
    volume = torch.arange(2 * 3 * 4 * 9, dtype=torch.float32).view(2, 3, 4, 9)
    levels = correlation_pyramid(volume, 3)
    assert [tuple(v.shape) for v in levels] == [(2, 3, 4, 9), (2, 3, 4, 4), (2, 3, 4, 2)]
    torch.testing.assert_close(levels[1][..., 0], (volume[..., 0] + volume[..., 1]) / 2)


def test_lookup_at_integer_positions_reads_the_volume():
    fmap1, fmap2 = _features(batch=1, height=2, width=10)
    pyramid = correlation_pyramid(all_pairs_correlation_einsum(fmap1, fmap2), 1)
    x = torch.full((1, 1, 2, 10), 6.0)
    for corr in (lookup_grid_sample(pyramid, x, 2), lookup_gather(pad_pyramid(pyramid), x, 2)):
        assert corr.shape == (1, 5, 2, 10)
        torch.testing.assert_close(corr[0, :, 1, 3], pyramid[0][0, 1, 3, 4:9])


def test_lookup_is_zero_outside_the_row_and_linear_inside():
    volume = torch.arange(1.0, 6.0).repeat(1, 1, 5, 1)  # every left pixel sees the row 1..5
    x = torch.tensor([-3.0, -0.25, 2.5, 4.5, 9.0]).view(1, 1, 1, 5)
    expected = torch.tensor([0.0, 0.75, 3.5, 2.5, 0.0])
    for corr in (lookup_grid_sample([volume], x, 0), lookup_gather(pad_pyramid([volume]), x, 0)):
        torch.testing.assert_close(corr.view(5), expected)


@pytest.mark.parametrize("levels,radius", [(4, 4), (2, 1), (3, 6)])
@pytest.mark.parametrize("batch", [1, 2])
def test_gather_lookup_equals_grid_sample(levels, radius, batch):
    fmap1, fmap2 = _features(batch=batch, width=37)
    pyramid = correlation_pyramid(all_pairs_correlation_einsum(fmap1, fmap2), levels)
    x = _positions(batch, 3, 37, 40)
    reference = lookup_grid_sample(pyramid, x, radius)
    assert reference.shape == (batch, levels * (2 * radius + 1), 3, 37)
    torch.testing.assert_close(lookup_gather(pad_pyramid(pyramid), x, radius), reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("levels", "radius", "width"), [(4, 4, 64), (4, 4, 37), (2, 1, 5), (3, 2, 16)])
def test_lookup_at_rest_from_features_equals_the_pyramid_lookup(levels, radius, width):
    generator = torch.Generator().manual_seed(2)
    fmap1, fmap2 = (torch.randn(2, 24, 3, width, generator=generator, dtype=torch.float64) for _ in range(2))
    x = torch.arange(width, dtype=torch.float64).view(1, 1, 1, width).repeat(2, 1, 3, 1)
    expected = lookup_grid_sample(correlation_pyramid(all_pairs_correlation_einsum(fmap1, fmap2), levels), x, radius)
    torch.testing.assert_close(lookup_at_rest_features(fmap1, fmap2, levels, radius), expected)
    op = CorrelationPyramid1d(levels, radius)
    for deploy in (False, True):
        op.switch_to_deploy(deploy)
        torch.testing.assert_close(op.lookup_at_rest(op.build(fmap1, fmap2), fmap1, fmap2), expected)
    with pytest.raises(ValueError, match=r"two \(B,C,H,W\) features of one shape, got \(2, 24, 3, 2\)"):
        lookup_at_rest_features(fmap1[..., :2], fmap2, levels, radius)


def test_module_switch_keeps_output_and_has_no_state():
    op = CorrelationPyramid1d(num_levels=3, radius=2)
    fmap1, fmap2 = _features(width=29)
    x = _positions(2, 3, 29, 32)
    reference = op(fmap1, fmap2, x)
    op.switch_to_deploy(True)
    torch.testing.assert_close(op(fmap1, fmap2, x), reference, atol=1e-5, rtol=1e-5)
    assert op.channels == 15 and not list(op.state_dict())


def test_volume_stays_float32_under_autocast():
    op = CorrelationPyramid1d(num_levels=2, radius=1)
    fmap1, fmap2 = _features()
    for deploy in (False, True):
        op.switch_to_deploy(deploy)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pyramid = op.build(fmap1.bfloat16(), fmap2.bfloat16())
        assert all(level.dtype == torch.float32 for level in pyramid)


@pytest.mark.parametrize("deploy", [False, True])
def test_gradients_float64(deploy):
    fmap1, fmap2 = _features(batch=1, channels=4, height=2, width=6, dtype=torch.float64)
    fmap1.requires_grad_(True)
    fmap2.requires_grad_(True)
    # positions away from integers: the lookup is piecewise linear in x
    x = torch.tensor([0.3, 2.6, 4.2, -1.7, 7.4, 3.5], dtype=torch.float64).repeat(1, 1, 2, 1).requires_grad_(True)
    op = CorrelationPyramid1d(num_levels=2, radius=1)
    op.switch_to_deploy(deploy)
    assert torch.autograd.gradcheck(op, (fmap1, fmap2, x), fast_mode=True)


def test_shape_errors():
    with pytest.raises(ValueError, match="expected"):
        all_pairs_correlation_einsum(torch.zeros(1, 4, 3, 8), torch.zeros(1, 4, 2, 8))
    with pytest.raises(ValueError, match="expected"):
        all_pairs_correlation_matmul(torch.zeros(4, 3, 8), torch.zeros(4, 3, 8))
