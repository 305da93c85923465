"""Correlation cost volume: both twins against a per-pixel definition, each other, and gradcheck."""

import pytest
import torch
import torch.nn.functional as F

from edgestereo.errors import EdgeStereoError
from edgestereo.ops.correlation import Correlation1d, correlation_volume_reference, correlation_volume_shift


def _by_definition(left: torch.Tensor, right: torch.Tensor, num_disp: int) -> torch.Tensor:
    b, _, h, w = left.shape
    out = torch.zeros(b, num_disp, h, w, dtype=left.dtype)
    for d in range(num_disp):
        for x in range(d, w):
            out[:, d, :, x] = (left[:, :, :, x] * right[:, :, :, x - d]).mean(1)
    return out


@pytest.mark.parametrize("num_disp", [1, 3, 7, 10])  # 10 > width: shifts that leave the image entirely
def test_twins_match_the_definition(num_disp):
    generator = torch.Generator().manual_seed(num_disp)
    left, right = torch.randn(2, 2, 5, 3, 7, generator=generator)
    expected = _by_definition(left, right, num_disp)
    torch.testing.assert_close(correlation_volume_reference(left, right, num_disp), expected)
    torch.testing.assert_close(correlation_volume_shift(left, right, num_disp), expected)


def test_true_shift_has_the_highest_correlation():
    # Unit feature vectors: by Cauchy-Schwarz only the matching pixel reaches the maximum.
    features = F.normalize(torch.randn(1, 16, 4, 40, generator=torch.Generator().manual_seed(0)), dim=1)
    left, right = features[..., :-5], features[..., 5:]  # left(x) = right(x - 5)
    volume = correlation_volume_shift(left, right, 8)
    assert (volume[..., 8:].argmax(1) == 5).all()


def test_gradients_of_both_twins():
    generator = torch.Generator().manual_seed(1)
    left, right = (torch.randn(1, 2, 2, 5, dtype=torch.float64, generator=generator, requires_grad=True)
                   for _ in range(2))
    assert torch.autograd.gradcheck(lambda a, b: correlation_volume_reference(a, b, 4), (left, right))
    assert torch.autograd.gradcheck(lambda a, b: correlation_volume_shift(a, b, 4), (left, right))


def test_module_switches_path_and_keeps_no_state():
    module = Correlation1d(6)
    left, right = torch.randn(2, 1, 8, 4, 12).unbind(0)
    reference = module(left, right)
    module.switch_to_deploy()
    assert module.deploy_mode and not module.state_dict()
    torch.testing.assert_close(module(left, right), reference)
    assert reference.shape == (1, 6, 4, 12)


def test_errors_name_the_shapes():
    with pytest.raises(EdgeStereoError, match=r"\(1, 2, 3, 4\) and \(1, 2, 3, 5\)"):
        correlation_volume_shift(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 5), 2)
    with pytest.raises(EdgeStereoError, match="at least one"):
        Correlation1d(0)


def test_deploy_graph_takes_the_channel_mean_as_a_convolution(tmp_path):
    # ReduceMeans of the D products are merged by the RK3588 compiler into a batched matrix product
    # whose int8 form overflows a register field; the deploy twin uses 1×1 convolutions instead.
    import onnx

    module = Correlation1d(5)
    module.switch_to_deploy()
    path = tmp_path / "correlation.onnx"
    torch.onnx.export(module, tuple(torch.randn(2, 1, 4, 3, 9)), str(path), dynamo=False, opset_version=17)
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert "ReduceMean" not in ops and ops.count("Conv") == 5
