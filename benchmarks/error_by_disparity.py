"""Where the validation error comes from: EPE, bad-2 and signed error per ground-truth disparity band.

Scores weights on the two validation sets checkpoints are chosen on (``eval_default_model.
validation_sets``: the synthetic ``val`` split and the photograph scenes, 256×512, disparities up to
192 px) and splits every valid pixel by its true disparity. Per band: the share of the set's pixels,
EPE (px), bad-2 (%), the mean signed error (prediction − truth, px: negative means too far) and the
band's share of the set's summed end-point error. A band whose error is about minus its disparity is
one the network never learned to reach. Three more rows split the same pixels into those the right
camera sees, those a nearer surface covers and those outside its image (estimated from the left
ground truth: ``evaluation.metrics.right_view_masks``); ``--by-visibility`` also prints the band
table of each of the three. ``--by-region`` splits the seen pixels once more: those within 3 px of a
depth edge of the ground truth (a jump above 1 px between neighbours), the textureless rest (9×9 grey
standard deviation below 2 levels, as ``data_texture.py``) and the textured rest.

usage:
  .venv/bin/python benchmarks/error_by_disparity.py                                 # packaged weights
  .venv/bin/python benchmarks/error_by_disparity.py --pretrained a.safetensors b.ckpt --num 20
  .venv/bin/python benchmarks/error_by_disparity.py --bands 0 64 192 --by-visibility
  .venv/bin/python benchmarks/error_by_disparity.py --model sgbm                    # the classical baseline
  .venv/bin/python benchmarks/error_by_disparity.py --bands 0 64 192 --by-region
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

from edgestereo import DEFAULT_MODEL
from edgestereo.errors import EdgeStereoError
from edgestereo.evaluation.metrics import SEEN_PARTS, right_view_masks, split_seen
from edgestereo.runtime.benchmark import environment
from edgestereo.runtime.factory import create_predictor

BANDS = (0, 16, 32, 48, 64, 96, 128, 160, 192)


#: the pixel groups ``band_errors`` counts apart: the seen pixels in three parts (``split_seen``), then
#: the covered ones and those outside the right image (``right_view_masks``).
SEEN_GROUPS = tuple(f"seen, {part}" for part in SEEN_PARTS)
GROUPS = (*SEEN_GROUPS, "covered by a nearer surface", "outside the right image")
SEEN = "seen by the right camera"


def pixel_groups(truth_map: np.ndarray, left: np.ndarray) -> np.ndarray:
    """The index into ``GROUPS`` of every known pixel, -1 for the unknown ones. truth_map: (H,W) left
    disparity px; left: (H,W,3) uint8, the left view."""
    masks = right_view_masks(truth_map)
    group = np.full(truth_map.shape, -1, np.intp)
    parts = split_seen(masks["seen"], truth_map, left)
    for index, mask in enumerate((*parts.values(), masks["covered"], masks["outside"])):
        group[mask] = index
    return group


def band_errors(predicts, pairs, edges: np.ndarray) -> np.ndarray:
    """Summed statistics of the set's valid pixels per (predictor, pixel group, band): a (predictors, 4,
    groups, bands) array of pixels, |error|, bad-2 pixels and signed error (prediction − truth, px).
    Each pair is read, and its pixels grouped, once for all predictors. Bands are [edges[i],
    edges[i+1]) of true disparity, the last one with its upper edge; groups in ``GROUPS`` order."""
    bands = len(edges) - 1
    sums = np.zeros((len(predicts), 4, len(GROUPS), bands))
    for index in range(len(pairs)):
        sample = pairs[index]
        truth_map = np.asarray(sample["disp"], np.float64)
        truth_map = truth_map.reshape(truth_map.shape[-2:])
        known = np.asarray(sample["valid"], bool).reshape(truth_map.shape) & np.isfinite(truth_map)
        known &= (truth_map >= edges[0]) & (truth_map <= edges[-1])
        groups = pixel_groups(truth_map, np.asarray(sample["left"]))
        for p, predict in enumerate(predicts):
            disparity = predict(sample["left"], sample["right"]).reshape(truth_map.shape)
            valid = known & np.isfinite(disparity)
            band = np.clip(np.searchsorted(edges, truth_map[valid], side="right") - 1, 0, bands - 1)
            error = disparity[valid] - truth_map[valid]
            cell = groups[valid] * bands + band
            for k, weights in enumerate((None, np.abs(error), np.abs(error) > 2.0, error)):
                sums[p, k] += np.bincount(cell, weights, minlength=sums[p, k].size).reshape(sums[p, k].shape)
    return sums


def summarise(sums: np.ndarray, total: np.ndarray) -> dict[str, float]:
    """One row from (pixels, |error|, bad-2, signed) sums: pixels, epe, bad2 (%), bias (px) and
    share_px / share_error (% of ``total``, the set's (pixels, |error|, …) sums)."""
    pixels, abs_error, bad2, signed = sums
    count = max(pixels, 1.0)
    return {"pixels": float(pixels), "epe": abs_error / count, "bad2": 100.0 * bad2 / count, "bias": signed / count,
            "share_px": 100.0 * pixels / max(total[0], 1.0), "share_error": 100.0 * abs_error / max(total[1], 1e-12)}


def _print_table(rows: list[tuple[str, dict[str, float]]]) -> None:
    print("| true disparity px | pixels % | EPE px | bad-2 % | mean error px | share of error % |")
    print("|---|---|---|---|---|---|")
    for name, row in rows:
        if row["pixels"]:
            print(f"| {name} | {row['share_px']:.1f} | {row['epe']:.2f} | {row['bad2']:.1f} | "
                  f"{row['bias']:+.2f} | {row['share_error']:.1f} |")
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"registered model (default {DEFAULT_MODEL})")
    parser.add_argument("--pretrained", nargs="+", default=[None], metavar="FILE",
                        help="weights files or campaign checkpoints (default: the packaged weights)")
    parser.add_argument("--num", type=int, default=50, help="pairs of each validation set (default 50)")
    parser.add_argument("--bands", type=float, nargs="+", default=BANDS, metavar="PX",
                        help=f"band edges in px, increasing (default {' '.join(map(str, BANDS))})")
    parser.add_argument("--by-visibility", action="store_true",
                        help="also the band table of the seen, the covered and the outside pixels apart")
    parser.add_argument("--by-region", action="store_true",
                        help="split the seen pixels: near a depth edge, textureless, textured")
    args = parser.parse_args()
    edges = np.asarray(args.bands, dtype=np.float64)
    if args.num < 1:
        parser.error("--num must be ≥ 1")
    if len(edges) < 2 or np.any(np.diff(edges) <= 0):
        parser.error(f"--bands needs at least two increasing edges, got {args.bands}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eval_default_model import validation_sets, weights_name  # the two sets choices are made on

    try:
        predictors = [(weights_name(args.model, weights) or args.model,
                       create_predictor(args.model, pretrained=weights)) for weights in args.pretrained]
    except EdgeStereoError as exc:
        parser.error(str(exc))

    env = environment()
    print(f"# error_by_disparity: {args.model}, {env['cpu']} ({', '.join(env['cpu_features'])}), "
          f"{env['threads']['torch_intra_op']} threads, {args.num} pairs per set, 256×512\n")
    for set_name, pairs in validation_sets(args.num).items():
        for (label, _), sums in zip(predictors, band_errors([predict for _, predict in predictors], pairs, edges),
                                    strict=True):
            total = sums.sum(axis=(1, 2))
            names = [f"{low:g}–{high:g}" for low, high in itertools.pairwise(edges)]
            print(f"**{set_name}: {label}**\n")
            rows = [(name, summarise(sums[:, :, i].sum(axis=1), total)) for i, name in enumerate(names)]
            rows.append(("all", summarise(total, total)))
            seen = len(SEEN_GROUPS)
            by_group = [(SEEN, sums[:, :seen].sum(axis=1))]
            if args.by_region:
                by_group += [(name, sums[:, k]) for k, name in enumerate(SEEN_GROUPS)]
            by_group += [(name, sums[:, k]) for k, name in enumerate(GROUPS) if k >= seen]
            rows += [(name, summarise(group.sum(axis=1), total)) for name, group in by_group]
            _print_table(rows)
            if args.by_visibility:
                for name, group in by_group:
                    group_total = group.sum(axis=1)
                    print(f"**{set_name}: {label}, {name}** (shares of these pixels)\n")
                    _print_table([(band_name, summarise(group[:, i], group_total)) for i, band_name in enumerate(names)]
                                 + [("all", summarise(group_total, group_total))])

if __name__ == "__main__":
    main()
