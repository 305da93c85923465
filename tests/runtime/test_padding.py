import pytest
import torch

from edgestereo.runtime.padding import InputPadder


@pytest.mark.parametrize("size", [(50, 70), (64, 96), (33, 31)])
@pytest.mark.parametrize("divisor", [1, 8, 32])
def test_pad_to_divisor_and_crop_back(size, divisor):
    x = torch.arange(size[0] * size[1], dtype=torch.float32).reshape(1, 1, *size)
    padder = InputPadder(x.shape, divisor)
    (padded,) = padder.pad(x)
    assert padded.shape[-2] % divisor == 0 and padded.shape[-1] % divisor == 0
    assert tuple(padded.shape[-2:]) == padder.padded_size
    torch.testing.assert_close(padder.unpad(padded), x)
