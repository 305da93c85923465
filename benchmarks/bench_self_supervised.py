"""Self-supervised fine-tuning of the own-camera recipe's model (``--model``, default the recipe's) from
its packaged weights on a domain it was not trained on, scored with ground truth that training never sees.

The domain: synthetic photograph scenes (``segment_prob`` 0.7) built only from the photographs kept
out of training (``VALIDATION_PHOTOS``: chelsea, clock, rocket), sensor noise up to ``--noise``
grey levels (3 in training), at 128×256 with disparities below 48 px (the model trained at
256×512, below 192 px).

- Training: ``--pairs`` pairs of the ``train`` split written as left/right PNGs only, no disparity,
  and the own-camera recipe run on that folder exactly as on a user's camera
  (``configs/stereonet_plus_own_camera.yaml``, only the size, step and validation settings changed);
  the recipe holds the last ``--holdout`` pairs out and picks its best checkpoint by ``val/zncc``.
- Test: ``--test`` pairs of the ``test`` split (its own random stream) with ground truth, used for
  nothing but these tables.

Prints the CPU, then Markdown tables: before/after (EPE px, bad-2 %, D1 %, and the validation
metric, mean ``zncc_cost``, on the test pairs) for the packaged weights, the run's
``best.safetensors`` and its last weights; and how well validation metrics track EPE: Pearson and
Spearman correlation over every validated checkpoint of the run, and over those checkpoints plus
perturbations of the ground truth (noise, offsets, scale, blur), for ``val/zncc``, the objective's
photometric term (``val/photometric``) and the plain in-view SSIM + L1 error.

usage:
  .venv/bin/python benchmarks/bench_self_supervised.py                 # 300 steps: minutes on one thread
  .venv/bin/python benchmarks/bench_self_supervised.py --lr-weight 0.1 # with left-right consistency
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from edgestereo.data import collate_stereo, create_dataset, to_tensors
from edgestereo.data.io import write_image
from edgestereo.data.synthetic.textures import VALIDATION_PHOTOS
from edgestereo.evaluation.metrics import disparity_metrics
from edgestereo.models import create_model
from edgestereo.runtime.benchmark import environment
from edgestereo.runtime.padding import InputPadder
from edgestereo.training.lightning_cli import run_training
from edgestereo.training.losses import (
    masked_mean,
    photometric_error,
    reconstruction_cost,
    warp_right_to_left,
    zncc_cost,
)

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "stereonet_plus_own_camera.yaml"
SIZE, MAX_DISP = (128, 256), 48
METRICS = ("val/zncc", "val/photometric", "SSIM+L1 in view")


def domain(split: str, num: int, noise: float) -> Any:
    return create_dataset("synthetic", split=split, num=num, size=SIZE, max_disp=MAX_DISP, photos=VALIDATION_PHOTOS,
                          segment_prob=0.7, noise_std=noise)


def write_pairs(dataset: Any, folder: Path) -> None:
    """The pairs as a camera gives them: left/ and right/ images, no disparity."""
    for index in range(len(dataset)):
        sample = dataset[index]
        write_image(folder / "left" / f"{index:04d}.png", sample["left"])
        write_image(folder / "right" / f"{index:04d}.png", sample["right"])


def predict(name: str, weights: bool | Path, batch: dict) -> torch.Tensor:
    """Disparities (N,1,H,W) px of model ``name`` with ``weights`` (True: packaged)."""
    model = create_model(name, pretrained=weights)
    padder = InputPadder(batch["left"].shape, model.divisor)
    with torch.no_grad():
        return padder.unpad(model(*padder.pad(batch["left"], batch["right"]))).float()


def score(disparity: torch.Tensor, batch: dict) -> dict[str, float]:
    """EPE, bad-2, D1 (pixel-weighted over the pairs) and the three validation metrics (means)."""
    errors = disparity_metrics(disparity.numpy(), batch["disp"].numpy(), batch["valid"].numpy())
    left, right = batch["left"], batch["right"]
    warped, in_view = warp_right_to_left(right, disparity)
    return {
        "epe": errors["epe"], "bad2": errors["bad2"], "d1": errors["d1"],
        "val/zncc": zncc_cost(left, right, disparity).mean().item(),
        "val/photometric": reconstruction_cost(left, right, disparity)[0].mean().item(),
        "SSIM+L1 in view": masked_mean(photometric_error(left, warped), in_view).item(),
    }


def perturbations(truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """The ground truth made wrong in the ways a network is: noise, offsets, a wrong scale, blur."""
    generator = torch.Generator().manual_seed(0)
    blurred = F.avg_pool2d(F.pad(truth, (4, 4, 4, 4), mode="replicate"), 9, 1)
    shifted = {f"truth {offset:+d} px": truth + offset for offset in (-2, -1, 1, 2)}
    noisy = {f"truth + noise σ={std}": truth + std * torch.randn(truth.shape, generator=generator)
             for std in (0.5, 1.0, 2.0, 4.0)}
    scaled = {f"truth × {factor}": truth * factor for factor in (0.9, 1.1)}
    return {"truth": truth, **shifted, **noisy, **scaled, "truth, 9×9 box blur": blurred}


def correlations(rows: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Pearson and Spearman correlation of each validation metric with EPE over ``rows``."""
    epe = np.array([row["epe"] for row in rows])

    def ranks(values: np.ndarray) -> np.ndarray:
        return np.argsort(np.argsort(values)).astype(float)

    return {name: (float(np.corrcoef(epe, values)[0, 1]), float(np.corrcoef(ranks(epe), ranks(values))[0, 1]))
            for name in METRICS for values in [np.array([row[name] for row in rows])]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=40, help="pairs without disparity to fine-tune on (with holdout)")
    parser.add_argument("--holdout", type=int, default=8, help="of those, the last N validate (best checkpoint)")
    parser.add_argument("--test", type=int, default=16, help="held-out pairs with ground truth for the tables")
    parser.add_argument("--steps", type=int, default=300, help="optimisation steps (batch 2)")
    parser.add_argument("--val-every", type=int, default=50, help="validate every N steps (and at step 0)")
    parser.add_argument("--noise", type=float, default=6.0, help="largest sensor-noise std of the domain, grey levels")
    parser.add_argument("--lr-weight", type=float, default=None,
                        help="left-right consistency weight (default: the recipe's)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the pairs and the run (default: temporary)")
    parser.add_argument("--model", default=None, help="registered model with packaged weights (default: the recipe's)")
    args = parser.parse_args()
    name = args.model or yaml.safe_load(RECIPE.read_text())["model"]["model"]
    torch.set_num_threads(1)
    machine = environment(1)
    print(f"{name}; CPU: {machine['cpu']} ({machine['logical_cpus']} logical), 1 thread, load average at start "
          f"{' / '.join(f'{v:.1f}' for v in machine['load_average'] or [])}")

    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        write_pairs(domain("train", args.pairs, args.noise), work / "pairs")
        overrides = [
            "--config", str(RECIPE), "--data.root", str(work / "pairs"),
            "--trainer.default_root_dir", str(work / "run"),
            "--data.holdout", str(args.holdout), "--data.crop_size", f"[{SIZE[0]}, {SIZE[1]}]",
            "--data.num_workers", "0", "--trainer.accelerator", "cpu", "--trainer.max_steps", str(args.steps),
            "--trainer.val_check_interval", str(args.val_every), "--trainer.log_every_n_steps", str(args.val_every),
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--checkpoint.save_top_k", "-1", "--step_checkpoint.every_n_steps", str(args.steps),
            "--model.model", name,
        ]
        if args.lr_weight is not None:
            overrides += ["--model.self_supervised.lr_weight", str(args.lr_weight)]
        started = time.perf_counter()
        result = run_training(overrides)
        minutes = (time.perf_counter() - started) / 60

        test = collate_stereo([to_tensors(sample) for sample in domain("test", args.test, args.noise)])
        checkpoints = sorted((result.root / "checkpoints").glob("best-*.ckpt"))
        by_step = {int(path.stem.rsplit("step", 1)[1]): score(predict(name, path, test), test) for path in checkpoints}
        table = [("packaged weights (before)", score(predict(name, True, test), test)),
                 ("best.safetensors (after)", score(predict(name, result.root / "best.safetensors", test), test)),
                 (f"last weights, step {result.global_step}", score(predict(name, result.weights, test), test))]
        best_step = int(result.best_checkpoint.stem.rsplit("step", 1)[1]) if result.best_checkpoint else None

    perturbed = {name: score(disparity, test) for name, disparity in perturbations(test["disp"]).items()}
    table.append(("ground truth (what the validation metrics give the truth)", perturbed["truth"]))
    lr_weight = "the recipe's" if args.lr_weight is None else str(args.lr_weight)
    print(f"\n**Fine-tuning**: {args.pairs - args.holdout} pairs without disparity, {args.holdout} held out for "
          f"validation, {args.steps} steps of batch 2, left-right weight {lr_weight}: {minutes:.1f} min; best "
          f"checkpoint: step {best_step}.\n")
    print(f"**Before/after on {args.test} test pairs** ({SIZE[0]}×{SIZE[1]}, noise ≤ {args.noise:g}, photographs "
          f"{', '.join(VALIDATION_PHOTOS)}; ground truth used only here)\n")
    print("| weights | EPE px | bad-2 % | D1 % | val/zncc |")
    print("|---|---|---|---|---|")
    for name, row in table:
        print(f"| {name} | {row['epe']:.3f} | {row['bad2']:.2f} | {row['d1']:.2f} | {row['val/zncc']:.4f} |")

    print("\n**Validated checkpoints on the test pairs**\n")
    print("| step | EPE px | bad-2 % | " + " | ".join(METRICS) + " |")
    print("|---" * (3 + len(METRICS)) + "|")
    for step, row in sorted(by_step.items()):
        values = " | ".join(f"{row[m]:.4f}" for m in METRICS)
        print(f"| {step} | {row['epe']:.3f} | {row['bad2']:.2f} | {values} |")

    print("\n**Correlation with EPE** (Pearson / Spearman)\n")
    print("| over | " + " | ".join(METRICS) + " |")
    print("|---" * (1 + len(METRICS)) + "|")
    for label, rows in ((f"{len(by_step)} checkpoints", list(by_step.values())),
                        (f"checkpoints + {len(perturbed)} perturbed truths", [*by_step.values(), *perturbed.values()])):
        found = correlations(rows)
        print(f"| {label} | " + " | ".join(f"{found[m][0]:+.3f} / {found[m][1]:+.3f}" for m in METRICS) + " |")


if __name__ == "__main__":
    main()
