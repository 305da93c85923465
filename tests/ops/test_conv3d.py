"""3-D (transposed) convolutions on slice stacks: equal to PyTorch's 5-D ops, rank ≤ 4 when exported."""

import warnings

import onnx
import onnxslim
import pytest
import torch
import torch.nn.functional as F

from edgestereo.export.check import check_onnx
from edgestereo.ops.conv3d import (
    Conv3dOp,
    ConvTranspose3dOp,
    conv3d_slices,
    conv_transpose3d_cropped,
    conv_transpose3d_slices,
    slices_to_volume,
    volume_to_slices,
)


def _random(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_layout_round_trip_and_order():
    volume = _random(2, 3, 4, 5, 6)
    slices = volume_to_slices(volume)
    assert slices.shape == (4, 6, 5, 6)
    # row d holds batch 0's channels, then batch 1's, of depth slice d
    torch.testing.assert_close(slices[2, 3:6], volume[1, :, 2])
    torch.testing.assert_close(slices_to_volume(slices, 3), volume)


@pytest.mark.parametrize(("kernel", "stride", "padding", "depth"), [
    (3, 1, 1, 5),             # GwcNet / StereoNet filtering layers
    (3, 2, 1, 6),             # hourglass down-sampling, even depth
    (3, 2, 1, 7),             # odd depth: trailing slice unused
    (1, 1, 0, 5),             # 1×1×1 shortcut
    (3, (2, 1, 1), (1, 0, 1), 5),  # stride and padding differing per axis
    (5, 3, 2, 9),             # kernel wider than the stride pattern
])
def test_conv3d_slices_equals_conv3d(kernel, stride, padding, depth):
    volume = _random(2, 3, depth, 7, 9)
    weight = _random(4, 3, kernel, kernel, kernel, seed=1)
    bias = _random(4, seed=2)
    expected = F.conv3d(volume, weight, bias, stride, padding)
    got = slices_to_volume(conv3d_slices(volume_to_slices(volume), weight, bias, stride, padding), 4)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(("stride", "padding", "output_padding", "depth"), [
    (2, 1, 1, 3),   # GwcNet hourglass up-sampling
    (2, 1, 1, 4),
    (1, 1, 0, 4),
    (2, 0, 0, 3),
    (3, 1, 1, 3),   # three phases
])
def test_transposed_forms_equal_conv_transpose3d(stride, padding, output_padding, depth):
    volume = _random(2, 4, depth, 5, 6)
    weight = _random(4, 3, 3, 3, 3, seed=1)
    bias = _random(3, seed=2)
    expected = F.conv_transpose3d(volume, weight, bias, stride, padding, output_padding)
    torch.testing.assert_close(conv_transpose3d_cropped(volume, weight, bias, stride, padding, output_padding),
                               expected)
    got = conv_transpose3d_slices(volume_to_slices(volume), weight, bias, stride, padding, output_padding)
    torch.testing.assert_close(slices_to_volume(got, 3), expected)


def test_rt_stereo_crop_would_shift_by_one_voxel():
    """The crop must drop the *first* voxel of the unpadded result; the last one (RT-Stereo's patch)
    changes the output, which is why the cropped form is tested against PyTorch, not against RT-Stereo."""
    volume, weight = _random(1, 4, 3, 4, 5), _random(4, 3, 3, 3, 3, seed=1)
    padded = F.conv_transpose3d(volume, weight, None, 2, 1, 1)
    full = F.conv_transpose3d(volume, weight, None, 2)
    torch.testing.assert_close(full[:, :, 1:, 1:, 1:], padded)
    assert (full[:, :, :-1, :-1, :-1] - padded).abs().max() > 1e-3


def test_unsupported_output_padding_is_refused():
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose3d_cropped(_random(1, 2, 3, 3, 3), _random(2, 2, 3, 3, 3), None, 2, 0, 1)


def test_gradcheck_in_float64():
    volume = _random(1, 2, 4, 3, 3).requires_grad_()
    weight, weight_t = _random(2, 2, 3, 3, 3, seed=1), _random(2, 2, 3, 3, 3, seed=2)
    assert torch.autograd.gradcheck(lambda v: conv3d_slices(volume_to_slices(v), weight, None, 2, 1), (volume,),
                                    fast_mode=True)
    assert torch.autograd.gradcheck(
        lambda v: conv_transpose3d_slices(volume_to_slices(v), weight_t, None, 2, 1, 1), (volume,), fast_mode=True)


def test_weight_gradients_equal_pytorch_ops():
    volume = _random(2, 3, 4, 5, 5)
    weight = _random(4, 3, 3, 3, 3, seed=1).requires_grad_()
    weight_t = _random(3, 4, 3, 3, 3, seed=2).requires_grad_()
    probe, probe_t = _random(2, 4, 2, 3, 3, seed=3), _random(2, 4, 8, 10, 10, seed=4)

    def grads(conv, transposed):
        low = conv(volume, weight)
        loss = (low * probe).sum() + (transposed(volume, weight_t) * probe_t).sum()
        return torch.autograd.grad(loss, (weight, weight_t))

    expected = grads(lambda v, w: F.conv3d(v, w, None, 2, 1), lambda v, w: F.conv_transpose3d(v, w, None, 2, 1, 1))
    got = grads(lambda v, w: slices_to_volume(conv3d_slices(volume_to_slices(v), w, None, 2, 1), 4),
                lambda v, w: slices_to_volume(conv_transpose3d_slices(volume_to_slices(v), w, None, 2, 1, 1), 4))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)


