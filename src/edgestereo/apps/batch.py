"""Estimate disparity for many stereo pairs: per-frame outputs, an MP4 and a summary.

Pairs come from two globs (sorted, matched in order), a list file (one "LEFT RIGHT" line per pair,
paths relative to the list), or a folder with left/ and right/ sub-folders (matched by file name).
Per frame, in --out: NAME.png (coloured disparity, or the panel with --panel), NAME_disp.pfm
(pixels), and with a calibration NAME_depth.pfm and NAME.ply, as --save chooses. NAME is the left
image's file name without its suffix.

Decoding, inference and encoding run in overlapping threads. A frame whose outputs all exist is
skipped, so an interrupted batch resumes where it stopped (--overwrite redoes everything). A frame
that cannot be read or has another size than the first is reported and skipped. The colours
keep one range for the whole batch (the first frame's, or --disp-range), kept in
--out/.edgestereo-batch.json so a resumed batch matches. With --calib an OpenCV stereo
calibration rectifies every pair first. Exit code 0 when every frame succeeded, 1 when some
failed, 130 when stopped by Ctrl-C / SIGTERM (run again to resume). --rerun also logs every frame
inferred in this run to a Rerun recording (frames already done are not in it; --overwrite redoes
them), --rerun-connect streams them to a running viewer.

example:
  edgestereo batch --dir drive_0001 --out out --video out/drive.mp4 --fps 10 --panel
  edgestereo batch --left 'cam0/*.png' --right 'cam1/*.png' --calib rig.yaml --save disparity,depth,ply --out o
  edgestereo batch --dir frames --calib rig.yaml --out out --rerun seq.rrd && rerun seq.rrd
"""

from __future__ import annotations

import argparse

from edgestereo.apps._common import (
    add_calibration_arguments,
    add_model_arguments,
    add_rerun_arguments,
    add_view_arguments,
)

HELP = "disparity for folders or lists of stereo pairs, with an MP4 and resume"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    inputs = parser.add_argument_group("input (one of)")
    inputs.add_argument("--left", metavar="GLOB", help="left images, e.g. 'seq/left/*.png' (quote it)")
    inputs.add_argument("--right", metavar="GLOB", help="right images, matched to --left in sorted order")
    inputs.add_argument("--pairs", metavar="LIST", help="text file with one 'LEFT RIGHT' pair per line")
    inputs.add_argument("--dir", metavar="DIR", help="folder with left/ and right/ images of the same names")
    outputs = parser.add_argument_group("output")
    outputs.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    outputs.add_argument("--save", default="disparity,color", metavar="KINDS",
                         help="per-frame outputs, comma-separated from color, disparity, depth, ply "
                              "(default: disparity,color)")
    outputs.add_argument("--video", metavar="OUT.mp4", help="also write the pictures as an MP4 video")
    outputs.add_argument("--fps", type=float, default=10.0, help="frame rate of --video (default 10)")
    outputs.add_argument("--overwrite", action="store_true", help="redo frames whose outputs already exist")
    add_rerun_arguments(parser)
    add_view_arguments(parser)
    add_model_arguments(parser)
    add_calibration_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import statistics
    from pathlib import Path

    from edgestereo.apps._common import build_predictor, calibration_source, rerun_recorder
    from edgestereo.runtime.batch_runner import BatchOptions, list_pairs, parse_save, run_batch
    from edgestereo.runtime.frame_writer import FRAME_FILES

    options = BatchOptions(
        out=Path(args.out), save=parse_save(args.save), panel=args.panel,
        video=Path(args.video) if args.video else None, fps=args.fps, overwrite=args.overwrite,
        disparity_range=tuple(args.disp_range) if args.disp_range else None, calibration=calibration_source(args),
        alpha=args.alpha, max_depth=args.max_depth, cloud_stride=args.cloud_stride)
    options.check()
    jobs = list_pairs(left=args.left, right=args.right, pairs=args.pairs, folder=args.dir)
    with rerun_recorder(args, calibrated=options.calibration is not None) as recorder:
        predictor = build_predictor(args)  # after the other options are checked: a mistake costs no model load
        summary = run_batch(jobs, predictor, options, recorder=recorder)

    left_over = summary.listed - summary.done - summary.skipped - len(summary.failed)
    print(f"frames     {summary.listed} listed: {summary.done} done, {summary.skipped} already done, "
          f"{len(summary.failed)} failed" + (f", {left_over} not started (stopped)" if left_over else ""))
    for name, reason in summary.failed:
        print(f"failed     {name}: {reason}")
    if summary.latencies_ms:
        print(f"inference  mean {statistics.fmean(summary.latencies_ms):.1f} ms, median "
              f"{statistics.median(summary.latencies_ms):.1f} ms ({predictor.name}); end to end "
              f"{summary.frames_per_second:.2f} frames/s")
    if summary.done:
        suffixes = ",".join(FRAME_FILES[kind].format(base="") for kind in options.kinds)
        print(f"wrote      {options.out}/NAME{{{suffixes}}}")
    if summary.video_frames:
        print(f"wrote      {args.video} ({summary.video_frames} frames, {args.fps:g} fps)")
    if args.rerun:
        print(f"wrote      {args.rerun} ({recorder.frames} frames"
              + (", not those already done" if summary.skipped else "") + ")")
    if summary.stopped:
        print("stopped    run the same command again to resume")
    return summary.exit_code
