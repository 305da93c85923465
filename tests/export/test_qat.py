"""Quantization-aware training with torchao PT2E: fake quantization, calibration, training step,
train/eval forms of the graph, weights written back for export; scoring at a fixed size."""

import numpy as np
import pytest
import torch

from edgestereo.errors import EdgeStereoError
from edgestereo.models import create_model
from edgestereo.quant.qat import QATModel
from edgestereo.quant.scoring import score_torch
from tiny_qat_stereo import tiny_qat_factory


def test_a_model_that_is_not_a_network_is_refused():
    with pytest.raises(EdgeStereoError, match="not a network"):
        QATModel(create_model("sgbm"), 32, 32)


def test_size_not_a_multiple_of_the_divisor_is_refused():
    with pytest.raises(EdgeStereoError, match="not a multiple of 32"):
        QATModel(create_model("stereonet-plus-small"), 48, 64)


def test_a_convolution_called_twice_is_refused_with_a_hint(tiny_model):
    with pytest.raises(EdgeStereoError, match=r"called more than once .* run it once on the views stacked"):
        QATModel(tiny_model, 32, 64)


def test_zero_batchnorm_scales_are_refused():
    model = tiny_qat_factory()
    model.model_name = "tiny-qat-stereo"
    with torch.no_grad():
        model.features[4].weight[3] = 0.0
    with pytest.raises(EdgeStereoError, match=r"1 BatchNorm layer\(s\) have a scale of exactly 0 \(features.4\)"):
        QATModel(model, 32, 64)


def _tiny_qat(freeze_bn: bool = False) -> tuple[QATModel, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = tiny_qat_factory()
    model.model_name = "tiny-qat-stereo"
    qat = QATModel(model, 32, 64, freeze_bn=freeze_bn)
    left, right = model.example_inputs(32, 64, batch=2)
    return qat, left, right


def _bn(qat: QATModel) -> torch.nn.BatchNorm2d:
    return qat.__dict__["float_model"].features[1]


def test_eval_leaves_statistics_ranges_and_counters_alone_and_train_updates_them():
    qat, left, right = _tiny_qat()
    assert not bool(qat.calibrated)
    assert qat.calibrate([(left, right)]) == 1 and bool(qat.calibrated)
    assert qat.training  # calibrate returns to the mode it found


    def tracked() -> dict[str, torch.Tensor]:
        # scale and zero point are recomputed from the observed range by every fake-quantized
        # forward, and the observer flags follow the mode: the state is the rest
        derived = (".scale", ".zero_point", ".observer_enabled")
        return {k: v.clone() for k, v in qat.state_dict().items() if not k.endswith(derived)}

    state = tracked()
    with torch.no_grad():
        qat.eval()(left, right)
    assert all(torch.equal(v, tracked()[k]) for k, v in state.items())
    qat.train().forward_train(left, right)
    changed = {k for k, v in tracked().items() if not torch.equal(v, state[k])}
    assert "graph.net.features.1.running_mean" in changed and "graph.net.features.1.num_batches_tracked" in changed
    assert any(k.startswith("graph.activation_post_process") and k.endswith("min_val") for k in changed)


def test_freeze_bn_trains_on_running_statistics():
    qat, left, right = _tiny_qat(freeze_bn=True)
    qat.calibrate([(left, right)])
    before = _bn(qat).running_mean.clone()
    loss = qat.train().forward_train(left, right)[0].mean()
    loss.backward()
    assert torch.equal(before, _bn(qat).running_mean)
    assert qat.graph.get_parameter("net.features.0.weight").grad is not None


def test_the_state_dict_restores_calibrated_ranges_into_a_fresh_graph():
    qat, left, right = _tiny_qat()
    qat.calibrate([(left, right), (right, left)])
    qat.train().forward_train(left, right)
    fresh, _, _ = _tiny_qat()
    fresh.load_state_dict(qat.state_dict())
    assert bool(fresh.calibrated)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(left, right), qat.eval()(left, right), rtol=0, atol=0)


def test_score_torch_pools_pixels_and_crops_to_the_size():
    disp = np.full((40, 80), 3.0, np.float32)
    sample = {"left": np.zeros((40, 80, 3), np.uint8), "right": np.zeros((40, 80, 3), np.uint8), "disp": disp,
              "valid": np.ones((40, 80), bool)}
    metrics = score_torch(lambda left, right: torch.full((1, 1, *left.shape[-2:]), 4.0), [sample], 32, 64)
    assert metrics["epe"] == pytest.approx(1.0) and metrics["valid_px"] == 32 * 64
    with pytest.raises(EdgeStereoError, match="smaller than"):
        score_torch(lambda left, right: left[:, :1], [sample], 64, 64)


@pytest.mark.slow
def test_qat_calibrates_trains_and_writes_back():
    torch.manual_seed(0)
    model = create_model("stereonet-plus-small", max_disp=32)
    with torch.no_grad():  # trained weights have no BatchNorm scale left at its zero initialisation
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
    qat = QATModel(model, 64, 64)
    left, right = model.example_inputs(64, 64, batch=2)
    assert qat.calibrate([(left, right)]) == 1
    with torch.no_grad():
        float_out = model.deploy().eval()(left, right)
        fake_quant_out = qat.eval()(left, right)
    # fake quantization changes the output, but only by quantization noise
    assert not torch.equal(float_out, fake_quant_out)
    assert (float_out - fake_quant_out).abs().mean() < 0.1 * float_out.abs().mean() + 0.5
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qat.train()
    optimizer = torch.optim.SGD(qat.parameters(), lr=1e-2)
    loss = sum(p.mean() for p in qat.forward_train(left[:1], right[:1]))  # batch size differs from the trace
    loss.backward()
    optimizer.step()
    tuned = qat.write_back()
    assert tuned is model
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(before[k], v)]
    assert "backbone.stem.0.weight" in changed
    with pytest.raises(EdgeStereoError, match="takes 64x64 crops"):
        qat.forward_train(*model.example_inputs(32, 64))


@pytest.mark.slow
def test_qat_keeps_a_dict_of_predictions_and_distributions():
    """StereoNetPlus v2 (the default model) returns {"left": predictions, "distributions": [(softmax,
    stride), …]} from forward_train: under QAT the same structure comes back, strides included, and
    its published loss runs on it."""
    from edgestereo.training.losses import published_loss
    from network_fixtures import calibrated

    model = calibrated("stereonet-plus2-small", max_disp=64)
    qat = QATModel(model, 64, 64)
    left, right = model.example_inputs(64, 64, batch=2)
    qat.calibrate([(left, right)])
    with torch.no_grad():
        reference = model.deploy().train().forward_train(left, right)
    outputs = qat.train().forward_train(left, right)
    assert set(outputs) == {"left", "distributions"}
    assert [tuple(p.shape) for p in outputs["left"]] == [tuple(p.shape) for p in reference["left"]]
    assert [(tuple(p.shape), stride) for p, stride in outputs["distributions"]] == \
        [(tuple(p.shape), stride) for p, stride in reference["distributions"]]
    assert torch.equal(qat.eval()(left, right), qat.forward_train(left, right)["left"][-1])
    gt = torch.rand(2, 1, 64, 64) * 60
    batch = {"disp": gt, "valid": torch.ones_like(gt, dtype=torch.bool)}
    terms = published_loss(model)(qat.train().forward_train(left, right), batch)
    assert {"loss_kl8", "loss_kl16"} <= set(terms) and torch.isfinite(terms["loss"])
