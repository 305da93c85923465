"""Tune the defaults of the SGBM baseline (``SGBMConfig`` in models/sgbm.py) on synthetic stereo pairs.

A fixed-seed set of pairs from edgestereo's generator (its ``test`` stream, so no training scene is
reused; natural-image and procedural textures, photometric differences between the views) is
matched with every combination of block size, P1/P2 factors (P = factor·3·block², OpenCV's form),
uniqueness ratio and speckle filter; the configurations are ranked by the mean D1 (then EPE), with
invalid pixels filled as the default SGBM does. The Middlebury motorcycle pair is never used: it is
the evaluation image.

The speckle filter is OpenCV's post-processing of the raw SGBM output, so each matcher runs once per
(block, P, uniqueness) and the speckle variants are applied to its output; the winner is then run
again through ``create_model("sgbm", ...)`` to confirm the numbers. Prints Markdown tables.

usage:
  .venv/bin/python benchmarks/tune_sgbm.py            # 36 pairs of 320x480, the full grid
  .venv/bin/python benchmarks/tune_sgbm.py --quick    # 4 pairs, a small grid: a smoke run
"""

from __future__ import annotations

import argparse
import itertools
import time

import cv2
import numpy as np

from edgestereo.data.synthetic import SyntheticConfig, render_pair
from edgestereo.evaluation.metrics import disparity_metrics
from edgestereo.models import create_model
from edgestereo.models.sgbm import SGBM, SGBMConfig, fill_invalid_background

# A first run over blocks 3–11, P factors (2,8)–(16,64) and uniqueness 0–15 put the best at the small
# ends (block 3, P (2,8), uniqueness 15), so the grid reaches past them.
GRID = {
    "block_size": (3, 5, 7, 9),
    "p_factors": ((1, 4), (2, 8), (2, 16), (4, 16), (8, 32), (8, 64)),
    "uniqueness_ratio": (5, 10, 15, 20),
    "speckle": ((0, 0), (50, 1), (100, 2), (200, 2), (100, 4)),
}
QUICK_GRID = {
    "block_size": (5, 7),
    "p_factors": ((8, 32), (8, 64)),
    "uniqueness_ratio": (5, 10),
    "speckle": ((0, 0), (100, 2)),
}


def make_pairs(count: int, size: tuple[int, int], max_disp: float, seed: int) -> list:
    config = SyntheticConfig(height=size[0], width=size[1], max_disp=max_disp)
    return [render_pair(config, seed, index, stream=2) for index in range(count)]


def raw_disparity(matcher: SGBM, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """OpenCV's fixed-point output (1/16 px) on the left-padded grey images, as ``SGBM.match`` computes it."""
    pad = matcher.num_disparities
    grey = [cv2.copyMakeBorder(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), 0, 0, pad, 0, cv2.BORDER_REPLICATE)
            for im in (left, right)]
    return matcher._matcher.compute(grey[0], grey[1])


def finish(raw: np.ndarray, pad: int, window: int, spread: int) -> np.ndarray:
    """Speckle filter (as StereoSGBM applies it), crop, pixels, background fill: ``SGBM.match``'s output."""
    raw = raw.copy()
    if window > 0:
        cv2.filterSpeckles(raw, -16, window, 16 * spread)
    raw = raw[:, pad:]
    disparity = raw.astype(np.float32) / 16.0
    disparity[raw < 0] = np.nan
    return fill_invalid_background(disparity)


def score(predictions: list[np.ndarray], pairs: list) -> dict[str, float]:
    metrics = [disparity_metrics(pred, pair.disp) for pred, pair in zip(predictions, pairs)]
    return {key: float(np.mean([m[key] for m in metrics])) for key in ("epe", "bad2", "d1")}


def config_for(block: int, factors: tuple[int, int], uniqueness: int, speckle: tuple[int, int],
               max_disp: int) -> dict:
    area = 3 * block * block
    return {"max_disp": max_disp, "block_size": block, "p1": factors[0] * area, "p2": factors[1] * area,
            "uniqueness_ratio": uniqueness, "speckle_window_size": speckle[0], "speckle_range": speckle[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 pairs and a small grid")
    parser.add_argument("--pairs", type=int, default=36)
    parser.add_argument("--size", type=int, nargs=2, default=(320, 480), metavar=("H", "W"))
    parser.add_argument("--max-disp", type=int, default=64, help="disparity range of the pairs and of SGBM")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--top", type=int, default=12, help="rows of the ranking to print")
    args = parser.parse_args()
    grid = QUICK_GRID if args.quick else GRID
    count = 4 if args.quick else args.pairs

    start = time.perf_counter()
    pairs = make_pairs(count, tuple(args.size), args.max_disp, args.seed)
    print(f"{count} synthetic pairs, {args.size[0]}x{args.size[1]}, disparities < {args.max_disp} px, seed "
          f"{args.seed} ({time.perf_counter() - start:.1f} s to render)\n")

    results = []
    start = time.perf_counter()
    for block, factors, uniqueness in itertools.product(grid["block_size"], grid["p_factors"],
                                                        grid["uniqueness_ratio"]):
        matcher = SGBM(SGBMConfig(**{**config_for(block, factors, uniqueness, (0, 0), args.max_disp),
                                     "fill_invalid": False}))
        raws = [raw_disparity(matcher, pair.left, pair.right) for pair in pairs]
        for speckle in grid["speckle"]:
            predictions = [finish(raw, matcher.num_disparities, *speckle) for raw in raws]
            results.append(((block, factors, uniqueness, speckle), score(predictions, pairs)))
    elapsed = time.perf_counter() - start
    results.sort(key=lambda item: (item[1]["d1"], item[1]["epe"]))
    print(f"{len(results)} configurations in {elapsed:.0f} s, ranked by D1 (mean over pairs):\n")
    print("| rank | block | P1, P2 factors | uniqueness | speckle window, range | EPE (px) | bad-2 (%) | D1 (%) |")
    print("|---|---|---|---|---|---|---|---|")
    defaults = SGBMConfig()
    default_key = (defaults.block_size, (defaults.p1_factor, defaults.p2_factor), defaults.uniqueness_ratio,
                   (defaults.speckle_window_size, defaults.speckle_range))
    for rank, (key, metrics) in enumerate(results, start=1):
        if rank <= args.top or key == default_key:
            block, factors, uniqueness, speckle = key
            note = " (current defaults)" if key == default_key else ""
            print(f"| {rank}{note} | {block} | {factors[0]}, {factors[1]} | {uniqueness} | {speckle[0]}, {speckle[1]} "
                  f"| {metrics['epe']:.3f} | {metrics['bad2']:.2f} | {metrics['d1']:.2f} |")

    (block, factors, uniqueness, speckle), best = results[0]
    model = create_model("sgbm", **config_for(block, factors, uniqueness, speckle, args.max_disp))
    check = score([model.match(pair.left, pair.right) for pair in pairs], pairs)
    same = all(abs(check[key] - best[key]) < 1e-6 for key in best)
    print(f"\nbest: block_size={block}, p1_factor={factors[0]}, p2_factor={factors[1]}, "
          f"uniqueness_ratio={uniqueness}, speckle_window_size={speckle[0]}, speckle_range={speckle[1]}")
    print(f"re-run through create_model('sgbm', ...): EPE {check['epe']:.3f}, D1 {check['d1']:.2f} "
          f"({'identical' if same else 'DIFFERENT: the replicated post-processing is out of date'})")


if __name__ == "__main__":
    main()
