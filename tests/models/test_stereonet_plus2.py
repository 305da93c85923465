"""StereoNetPlus v2: pinned sizes, training outputs and gradients, deploy parity on a 4-D path, the npu4d
export (check-onnx, QDQ-friendly ops, ONNX Runtime parity), and the refinement's geometry."""

import pytest
import torch
import torch.nn.functional as F

from edgestereo.errors import EdgeStereoError
from edgestereo.export import check_onnx, export_onnx, verify_onnx
from edgestereo.models import create_model
from edgestereo.training.losses import published_loss
from network_fixtures import MaxRank, assert_parity, calibrated

VARIANTS = ["stereonet-plus2", "stereonet-plus2-small"]
#: pinned so that an accidental change of the architecture shows up.
PARAMETERS = {"stereonet-plus2": 317_813, "stereonet-plus2-small": 148_909}
#: ops an int8 QDQ graph carries (as for v1, the local cost's hat kernel with Max, and DepthToSpace, the
#: convex upsampling's mask layout: pure data movement, which ONNX Runtime's quantizer leaves in float
#: between a DequantizeLinear and the next QuantizeLinear, and which the RK3588 compiler keeps on its NPU;
#: and the bounded upsampling logits' Tanh, which the compiler also runs on its NPU)
QDQ_FRIENDLY_OPS = {
    "Add", "Concat", "Conv", "DepthToSpace", "Div", "Exp", "LeakyRelu", "Max", "Mul", "Pad", "ReduceMax",
    "ReduceMean", "ReduceSum", "Relu", "Reshape", "Resize", "Slice", "Sub", "Tanh", "Transpose",
}


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count(name):
    assert sum(p.numel() for p in create_model(name).parameters()) == PARAMETERS[name]


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_train_predictions_distributions_and_gradients(name):
    model = calibrated(name).train()
    left, right = model.example_inputs(64, 96, batch=2)
    outputs = model.forward_train(left, right)
    assert [tuple(p.shape) for p in outputs["left"]] == [(2, 1, 64, 96)] * 4
    (prob16, stride16), (prob8, stride8) = outputs["distributions"]
    assert (stride16, stride8) == (16, 8)
    assert prob16.shape == (2, 12, 4, 6) and prob8.shape == (2, 24, 8, 12)
    torch.testing.assert_close(prob8.sum(1), torch.ones(2, 8, 12))
    gt = torch.rand(2, 1, 64, 96) * 150
    batch = {"disp": gt, "valid": torch.ones_like(gt, dtype=torch.bool)}
    terms = published_loss(model)(outputs, batch)
    assert {"loss_kl8", "loss_kl16", "loss_scale3"} <= set(terms)
    terms["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_eval_forward_is_the_last_training_prediction():
    model = calibrated("stereonet-plus2-small")
    left, right = model.example_inputs(64, 128)
    with torch.no_grad():
        outputs = model.forward_train(left, right)
        torch.testing.assert_close(model(left, right), outputs["left"][-1])
    assert outputs["left"][-1].min() >= 0


@pytest.mark.parametrize("name", VARIANTS)
def test_deploy_path_matches_reference_and_keeps_state_dict(name):
    model = calibrated(name)
    left, right = model.example_inputs(64, 128)
    keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    with torch.no_grad():
        reference = model(left, right)
        deployed = model.deploy()(left, right)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == keys
    assert reference.std() > 1.0  # the output reacts to the input: the comparison means something
    assert (deployed - reference).abs().mean() < 1e-4
    assert (deployed - reference).abs().max() < 1e-2


def test_deploy_path_is_four_dimensional_and_reference_path_is_not():
    model = create_model("stereonet-plus2-small")
    left, right = model.example_inputs(64, 64)
    with torch.no_grad(), MaxRank() as reference:
        model(left, right)
    with torch.no_grad(), MaxRank() as deployed:
        model.deploy()(left, right)
    assert reference.max_rank > 4 and deployed.max_rank == 4


def test_constant_estimate_and_zero_residual_give_a_constant_full_resolution_disparity(monkeypatch):
    """The 1/4 stage and the convex upsampling keep a constant disparity, in full-resolution pixels."""
    model = calibrated("stereonet-plus2-small")
    torch.nn.init.zeros_(model.refine.residual.weight)
    torch.nn.init.zeros_(model.refine.residual.bias)

    def delta_at_candidate_5(logits):
        out = torch.full_like(logits, -1e4)
        out[:, 5] = 0.0
        return out

    monkeypatch.setattr(model.logits, "forward", delta_at_candidate_5)
    with torch.no_grad():
        out = model(*model.example_inputs(64, 128))
    # candidate 5 at 1/8 is 40 px; the zero-padded 3x3 neighbourhood only differs along the border
    torch.testing.assert_close(out[..., 4:-4, 4:-4], torch.full_like(out[..., 4:-4, 4:-4], 40.0))


def test_options_are_checked():
    with pytest.raises(EdgeStereoError, match="max_disp must be a positive multiple of 32"):
        create_model("stereonet-plus2", max_disp=100)
    with pytest.raises(EdgeStereoError, match="local_radius must be ≥ 0"):
        create_model("stereonet-plus2", local_radius=-1)
    with pytest.raises(EdgeStereoError, match="not a multiple of 32"):
        create_model("stereonet-plus2-small")(torch.zeros(1, 3, 48, 64), torch.zeros(1, 3, 48, 64))


@pytest.mark.parametrize("name", VARIANTS)
def test_npu4d_export_passes_check_and_matches_pytorch(name, tmp_path):
    model = calibrated(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx", 64, 128, profile="npu4d")
    report = check_onnx(path, "npu4d")
    assert report.ok, report.format()
    assert report.max_rank <= 4
    assert set(report.op_histogram) <= QDQ_FRIENDLY_OPS, report.format()
    rknn = check_onnx(path, "rknn")  # the next default model: nothing the RK3588 compiler runs on its CPU
    assert rknn.ok, rknn.format()
    parity = verify_onnx(model, path)
    assert parity.torch_path == "deploy"
    assert_parity(parity)


@pytest.mark.parametrize("name", ["stereonet-plus2", "stereonet-plus2-small"])
def test_fresh_upsampling_is_close_to_bilinear_not_blocks(name):
    """A fresh model's convex upsampling starts as bilinear interpolation of the 1/4 disparities (a
    uniform mask would give 4x4 blocks). Measured: 0.33 of the way from bilinear to nearest (the random
    learnt part of the logits), 1.1-1.2 with a zero mask bias."""
    model = calibrated(name)
    with torch.no_grad():
        out = model._run(*model.example_inputs(64, 128), supervise=False)
    bilinear = F.interpolate(out["quarter"], scale_factor=4, mode="bilinear", align_corners=False)
    nearest = F.interpolate(out["quarter"], scale_factor=4, mode="nearest")
    inside = (..., slice(4, -4), slice(4, -4))
    to_bilinear = (out["full"] - bilinear)[inside].abs().mean()
    assert to_bilinear < 0.5 * (nearest - bilinear)[inside].abs().mean()


def test_bounded_mask_logits_stay_near_bilinear():
    """mask_logit_bound caps how far the convex-upsampling weights move from bilinear interpolation:
    a mask head pushed to nearest-neighbour blocks (a large logit on each cell's own pixel) gives
    4x4 blocks unbounded and stays close to bilinear with the bound. A negative bound is refused."""
    def run(bound: float):
        model = calibrated("stereonet-plus2-small", mask_logit_bound=bound)
        with torch.no_grad():
            model.refine.mask[-1].bias.view(9, 16)[4] += 40.0  # neighbour 4 is the cell's own coarse pixel
            out = model._run(*model.example_inputs(64, 128), supervise=False)
        bilinear = F.interpolate(out["quarter"], scale_factor=4, mode="bilinear", align_corners=False)
        nearest = F.interpolate(out["quarter"], scale_factor=4, mode="nearest")
        inside = (..., slice(4, -4), slice(4, -4))
        return (out["full"] - bilinear)[inside].abs().mean() / (nearest - bilinear)[inside].abs().mean()

    assert run(0.0) > 0.95  # the pushed head alone gives blocks
    assert run(0.5) < 0.5
    with pytest.raises(EdgeStereoError, match="mask_logit_bound must be ≥ 0"):
        create_model("stereonet-plus2-small", mask_logit_bound=-0.5)


@pytest.mark.parametrize("bound", [0.0, 0.5])
def test_folded_mask_logits_match_the_plain_formula(bound):
    """The scale and the bilinear shift folded into the mask head's last 1x1 convolution give the
    logits 0.25·m, or bilinear + b·tanh((0.25·m − bilinear)/b), m the head's plain output."""
    refine = calibrated("stereonet-plus2-small", mask_logit_bound=bound).refine
    x = torch.randn(2, refine.mask[0][0].in_channels, 6, 10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = 0.25 * refine.mask(x)
        if bound:
            plain = refine.bilinear_logits + bound * torch.tanh((plain - refine.bilinear_logits) / bound)
        folded = refine._mask_logits(refine.mask[:-1](x))
    torch.testing.assert_close(folded, plain, rtol=1e-5, atol=1e-5)


def test_unbounded_model_exports_npu4d_and_rknn_clean(tmp_path):
    """The registered variants bound their upsampling logits (a Tanh); unbounded weights (the packaged
    ones before day 5, their checkpoints) export without it, also clean, and match ONNX Runtime."""
    assert create_model("stereonet-plus2-small").config.mask_logit_bound == 0.5
    model = calibrated("stereonet-plus2-small", mask_logit_bound=0.0)
    path = export_onnx(model, tmp_path / "unbounded.onnx", 64, 128, profile="npu4d")
    for profile in ("npu4d", "rknn"):
        report = check_onnx(path, profile)
        assert report.ok, report.format()
    assert "Tanh" not in check_onnx(path, "npu4d").op_histogram
    assert_parity(verify_onnx(model, path))
