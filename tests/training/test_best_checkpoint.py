"""BestCheckpoint: a fresh run validates before its first step and the starting weights are a
candidate, so fine-tuning never exports weights that validate worse than the ones it started from."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from edgestereo.models import create_model
from edgestereo.training import StereoDataModule, StereoLitModule, export_weights
from edgestereo.training.callbacks import BestCheckpoint

OPTIONS = {"num": 4, "size": [64, 128], "max_disp": 24}
#: the model the own-camera recipe fine-tunes from its packaged weights
OWN_CAMERA_MODEL = "stereonet-plus-small"


def _fine_tune(tmp_path, include_start: bool) -> tuple[BestCheckpoint, pl.Trainer]:
    """Two self-supervised steps from the packaged weights the own-camera recipe starts from, at a
    learning rate that wrecks them."""
    torch.manual_seed(0)
    module = StereoLitModule(model=OWN_CAMERA_MODEL, pretrained=True, loss="self_supervised", lr=1.0,
                             scheduler="constant", freeze_bn=True, val_images=0)
    data = StereoDataModule(options=OPTIONS, val_options={**OPTIONS, "num": 2}, crop_size=None,
                            augmentation="none", batch_size=2)
    best = BestCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val/zncc", mode="min", save_top_k=1,
                          save_on_train_epoch_end=False, include_start=include_start)
    trainer = pl.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, callbacks=[best])
    trainer.fit(module, data)
    return best, trainer


def test_the_starting_weights_are_the_best_when_fine_tuning_makes_them_worse(tmp_path):
    best, trainer = _fine_tune(tmp_path, include_start=True)
    assert trainer.global_step == 2
    scores = {path.rsplit("step=", 1)[1]: float(score) for path, score in best.best_k_models.items()}
    assert list(scores) == ["0.ckpt"], "the start must stay the best: two steps at lr 1 cannot improve it"
    start = torch.load(best.best_model_path, map_location="cpu", weights_only=True)
    assert start["global_step"] == 0
    wrecked = float(trainer.callback_metrics["val/zncc"])  # NaN if the weights diverged
    assert not wrecked <= float(best.best_model_score)
    exported_file = export_weights(best.best_model_path, tmp_path / "best.safetensors")
    exported = create_model(OWN_CAMERA_MODEL, pretrained=exported_file)
    packaged = create_model(OWN_CAMERA_MODEL, pretrained=True)
    for key, value in packaged.state_dict().items():
        assert torch.equal(value, exported.state_dict()[key]), key


def test_without_the_start_the_best_is_a_fine_tuned_checkpoint(tmp_path):
    """The control: ModelCheckpoint alone ranks only fine-tuned weights, however bad."""
    best, _ = _fine_tune(tmp_path, include_start=False)
    assert best.best_model_path.endswith("step=2.ckpt")
    assert float(best.best_model_score) == pytest.approx(float(best.current_score))
