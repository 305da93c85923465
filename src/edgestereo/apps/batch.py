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
failed, 130 when stopped by Ctrl-C / SIGTERM (run again to resume).

example:
  edgestereo batch --dir drive_0001 --out out --video out/drive.mp4 --fps 10 --panel
  edgestereo batch --left 'cam0/*.png' --right 'cam1/*.png' --calib rig.yaml --save disparity,depth,ply --out o
"""

from __future__ import annotations

import argparse
import glob
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from edgestereo.apps._common import add_calibration_arguments, add_model_arguments, build_predictor
from edgestereo.apps._frames import add_view_arguments

HELP = "disparity for folders or lists of stereo pairs, with an MP4 and resume"

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
STATE_FILE = ".edgestereo-batch.json"


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
    add_view_arguments(parser)
    add_model_arguments(parser)
    add_calibration_arguments(parser)


@dataclass(frozen=True)
class PairJob:
    """One stereo pair to process; ``problem`` is set when the pair is known bad before reading."""

    name: str
    left: Path | None
    right: Path | None
    problem: str | None = None


def _images(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def list_pairs(args: argparse.Namespace) -> list[PairJob]:
    """The pairs the input options name, in order; raises when the options are wrong or match nothing."""
    from edgestereo.errors import EdgeStereoError, ReadError

    given = [name for name, used in (("--left/--right", args.left or args.right), ("--pairs", args.pairs),
                                     ("--dir", args.dir)) if used]
    if len(given) != 1:
        raise EdgeStereoError("give one input: --left GLOB --right GLOB, --pairs LIST or --dir DIR"
                              + (f" (got {' and '.join(given)})" if given else ""))
    jobs: list[PairJob] = []
    if args.left or args.right:
        if not (args.left and args.right):
            raise EdgeStereoError("--left and --right go together")
        lefts = sorted(p for p in glob.glob(args.left, recursive=True) if Path(p).is_file())
        rights = sorted(p for p in glob.glob(args.right, recursive=True) if Path(p).is_file())
        if not lefts:
            raise EdgeStereoError(f"--left {args.left!r} matches no file")
        if len(lefts) != len(rights):
            raise EdgeStereoError(f"--left matches {len(lefts)} files but --right matches {len(rights)}")
        jobs = [PairJob(Path(left).stem, Path(left), Path(right)) for left, right in zip(lefts, rights)]
    elif args.pairs:
        list_path = Path(args.pairs)
        if not list_path.is_file():
            raise ReadError(list_path, "file not found" if not list_path.exists() else "is not a file")
        for number, line in enumerate(list_path.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                fields = shlex.split(line)
            except ValueError as exc:
                raise ReadError(list_path, f"line {number}: {exc}") from None
            if len(fields) != 2:
                raise ReadError(list_path, f"line {number}: expected 'LEFT RIGHT', got {line.strip()!r}")
            left, right = (list_path.parent / field for field in fields)
            jobs.append(PairJob(left.stem, left, right))
    else:
        root = Path(args.dir)
        folders = [root / "left", root / "right"]
        for folder in folders:
            if not folder.is_dir():
                raise ReadError(folder, "folder not found (--dir expects left/ and right/ inside)")
        lefts, rights = (_images(folder) for folder in folders)
        for name in sorted(lefts.keys() | rights.keys()):
            left, right = lefts.get(name), rights.get(name)
            problem = None if left and right else f"{name}: no {'right' if left else 'left'} image of that name"
            jobs.append(PairJob(Path(name).stem, left, right, problem))
    if not jobs:
        raise EdgeStereoError("the input lists no stereo pair")
    seen: dict[str, PairJob] = {}
    for job in jobs:
        if job.name in seen:
            raise EdgeStereoError(f"two pairs would write the same outputs {job.name!r} ({seen[job.name].left} and "
                                  f"{job.left}); list them with --pairs from one folder per name")
        seen[job.name] = job
    return jobs


def _first_pair_size(jobs: list[PairJob]) -> tuple[int, int] | None:
    """(W, H) of the first pair that can be read, or None when none can."""
    from edgestereo.api import load_pair
    from edgestereo.errors import EdgeStereoError

    for job in jobs:
        if job.problem is None:
            try:
                left, _ = load_pair(job.left, job.right)
            except EdgeStereoError:
                continue
            return left.shape[1], left.shape[0]
    return None


def _read_state(path: Path) -> dict:
    import json

    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(path: Path, state: dict) -> None:
    import json

    from edgestereo.data.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(state, indent=2) + "\n")


@dataclass
class BatchSummary:
    """What a batch did: frames ``done`` now, ``skipped`` (already done), ``failed`` (name, reason),
    per-frame inference latencies (ms), wall time of the pipeline (s), frames in the video."""

    listed: int
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    video_frames: int = 0
    stopped: bool = False

    @property
    def frames_per_second(self) -> float:
        """End-to-end rate of the frames inferred in this run (decode + infer + encode overlapped)."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def exit_code(self) -> int:
        return 130 if self.stopped else 1 if self.failed else 0


def run(args: argparse.Namespace) -> int:
    return run_batch(args).exit_code


