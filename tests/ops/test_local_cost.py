"""Local cost look-up: the hat-kernel twin equals the gather reference, reads the documented positions,
and carries gradients to the volume."""

import pytest
import torch

from edgestereo.errors import EdgeStereoError
from edgestereo.ops.local_cost import LocalCost, local_cost_hat, local_cost_reference


@pytest.mark.parametrize("radius", [0, 1, 3])
def test_hat_twin_equals_gather_reference_inside_and_beyond_the_range(radius):
    generator = torch.Generator().manual_seed(radius)
    volume = torch.randn(2, 12, 5, 7, generator=generator, dtype=torch.float64)
    # positions from well below 0 to well above D-1, fractional and exactly on candidates
    position = torch.rand(2, 1, 5, 7, generator=generator, dtype=torch.float64) * 22 - 5
    position[0, 0, 0, :4] = torch.tensor([0.0, 11.0, -1.0, 12.0], dtype=torch.float64)
    expected = local_cost_reference(volume, position, radius)
    assert expected.shape == (2, 2 * radius + 1, 5, 7)
    torch.testing.assert_close(local_cost_hat(volume, position, radius), expected, rtol=0, atol=1e-12)


def test_a_nan_position_gives_nan_costs_there_in_both_twins():
    """A diverged network's NaN estimate propagates as NaN (Lightning sees a NaN loss) instead of the
    reference twin crashing on a -2^63 gather index; the other pixels are unaffected."""
    volume = torch.randn(1, 12, 3, 4, dtype=torch.float64)
    position = torch.rand(1, 1, 3, 4, dtype=torch.float64) * 11
    position[0, 0, 1, 2] = float("nan")
    for look_up in (local_cost_reference, local_cost_hat):
        costs = look_up(volume, position, 2)
        nan = torch.isnan(costs).any(1)[0]
        assert nan[1, 2] and int(nan.sum()) == 1, look_up.__name__
    finite = torch.isfinite(position)[:, 0]
    torch.testing.assert_close(local_cost_reference(volume, position, 2).permute(0, 2, 3, 1)[finite],
                               local_cost_hat(volume, position, 2).permute(0, 2, 3, 1)[finite], rtol=0, atol=1e-12)


def test_reads_linear_interpolation_at_the_offsets_and_zero_outside():
    volume = (10 * torch.arange(5.0) + 5).view(1, 5, 1, 1).expand(1, 5, 1, 2).contiguous()  # 10·d + 5
    position = torch.tensor([1.25, 3.5]).view(1, 1, 1, 2)
    for twin in (local_cost_reference, local_cost_hat):
        out = twin(volume, position, 2)[0, :, 0]
        # at 1.25: -0.75 (a quarter of candidate 0, the rest outside), 0.25, 1.25, 2.25, 3.25
        torch.testing.assert_close(out[:, 0], torch.tensor([1.25, 7.5, 17.5, 27.5, 37.5]))
        # at 3.5: 1.5, 2.5, 3.5, 4.5 (half of candidate 4), 5.5 (outside)
        torch.testing.assert_close(out[:, 1], torch.tensor([20.0, 30.0, 40.0, 22.5, 0.0]))


@pytest.mark.parametrize("deploy", [False, True])
def test_gradients_reach_the_volume_float64(deploy):
    module = LocalCost(2)
    module.switch_to_deploy(deploy)
    volume = torch.randn(1, 8, 3, 4, dtype=torch.float64, requires_grad=True)
    position = (torch.rand(1, 1, 3, 4, dtype=torch.float64) * 6 + 0.5).detach()
    assert torch.autograd.gradcheck(lambda v: module(v, position), (volume,))
    assert not module.state_dict()


def test_shapes_and_radius_are_checked():
    with pytest.raises(EdgeStereoError, match=r"position \(B,1,H,W\)"):
        LocalCost(1)(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, 2))
    with pytest.raises(EdgeStereoError, match="differ in batch or size"):
        LocalCost(1)(torch.zeros(1, 4, 2, 2), torch.zeros(1, 1, 2, 3))
    with pytest.raises(EdgeStereoError, match="radius must be ≥ 0"):
        LocalCost(-1)
