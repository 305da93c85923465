"""StereoNetPlus: sizes, training outputs, gradients, deploy parity, a 4-D deploy path, pinned sizes, and
the npu4d export: check-onnx passes, only ops an int8 QDQ graph carries, ONNX Runtime matches PyTorch."""

import pytest
import torch

from edgestereo.errors import EdgeStereoError
from edgestereo.export.check import check_onnx
from edgestereo.export.exporter import export_onnx, verify_onnx
from edgestereo.models import create_model
from edgestereo.models.stereonet_plus import DisparityRegression
from network_fixtures import MaxRank, assert_parity, calibrated

VARIANTS = ["stereonet-plus", "stereonet-plus-small"]
#: pinned so that an accidental change of the architecture shows up.
PARAMETERS = {"stereonet-plus": 310_252, "stereonet-plus-small": 134_484}


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count(name):
    assert sum(p.numel() for p in create_model(name).parameters()) == PARAMETERS[name]


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_train_gives_three_full_resolution_predictions_and_all_gradients(name):
    model = calibrated(name).train()  # non-zero BatchNorm scales: every branch takes part
    left, right = model.example_inputs(64, 96, batch=2)
    predictions = model.forward_train(left, right)
    assert [tuple(p.shape) for p in predictions] == [(2, 1, 64, 96)] * 3
    sum(weight * p.mean() for weight, p in zip((1 / 3, 2 / 3, 1.0), predictions)).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_eval_forward_is_the_last_training_prediction_in_pixels():
    model = calibrated("stereonet-plus-small")
    left, right = model.example_inputs(64, 128)
    with torch.no_grad():
        coarse, low, full = model.forward_train(left, right)
        torch.testing.assert_close(model(left, right), full)
    for prediction in (coarse, low, full):
        assert prediction.min() >= 0 and prediction.max() < model.config.max_disp


@pytest.mark.parametrize("name", VARIANTS)
def test_deploy_path_matches_reference_and_keeps_state_dict(name):
    model = calibrated(name)
    left, right = model.example_inputs(64, 128)
    keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    with torch.no_grad():
        reference = model(left, right)
        deployed = model.deploy()(left, right)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == keys
    assert (deployed - reference).abs().mean() < 1e-4
    assert (deployed - reference).abs().max() < 1e-2


def test_deploy_path_is_four_dimensional_and_reference_path_is_not():
    model = create_model("stereonet-plus-small")
    left, right = model.example_inputs(64, 64)
    with torch.no_grad(), MaxRank() as reference:
        model(left, right)
    with torch.no_grad(), MaxRank() as deployed:
        model.deploy()(left, right)
    assert reference.max_rank == 5 and deployed.max_rank == 4


def test_sizes_and_max_disp_are_checked():
    model = create_model("stereonet-plus-small", max_disp=96)
    assert [c.num_disp for c in model.correlations] == [12, 6, 3]
    with torch.no_grad():
        assert model(*model.example_inputs(32, 64)).shape == (1, 1, 32, 64)
    with pytest.raises(EdgeStereoError, match="not a multiple of 32"):
        model(torch.zeros(1, 3, 48, 64), torch.zeros(1, 3, 48, 64))
    with pytest.raises(EdgeStereoError, match="max_disp must be a positive multiple of 32"):
        create_model("stereonet-plus", max_disp=100)
    with pytest.raises(EdgeStereoError, match="group_width 8 must divide"):
        create_model("stereonet-plus", stem_channels=12)


def test_regression_reads_candidates_as_fractions_of_max_disp():
    logits = torch.full((1, 24, 1, 2), -1e4)
    logits[0, 6, 0, 0] = logits[0, 12, 0, 1] = 0.0
    assert DisparityRegression(24)(logits).flatten().tolist() == [0.25, 0.5]


def test_superpixel_upsampling_keeps_a_constant_disparity(monkeypatch):
    """Whatever the weights, a constant 1/8 disparity stays constant away from the zero-padded top-left."""
    model = calibrated("stereonet-plus-small")
    monkeypatch.setattr(model.regression, "forward", lambda logits: torch.full_like(logits[:, :1], 0.25))
    with torch.no_grad():
        out = model(*model.example_inputs(64, 128))
    torch.testing.assert_close(out[..., 8:, 8:], torch.full_like(out[..., 8:, 8:], 48.0))


#: the op types of the deploy graph, each one that ONNX Runtime's quantizer wraps in QDQ or that passes
#: quantized tensors through (Slice, Pad, Concat, Resize); a new op type must be looked at before it
#: is added here.
QDQ_FRIENDLY_OPS = {
    "Add", "Concat", "Conv", "ConvTranspose", "Div", "Exp", "LeakyRelu", "Max", "Mul", "Pad", "ReduceMax",
    "ReduceMean", "ReduceSum", "Relu", "Resize", "Slice", "Sub",
}


def _export_and_check(name: str, height: int, width: int, tmp_path) -> None:
    model = calibrated(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx", height, width, profile="npu4d")
    report = check_onnx(path, "npu4d")
    assert report.ok, report.format()
    assert report.max_rank <= 4
    assert set(report.op_histogram) <= QDQ_FRIENDLY_OPS, report.format()
    parity = verify_onnx(model, path)
    assert parity.torch_path == "deploy"
    assert_parity(parity)


@pytest.mark.parametrize("name", VARIANTS)
def test_npu4d_export_passes_check_and_matches_pytorch(name, tmp_path):
    _export_and_check(name, 64, 128, tmp_path)


@pytest.mark.slow
def test_reference_size_export(tmp_path):
    _export_and_check("stereonet-plus", 544, 960, tmp_path)


def test_fresh_aggregation_starts_as_the_identity():
    """Zero-initialised residual and exchange branches: a fresh model's cost volumes keep their range."""
    aggregation = create_model("stereonet-plus").aggregations[0].eval()
    volumes = [torch.randn(1, d, 16 // 2**k, 32 // 2**k) for k, d in enumerate((24, 12, 6))]
    with torch.no_grad():
        fused = aggregation(volumes)
    for out, volume in zip(fused, volumes):
        torch.testing.assert_close(out, torch.relu(volume))
