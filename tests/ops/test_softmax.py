"""Channel softmax: the elementwise twin equals F.softmax, also where a plain exp would overflow."""

import torch

from edgestereo.ops.softmax import ChannelSoftmax, channel_softmax_elementwise


def test_elementwise_equals_softmax_for_large_logits():
    x = torch.randn(2, 4, 5, 6, generator=torch.Generator().manual_seed(0)) * 500
    out = channel_softmax_elementwise(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.softmax(x, dim=1))
    torch.testing.assert_close(out.sum(1), torch.ones(2, 5, 6))


def test_module_paths_agree_and_have_gradients():
    module = ChannelSoftmax()
    x = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    reference = module(x)
    module.switch_to_deploy()
    torch.testing.assert_close(module(x), reference)
    assert torch.autograd.gradcheck(module, (x,))
    assert not module.state_dict()
