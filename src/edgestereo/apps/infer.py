"""Estimate disparity for one stereo pair and write disparity, depth, a point cloud and a panel.

Outputs in --out: disparity.pfm (pixels), disparity.png (colour), panel.png (left | right |
disparity | depth); with a calibration also depth.pfm (baseline units; mm for calib.txt) and
cloud.ply. With --gt the metrics against the ground truth are printed.

example:
  edgestereo sample motorcycle --out demo
  edgestereo infer demo/im0.png demo/im1.png --calib demo/calib.txt --gt demo/disp0.pfm --out demo/out
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgestereo.apps._common import (
    add_calibration_arguments,
    add_model_arguments,
    build_predictor,
    calibration_from_args,
    check_calibration_args,
    prepare_output_dir,
)

HELP = "disparity, depth, point cloud and panel for one stereo pair"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("left", help="left image (PNG, JPEG, …; 8/16-bit, grey or colour)")
    parser.add_argument("right", help="right image, same size as the left")
    parser.add_argument("--out", default="edgestereo_out", metavar="DIR",
                        help="output folder (default: edgestereo_out)")
    parser.add_argument("--gt", default=None, metavar="DISP_FILE",
                        help="ground-truth disparity (.pfm, KITTI .png, .npy) to score against")
    add_model_arguments(parser)
    add_calibration_arguments(parser)
    cloud = parser.add_argument_group("point cloud")
    cloud.add_argument("--max-depth", type=float, default=None, help="drop points farther than this")
    cloud.add_argument("--cloud-stride", type=int, default=1, metavar="N", help="keep every N-th pixel")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from edgestereo.api import load_pair, predict
    from edgestereo.data.io import read_disparity, write_pfm, write_ply
    from edgestereo.errors import EdgeStereoError
    from edgestereo.evaluation.metrics import disparity_metrics
    from edgestereo.geometry import disparity_to_points
    from edgestereo.viz import colorize_disparity, make_panel, value_range, write_panel

    check_calibration_args(args)
    if args.cloud_stride < 1:
        raise EdgeStereoError(f"--cloud-stride must be ≥ 1, got {args.cloud_stride}")
    left, right = load_pair(args.left, args.right)
    height, width = left.shape[:2]
    calib, depth_unit = calibration_from_args(args, width, height)
    gt = read_disparity(args.gt) if args.gt else None
    if gt is not None and gt.shape != (height, width):
        raise EdgeStereoError(f"{args.gt}: ground truth is {gt.shape[1]}x{gt.shape[0]}, images are {width}x{height}")
    out = prepare_output_dir(args.out)
    predictor = build_predictor(args)

    result = predict(left, right, predictor, calib=calib)
    disparity = result.disparity
    written: list[Path] = []

    def save(name: str, writer, *data) -> None:
        writer(out / name, *data)
        written.append(out / name)

    d_range = value_range(np.where(gt > 0, gt, np.nan)) if gt is not None else value_range(disparity)
    save("disparity.pfm", write_pfm, disparity)
    save("disparity.png", write_panel, colorize_disparity(disparity, *d_range))
    if result.depth is not None:
        save("depth.pfm", write_pfm, result.depth)
        points, colors = disparity_to_points(disparity, calib, left, max_depth=args.max_depth,
                                             stride=args.cloud_stride)
        save("cloud.ply", write_ply, points, colors)
    panel = make_panel(left, right, disparity, result.depth, title=predictor.name,
                       disparity_range=d_range, depth_unit=depth_unit)
    save("panel.png", write_panel, panel)

    timing = result.timings["inference_ms"]
    print(f"model      {predictor.name}  ({width}x{height}, {timing:.1f} ms)")
    if gt is not None:
        m = disparity_metrics(disparity, gt)
        bads = "  ".join(f"bad{t} {m[f'bad{t}']:.2f}%" for t in ("0.5", "1", "2", "3", "4"))
        print(f"metrics    EPE {m['epe']:.3f} px  {bads}  D1 {m['d1']:.2f}%  ({int(m['valid_px'])} px)")
    for path in written:
        print(f"wrote      {path}")
    return 0
