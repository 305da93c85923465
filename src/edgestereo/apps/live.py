"""Disparity from a live stereo camera (or a side-by-side video played as one), shown or written.

Sources: two UVC cameras (--left-device, --right-device), one UVC device delivering side-by-side
frames (--sbs-device), a side-by-side video file (--source; --loop, --realtime to pace it as a
camera), or an OAK-D (--oakd, needs `pip install 'edgestereo[oakd]'`). With --calib, frames are
rectified first (OpenCV stereo calibration YAML/JSON), or taken as rectified (fx, fy, cx, cy,
baseline JSON/YAML, or calib.txt) and used for depth; an OAK-D rectifies on the device and
reports its own calibration.

Where a display exists a window shows the panel and the frame rate (q or Esc quits). Otherwise,
or with --output-prefix PREFIX, each frame is written as PREFIX_00001.png (the coloured disparity,
or the panel with --panel) plus what --save adds; --video writes the same pictures as an MP4.
--rerun logs every frame to a Rerun recording on the frame and time (wall-clock) timelines,
--rerun-connect streams it to a running viewer. Ctrl-C or SIGTERM stops cleanly: the frames in
flight are finished, the video and the recording are finalised and the camera released.

example:
  edgestereo live --sbs-device 0 --camera-size 2560x720 --calib rig.yaml --scale 0.5
  edgestereo live --source recording.mp4 --output-prefix out/frame --video out/live.mp4
  edgestereo live --sbs-device 0 --calib rig.yaml --rerun-connect
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from edgestereo.apps._common import (
    add_calibration_arguments,
    add_model_arguments,
    add_rerun_arguments,
    add_view_arguments,
)

HELP = "disparity from a stereo camera, side-by-side video or OAK-D: window, frames or MP4"

DEFAULT_PREFIX = "edgestereo_live/frame"
WINDOW = "edgestereo live"


def _device(text: str) -> int | str:
    """A camera index ("0") or a device path / stream URL."""
    return int(text) if text.isdigit() else text


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1280x720, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return width, height


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("source (one of)")
    source.add_argument("--left-device", type=_device, metavar="N", help="left camera (index or device path)")
    source.add_argument("--right-device", type=_device, metavar="N", help="right camera (index or device path)")
    source.add_argument("--sbs-device", type=_device, metavar="N", help="one camera delivering side-by-side frames")
    source.add_argument("--source", metavar="FILE", help="side-by-side video file, played as a camera")
    source.add_argument("--oakd", action="store_true", help="Luxonis OAK-D (rectified on the device)")
    source.add_argument("--camera-size", type=_size, metavar="WxH",
                        help="resolution to ask of the camera(s); of the whole frame for --sbs-device")
    source.add_argument("--camera-fps", type=float, default=None, help="frame rate to ask of the camera(s)")
    source.add_argument("--loop", action="store_true", help="--source: start again at the end")
    source.add_argument("--realtime", action="store_true",
                        help="--source: pace frames at the file's rate and drop those the model is too slow for")
    out = parser.add_argument_group("output")
    out.add_argument("--output-prefix", metavar="PREFIX",
                     help="write frames as PREFIX_00001.png … (the default without a display, --video or --rerun: "
                          f"{DEFAULT_PREFIX})")
    out.add_argument("--save", default="color", metavar="KINDS",
                     help="with a prefix, per-frame outputs from color, disparity, depth, ply (default: color)")
    out.add_argument("--video", metavar="OUT.mp4", help="also write the pictures as an MP4 video")
    out.add_argument("--fps", type=float, default=None,
                     help="frame rate of --video (default: the source's, else 10)")
    out.add_argument("--no-window", action="store_true", help="never open a window")
    out.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    add_rerun_arguments(parser)
    add_view_arguments(parser)
    add_model_arguments(parser)
    add_calibration_arguments(parser)


def open_source(args: argparse.Namespace):
    """The :class:`~edgestereo.camera.StereoSource` the source options name."""
    from edgestereo.camera import CameraStereoSource, OakDStereoSource, VideoStereoSource
    from edgestereo.errors import EdgeStereoError

    chosen = [name for name, used in (("--left-device/--right-device", args.left_device is not None
                                       or args.right_device is not None), ("--sbs-device", args.sbs_device is not None),
                                      ("--source", args.source), ("--oakd", args.oakd)) if used]
    if len(chosen) != 1:
        raise EdgeStereoError("give one source: --left-device N --right-device M, --sbs-device N, --source FILE "
                              "or --oakd" + (f" (got {' and '.join(chosen)})" if chosen else ""))
    if (args.loop or args.realtime) and not args.source:
        raise EdgeStereoError("--loop and --realtime apply to --source FILE only")
    if args.source:
        return VideoStereoSource(args.source, loop=args.loop, realtime=args.realtime)
    if args.oakd:
        if args.calib or args.focal is not None:
            raise EdgeStereoError("--oakd reads its calibration from the device; drop --calib/--focal")
        return OakDStereoSource(**{k: v for k, v in (("size", args.camera_size), ("fps", args.camera_fps)) if v})
    if args.sbs_device is not None:
        return CameraStereoSource(side_by_side=args.sbs_device, size=args.camera_size, fps=args.camera_fps)
    if args.left_device is None or args.right_device is None:
        raise EdgeStereoError("--left-device and --right-device go together")
    return CameraStereoSource(args.left_device, args.right_device, size=args.camera_size, fps=args.camera_fps)


def display_available() -> bool:
    """Whether a window can be shown: a display is set (on Linux) and OpenCV was built with a GUI."""
    import cv2

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:  # opencv-python-headless has no GUI backend
        return False
    return True


def _show(picture, fps: float) -> bool:
    """Show the picture with the frame rate; False once the user asked to quit."""
    import cv2

    bgr = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
    cv2.putText(bgr, f"{fps:.1f} fps", (10, bgr.shape[0] - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2,
                cv2.LINE_AA)
    cv2.imshow(WINDOW, bgr)
    key = cv2.waitKey(1) & 0xFF
    return key not in (ord("q"), 27) and cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) >= 1


def run(args: argparse.Namespace) -> int:
    import statistics
    from pathlib import Path

    import cv2

    from edgestereo.apps._common import build_predictor, calibration_source, rerun_recorder
    from edgestereo.runtime.batch_runner import parse_save
    from edgestereo.runtime.stream_runner import StreamOptions, run_stream

    options = StreamOptions(
        save=parse_save(args.save), video=Path(args.video) if args.video else None, fps=args.fps, panel=args.panel,
        disparity_range=tuple(args.disp_range) if args.disp_range else None, calibration=calibration_source(args),
        alpha=args.alpha, max_frames=args.max_frames, max_depth=args.max_depth,
        cloud_stride=args.cloud_stride)
    window = not args.no_window and display_available()
    recording = args.rerun is not None or args.rerun_connect is not None
    prefix = args.output_prefix or (None if window or args.video or recording else DEFAULT_PREFIX)
    options = dataclasses.replace(options, prefix=prefix)
    options.check(source_calibrated=args.oakd)
    predictor = build_predictor(args)  # before the camera starts, so no frames queue up while the model loads

    def report_failure(frame: int, reason: str) -> None:
        print(f"frame {frame}: {reason}", file=sys.stderr)

    calibrated = options.calibration is not None or args.oakd
    with rerun_recorder(args, calibrated=calibrated, wall_clock=True) as recorder, open_source(args) as source:
        print(f"source     {source.description}; model {predictor.name}"
              + (f"; writing {prefix}_NNNNN.png" if prefix else "") + ("; window (q quits)" if window else ""))
        try:
            summary = run_stream(source, predictor, options, show=_show if window else None,
                                 on_failure=report_failure, recorder=recorder)
        finally:
            if window:
                cv2.destroyAllWindows()

    print(f"frames     {summary.shown}" + (f", {summary.failures} failed" if summary.failures else "")
          + (" (stopped)" if summary.stopped else ""))
    if summary.latencies_ms:
        print(f"inference  mean {statistics.fmean(summary.latencies_ms):.1f} ms, median "
              f"{statistics.median(summary.latencies_ms):.1f} ms; {summary.rate:.1f} frames/s at the end")
    if summary.video_frames:
        print(f"wrote      {args.video} ({summary.video_frames} frames, {summary.video_fps:g} fps)")
    if args.rerun:
        print(f"wrote      {args.rerun} ({recorder.frames} frames)")
    return 0
