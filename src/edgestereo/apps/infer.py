"""Estimate disparity for one stereo pair and write disparity, depth, a point cloud and a panel.

Outputs in --out: disparity.pfm (pixels), disparity.png (colour), panel.png (left | right |
disparity | depth); with a calibration also depth.pfm (baseline units; mm for calib.txt) and
cloud.ply. With --gt the metrics against the ground truth are printed. --rerun writes the same
as a Rerun recording (frame 0), --rerun-connect streams it to a running viewer.

example:
  edgestereo sample motorcycle --out demo
  edgestereo infer demo/im0.png demo/im1.png --calib demo/calib.txt --gt demo/disp0.pfm --out demo/out
"""

from __future__ import annotations

import argparse

from edgestereo.apps._common import (
    add_calibration_arguments,
    add_model_arguments,
    add_rerun_arguments,
    build_predictor,
    check_calibration_args,
    rectified_calibration,
    rerun_recorder,
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
    add_rerun_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from edgestereo.api import load_pair, predict
    from edgestereo.data.io import check_output_dir, read_disparity
    from edgestereo.errors import EdgeStereoError
    from edgestereo.evaluation.metrics import disparity_metrics, valid_mask
    from edgestereo.runtime.frame_writer import PAIR_FILES, FrameWriter
    from edgestereo.runtime.rerun_logger import runtime_label
    from edgestereo.viz import value_range

    check_calibration_args(args)
    if args.cloud_stride < 1:
        raise EdgeStereoError(f"--cloud-stride must be ≥ 1, got {args.cloud_stride}")
    with rerun_recorder(args, calibrated=args.calib is not None or args.focal is not None) as recorder:
        left, right = load_pair(args.left, args.right)
        height, width = left.shape[:2]
        calib, depth_unit = rectified_calibration(args, width, height)
        gt = read_disparity(args.gt) if args.gt else None
        if gt is not None and gt.shape != (height, width):
            raise EdgeStereoError(f"{args.gt}: ground truth is {gt.shape[1]}x{gt.shape[0]}, images are "
                                  f"{width}x{height}")
        if gt is not None and not valid_mask(gt).any():
            raise EdgeStereoError(f"{args.gt}: the ground truth has no valid pixel (all NaN, inf or ≤ 0); "
                                  "give another file or leave --gt out")
        out = check_output_dir(args.out)  # created when the outputs are written, so a failed run leaves no folder
        predictor = build_predictor(args)

        result = predict(left, right, predictor, calib=calib)
        # the writer skips depth and ply without a calibration
        writer = FrameWriter(["disparity", "color", "depth", "ply", "panel"], PAIR_FILES, title=predictor.name,
                             calibration=calib, depth_unit=depth_unit, max_depth=args.max_depth,
                             cloud_stride=args.cloud_stride)
        writer.set_ranges(value_range(np.where(gt > 0, gt, np.nan)) if gt is not None
                          else value_range(result.disparity))
        written = writer.write(out, left, right, result.disparity, result.depth)
        if recorder is not None:
            recorder.log_model(predictor.name, runtime_label(predictor))
            recorder.log_frame(0, left, right, result.disparity, calibration=calib, depth_unit=depth_unit,
                               depth=result.depth, latency_ms=result.timings["inference_ms"],
                               name=Path(args.left).stem, disparity_range=writer.disparity_range)

    timing = result.timings["inference_ms"]
    print(f"model      {predictor.name}  ({width}x{height}, {timing:.1f} ms)")
    if gt is not None:
        m = disparity_metrics(result.disparity, gt)
        bads = "  ".join(f"bad{t} {m[f'bad{t}']:.2f}%" for t in ("0.5", "1", "2", "3", "4"))
        print(f"metrics    EPE {m['epe']:.3f} px  {bads}  D1 {m['d1']:.2f}%  ({int(m['valid_px'])} px)")
    for path in written.files.values():
        print(f"wrote      {path}")
    if args.rerun:
        print(f"wrote      {args.rerun}")
    return 0
