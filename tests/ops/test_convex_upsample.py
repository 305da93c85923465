import pytest
import torch
import torch.nn.functional as F

from edgestereo.evaluation.metrics import block_pattern_ratio
from edgestereo.ops.convex_upsample import (
    ConvexUpsample,
    bilinear_mask_logits,
    convex_upsample_4d,
    convex_upsample_reference,
)


def _inputs(batch, channels, factor, height=5, width=7, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    flow = torch.randn(batch, channels, height, width, generator=generator, dtype=dtype) * 10
    mask = torch.randn(batch, 9 * factor * factor, height, width, generator=generator, dtype=dtype) * 3
    return flow, mask


@pytest.mark.parametrize("factor", [2, 4, 8])
@pytest.mark.parametrize("batch,channels", [(1, 1), (2, 1), (2, 2)])
def test_4d_twin_equals_reference(factor, batch, channels):
    flow, mask = _inputs(batch, channels, factor)
    reference = convex_upsample_reference(flow, mask, factor)
    assert reference.shape == (batch, channels, 5 * factor, 7 * factor)
    torch.testing.assert_close(convex_upsample_4d(flow, mask, factor), reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("upsample", [convex_upsample_reference, convex_upsample_4d])
def test_constant_field_scales_by_the_factor_inside(upsample):
    flow = torch.full((1, 1, 4, 6), 2.5)
    _, mask = _inputs(1, 1, 4, height=4, width=6)
    fine = upsample(flow, mask, 4)
    # away from the border all 9 neighbours exist, and convex weights sum to one
    torch.testing.assert_close(fine[..., 4:-4, 4:-4], torch.full_like(fine[..., 4:-4, 4:-4], 10.0))


@pytest.mark.parametrize("upsample", [convex_upsample_reference, convex_upsample_4d])
def test_one_hot_mask_picks_that_neighbour_for_that_sub_pixel(upsample):
    factor = 2
    flow = torch.arange(12.0).view(1, 1, 3, 4)
    mask = torch.full((1, 9 * factor * factor, 3, 4), -1e4)
    # fine offset (a=1, b=0) takes neighbour k=5 (right), every other offset neighbour k=4 (itself)
    for a in range(factor):
        for b in range(factor):
            k = 5 if (a, b) == (1, 0) else 4
            mask[0, k * factor * factor + a * factor + b] = 0.0
    fine = upsample(flow, mask, factor)
    assert fine[0, 0, 2 * 1 + 1, 2 * 2 + 0] == 2 * flow[0, 0, 1, 3]
    assert fine[0, 0, 2 * 1 + 0, 2 * 2 + 1] == 2 * flow[0, 0, 1, 2]
    assert fine[0, 0, 2 * 1 + 1, 2 * 3 + 0] == 0.0  # right neighbour of the last column is outside


@pytest.mark.parametrize("deploy", [False, True])
def test_gradients_float64(deploy):
    flow, mask = _inputs(1, 1, 2, height=3, width=3, dtype=torch.float64)
    op = ConvexUpsample(2)
    op.switch_to_deploy(deploy)
    assert torch.autograd.gradcheck(op, (flow.requires_grad_(True), mask.requires_grad_(True)), fast_mode=True)


def test_module_has_no_state_and_checks_shapes():
    op = ConvexUpsample(4)
    assert not list(op.state_dict())
    with pytest.raises(ValueError, match=r"mask \(B,144,H,W\)"):
        op(torch.zeros(1, 1, 4, 4), torch.zeros(1, 36, 4, 4))
    op.switch_to_deploy(True)
    with pytest.raises(ValueError, match="differ in batch or size"):
        op(torch.zeros(1, 1, 4, 4), torch.zeros(1, 144, 4, 5))


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("upsample", [convex_upsample_reference, convex_upsample_4d])
def test_bilinear_logits_give_bilinear_interpolation_inside(upsample, factor):
    flow, _ = _inputs(2, 1, factor, height=6, width=8)
    logits = bilinear_mask_logits(factor, floor=1e-9).view(1, -1, 1, 1).expand(2, -1, 6, 8)
    fine = upsample(flow, logits, factor)
    bilinear = factor * F.interpolate(flow, scale_factor=factor, mode="bilinear", align_corners=False)
    # the border cells differ: outside neighbours are zeros here, the edge pixel for interpolate
    inside = (..., slice(factor, -factor), slice(factor, -factor))
    torch.testing.assert_close(fine[inside], bilinear[inside], atol=1e-4, rtol=1e-5)


def test_bilinear_logits_floor_and_blocks_of_a_uniform_mask():
    factor = 4
    rows, columns = torch.meshgrid(torch.arange(6.0), torch.arange(8.0), indexing="ij")
    plane = (0.5 * columns + 0.3 * rows).view(1, 1, 6, 8)  # a slanted plane, coarse px
    inside = (0, 0, slice(factor, -factor), slice(factor, -factor))

    def ratio(mask):
        return block_pattern_ratio(convex_upsample_reference(plane, mask, factor)[inside].numpy(), period=factor)

    for floor, most in ((1e-4, 1.01), (1e-2, 1.4)):  # the floor leaks weight to far neighbours
        logits = bilinear_mask_logits(factor, floor)
        weights = torch.softmax(logits.view(9, -1), dim=0)
        assert weights.min() == pytest.approx(floor / (1 + 5 * floor), rel=0.05)  # 5 left-out neighbours at most
        assert ratio(logits.view(1, -1, 1, 1).expand(1, -1, 6, 8)) < most
    assert ratio(torch.zeros(1, 9 * factor * factor, 6, 8)) > 100  # every fine pixel of a cell alike
    with pytest.raises(ValueError, match="0 < floor < 1"):
        bilinear_mask_logits(4, floor=0.0)
