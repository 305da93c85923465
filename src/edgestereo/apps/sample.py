"""Write built-in sample data (works offline).

  motorcycle   Middlebury 2014 Motorcycle, 741x500, as scikit-image ships it: im0.png, im1.png,
               disp0.pfm (ground truth, inf = unknown) and calib.txt (baseline in mm).
"""

from __future__ import annotations

import argparse

HELP = "write a built-in stereo sample (left, right, ground truth, calibration)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=["motorcycle"], help="which sample")
    parser.add_argument("--out", required=True, help="folder to write into (created if missing)")


def run(args: argparse.Namespace) -> int:
    from edgestereo.data.samples import write_sample

    paths = write_sample(args.name, args.out)
    for role, path in paths.items():
        print(f"{role:<10} {path}")
    return 0
