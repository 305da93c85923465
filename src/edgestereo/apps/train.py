"""Train or fine-tune a model with PyTorch Lightning from a YAML recipe (configs/*.yaml).

Every LightningCLI option works after the recipe: --trainer.* (devices, num_nodes, precision,
max_steps, accumulate_grad_batches, gradient_clip_val …), --model.* (model, model_config, pretrained,
loss, lr, freeze_bn …), --data.* (dataset, root, batch_size, crop_size …), --checkpoint.* (best by
val/epe) and --step_checkpoint.every_n_steps (last.ckpt). `--print_config` prints the full resolved
configuration. A run lives in trainer.default_root_dir: checkpoints/, logs/, images/ and, at the end,
model.safetensors and best.safetensors (+ .json) that `edgestereo infer --pretrained` reads.

examples:
  edgestereo train --config configs/stereonet_plus_synthetic.yaml
  edgestereo train --config configs/stereonet_plus_synthetic.yaml --resume last
  edgestereo train --config configs/raft_stereo_kitti.yaml --data.root /data/kitti2015 \\
      --model.pretrained raft-stereo-sceneflow.pth --trainer.devices 2
  edgestereo train --config configs/stereonet_plus_own_camera.yaml --data.root /data/my_pairs
"""

from __future__ import annotations

import argparse

HELP = "train or fine-tune a model (PyTorch Lightning; recipes in configs/)"
#: options this command does not know are LightningCLI options (--trainer.devices 2 …).
FORWARDS_UNKNOWN_ARGS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help="recipe (YAML); repeatable, later files override earlier ones")
    parser.add_argument("--resume", default=None, metavar="last|FILE",
                        help="continue a run: 'last' takes the newest checkpoint of the run's folder")
    parser.add_argument("--no-export", dest="export", action="store_false",
                        help="do not write model.safetensors / best.safetensors at the end")


def run(args: argparse.Namespace) -> int:
    from edgestereo.training.lightning_cli import run_training

    forwarded = [item for path in args.config for item in ("--config", path)] + list(args.forwarded)
    result = run_training(forwarded, resume=args.resume, export=args.export)
    if result.interrupted:
        saved = f"; checkpoint {result.last_checkpoint}" if result.last_checkpoint else ""
        print(f"stopped by SIGTERM at step {result.global_step}{saved}; continue with --resume last")
        # the conventional status of a process ended by SIGTERM
        return 143
    if result.weights is not None:
        print(f"weights: {result.weights}" + (f" (best: {result.root / 'best.safetensors'})"
                                              if result.best_checkpoint else ""))
    return 0