def run_batch(args: argparse.Namespace, predictor=None) -> BatchSummary:
    """Run the batch the arguments describe and print its summary; ``predictor`` (default: built
    from the model arguments after the other options are checked) lets a benchmark pass a warm one."""
    import statistics
    import threading
    import time

    from tqdm import tqdm

    from edgestereo.api import load_pair
    from edgestereo.apps._common import prepare_output_dir
    from edgestereo.apps._frames import FrameOutputs, calibration_setup, make_rectifier, parse_save, stable_ranges
    from edgestereo.data.io import read_image
    from edgestereo.errors import EdgeStereoError
    from edgestereo.runtime.pipeline import PipelineFrame, run_pipeline, stop_on_signals
    from edgestereo.video import VideoWriter

    kinds = parse_save(args.save)
    if args.video:
        kinds = (*kinds, "color") if "color" not in kinds else kinds  # a resumed batch reads the pictures back
    if args.fps <= 0:
        raise EdgeStereoError(f"--fps must be positive, got {args.fps:g}")
    setup = calibration_setup(args)
    has_calibration = setup is not None or args.focal is not None
    needs_calibration = [kind for kind in kinds if kind in ("depth", "ply")]
    if needs_calibration and not has_calibration:
        raise EdgeStereoError(f"--save {','.join(needs_calibration)} needs a calibration (--calib, or --focal and "
                              "--baseline)")
    if not kinds:
        raise EdgeStereoError("--save lists no output and there is no --video: nothing would be written")
    jobs = list_pairs(args)
    out = prepare_output_dir(args.out)
    state_path = out / STATE_FILE
    state = {} if args.overwrite else _read_state(state_path)
    predictor = predictor or build_predictor(args)
    outputs = FrameOutputs(kinds, panel=args.panel, title=predictor.name,
                           depth_unit=setup.unit if setup is not None else "",
                           max_depth=args.max_depth, cloud_stride=args.cloud_stride)
    if "disparity_range" in state and args.disp_range is None:
        outputs.set_ranges(state["disparity_range"], state.get("depth_range"))

    def is_done(job: PairJob) -> bool:
        return not args.overwrite and all(p.is_file() for p in FrameOutputs.paths(out / job.name, kinds).values())

    # The frame size is the calibration's, else the first readable pair's; other sizes are bad frames.
    size = tuple(state["size"]) if "size" in state else setup.image_size if setup is not None else None
    size = size or _first_pair_size(jobs)
    rectifier = make_rectifier(setup, args, size) if has_calibration and size else None
    outputs.calibration = rectifier.calibration if rectifier is not None else None

    def prepare(job: PairJob) -> PipelineFrame[PairJob]:
        if job.problem:
            raise EdgeStereoError(job.problem)
        if is_done(job):
            picture = read_image(FrameOutputs.paths(out / job.name, ["color"])["color"]) if args.video else None
            return PipelineFrame(job, extra=picture)
        left, right = load_pair(job.left, job.right)
        if (left.shape[1], left.shape[0]) != size:
            raise EdgeStereoError(f"{job.left}: {left.shape[1]}x{left.shape[0]}, the batch's frames are "
                                  f"{size[0]}x{size[1]}")
        if rectifier is not None:
            left, right = rectifier(left, right)
        return PipelineFrame(job, left, right)

    summary = BatchSummary(len(jobs))
    stop = threading.Event()
    video = VideoWriter(args.video, args.fps) if args.video else None
    start = time.perf_counter()
    with stop_on_signals(stop), tqdm(total=len(jobs), unit="frame", dynamic_ncols=True) as progress:
        try:
            for frame in run_pipeline(jobs, prepare, predictor, stop=stop):
                progress.update(1)
                try:
                    if frame.error:
                        summary.failed.append((frame.item.name, frame.error))
                        continue
                    if frame.disparity is None:
                        summary.skipped += 1
                        if video is not None:
                            video.write(frame.extra)
                        continue
                    if outputs.disparity_range is None:
                        ranges = stable_ranges(frame.disparity, outputs.calibration, args.disp_range)
                        outputs.set_ranges(*ranges)
                        state.update(size=list(size), disparity_range=list(ranges[0]),
                                     depth_range=list(ranges[1]) if ranges[1] else None)
                        _write_state(state_path, state)
                    picture = outputs.write(out / frame.item.name, frame.left, frame.right, frame.disparity)
                    if video is not None:
                        video.write(picture)
                except EdgeStereoError as exc:
                    summary.failed.append((frame.item.name, str(exc)))
                    continue
                summary.done += 1
                summary.latencies_ms.append(frame.infer_ms)
                progress.set_postfix_str(f"{frame.infer_ms:.0f} ms/inference", refresh=False)
        finally:
            if video is not None:
                video.close()
    summary.elapsed_s = time.perf_counter() - start
    summary.video_frames = video.frames if video is not None else 0
    summary.stopped = stop.is_set()

    left_over = summary.listed - summary.done - summary.skipped - len(summary.failed)
    print(f"frames     {summary.listed} listed: {summary.done} done, {summary.skipped} already done, "
          f"{len(summary.failed)} failed" + (f", {left_over} not started (stopped)" if left_over else ""))
    for name, reason in summary.failed:
        print(f"failed     {name}: {reason}")
    if summary.latencies_ms:
        print(f"inference  mean {statistics.fmean(summary.latencies_ms):.1f} ms, median "
              f"{statistics.median(summary.latencies_ms):.1f} ms ({predictor.name}); end to end "
              f"{summary.frames_per_second:.2f} frames/s")
    print(f"wrote      {out}/NAME{{{','.join(FrameOutputs.paths('', kinds)[k].name for k in kinds)}}}")
    if summary.video_frames:
        print(f"wrote      {args.video} ({summary.video_frames} frames, {args.fps:g} fps)")
    if summary.stopped:
        print("stopped    run the same command again to resume")
    return summary
