"""StereoLitModule: frozen BatchNorm, the optimiser and schedule, validation metrics that agree with
the evaluator, bf16 autocast on the CPU, and the own-camera recipe: self-supervised fine-tuning of the
packaged default model on pairs without ground truth."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import nn

from edgestereo import load_model
from edgestereo.apps.cli import main
from edgestereo.data import create_dataset
from edgestereo.data.io import write_image
from edgestereo.errors import EdgeStereoError
from edgestereo.evaluation.evaluator import evaluate
from edgestereo.models import create_model
from edgestereo.models._checkpoint import checkpoint_model_name
from edgestereo.runtime.predictor import TorchPredictor
from edgestereo.training import StereoDataModule, StereoLitModule
from edgestereo.training.lightning_cli import run_training
from edgestereo.training.lit_module import validation_grid

OPTIONS = {"num": 4, "size": [64, 128], "max_disp": 24}
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _module(**kwargs) -> StereoLitModule:
    torch.manual_seed(0)
    return StereoLitModule(model="stereonet-plus-small", model_config={"max_disp": 32}, val_images=0, **kwargs)


def _data(**kwargs) -> StereoDataModule:
    return StereoDataModule(options=OPTIONS, val_options={**OPTIONS, "num": 2}, crop_size=None, augmentation="none",
                            batch_size=2, **kwargs)


def _trainer(**kwargs) -> pl.Trainer:
    settings = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                "enable_model_summary": False, "num_sanity_val_steps": 0, **kwargs}
    return pl.Trainer(accelerator="cpu", **settings)


def test_freeze_bn_keeps_statistics_and_trains_the_rest():
    module = _module(freeze_bn=True).train()
    norms = [m for m in module.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and not any(m.training for m in norms)
    assert module.model.training and all(p.requires_grad for p in module.model.parameters())
    before = [m.running_mean.clone() for m in norms]
    left = torch.rand(1, 3, 64, 128) * 255
    module.model.forward_train(left, left.roll(-4, -1))
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, norms))
    assert all(m.training for m in _module().train().model.modules())


def test_freeze_bn_holds_through_fitting_and_validation():
    """Lightning neither calls train() when fitting starts nor after validation (it restores each
    module's mode): the statistics must stay those of the start all the same."""
    module = _module(freeze_bn=True)
    before = {k: v.clone() for k, v in module.model.state_dict().items() if "running" in k}
    _trainer(max_steps=2, val_check_interval=1).fit(module, _data())
    after = module.model.state_dict()
    assert before and all(torch.equal(value, after[key]) for key, value in before.items())


def test_adamw_with_a_linear_one_cycle_over_the_run():
    module = _module(lr=1e-3, weight_decay=1e-4)
    trainer = _trainer(max_steps=2, limit_val_batches=0)
    trainer.fit(module, _data())
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["weight_decay"] == 1e-4 and optimizer.defaults["eps"] == 1e-8
    schedule = trainer.lr_scheduler_configs[0]
    assert schedule.interval == "step" and schedule.scheduler.total_steps == 2 + 100
    assert schedule.scheduler.last_epoch == 2


def test_validation_metrics_agree_with_the_evaluator():
    module = _module()
    metrics = _trainer().validate(module, _data(), verbose=False)[0]
    dataset = create_dataset("synthetic", split="val", **{**OPTIONS, "num": 2})
    report = evaluate(TorchPredictor(module.model, "cpu"), dataset, max_disp=32)
    for logged, pooled in (("val/epe", "epe"), ("val/bad1", "bad1"), ("val/bad3", "bad3"), ("val/d1", "d1")):
        assert metrics[logged] == pytest.approx(report["all"][pooled], rel=1e-4, abs=1e-4)


def test_bf16_autocast_trains_on_the_cpu(tmp_path):
    module = _module()
    trainer = _trainer(max_steps=1, limit_val_batches=0, precision="bf16-mixed")
    trainer.fit(module, _data())
    assert trainer.precision == "bf16-mixed" and trainer.global_step == 1
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert all(p.dtype == torch.float32 for p in module.parameters())  # autocast, not a bf16 copy


def test_validation_grid_layout():
    left = torch.full((2, 3, 8, 10), 128.0)
    gt = torch.full((2, 1, 8, 10), 5.0)
    valid = torch.ones_like(gt, dtype=torch.bool)
    valid[:, :, :, :3] = False
    grid = validation_grid(left, gt + 1.0, gt, valid)
    assert grid.shape == (16, 40, 3) and grid.dtype == np.uint8
    assert (grid[:8, 30:33] == 0).all()  # no ground truth: black error
    assert (grid[:8, 33:] > 0).any()


def _write_folder(root: Path, count: int) -> None:
    """``count`` rectified pairs without disparity, in the folder layout a user's camera gives."""
    pairs = create_dataset("synthetic", split="test", **{**OPTIONS, "num": count})
    for index in range(count):
        sample = pairs[index]
        write_image(root / "left" / f"{index:04d}.png", sample["left"])
        write_image(root / "right" / f"{index:04d}.png", sample["right"])


def test_own_camera_recipe_fine_tunes_the_packaged_v1_model(tmp_path, capsys):
    """No model option: the recipe starts from stereonet-plus-small's packaged weights, validates at
    step 0 and writes weights that ``infer --pretrained FILE`` loads alone."""
    _write_folder(tmp_path / "pairs", 4)
    result = run_training([
        "--config", str(CONFIGS / "stereonet_plus_own_camera.yaml"),
        "--trainer.default_root_dir", str(tmp_path / "run"),
        "--data.root", str(tmp_path / "pairs"), "--data.holdout", "2", "--data.crop_size", "[64, 128]",
        "--data.num_workers", "0", "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
        "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--checkpoint.save_top_k", "-1",
    ])
    rows = list(csv.DictReader((result.root / "logs" / "version_0" / "metrics.csv").open()))
    logged = {key for row in rows for key, value in row.items() if value}
    assert {"train/photometric", "train/smoothness", "train/scored", "val/zncc", "val/photometric"} <= logged
    assert not any(key.startswith("val/epe") for key in logged)
    # Lightning logs a validation inside an epoch at the step before the optimiser step that triggered it
    assert [int(row["step"]) for row in rows if row.get("val/zncc")] == [0, 1]
    packaged = create_model("stereonet-plus-small", pretrained=True)
    first = next((result.root / "checkpoints").glob("best-*-step0000000.ckpt"))
    start = create_model("stereonet-plus-small", pretrained=first)
    assert all(torch.equal(value, start.state_dict()[key]) for key, value in packaged.state_dict().items())
    best = result.root / "best.safetensors"
    assert checkpoint_model_name(best) == "stereonet-plus-small" == checkpoint_model_name(result.weights)
    assert load_model(best).state_dict().keys() == packaged.state_dict().keys()
    pair = tmp_path / "pairs"
    assert main(["infer", str(pair / "left" / "0000.png"), str(pair / "right" / "0000.png"),
                 "--pretrained", str(best), "--out", str(tmp_path / "out")]) == 0
    assert any((tmp_path / "out").iterdir())


def test_loss_options_change_the_published_loss_only():
    module = StereoLitModule(model="stereonet-plus2-small", loss_options={"gradient_weight": 1.0})
    assert module.supervised.gradient_weight == 1.0 and module.supervised.distribution_weight == 0.5
    assert module.hparams["loss_options"] == {"gradient_weight": 1.0}  # kept in checkpoints for a resume
    with pytest.raises(EdgeStereoError, match="loss_options change the published loss"):
        StereoLitModule(model="stereonet-plus2-small", loss="self_supervised", loss_options={"gradient_weight": 1.0})


def test_a_frozen_batchnorm_run_does_not_warn_about_its_eval_mode_modules(tmp_path, recwarn):
    """Lightning warns when modules start training in eval mode; with model.freeze_bn that is the
    request itself, so the train command keeps the warning out of the run's output."""
    from edgestereo.training.lightning_cli import run_training

    run_training(["--config", str(Path(__file__).parent / "tiny.yaml"), "--trainer.max_steps", "1",
                  "--model.freeze_bn", "true", "--trainer.default_root_dir", str(tmp_path)])
    warned = [str(w.message) for w in recwarn if "in eval mode at the start of training" in str(w.message)]
    assert not warned, warned