def test_ops_switch_between_layouts():
    volume = _random(2, 3, 4, 6, 6).float()
    weight, bias = _random(5, 3, 3, 3, 3, seed=1).float(), _random(5, seed=2).float()
    op = Conv3dOp()
    reference = op(volume, weight, bias, (2, 2, 2), (1, 1, 1))
    op.switch_to_deploy()
    deployed = op(volume_to_slices(volume), weight, bias, (2, 2, 2), (1, 1, 1))
    torch.testing.assert_close(slices_to_volume(deployed, 5), reference, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="slice stack"):
        op(volume, weight, bias, (1, 1, 1), (1, 1, 1))  # a 5-D volume on the deploy path

    up = ConvTranspose3dOp()
    weight_t = _random(3, 5, 3, 3, 3, seed=3).float()
    reference = up(volume, weight_t, None, (2, 2, 2), (1, 1, 1), (1, 1, 1))
    up.switch_to_deploy()
    deployed = up(volume_to_slices(volume), weight_t, None, (2, 2, 2), (1, 1, 1), (1, 1, 1))
    torch.testing.assert_close(slices_to_volume(deployed, 5), reference, atol=1e-5, rtol=1e-5)


class _SliceNet(torch.nn.Module):
    """A strided 3-D conv and a transposed one on a slice stack, as in an hourglass."""

    def __init__(self):
        super().__init__()
        self.down = torch.nn.Parameter(_random(8, 4, 3, 3, 3).float())
        self.up = torch.nn.Parameter(_random(8, 4, 3, 3, 3, seed=1).float())

    def forward(self, slices):
        low = conv3d_slices(slices, self.down, None, 2, 1)
        return conv_transpose3d_slices(low, self.up, None, 2, 1, 1)


def test_exported_slice_ops_stay_4d(tmp_path):
    path = tmp_path / "slices.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_SliceNet(), (torch.randn(6, 4, 8, 8),), str(path), dynamo=False, opset_version=17)
    # as edgestereo's exporter does: onnxslim folds the pad sizes the TorchScript exporter leaves as subgraphs
    report = check_onnx(onnxslim.slim(onnx.load(str(path))), "npu4d")
    assert report.ok, report.format()
    assert report.max_rank == 4
    assert report.op_histogram["Conv"] == 1 and report.op_histogram["ConvTranspose"] == 2
