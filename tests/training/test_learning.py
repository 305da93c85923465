"""Learning is real: the small StereoNetPlus overfits 8 synthetic pairs to a training EPE below 1 px on
this CPU, and its validation EPE on pairs it never saw drops below the initial one."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from edgestereo.training import StereoDataModule, StereoLitModule

PAIRS = {"num": 8, "size": [64, 128], "max_disp": 24}


class TrainingEPE(pl.Callback):
    """The training EPE of every step (all 8 pairs form one batch, so one step is one epoch)."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.values.append(float(trainer.callback_metrics["train/epe"]))


@pytest.mark.slow
def test_training_epe_falls_below_one_pixel_and_validation_improves():
    pl.seed_everything(0)
    module = StereoLitModule(model="stereonet-plus-small", model_config={"max_disp": 32}, lr=2e-3, pct_start=0.1,
                             val_images=0)
    data = StereoDataModule(options={**PAIRS, "seed": 0}, val_options={**PAIRS, "seed": 1}, crop_size=None,
                            augmentation="none", batch_size=8)
    epe = TrainingEPE()
    trainer = pl.Trainer(accelerator="cpu", max_steps=150, callbacks=[epe], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         check_val_every_n_epoch=1000, gradient_clip_val=1.0, log_every_n_steps=1)
    initial = trainer.validate(module, data, verbose=False)[0]["val/epe"]
    trainer.fit(module, data)
    final = trainer.validate(module, data, verbose=False)[0]["val/epe"]
    assert epe.values[0] > 3.0
    assert max(epe.values[-5:]) < 1.0, epe.values[-10:]
    assert final < initial, (initial, final)
    assert torch.isfinite(torch.tensor(epe.values)).all()
