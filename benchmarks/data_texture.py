"""How much of an image is textureless: synthetic training pairs against real photographs.

A pixel is *textureless* when the grey-level standard deviation of its 9×9 neighbourhood is below 2
(8-bit levels): there, matching has nothing to lock on to. The share of such pixels is printed for
the motorcycle pair (the real photograph the project tests on; measured here, never trained on), for
each texture photograph the generator uses, and for synthetic pairs rendered with the current
defaults. The goal is a synthetic share within 2× of the real photograph's.

usage:
  .venv/bin/python benchmarks/data_texture.py            # 64 synthetic pairs at 256x512
  .venv/bin/python benchmarks/data_texture.py --num 16 --photos
"""

from __future__ import annotations

import argparse
import platform

import numpy as np

from edgestereo.data import create_dataset
from edgestereo.data.synthetic.textures import NATURAL_IMAGES, natural_images
from edgestereo.evaluation.metrics import textureless


def textureless_share(image: np.ndarray) -> float:
    """Share of pixels whose 9×9 grey standard deviation is below 2 levels; image (H,W[,3]) uint8."""
    return float(textureless(image, window=9, below=2.0).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=64, help="synthetic pairs (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", action="store_true", help="also print each texture photograph's share")
    args = parser.parse_args()

    import skimage.data

    motorcycle = skimage.data.stereo_motorcycle()[0]
    pairs = create_dataset("synthetic", split="val", num=args.num, seed=args.seed)
    shares = [textureless_share(pairs[i]["left"]) for i in range(len(pairs))]
    print(f"# data_texture: {platform.processor() or platform.machine()}, {args.num} synthetic pairs (val split, "
          f"seed {args.seed}), 256x512\n")
    print("| images | textureless share (9x9 std < 2 levels) |")
    print("|---|---|")
    print(f"| motorcycle (real, left view) | {textureless_share(motorcycle):.1%} |")
    print(f"| synthetic, current defaults | {np.mean(shares):.1%} (median {np.median(shares):.1%}, "
          f"max {np.max(shares):.1%}) |")
    if args.photos:
        for name, pyramid in zip(NATURAL_IMAGES, natural_images()):
            print(f"| texture photograph {name} | {textureless_share(pyramid[0]):.1%} |")


if __name__ == "__main__":
    main()
