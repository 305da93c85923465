"""Raw weights against their exponential moving average (EMA) on the validation sets, along a stretch of the campaign.

A copy of a campaign checkpoint (default: the campaign's ``last.ckpt``) trains on with the campaign
recipe (``configs/stereonet_plus2_small_campaign.yaml``, one training thread, one DataLoader
worker) and Lightning's ``EMAWeightAveraging`` callback, ``--segments`` times ``--steps`` steps.
The average only reads the trajectory, so after each segment the raw weights and the EMA of the
same run are compared, pair for pair, on the two sets checkpoints and settings are chosen on:

- the synthetic ``val`` split (seed 0, 256x512, max disparity 192; the campaign validates on its
  first 100 pairs);
- the photograph scenes from ``VALIDATION_PHOTOS`` (never in training).

The motorcycle pair is never used. The copy's learning-rate schedule is the campaign's (restored
from the checkpoint); the average, with this script's ``--decay`` in place of any the recipe sets,
starts from the checkpoint's raw weights.

usage:
  .venv/bin/python benchmarks/ema_readout.py                                 # 3 x 1,000 steps, decay 0.999
  .venv/bin/python benchmarks/ema_readout.py --segments 1 --steps 20 --val-num 4   # a smoke run
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from edgestereo.models import create_model
from edgestereo.models._checkpoint import Checkpoint, load_state_dict_strict, read_checkpoint, training_network
from edgestereo.runtime.benchmark import environment
from edgestereo.runtime.factory import create_predictor

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "stereonet_plus2_small_campaign.yaml"
CAMPAIGN_LAST = REPO / "runs" / "stereonet_plus2_small_campaign" / "checkpoints" / "last.ckpt"
MODEL = "stereonet-plus2-small"
EMA_CALLBACK = "lightning.pytorch.callbacks.EMAWeightAveraging"


def train_segment(work: Path, until_step: int, decay: float, segment_steps: int) -> Path:
    """Resume the newest checkpoint in ``work/checkpoints`` with the EMA callback until ``until_step``
    → the checkpoint written at the end (``state_dict``: the average; ``current_model_state``: raw)."""
    command = [sys.executable, "-m", "edgestereo.apps.cli", "train", "--config", str(RECIPE), "--no-export",
               "--resume", "last", "--trainer.default_root_dir", str(work),
               "--trainer.max_steps", str(until_step), "--trainer.val_check_interval", str(segment_steps),
               "--data.val_options.num", "2", "--step_checkpoint.every_n_steps", str(segment_steps),
               # the recipe's own callbacks (its EMA) give way to this one
               "--trainer.callbacks=[]", f"--trainer.callbacks+={EMA_CALLBACK}", f"--trainer.callbacks.decay={decay}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    if done.returncode != 0:
        raise SystemExit("training failed: " + (done.stderr.strip().splitlines() or ["?"])[-1])
    return work / "checkpoints" / "last.ckpt"


def raw_and_average(checkpoint: Path) -> tuple[int, torch.nn.Module, torch.nn.Module]:
    """(global step, network with the raw weights, network with the averaged weights) of ``checkpoint``,
    read once."""
    saved = read_checkpoint(checkpoint)
    raw_state = saved.meta.get("current_model_state")
    if raw_state is None:
        raise SystemExit(f"{checkpoint}: no current_model_state (not written with {EMA_CALLBACK})")
    networks = []
    for state in (raw_state, saved.state_dict):
        network = training_network(Checkpoint(state, saved.meta, saved.path))
        model = create_model(MODEL, **network.meta["config"]).eval()
        load_state_dict_strict(model, network.state_dict, str(checkpoint))
        networks.append(model)
    return int(saved.meta["global_step"]), *networks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=CAMPAIGN_LAST,
                        help="campaign checkpoint to continue (copied; default the campaign's last.ckpt)")
    parser.add_argument("--segments", type=int, default=3, help="scored segments (default 3)")
    parser.add_argument("--steps", type=int, default=1000, help="training steps per segment (default 1000)")
    parser.add_argument("--decay", type=float, default=0.999, help="EMA decay per step (default 0.999)")
    parser.add_argument("--val-num", type=int, default=50, help="pairs of each validation set (default 50)")
    args = parser.parse_args()
    if args.segments < 1 or args.steps < 1 or args.val_num < 1:
        parser.error("--segments, --steps and --val-num must be ≥ 1")
    if not 0.0 < args.decay < 1.0:
        parser.error(f"--decay must be in (0, 1), got {args.decay}")
    if not args.checkpoint.is_file():
        parser.error(f"--checkpoint {args.checkpoint}: file not found")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eval_default_model import score_set, validation_sets  # the sets; evaluate() plus the block ratio

    sets = validation_sets(args.val_num)
    start = int(read_checkpoint(args.checkpoint).meta["global_step"])
    env = environment()
    print(f"{env['cpu']} ({', '.join(env['cpu_features'])}), load average {env['load_average'][0]:.1f}; "
          f"from {args.checkpoint.name} at step {start:,}, {args.segments} x {args.steps:,} steps, EMA decay "
          f"{args.decay:g}; training on 1 thread; {args.val_num} pairs per set\n")
    print("| step | weights | synthetic val EPE / bad-2 % / block | photograph val EPE / bad-2 % / block |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="ema-readout-") as work_dir:
        work = Path(work_dir)
        (work / "checkpoints").mkdir()
        shutil.copy2(args.checkpoint, work / "checkpoints" / "last.ckpt")
        for segment in range(1, args.segments + 1):
            checkpoint = train_segment(work, start + segment * args.steps, args.decay, args.steps)
            step, raw, average = raw_and_average(checkpoint)
            for label, network in (("raw", raw), (f"EMA {args.decay:g}", average)):
                predict = create_predictor(network, threads=1)
                cells = []
                for pairs in sets.values():
                    report = score_set(predict, pairs)
                    cells.append(f"{report['all']['epe']:.3f} / {report['all']['bad2']:.2f} / "
                                 f"{report['block_ratio']:.2f}")
                print(f"| {step:,} | {label} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
