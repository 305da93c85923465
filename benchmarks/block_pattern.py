"""Where a StereoNetPlus v2 checkpoint's block pattern comes from, on the validation sets.

For each validation set (the synthetic ``val`` split and the photograph scenes of
``VALIDATION_PHOTOS``, 256x512, seed 0; never the motorcycle pair), scores the network's output and its
intermediate disparities, upsampled to full resolution:

- ``full``: the output (the 1/4 disparities convex-upsampled x4);
- ``quarter, bilinear x4`` and ``eighth, bilinear x8``: the 1/4 and 1/8 disparities, upsampled bilinearly;
- ``ground truth``.

Printed per row: EPE, bad-2, the 8-px block ratio (``block_pattern_ratio``) and the mean neighbour jump
per column phase x mod 8 (px, jumps clipped at 4 px). A 4-px pattern from the x4 upsampling shows as
high phases 3 and 7, an 8-px one from the 1/8 stage as one high phase.

``--bilinear-floor F`` (repeatable) adds ``bilinear_mask_logits(4, F)`` to the convex-upsampling logits
of the checkpoint before scoring it: the upsampling's starting point since the v2 models start as
bilinear interpolation.

usage:
  .venv/bin/python benchmarks/block_pattern.py CHECKPOINT [--num 16] [--bilinear-floor 0.01 ...]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from edgestereo.errors import EdgeStereoError
from edgestereo.evaluation.metrics import block_pattern_ratio
from edgestereo.models import create_model
from edgestereo.models.stereonet_plus2 import _MASK_SCALE, _REFINE_STRIDE
from edgestereo.ops.convex_upsample import bilinear_mask_logits
from edgestereo.runtime.benchmark import environment


def column_phases(disparity: np.ndarray, period: int = 8, clip: float = 4.0) -> np.ndarray:
    """Mean |d(x+1) - d(x)| (clipped) per phase x mod ``period``, px."""
    jumps = np.minimum(np.abs(np.diff(disparity, axis=1)), clip)
    return np.array([np.nanmean(jumps[:, phase::period]) for phase in range(period)])


def stages(model, sample: dict) -> dict[str, np.ndarray]:
    """The output, the upsampled intermediate disparities and the ground truth, (H,W) px each."""
    left, right = (torch.as_tensor(np.ascontiguousarray(sample[key])).permute(2, 0, 1)[None].float()
                   for key in ("left", "right"))
    with torch.no_grad():
        out = model._run(left, right, supervise=False)
    size = out["full"].shape[-2:]

    def bilinear(key: str) -> np.ndarray:
        return F.interpolate(out[key], size=size, mode="bilinear", align_corners=False)[0, 0].numpy()

    return {"full": out["full"][0, 0].numpy(), "quarter, bilinear x4": bilinear("quarter"),
            "eighth, bilinear x8": bilinear("eighth"), "ground truth": np.asarray(sample["disp"], dtype=np.float32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a stereonet-plus2 checkpoint (edgestereo train .ckpt or safetensors)")
    parser.add_argument("--model", default="stereonet-plus2-small")
    parser.add_argument("--num", type=int, default=16, help="pairs per validation set (default 16)")
    parser.add_argument("--bilinear-floor", type=float, action="append", default=[],
                        help="also score the checkpoint with bilinear_mask_logits(4, F) added to its mask bias")
    args = parser.parse_args()
    if args.num < 1:
        parser.error("--num must be ≥ 1")
    try:
        models = {"as trained": create_model(args.model, pretrained=args.checkpoint).eval()}
        for floor in args.bilinear_floor:
            model = create_model(args.model, pretrained=args.checkpoint).eval()
            with torch.no_grad():
                model.refine.mask[-1].bias += bilinear_mask_logits(_REFINE_STRIDE, floor) / _MASK_SCALE
            models[f"+ bilinear logits, floor {floor:g}"] = model
    except (EdgeStereoError, ValueError) as exc:
        parser.error(str(exc))
    from eval_default_model import validation_sets  # benchmarks/ is on sys.path when this runs as a script

    sets = validation_sets(args.num)
    env = environment()
    print(f"{args.checkpoint}; {env['cpu']}; {args.num} pairs per set\n")
    print("| weights | set | disparity | EPE px | bad-2 % | block ratio | mean jump per column phase 0..7 (px) |")
    print("|---|---|---|---|---|---|---|")
    for label, model in models.items():
        for set_name, dataset in sets.items():
            rows: dict[str, dict[str, list]] = {}
            for index in range(len(dataset)):
                sample = dataset[index]
                truth = np.asarray(sample["disp"], dtype=np.float32)
                valid = np.isfinite(truth)
                for stage, disparity in stages(model, sample).items():
                    if label != "as trained" and stage != "full":
                        continue
                    row = rows.setdefault(stage, {"epe": [], "bad2": [], "block": [], "phases": []})
                    error = np.abs(disparity - truth)[valid]
                    row["epe"].append(error.mean())
                    row["bad2"].append(100.0 * (error > 2.0).mean())
                    row["block"].append(block_pattern_ratio(disparity))
                    row["phases"].append(column_phases(disparity))
            for stage, row in rows.items():
                phases = " ".join(f"{value:.3f}" for value in np.mean(row["phases"], axis=0))
                print(f"| {label} | {set_name} | {stage} | {np.mean(row['epe']):.3f} | {np.mean(row['bad2']):.2f} | "
                      f"{np.mean(row['block']):.2f} | {phases} |", flush=True)


if __name__ == "__main__":
    main()
