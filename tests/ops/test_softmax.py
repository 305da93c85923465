"""Channel softmax: the elementwise twin equals F.softmax, also where a plain exp would overflow, and
exports without ReduceMax."""

import pytest
import torch

from edgestereo.ops.softmax import ChannelSoftmax, channel_max, channel_softmax_elementwise


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


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5, 9, 24])
def test_channel_max_equals_amax(channels):
    x = torch.randn(2, channels, 3, 4, generator=torch.Generator().manual_seed(channels))
    torch.testing.assert_close(channel_max(x), x.amax(1, keepdim=True), rtol=0, atol=0)


def test_deploy_graph_has_no_reduce_max(tmp_path):
    # The RK3588 compiler runs a channel ReduceMax on its CPU ("Unknown op target: 0"): the deploy
    # softmax is Max/Slice/Sub/Exp/ReduceSum/Div only.
    import onnx

    module = ChannelSoftmax()
    module.switch_to_deploy()
    path = tmp_path / "softmax.onnx"
    torch.onnx.export(module, (torch.randn(1, 5, 4, 6),), str(path), dynamo=False, opset_version=17)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "ReduceMax" not in ops and "Softmax" not in ops
    assert {"Max", "Exp", "ReduceSum", "Div"} <= ops
