"""A run killed with SIGTERM mid-epoch, or in the middle of a validation, and resumed with --resume
last ends where an uninterrupted run ends: same global step, bit-identical weights (data order,
augmentation and RNG states restored)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgestereo.apps.cli import main
from edgestereo.models import load_model
from edgestereo.training.lightning_cli import run_training

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


#: 4 steps of 2 pairs (2 per epoch), a validation of 2 pairs after every step; no periodic
#: checkpoint, so the one a stopped run leaves is the one SIGTERM wrote.
VALIDATING_RUN = ["--config", str(HERE / "tiny.yaml"), "--trainer.max_steps", "4", "--trainer.val_check_interval", "1",
                  "--step_checkpoint.every_n_steps", "100"]


@pytest.fixture(scope="module")
def validating_run_weights(tmp_path_factory) -> dict[str, torch.Tensor]:
    root = tmp_path_factory.mktemp("straight") / "run"
    result = run_training([*VALIDATING_RUN, "--trainer.default_root_dir", str(root)])
    return load_model(result.weights).state_dict()


@pytest.mark.parametrize("step", [1, 2], ids=["mid-epoch", "end-of-epoch"])
def test_sigterm_during_a_stuck_validation_stops_at_once_and_resumes(tmp_path, monkeypatch, capsys,
                                                                     validating_run_weights, step):
    monkeypatch.syspath_prepend(str(HERE))
    root, finished = tmp_path / "run", tmp_path / "stuck_batch_finished"
    code = main(["train", *VALIDATING_RUN, "--trainer.default_root_dir", str(root),
                 "--trainer.callbacks+=probes.SigtermInStuckValidation", f"--trainer.callbacks.step={step}",
                 f"--trainer.callbacks.finished={finished}"])
    assert code == 143 and f"stopped by SIGTERM at step {step}" in capsys.readouterr().out
    # Lightning alone acts on SIGTERM only once the validation batch in progress ends
    assert not finished.exists()
    last = root / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == step
    assert not (root / "model.safetensors").exists()

    assert main(["train", *VALIDATING_RUN, "--trainer.default_root_dir", str(root), "--resume", "last"]) == 0
    assert torch.load(last, weights_only=True)["global_step"] == 4
    got = load_model(root / "model.safetensors").state_dict()
    assert got.keys() == validating_run_weights.keys()
    assert all(torch.equal(got[key], validating_run_weights[key]) for key in got)
    capsys.readouterr()


#: Lightning's EMA callback (what benchmarks/ema_readout.py and a recipe's trainer.callbacks add)
EMA = ["--trainer.callbacks+=lightning.pytorch.callbacks.EMAWeightAveraging", "--trainer.callbacks.decay=0.5"]


def test_an_ema_run_resumes_exactly_and_exports_the_average(tmp_path, monkeypatch, capsys):
    """With the EMA callback a checkpoint holds the average as ``state_dict`` and the raw weights as
    ``current_model_state``: the resumed run goes on from the raw weights (its average ends
    bit-identical to an uninterrupted run's) and exports the average."""
    monkeypatch.syspath_prepend(str(HERE))
    straight = run_training([*RUN, *EMA, "--trainer.default_root_dir", str(tmp_path / "straight")])
    killed_root = str(tmp_path / "killed")
    killed = run_training([*RUN, *EMA, "--trainer.default_root_dir", killed_root,
                           "--trainer.callbacks+=probes.SigtermAtStep", "--trainer.callbacks.step=3"])
    assert killed.interrupted and killed.global_step == 3
    saved = torch.load(killed.last_checkpoint, weights_only=True)
    raw, average = saved["current_model_state"], saved["state_dict"]
    assert raw.keys() == average.keys() and any(not torch.equal(raw[k], average[k]) for k in raw)
    resumed = run_training([*RUN, *EMA, "--trainer.default_root_dir", killed_root], resume="last")
    assert resumed.global_step == straight.global_step == 7
    expected, got = load_model(straight.weights).state_dict(), load_model(resumed.weights).state_dict()
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    final = torch.load(straight.last_checkpoint, weights_only=True)
    assert all(torch.equal(final["state_dict"][f"model.{key}"], value) for key, value in expected.items())
    # the finished run's checkpoint keeps the raw weights too (step 7 is no multiple of every_n_steps 2)
    raw = final["current_model_state"]
    assert any(not torch.equal(raw[f"model.{key}"], value) for key, value in expected.items())
    capsys.readouterr()
