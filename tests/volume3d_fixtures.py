"""Helpers for the 3-D cost-volume networks' tests (StereoNet, GwcNet): inputs, batch-norm statistics,
and checkpoint files shaped like the published ones."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from stereo_fixtures import shifted_pair


def pair_tensors(height: int, width: int, disparity: int = 5, seed: int = 0, batch: int = 1):
    """(left, right): (B,3,H,W) float in [0,255], a textured plane at ``disparity`` px."""
    lefts, rights = [], []
    for index in range(batch):
        left, right = shifted_pair(height, width, disparity, seed + index)
        lefts.append(torch.from_numpy(left).permute(2, 0, 1).float())
        rights.append(torch.from_numpy(right).permute(2, 0, 1).float())
    return torch.stack(lefts), torch.stack(rights)


def calibrate_batchnorm(model: torch.nn.Module, height: int, width: int) -> torch.nn.Module:
    """Give every batch norm the statistics of one textured pair, then switch to eval.

    Freshly initialised running statistics (mean 0, var 1) leave activations unnormalised, so deep
    random networks saturate their softmax and any two computations of them agree trivially; with
    real statistics the disparity varies and parity tests mean something.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one batch sets the statistics exactly
    left, right = pair_tensors(height, width, seed=7)
    model.train()
    with torch.no_grad():
        model(left, right)
    return model.eval()


def write_lightning_checkpoint(path: Path, state_dict: dict[str, torch.Tensor], hyper_parameters: dict[str, Any]
                               ) -> Path:
    """A ``.ckpt`` laid out as Lightning 2 writes StereoNet_PyTorch's: ``state_dict`` with
    ``hyper_parameters`` holding the Hydra optimizer/scheduler partials, plus trainer state."""
    hparams = {
        "mask": True,
        "optimizer_partial": functools.partial(torch.optim.RMSprop, lr=2.54e-4, weight_decay=1e-4),
        "scheduler_partial": functools.partial(torch.optim.lr_scheduler.ExponentialLR, gamma=0.9),
        **hyper_parameters,
    }
    checkpoint = {
        "epoch": 21,
        "global_step": 696366,
        "pytorch-lightning_version": "2.0.1",
        "state_dict": dict(state_dict),
        "loops": {"fit_loop": {"epoch_progress": {"total": {"ready": 22, "completed": 21}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val_loss_epoch', 'mode': 'min'}": {
            "best_model_score": torch.tensor(1.543), "dirpath": "lightning_logs/version_0/checkpoints"}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 2.54e-4, "alpha": 0.99, "params": [0, 1]}]}],
        "lr_schedulers": [{"gamma": 0.9, "base_lrs": [2.54e-4], "last_epoch": 21}],
        "hparams_name": "kwargs",
        "hyper_parameters": hparams,
    }
    torch.save(checkpoint, path)
    return path
