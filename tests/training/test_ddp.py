"""Two processes of DDP on the CPU (gloo) through `edgestereo train`: each rank sees its own samples
and both end with the same weights.

DDP keeps the parameters equal; BatchNorm running statistics stay per rank (SyncBatchNorm, which
would share them, needs CUDA), so only the parameters are compared."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path):
    record = tmp_path / "record"
    command = [sys.executable, "-m", "edgestereo.apps.cli", "train", "--config", str(HERE / "tiny.yaml"),
               "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_steps", "3",
               "--data.options", "{num: 8, size: [64, 128], max_disp: 24}",
               "--trainer.default_root_dir", str(tmp_path / "run"),
               "--trainer.callbacks+=probes.RecordRank", f"--trainer.callbacks.out={record}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((record / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["global_step"] for r in ranks] == [3, 3]
    # 3 steps of 2 pairs per rank; 8 pairs split 4 + 4 per epoch
    assert all(len(r["samples"]) == 6 for r in ranks)
    assert set(ranks[0]["samples"][:4]).isdisjoint(ranks[1]["samples"][:4])
    assert ranks[0]["parameters"] == ranks[1]["parameters"]
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.slow
def test_two_process_ddp_stops_at_once_on_sigterm_during_a_stuck_validation_and_resumes(tmp_path):
    """SIGTERM to the main process (rank 0), as `kill` sends it, while both ranks wait in validation:
    Lightning's launcher passes it to rank 1, both write and leave last.ckpt at once, and the run resumes."""
    marks = tmp_path / "marks"
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    # 2 steps per epoch, validation (4 pairs per rank) after every step, no periodic checkpoint
    command = [sys.executable, "-m", "edgestereo.apps.cli", "train", "--config", str(HERE / "tiny.yaml"),
               "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_steps", "3",
               "--trainer.val_check_interval", "1", "--trainer.limit_val_batches", "4",
               "--step_checkpoint.every_n_steps", "100", "--data.options", "{num: 8, size: [64, 128], max_disp: 24}",
               "--data.val_options", "{num: 8, size: [64, 128], max_disp: 24}",
               "--trainer.default_root_dir", str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([*command, "--trainer.callbacks+=probes.StuckValidation",
                                f"--trainer.callbacks.out={marks}", "--trainer.callbacks.step=1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not all((marks / f"stuck{rank}").exists() for rank in (0, 1)):
            assert process.poll() is None and time.monotonic() < deadline, "the run never reached the validation"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=100)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 143, output[-3000:]
    assert not list(marks.glob("finished*"))
    assert torch.load(last, weights_only=True)["global_step"] == 1
    resumed = subprocess.run([*command, "--resume", "last"], capture_output=True, text=True, env=env, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(last, weights_only=True)["global_step"] == 3
    assert (tmp_path / "run" / "model.safetensors").is_file()
