"""A run killed with SIGTERM mid-epoch and resumed with --resume last ends where an uninterrupted run
ends: same global step, bit-identical weights (data order, augmentation and RNG states restored)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgestereo.models import load_model
from edgestereo.training.cli import run_training

HERE = Path(__file__).parent
#: 8 pairs of 64x160 cropped to 64x128 with the full synthetic augmentation: 4 steps per epoch.
RUN = ["--config", str(HERE / "tiny.yaml"), "--trainer.max_steps", "7", "--step_checkpoint.every_n_steps", "2",
       "--data.options", "{num: 8, size: [64, 160], max_disp: 24}", "--data.augmentation", "synthetic",
       "--trainer.limit_val_batches", "1"]


@pytest.mark.parametrize("kill_at", [3, 4], ids=["mid-epoch", "end-of-epoch"])
def test_sigterm_then_resume_matches_an_uninterrupted_run(tmp_path, monkeypatch, capsys, kill_at):
    monkeypatch.syspath_prepend(str(HERE))
    straight = run_training([*RUN, "--trainer.default_root_dir", str(tmp_path / "straight")])
    killed_root = str(tmp_path / "killed")
    killed = run_training([*RUN, "--trainer.default_root_dir", killed_root,
                           "--trainer.callbacks+=probes.SigtermAtStep", f"--trainer.callbacks.step={kill_at}"])
    assert killed.interrupted and killed.global_step == kill_at and killed.weights is None
    assert torch.load(killed.last_checkpoint, weights_only=True)["global_step"] == kill_at
    resumed = run_training([*RUN, "--trainer.default_root_dir", killed_root], resume="last")
    assert not resumed.interrupted and resumed.global_step == straight.global_step == 7
    expected, got = load_model(straight.weights).state_dict(), load_model(resumed.weights).state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    capsys.readouterr()
