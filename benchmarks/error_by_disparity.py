"""Where the validation error comes from: EPE, bad-2 and signed error per ground-truth disparity band.

Scores weights on the two validation sets checkpoints are chosen on (``eval_default_model.
validation_sets``: the synthetic ``val`` split and the photograph scenes, 256×512, disparities up to
192 px) and splits every valid pixel by its true disparity. Per band: the share of the set's pixels,
EPE (px), bad-2 (%), the mean signed error (prediction − truth, px: negative means too far) and the
band's share of the set's summed end-point error. A band whose error is about minus its disparity is
one the network never learned to reach. Three more rows split the same pixels into those the right
camera sees, those a nearer surface covers and those outside its image (estimated from the left
ground truth: ``evaluation.metrics.visible_in_right_view``).

usage:
  .venv/bin/python benchmarks/error_by_disparity.py                                 # packaged weights
  .venv/bin/python benchmarks/error_by_disparity.py --pretrained a.safetensors b.ckpt --num 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edgestereo import DEFAULT_MODEL
from edgestereo.errors import EdgeStereoError
from edgestereo.evaluation.metrics import outside_right_view, visible_in_right_view
from edgestereo.runtime.benchmark import environment
from edgestereo.runtime.factory import create_predictor

BANDS = (0, 16, 32, 48, 64, 96, 128, 160, 192)


def _summaries(pixels, abs_error, bad2, signed) -> list[dict[str, float]]:
    """Per group: pixels, epe, bad2 (%), bias (mean prediction − truth) and share_px / share_error (%)."""
    rows = []
    for i in range(len(pixels)):
        count = max(pixels[i], 1.0)
        rows.append({"pixels": float(pixels[i]), "epe": abs_error[i] / count, "bad2": 100.0 * bad2[i] / count,
                     "bias": signed[i] / count, "share_px": 100.0 * pixels[i] / max(pixels.sum(), 1.0),
                     "share_error": 100.0 * abs_error[i] / max(abs_error.sum(), 1e-12)})
    return rows


def band_errors(predict, pairs, edges: np.ndarray) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """(bands, visibility): per band [edges[i], edges[i+1]) of true disparity (the last band includes
    its upper edge, with ``low``/``high``), then for the seen, the covered and the outside-the-image
    pixels of those bands, the :func:`_summaries` of their errors."""
    bands = len(edges) - 1
    groups = bands + 3  # the bands, then seen, covered and outside the right image
    pixels, abs_error, bad2, signed = (np.zeros(groups) for _ in range(4))
    for index in range(len(pairs)):
        sample = pairs[index]
        disparity = predict(sample["left"], sample["right"])
        truth_map = np.asarray(sample["disp"], np.float64).reshape(disparity.shape)
        valid = np.asarray(sample["valid"], bool) & np.isfinite(truth_map) & np.isfinite(disparity)
        valid &= (truth_map >= edges[0]) & (truth_map <= edges[-1])
        truth, error = truth_map[valid], disparity[valid] - truth_map[valid]
        band = np.clip(np.searchsorted(edges, truth, side="right") - 1, 0, bands - 1)
        outside = outside_right_view(truth_map)[valid]
        seen = np.where(visible_in_right_view(truth_map)[valid], bands, np.where(outside, bands + 2, bands + 1))
        for group in (band, seen):
            pixels += np.bincount(group, minlength=groups)
            abs_error += np.bincount(group, np.abs(error), minlength=groups)
            bad2 += np.bincount(group, np.abs(error) > 2.0, minlength=groups)
            signed += np.bincount(group, error, minlength=groups)
    band_rows = _summaries(pixels[:bands], abs_error[:bands], bad2[:bands], signed[:bands])
    for i, row in enumerate(band_rows):
        row.update(low=float(edges[i]), high=float(edges[i + 1]))
    return band_rows, _summaries(pixels[bands:], abs_error[bands:], bad2[bands:], signed[bands:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"registered model (default {DEFAULT_MODEL})")
    parser.add_argument("--pretrained", nargs="+", default=[None], metavar="FILE",
                        help="weights files or campaign checkpoints (default: the packaged weights)")
    parser.add_argument("--num", type=int, default=50, help="pairs of each validation set (default 50)")
    parser.add_argument("--bands", type=float, nargs="+", default=BANDS, metavar="PX",
                        help=f"band edges in px, increasing (default {' '.join(map(str, BANDS))})")
    args = parser.parse_args()
    edges = np.asarray(args.bands, dtype=np.float64)
    if args.num < 1:
        parser.error("--num must be ≥ 1")
    if len(edges) < 2 or np.any(np.diff(edges) <= 0):
        parser.error(f"--bands needs at least two increasing edges, got {args.bands}")
    try:
        predictors = [(weights or "packaged weights", create_predictor(args.model, pretrained=weights))
                      for weights in args.pretrained]
    except EdgeStereoError as exc:
        parser.error(str(exc))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eval_default_model import validation_sets  # the two sets choices are made on

    env = environment()
    print(f"# error_by_disparity: {args.model}, {env['cpu']} ({', '.join(env['cpu_features'])}), "
          f"{env['threads']['torch_intra_op']} threads, {args.num} pairs per set, 256×512\n")
    for set_name, pairs in validation_sets(args.num).items():
        for label, predict in predictors:
            rows, visibility = band_errors(predict, pairs, edges)
            print(f"**{set_name}: {label}**\n")
            print("| true disparity px | pixels % | EPE px | bad-2 % | mean error px | share of error % |")
            print("|---|---|---|---|---|---|")
            named = [(f"{row['low']:g}–{row['high']:g}", row) for row in rows]
            pixels = sum(row["pixels"] for row in rows)
            mean = {key: sum(row[key] * row["pixels"] for row in rows) / max(pixels, 1.0)
                    for key in ("epe", "bad2", "bias")}
            named.append(("all", {**mean, "pixels": pixels, "share_px": 100.0, "share_error": 100.0}))
            named += [("seen by the right camera", visibility[0]), ("covered by a nearer surface", visibility[1]),
                      ("outside the right image", visibility[2])]
            for name, row in named:
                if row["pixels"]:
                    print(f"| {name} | {row['share_px']:.1f} | {row['epe']:.2f} | {row['bad2']:.1f} | "
                          f"{row['bias']:+.2f} | {row['share_error']:.1f} |")
            print(flush=True)


if __name__ == "__main__":
    main()
