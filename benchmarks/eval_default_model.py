"""The default model (or any weights) against OpenCV SGBM, on a real photograph and on held-out synthetic pairs.

- Middlebury "motorcycle" as scikit-image ships it (500×741, disparities 7–60 px): the real-world test,
  scored at milestones and never used to choose anything. Every pixel with finite ground truth is
  scored ("all"; SGBM's invalid pixels are filled as the KITTI devkit does, edgestereo's default), and
  the pixels the right camera sees ("noc", estimated from the left ground truth:
  ``evaluation.metrics.right_view_masks``, neither covered nor outside the right image), and
  apart the covered pixels and those outside the right image, with each group's part of the
  all-pixel EPE; the seen pixels also in three parts, near a depth edge, textureless and textured
  (``evaluation.metrics.split_seen``). Also printed: the linear fit
  prediction ≈ a·gt + b (a < 1, b > 0: a compressed range) and the 8-px block-pattern ratio
  (``block_pattern_ratio``; the ground truth's own is printed beside it). Every table prints the fit
  over the pixels it scores.
- The synthetic ``test`` split (seed 0, its own random stream): training used the ``train`` split, the
  best-checkpoint choice the ``val`` split, SGBM's tuning the ``test`` split with seed 2024 at
  320×480.
- Photograph scenes built only from the photographs kept out of training
  (``data.synthetic.textures.VALIDATION_PHOTOS``), ``val`` split: a validation set for choices, like
  the synthetic ``val`` split.

Prints Markdown tables (EPE px, bad-N %, D1 %, block ratio, median ms per pair in PyTorch on this CPU).

usage:
  .venv/bin/python benchmarks/eval_default_model.py                   # the shipped weights, 100 synthetic pairs
  .venv/bin/python benchmarks/eval_default_model.py --pretrained runs/x/best.safetensors --num 20
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
import torch

from edgestereo import DEFAULT_MODEL
from edgestereo.data.datasets import create_dataset
from edgestereo.data.samples import load_motorcycle
from edgestereo.data.synthetic.textures import VALIDATION_PHOTOS
from edgestereo.errors import EdgeStereoError
from edgestereo.evaluation.evaluator import evaluate
from edgestereo.evaluation.metrics import (
    LinearFit,
    block_pattern_ratio,
    disparity_metrics,
    linear_fit,
    right_view_masks,
    split_seen,
)
from edgestereo.models import get_model_entry
from edgestereo.runtime.factory import create_predictor

METRICS = ("epe", "bad1", "bad2", "bad3", "d1")


def motorcycle_set() -> list[dict]:
    left, right, disparity = load_motorcycle()
    return [{"left": left, "right": right, "disp": disparity, "valid": np.isfinite(disparity),
             "meta": {"name": "motorcycle"}}]


def table(title: str, rows: list[tuple[str, dict]]) -> str:
    lines = [f"**{title}**", "", "| model | EPE px | bad-1 % | bad-2 % | bad-3 % | D1 % | block ratio | "
             "prediction ≈ | pixels | ms per pair |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, report in rows:
        m = report["all"]
        slope, offset = report["fit"]
        lines.append(f"| {name} | {m['epe']:.3f} | {m['bad1']:.2f} | {m['bad2']:.2f} | {m['bad3']:.2f} | "
                     f"{m['d1']:.2f} | {report['block_ratio']:.2f} | {slope:.3f}·gt {offset:+.2f} | "
                     f"{int(m['valid_px'])} | {report['runtime_ms']['median']:.0f} |")
    return "\n".join(lines)


def photograph_validation_set(num: int, size: tuple[int, int] = (256, 512), max_disp: float = 192.0):
    """The photograph scenes built only from ``VALIDATION_PHOTOS`` (never in training), ``val`` split, seed 0."""
    return create_dataset("synthetic", split="val", num=num, size=size, max_disp=max_disp, seed=0,
                          photos=VALIDATION_PHOTOS, segment_prob=1.0)


def validation_sets(num: int) -> dict[str, object]:
    """The two sets checkpoints and settings are chosen on, ``num`` pairs each at 256x512: the synthetic
    ``val`` split (seed 0, the first pairs of the campaign's validation set) and the photograph scenes."""
    return {"synthetic val": create_dataset("synthetic", split="val", num=num, size=(256, 512), max_disp=192,
                                            seed=0),
            "photograph val": photograph_validation_set(num)}


class _LastRead:
    """``pairs`` as ``evaluate`` reads them, keeping the pair read last: the predictor's wrapper finds
    its ground truth there instead of rendering the pair a second time."""

    def __init__(self, pairs) -> None:
        self.pairs, self.last = pairs, None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        self.last = self.pairs[index]
        return self.last


def score_set(predict, pairs) -> dict:
    """``evaluate`` plus ``block_ratio``, the mean block-pattern ratio of the predictions, and ``fit``,
    (slope, offset) of prediction ≈ slope·gt + offset over every valid pixel of the set."""
    ratios = []
    fit = LinearFit()
    reading = _LastRead(pairs)

    def recording(left, right):
        disparity = predict(left, right)
        ratios.append(block_pattern_ratio(disparity))
        fit.add(disparity, reading.last["disp"], reading.last["valid"])
        return disparity

    report = evaluate(recording, reading)
    report["block_ratio"] = float(np.mean(ratios))
    report["fit"] = fit.result()
    return report


def weights_name(model: str, pretrained: str | None) -> str | None:
    """What a table calls the weights of ``model``: the file given, else "packaged weights", else None
    (a model without packaged weights, such as sgbm)."""
    return pretrained or ("packaged weights" if get_model_entry(model).packaged_weights else None)


def motorcycle_groups(gt: np.ndarray, left: np.ndarray) -> dict[str, np.ndarray]:
    """The motorcycle's pixel groups (gt: (H,W) px; left: the (H,W,3) left view): the pixels the right
    camera sees (noc) and their parts near a depth edge, textureless and textured (``split_seen``),
    the covered ones and those outside the right image."""
    masks = right_view_masks(gt)
    groups = {"seen": masks["seen"]}
    groups |= {f"seen, {part}": mask for part, mask in split_seen(masks["seen"], gt, left).items()}
    return groups | {"covered": masks["covered"], "outside the right image": masks["outside"]}


def motorcycle_details(name: str, disparity: np.ndarray, gt: np.ndarray, groups: dict[str, np.ndarray]) -> list[str]:
    """Table rows of a motorcycle prediction (disparity, gt: (H,W) px) over ``motorcycle_groups``: EPE,
    its part of the all-pixel EPE (EPE × pixels / all pixels with ground truth), bad-2, D1, pixel
    count and the linear fit; the block ratio of the whole map on the first row."""
    known = int(np.isfinite(gt).sum())
    rows = []
    for group, mask in groups.items():
        scores = disparity_metrics(disparity, gt, mask)
        slope, offset = linear_fit(disparity, gt, mask)
        block = f"{block_pattern_ratio(disparity):.2f}" if group == "seen" else ""
        rows.append(f"| {name} | {group} | {scores['epe']:.3f} | "
                    f"{scores['epe'] * scores['valid_px'] / known:.3f} | {scores['bad2']:.2f} | {scores['d1']:.2f} | "
                    f"{int(scores['valid_px'])} | {slope:.3f}·gt {offset:+.2f} | {block} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"registered model (default {DEFAULT_MODEL})")
    parser.add_argument("--pretrained", default=None, help="weights file (default: the packaged weights)")
    parser.add_argument("--num", type=int, default=100, help="held-out synthetic pairs (default 100)")
    parser.add_argument("--photo-num", type=int, default=50, help="photograph validation pairs (default 50)")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
    parser.add_argument("--max-disp", type=float, default=192.0, help="synthetic disparity range (px)")
    args = parser.parse_args()

    try:
        predictor = create_predictor(args.model, pretrained=args.pretrained)
        weights = weights_name(args.model, args.pretrained)
    except EdgeStereoError as exc:
        parser.error(str(exc))
    label = f"{args.model} ({weights})" if weights else args.model
    methods = [(label, predictor), ("sgbm (edgestereo defaults)", create_predictor("sgbm"))]
    synthetic = create_dataset("synthetic", split="test", num=args.num, size=tuple(args.size),
                               max_disp=args.max_disp, seed=0)
    photographs = photograph_validation_set(args.photo_num, tuple(args.size), args.max_disp)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
          f"{platform.processor() or platform.machine()}, "
          f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    motorcycle_pair, motorcycle, predictions = motorcycle_set(), [], {}
    for name, predict in methods:
        def keeping(left, right, predict=predict, name=name):  # the one prediction, for the details below
            predictions[name] = predict(left, right)
            return predictions[name]
        motorcycle.append((name, score_set(keeping, motorcycle_pair)))
    print(table("Middlebury motorcycle (scikit-image, 500×741), all pixels with ground truth", motorcycle))
    print()
    gt = motorcycle_pair[0]["disp"]
    print("**Motorcycle, by what the right camera sees (estimated from the left ground truth)**\n")
    print("| model | which pixels | EPE px | of all-pixel EPE px | bad-2 % | D1 % | count | prediction ≈ | "
          "block ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    groups = motorcycle_groups(gt, motorcycle_pair[0]["left"])
    for name, disparity in predictions.items():
        print("\n".join(motorcycle_details(name, disparity, gt, groups)))
    print(f"| ground truth | | | | | | | | {block_pattern_ratio(np.where(np.isfinite(gt), gt, np.nan)):.2f} |")
    print()
    held_out = [(name, score_set(predict, synthetic)) for name, predict in methods]
    print(table(f"Held-out synthetic pairs: test split, seed 0, {args.num} pairs of "
                f"{args.size[0]}×{args.size[1]}, max disparity {args.max_disp:g}", held_out))
    print()
    photo = [(name, score_set(predict, photographs)) for name, predict in methods]
    print(table(f"Photograph validation scenes ({', '.join(VALIDATION_PHOTOS)}; never in training): val split, "
                f"seed 0, {args.photo_num} pairs of {args.size[0]}×{args.size[1]}", photo))


if __name__ == "__main__":
    main()
