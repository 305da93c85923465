"""How much of the network's error at depth edges the left image could correct: a diagnostic.

Applies a colour-weighted median to the default model's disparity at the pixels near its own depth
edges (``evaluation.metrics.near_depth_edge`` of the prediction: within ``--edge-radius`` px of a jump
above 1 px). Each such pixel takes the weighted median of its ``--window`` × ``--window``
neighbourhood, weights exp(−|colour difference| / ``--colour-scale``) · exp(−distance² / (2·r²)), r
the window's half width: neighbours that look like the pixel vote, so a disparity edge moves to the
image edge. Scored on the two validation sets (``eval_default_model.validation_sets``): EPE and
bad-2 over all pixels, and over the seen pixels up to 64 px near a depth edge of the ground truth
(``split_seen``). It is not an inference option: it measures what an image-guided stage at full
resolution could gain (docs/default-model.md, the campaign's end).

usage:
  .venv/bin/python benchmarks/edge_correction.py                       # packaged weights, 17x17 window
  .venv/bin/python benchmarks/edge_correction.py --window 7 11 17 --num 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edgestereo import DEFAULT_MODEL
from edgestereo.evaluation.metrics import near_depth_edge, right_view_masks, split_seen
from edgestereo.runtime.benchmark import environment
from edgestereo.runtime.factory import create_predictor


def weighted_median(disparity: np.ndarray, image: np.ndarray, mask: np.ndarray, window: int,
                    colour_scale: float) -> np.ndarray:
    """``disparity`` (H,W) px with the pixels of ``mask`` (H,W) bool replaced by the colour-weighted
    median of their ``window``² neighbourhood in ``image`` (H,W,3) uint8 (edges replicated)."""
    r = window // 2
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return disparity
    padded_d = np.pad(disparity, r, mode="edge")
    padded_i = np.pad(image.astype(np.float32), ((r, r), (r, r), (0, 0)), mode="edge")
    offsets = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    values = np.stack([padded_d[ys + r + dy, xs + r + dx] for dy, dx in offsets], axis=1)
    centre = image[ys, xs].astype(np.float32)
    colour = np.stack([np.abs(padded_i[ys + r + dy, xs + r + dx] - centre).mean(axis=1) for dy, dx in offsets],
                      axis=1)
    distance = np.array([dy * dy + dx * dx for dy, dx in offsets], np.float32)
    weights = np.exp(-colour / colour_scale) * np.exp(-distance / (2.0 * r * r))
    order = np.argsort(values, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    cumulative = np.cumsum(np.take_along_axis(weights, order, axis=1), axis=1)
    pick = (cumulative < cumulative[:, -1:] / 2).sum(axis=1)
    corrected = disparity.copy()
    corrected[ys, xs] = values[np.arange(ys.size), pick]
    return corrected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", default=None, help="weights file (default: the packaged weights)")
    parser.add_argument("--num", type=int, default=50, help="pairs of each validation set (default 50)")
    parser.add_argument("--window", type=int, nargs="+", default=[17], help="odd window sizes (default 17)")
    parser.add_argument("--colour-scale", type=float, default=10.0, help="grey levels (default 10)")
    parser.add_argument("--edge-radius", type=int, default=2, help="px around the predicted edges (default 2)")
    args = parser.parse_args()
    if args.num < 1 or any(size < 3 or size % 2 == 0 for size in args.window) or args.colour_scale <= 0:
        parser.error("--num must be ≥ 1, --window odd and ≥ 3, --colour-scale > 0")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eval_default_model import validation_sets, weights_name  # the two sets choices are made on

    predict = create_predictor(DEFAULT_MODEL, pretrained=args.pretrained)
    env = environment()
    print(f"# edge_correction: {DEFAULT_MODEL} ({weights_name(DEFAULT_MODEL, args.pretrained)}), {env['cpu']}, "
          f"{args.num} pairs per set, colour scale {args.colour_scale:g}, edge radius {args.edge_radius}\n")
    variants = ["none"] + [f"{size}×{size} weighted median" for size in args.window]
    print("| set | correction | EPE px | bad-2 % | seen ≤ 64 px near a depth edge: EPE px | bad-2 % |")
    print("|---|---|---|---|---|---|")
    for set_name, pairs in validation_sets(args.num).items():
        sums = np.zeros((len(variants), 2, 3))  # (variant, all / near-edge, pixels / |error| / bad-2)
        for index in range(len(pairs)):
            sample = pairs[index]
            truth = np.asarray(sample["disp"], np.float64)
            truth = truth.reshape(truth.shape[-2:])
            known = np.asarray(sample["valid"], bool).reshape(truth.shape) & np.isfinite(truth)
            left = np.asarray(sample["left"])
            seen = right_view_masks(truth)["seen"]
            near_edge = split_seen(seen, truth, left)["near a depth edge"] & known & (truth <= 64)
            disparity = predict(sample["left"], sample["right"]).reshape(truth.shape).astype(np.float32)
            at_edges = near_depth_edge(disparity, jump=1.0, radius=args.edge_radius)
            outputs = [disparity] + [weighted_median(disparity, left, at_edges, size, args.colour_scale)
                                     for size in args.window]
            for v, output in enumerate(outputs):
                for g, pixels in enumerate((known, near_edge)):
                    error = np.abs(output[pixels] - truth[pixels])
                    sums[v, g] += (pixels.sum(), error.sum(), (error > 2.0).sum())
        for name, (every, edge) in zip(variants, sums, strict=True):
            print(f"| {set_name} | {name} | {every[1] / every[0]:.3f} | {100 * every[2] / every[0]:.2f} | "
                  f"{edge[1] / edge[0]:.3f} | {100 * edge[2] / edge[0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
