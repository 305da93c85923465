"""A/B of StereoNetPlus v2 widths and max_disp on the validation sets, with short runs of the campaign recipe.

Each variant is ``stereonet-plus2-small`` with the recipe's config and one field changed. It trains ``--steps`` steps of
the campaign's first phase (``configs/stereonet_plus2_small_campaign.yaml``: scenes rendered at
128x256, batch 8, one persistent DataLoader worker, one training thread). The one-cycle schedule
spans the short run, and every variant uses the same seed and scenes; the recipe's weight average
(EMA) is left out, as over a short run it would still hold much of the random start. The last
checkpoint is then scored on two validation sets, the sets checkpoints and settings are chosen on:

- the synthetic ``val`` split (seed 0, 256x512, max disparity 192);
- the photograph scenes from ``VALIDATION_PHOTOS`` (never in training).

The motorcycle pair is never used. Parameters and GFLOPs (the deploy path at 384x640, counted as in
``bench_stereonet_plus.py``) and the training samples/s are printed beside.

A short run ranks variants by how fast they learn, not where they end: a variant that loses at 2,000
steps may still win at 200,000. The table says which is ahead at equal steps, and at what cost.

usage:
  .venv/bin/python benchmarks/ab_stereonet_plus2.py                    # 4 variants, 2,000 steps each
  .venv/bin/python benchmarks/ab_stereonet_plus2.py --steps 200 --val-num 8 --variants campaign,refine32
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from edgestereo.models import create_model
from edgestereo.runtime.benchmark import environment
from edgestereo.runtime.factory import create_predictor
from edgestereo.training.progress import read_curve

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "stereonet_plus2_small_campaign.yaml"
MODEL = "stereonet-plus2-small"
#: name → the config fields that differ from stereonet-plus2-small
VARIANTS = {
    "campaign": {},
    "refine32": {"refine_channels": 32},
    "quarter16": {"quarter_channels": 16},
    "maxdisp128": {"max_disp": 128},
}


def recipe_config(overrides: dict) -> dict:
    """The recipe's own ``model.model_config`` (the campaign's upsampling bound) with ``overrides`` on top:
    ``--model.model_config`` replaces the recipe's mapping, so a variant must carry it."""
    recipe = yaml.safe_load(RECIPE.read_text())
    return {**(recipe["model"].get("model_config") or {}), **overrides}


def train(name: str, config: dict, steps: int, work: Path) -> tuple[Path, float]:
    """`edgestereo train` on the campaign recipe with the network config ``config`` for ``steps``
    steps → (last checkpoint, median samples/s)."""
    run_dir = work / name
    fields = ", ".join(f"{key}: {value}" for key, value in config.items())
    command = [sys.executable, "-m", "edgestereo.apps.cli", "train", "--config", str(RECIPE), "--no-export",
               "--trainer.default_root_dir", str(run_dir), "--trainer.max_steps", str(steps),
               "--trainer.val_check_interval", str(steps), "--data.val_options.num", "2",
               "--step_checkpoint.every_n_steps", str(steps),
               "--trainer.log_every_n_steps", str(max(1, min(50, steps // 10))),
               "--model.model_config", f"{{{fields}}}", "--trainer.callbacks=[]"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{name}: training failed: " + (done.stderr.strip().splitlines() or ["?"])[-1])
    rates = [reading.value for reading in read_curve(run_dir / "logs", "train/samples_per_s")]
    return run_dir / "checkpoints" / "last.ckpt", statistics.median(rates[len(rates) // 5 :] or rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per variant (default 2000)")
    parser.add_argument("--val-num", type=int, default=50, help="pairs of each validation set (default 50)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS)}")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_stereonet_plus import count_gflops  # the GFLOPs of the latency table
    from eval_default_model import score_set, validation_sets  # the sets; evaluate() plus the block ratio

    names = [name.strip() for name in args.variants.split(",")]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or args.steps < 1 or args.val_num < 1:
        parser.error(f"unknown variant(s) {', '.join(unknown)}" if unknown else "--steps and --val-num must be ≥ 1")

    sets = validation_sets(args.val_num)
    env = environment()
    print(f"{env['cpu']} ({', '.join(env['cpu_features'])}), load average {env['load_average'][0]:.1f}; "
          f"training on 1 thread, {args.steps} steps per variant; {args.val_num} pairs per set\n")
    print("| variant | params | GFLOPs 384x640 | train samples/s | synthetic val EPE / bad-2 % / block | "
          "photograph val EPE / bad-2 % / block |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="ab-plus2-") as work_dir:
        for name in names:
            overrides = VARIANTS[name]
            config = recipe_config(overrides)
            model = create_model(MODEL, **config)
            params = sum(p.numel() for p in model.parameters())
            gflops = count_gflops(model, 384, 640, deploy=True)
            torch.manual_seed(0)
            checkpoint, rate = train(name, config, args.steps, Path(work_dir))
            cells = []
            predict = create_predictor(MODEL, pretrained=str(checkpoint))
            for pairs in sets.values():
                report = score_set(predict, pairs)
                cells.append(f"{report['all']['epe']:.3f} / {report['all']['bad2']:.2f} / {report['block_ratio']:.2f}")
            label = f"{name} ({', '.join(f'{k}={v}' for k, v in overrides.items()) or 'stereonet-plus2-small'})"
            print(f"| {label} | {params / 1e3:.0f} K | {gflops:.2f} | {rate:.1f} | {cells[0]} | {cells[1]} |",
                  flush=True)


if __name__ == "__main__":
    main()
