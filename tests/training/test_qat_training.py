"""Quantization-aware training through `edgestereo train` (``model.quant: qat``): a short run on the
tiny QAT network, its exported weights through export + quantize to an npu4d QDQ graph, resume, and
the user errors; the shipped recipe on the real model is a slow test."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from edgestereo.apps.cli import main
from edgestereo.errors import EdgeStereoError
from edgestereo.export.check import check_onnx
from edgestereo.models import create_model, save_pretrained
from edgestereo.quant.ptq import is_quantized
from edgestereo.quant.scoring import load_samples
from edgestereo.runtime.onnx_predictor import OnnxPredictor
from edgestereo.training.lightning_cli import run_training
from tiny_matching import assert_close_relative
from tiny_qat_stereo import TINY_QAT_NAME, TinyQATStereo, register_tiny_qat

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
#: what the QAT runs add to tiny.yaml: the tiny QAT network from given weights, validation pairs larger
#: than the 64x128 crop (scored on their centre), 2 calibration batches
QAT_OVERRIDES = ["--model.model", TINY_QAT_NAME, "--model.model_config", "{max_disp: 32}", "--model.quant", "qat",
                 "--model.qat_calibration_batches", "2",
                 "--data.val_options", "{num: 2, size: [96, 160], max_disp: 24}"]


@pytest.fixture
def tiny_qat(monkeypatch) -> str:
    return register_tiny_qat(monkeypatch)


def _initial_weights(folder: Path) -> Path:
    """Seeded float weights of the tiny network, with BatchNorm statistics of their own."""
    torch.manual_seed(0)
    model = create_model(TINY_QAT_NAME)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.8, 1.2)
    return save_pretrained(model, folder / "init.safetensors")


def _qat_args(recipe: Path, root: Path, init: Path) -> list[str]:
    return ["--config", str(recipe), "--trainer.default_root_dir", str(root), *QAT_OVERRIDES,
            "--model.pretrained", str(init)]


def _calibration_messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "activation ranges calibrated" in r.getMessage()]


def test_qat_run_exports_a_float_network_that_quantizes_to_an_npu4d_graph(tiny_qat, tiny_recipe, tmp_path, caplog):
    init = _initial_weights(tmp_path)
    with caplog.at_level(logging.INFO):
        result = run_training(_qat_args(tiny_recipe, tmp_path / "run", init))
    assert not result.interrupted and result.global_step == 2
    assert _calibration_messages(caplog) == ["QAT: activation ranges calibrated on 2 training batch(es)"]

    # the checkpoint holds the fake-quantization state (calibrated ranges) beside the float network
    checkpoint = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["quant"] == "qat"
    state = checkpoint["state_dict"]
    assert bool(state["qat.calibrated"])
    scales = [v for k, v in state.items() if k.startswith("qat.graph.activation_post_process") and k.endswith(".scale")]
    assert scales and any(not torch.equal(s, torch.ones_like(s)) for s in scales)

    # the exported weights are a plain network: trained from the initial ones, equal to the checkpoint's
    trained = create_model(TINY_QAT_NAME, pretrained=result.weights)
    initial = create_model(TINY_QAT_NAME, pretrained=init)
    assert isinstance(trained, TinyQATStereo)
    for key, value in trained.state_dict().items():
        assert torch.equal(value, state[f"model.{key}"]), key
    assert not torch.equal(trained.features[0].weight, initial.features[0].weight)
    # the same run in float ends elsewhere: the gradients went through the fake quantization
    float_run = run_training([*_qat_args(tiny_recipe, tmp_path / "float", init), "--model.quant", "null"])
    float_trained = create_model(TINY_QAT_NAME, pretrained=float_run.weights)
    assert not torch.allclose(trained.features[0].weight, float_trained.features[0].weight, atol=1e-6)
    # BatchNorm statistics come from the fake-quantized graph's training batches
    assert not torch.equal(trained.features[1].running_mean, initial.features[1].running_mean)
    # a training checkpoint initialises a model too (its network part)
    from_checkpoint = create_model(TINY_QAT_NAME, pretrained=result.last_checkpoint)
    assert all(torch.equal(v, from_checkpoint.state_dict()[k]) for k, v in trained.state_dict().items())

    onnx_path, int8_path = tmp_path / "qat.onnx", tmp_path / "qat.int8.onnx"
    assert main(["export", "--model", TINY_QAT_NAME, "--pretrained", str(result.weights), "--height", "64",
                 "--width", "128", "--out", str(onnx_path)]) == 0
    assert main(["quantize", "--onnx", str(onnx_path), "--calib-dataset", "synthetic", "--num-samples", "2",
                 "--per-channel", "--out", str(int8_path)]) == 0
    assert is_quantized(int8_path)
    assert check_onnx(int8_path, "npu4d").ok
    # the int8 graph follows the float one on a pair it was not calibrated on (a constant is ~80 % off);
    # single pixels may flip between candidates in flat regions (measured max 11.5 px)
    pair = load_samples("synthetic", None, "val", 1, (64, 128), max_disp=32)[0]
    float_disparity = OnnxPredictor(onnx_path)(pair["left"], pair["right"])
    assert_close_relative(OnnxPredictor(int8_path)(pair["left"], pair["right"]), float_disparity,
                          mean_share=0.2, max_px=16.0)


def test_a_qat_run_resumes_with_its_ranges_and_refuses_a_float_checkpoint(tiny_qat, tiny_recipe, tmp_path, caplog,
                                                                          capsys):
    init = _initial_weights(tmp_path)
    args = _qat_args(tiny_recipe, tmp_path / "qat", init)
    run_training([*args, "--trainer.max_steps", "1"], export=False)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        resumed = run_training([*args, "--trainer.max_steps", "2"], resume="last", export=False)
    assert resumed.global_step == 2
    assert _calibration_messages(caplog) == []  # the ranges came back with the checkpoint

    float_root = tmp_path / "float"
    run_training(["--config", str(tiny_recipe), "--trainer.default_root_dir", str(float_root), "--model.model",
                  TINY_QAT_NAME, "--trainer.max_steps", "1"], export=False)
    code = main(["train", *_qat_args(tiny_recipe, float_root, init), "--resume", "last"])
    assert code == 2
    assert "trained with model.quant null, this run has qat" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "message"), [
    (["--trainer.precision", "bf16-mixed"], "model.quant qat trains in float32 (fake quantization has no bf16-mixed "
                                            "path): set trainer.precision 32-true"),
    (["--data.crop_size", "null"], "model.quant qat needs data.crop_size"),
    (["--data.crop_size", "[62, 128]"], "data.crop_size [62, 128]: tiny-qat-stereo needs multiples of 4"),
    (["--model.qat_calibration_batches", "0"], "model.qat_calibration_batches must be ≥ 1, got 0"),
])
def test_qat_configuration_errors(tiny_qat, tiny_recipe, tmp_path, capsys, extra, message):
    code = main(["train", *_qat_args(tiny_recipe, tmp_path / "run", _initial_weights(tmp_path)), *extra])
    assert code == 2
    assert message in capsys.readouterr().err


def test_weights_of_another_model_are_refused(tiny_qat, tiny_recipe, tmp_path, capsys):
    other = save_pretrained(create_model("stereonet-plus-small", max_disp=32), tmp_path / "other.safetensors")
    code = main(["train", *_qat_args(tiny_recipe, tmp_path / "run", other)])
    assert code == 2
    assert f"holds weights of 'stereonet-plus-small', not '{TINY_QAT_NAME}'" in capsys.readouterr().err


class _TwiceCalledFeatures(TinyQATStereo):
    """The features run on each view separately: the same convolutions called twice."""

    def forward(self, left, right):
        cost = self.correlation(self.features(left / 127.5 - 1.0), self.features(right / 127.5 - 1.0))
        return torch.nn.functional.interpolate(cost.mean(1, keepdim=True), scale_factor=4)


def test_a_model_the_quantizer_refuses_gives_one_clear_error(tiny_qat, tiny_recipe, tmp_path, monkeypatch, capsys):
    from edgestereo.models import _registry
    from tiny_qat_stereo import TinyQATConfig

    entry = _registry.ModelEntry("twice-called", _TwiceCalledFeatures, TinyQATConfig(),
                                 "test-only network that calls its convolutions twice")
    monkeypatch.setitem(_registry._REGISTRY, "twice-called", entry)
    code = main(["train", "--config", str(tiny_recipe), "--trainer.default_root_dir", str(tmp_path / "run"),
                 *QAT_OVERRIDES, "--model.model", "twice-called"])
    assert code == 2
    err = capsys.readouterr().err
    assert "twice-called: torchao cannot prepare this graph for QAT" in err
    assert "run it once on the views stacked as one batch" in err


def test_qat_needs_the_stereo_data_module(tiny_qat):
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    from edgestereo.data import collate_stereo, create_dataset, to_tensors
    from edgestereo.training import StereoLitModule

    pairs = create_dataset("synthetic", num=2, size=(32, 64), max_disp=16)
    loader = DataLoader([to_tensors(pairs[i]) for i in range(2)], batch_size=2, collate_fn=collate_stereo)
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(EdgeStereoError, match="needs edgestereo's StereoDataModule"):
        trainer.fit(StereoLitModule(TINY_QAT_NAME, quant="qat"), train_dataloaders=loader)


@pytest.mark.slow
def test_the_shipped_qat_recipe_fine_tunes_the_default_model(tmp_path):
    """configs/stereonet_plus_small_qat.yaml at a tiny size (tracing stereonet-plus-small under
    fake quantization takes a minute or two here)."""
    torch.manual_seed(0)
    model = create_model("stereonet-plus-small")
    with torch.no_grad():  # as trained weights have them: no BatchNorm scale left at its zero initialisation
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
    init = save_pretrained(model, tmp_path / "float.safetensors")
    result = run_training([
        "--config", str(CONFIGS / "stereonet_plus_small_qat.yaml"), "--model.pretrained", str(init),
        "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.max_steps", "2",
        "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false", "--model.qat_calibration_batches", "1",
        "--data.options", "{num: 4, size: [64, 128], max_disp: 48, seed: 0}",
        "--data.val_options", "{num: 1, size: [64, 128], max_disp: 48, seed: 0}", "--data.crop_size", "[64, 128]",
    ])
    assert result.global_step == 2 and result.best_checkpoint is not None
    onnx_path, int8_path = tmp_path / "snps.onnx", tmp_path / "snps.int8.onnx"
    assert main(["export", "--model", "stereonet-plus-small", "--pretrained", str(result.weights), "--height", "64",
                 "--width", "128", "--out", str(onnx_path)]) == 0
    assert main(["quantize", "--onnx", str(onnx_path), "--calib-dataset", "synthetic", "--num-samples", "2",
                 "--per-channel", "--out", str(int8_path)]) == 0
    assert check_onnx(int8_path, "npu4d").ok
