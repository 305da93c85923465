"""Two processes of DDP on the CPU (gloo) through `edgestereo train`: each rank sees its own samples
and both end with the same weights.

DDP keeps the parameters equal; BatchNorm running statistics stay per rank (SyncBatchNorm, which
would share them, needs CUDA), so only the parameters are compared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
