"""Write a synthetic stereo training set with exact ground truth (works offline).

Each sample is rendered from (seed, split, index) alone, so a set can be resumed after an
interruption (finished samples are skipped) or regenerated bit for bit. The folder is read with
create_dataset("synthetic", root=OUT); `edgestereo pack --dataset synthetic --root OUT` packs it.

Written in --out: manifest.json, left/ right/ (PNG), disp/ disp_right/ (PFM, pixels),
occ/ occ_right/ (PNG, 255 = not seen by the other camera).

example:
  edgestereo synth --out data/synth --num 4000 --size 256 512 --max-disp 192 --seed 0 --workers 2
"""

from __future__ import annotations

import argparse

HELP = "write a synthetic stereo training set (rendered pairs with exact disparity)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write into (created if missing)")
    parser.add_argument("--num", type=int, default=1000, metavar="N", help="number of pairs (default 1000)")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"),
                        help="image height and width (default 256 512)")
    parser.add_argument("--max-disp", type=float, default=192, metavar="D",
                        help="disparities stay below this, pixels (default 192)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--split", default="train", choices=["train", "val", "test"],
                        help="each split is its own random stream (default train)")
    parser.add_argument("--lambertian", action="store_true",
                        help="identical cameras and matte surfaces (no reflections, highlights or photometric "
                             "differences between the views)")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="worker processes (default 0: render in this process)")


def run(args: argparse.Namespace) -> int:
    from edgestereo.apps._common import progress_bar
    from edgestereo.data.synthetic.dataset import synthetic_config, write_synthetic
    from edgestereo.errors import EdgeStereoError

    if args.workers < 0:
        raise EdgeStereoError(f"--workers must be ≥ 0, got {args.workers}")
    overrides = {"reflective_prob": 0.0, "specular_prob": 0.0, "photometric": False} if args.lambertian else {}
    config = synthetic_config(tuple(args.size), args.max_disp, **overrides)
    with progress_bar("synth", "pair") as progress:
        manifest = write_synthetic(args.out, args.num, config, args.seed, args.split, args.workers, progress)
    print(f"{manifest['num']} pairs of {config.height}x{config.width} (max disparity {config.max_disp:g}, "
          f"seed {args.seed}, {args.split}) in {args.out}")
    return 0
