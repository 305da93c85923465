"""Disparity for many stereo pairs, resumable: what ``edgestereo batch`` runs.

:func:`list_pairs` finds the pairs (two globs, a list file, or a folder with ``left/`` and
``right/``); :func:`run_batch` decodes, infers and writes them in overlapping threads
(:func:`~edgestereo.runtime.pipeline.run_pipeline`), skips frames whose outputs all exist, and
keeps what a resumed batch must reuse (frame size, colour ranges) in ``.edgestereo-batch.json``
in the output folder.

>>> jobs = list_pairs(folder="drive_0001")  # doctest: +SKIP
>>> summary = run_batch(jobs, create_predictor(), BatchOptions(out=Path("out")))  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import json
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgestereo.calibration import FocalBaseline, StereoSetup
from edgestereo.data.io import (
    atomic_path,
    check_output_dir,
    check_output_file,
    load_pair,
    prepare_output_dir,
    read_image,
)
from edgestereo.errors import EdgeStereoError, OutputError, ReadError
from edgestereo.runtime.frame_writer import FRAME_FILES, FrameWriter, stable_ranges
from edgestereo.runtime.pipeline import PipelineFrame, run_pipeline, stop_on_signals
from edgestereo.runtime.predictor import Predictor
from edgestereo.runtime.rerun_logger import runtime_label

if TYPE_CHECKING:
    from edgestereo.runtime.rerun_logger import RerunLogger

__all__ = ["IMAGE_SUFFIXES", "SAVE_KINDS", "STATE_FILE", "BatchOptions", "BatchSummary", "PairJob", "list_pairs",
           "parse_save", "run_batch"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
#: where a batch keeps what a resumed run must reuse, in its output folder.
STATE_FILE = ".edgestereo-batch.json"
#: what ``--save`` may list: the picture ("color": the coloured disparity, or the panel), disparity
#: and depth (PFM), and a point cloud (PLY).
SAVE_KINDS = ("color", "disparity", "depth", "ply")


def parse_save(text: str) -> tuple[str, ...]:
    """"disparity,ply" → ("disparity", "ply"); raises on unknown kinds."""
    kinds = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [kind for kind in kinds if kind not in SAVE_KINDS]
    if unknown:
        raise EdgeStereoError(f"--save: unknown output(s) {', '.join(unknown)}; choose from {', '.join(SAVE_KINDS)}")
    return kinds


@dataclass(frozen=True)
class PairJob:
    """One stereo pair to process; ``problem`` is set when the pair is known bad before reading."""

    name: str
    left: Path | None
    right: Path | None
    problem: str | None = None


def _images(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def _pairs_from_globs(left: str, right: str) -> list[PairJob]:
    lefts = sorted(p for p in glob.glob(left, recursive=True) if Path(p).is_file())
    rights = sorted(p for p in glob.glob(right, recursive=True) if Path(p).is_file())
    if not lefts:
        raise EdgeStereoError(f"--left {left!r} matches no file")
    if len(lefts) != len(rights):
        raise EdgeStereoError(f"--left matches {len(lefts)} files but --right matches {len(rights)}")
    return [PairJob(Path(lt).stem, Path(lt), Path(rt)) for lt, rt in zip(lefts, rights)]


def _pairs_from_list(list_path: Path) -> list[PairJob]:
    if not list_path.is_file():
        raise ReadError(list_path, "file not found" if not list_path.exists() else "is not a file")
    jobs = []
    for number, line in enumerate(list_path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            fields = shlex.split(line)
        except ValueError as exc:
            raise ReadError(list_path, f"line {number}: {exc}") from None
        if len(fields) != 2:
            raise ReadError(list_path, f"line {number}: expected 'LEFT RIGHT', got {line.strip()!r}")
        left, right = (list_path.parent / name for name in fields)
        jobs.append(PairJob(left.stem, left, right))
    return jobs


def _pairs_from_folder(root: Path) -> list[PairJob]:
    folders = [root / "left", root / "right"]
    for folder in folders:
        if not folder.is_dir():
            raise ReadError(folder, "folder not found (--dir expects left/ and right/ inside)")
    lefts, rights = (_images(folder) for folder in folders)
    jobs = []
    for name in sorted(lefts.keys() | rights.keys()):
        left, right = lefts.get(name), rights.get(name)
        problem = None if left and right else f"{name}: no {'right' if left else 'left'} image of that name"
        jobs.append(PairJob(Path(name).stem, left, right, problem))
    return jobs


def list_pairs(*, left: str | None = None, right: str | None = None, pairs: str | Path | None = None,
               folder: str | Path | None = None) -> list[PairJob]:
    """The pairs of one input, in order: ``left``/``right`` globs (sorted, matched in order), a
    ``pairs`` list file (one "LEFT RIGHT" line per pair, relative to the list), or a ``folder``
    with left/ and right/ (matched by file name). Raises when the input is wrong or lists nothing."""
    given = [name for name, used in (("--left/--right", left or right), ("--pairs", pairs), ("--dir", folder))
             if used]
    if len(given) != 1:
        raise EdgeStereoError("give one input: --left GLOB --right GLOB, --pairs LIST or --dir DIR"
                              + (f" (got {' and '.join(given)})" if given else ""))
    if left or right:
        if not (left and right):
            raise EdgeStereoError("--left and --right go together")
        jobs = _pairs_from_globs(left, right)
    elif pairs:
        jobs = _pairs_from_list(Path(pairs))
    else:
        jobs = _pairs_from_folder(Path(folder))
    if not jobs:
        raise EdgeStereoError("the input lists no stereo pair")
    seen: dict[str, PairJob] = {}
    for job in jobs:
        if job.name in seen:
            raise EdgeStereoError(f"two pairs would write the same outputs {job.name!r} ({seen[job.name].left} and "
                                  f"{job.left}); list them with --pairs from one folder per name")
        seen[job.name] = job
    return jobs


@dataclass(frozen=True)
class BatchOptions:
    """How :func:`run_batch` writes a batch.

    out: the output folder. save: kinds from :data:`SAVE_KINDS`. panel: pictures are the four-panel
    view. video: also an MP4 of the pictures at ``fps``. overwrite: redo finished frames.
    disparity_range: fixed colour range (px; default the first frame's). calibration: rectifies
    each pair and gives depth (a calibration file's :class:`StereoSetup`, or :class:`FocalBaseline`);
    alpha: its rectification's crop (0 valid pixels only … 1 every pixel). max_depth, cloud_stride:
    point clouds.
    """

    out: Path
    save: tuple[str, ...] = ("disparity", "color")
    panel: bool = False
    video: Path | None = None
    fps: float = 10.0
    overwrite: bool = False
    disparity_range: tuple[float, float] | None = None
    calibration: StereoSetup | FocalBaseline | None = None
    alpha: float = 0.0
    max_depth: float | None = None
    cloud_stride: int = 1

    @property
    def kinds(self) -> tuple[str, ...]:
        """The writer's kinds: ``save``, with the picture as the panel when ``panel``, and the picture
        always with a video (a resumed batch reads the pictures of finished frames back)."""
        kinds = (*self.save, "color") if self.video is not None and "color" not in self.save else self.save
        return tuple("panel" if kind == "color" and self.panel else kind for kind in kinds)

    def check(self) -> None:
        """Raise on options that cannot work together, before any frame is read."""
        for kind in self.save:
            if kind not in SAVE_KINDS:
                raise EdgeStereoError(f"--save: unknown output {kind}; choose from {', '.join(SAVE_KINDS)}")
        if self.fps <= 0:
            raise EdgeStereoError(f"--fps must be positive, got {self.fps:g}")
        needs = [kind for kind in self.save if kind in ("depth", "ply")]
        if needs and self.calibration is None:
            raise EdgeStereoError(f"--save {','.join(needs)} needs a calibration (--calib, or --focal and "
                                  "--baseline)")
        if not self.kinds:
            raise EdgeStereoError("--save lists no output and there is no --video: nothing would be written")
        if self.disparity_range is not None and not 0 <= self.disparity_range[0] < self.disparity_range[1]:
            low, high = self.disparity_range
            raise EdgeStereoError(f"--disp-range needs 0 ≤ LOW < HIGH, got {low:g} {high:g}")
        if self.cloud_stride < 1:
            raise EdgeStereoError(f"--cloud-stride must be ≥ 1, got {self.cloud_stride}")
        check_output_dir(self.out)
        if self.video is not None:
            check_output_file(self.video)


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
        """0 when every frame succeeded, 1 when some failed, 130 when stopped (run again to resume)."""
        return 130 if self.stopped else 1 if self.failed else 0


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(state, indent=2) + "\n")


def _first_pair_size(jobs: list[PairJob]) -> tuple[int, int] | None:
    """(W, H) of the first pair that can be read, or None when none can."""
    for job in jobs:
        if job.problem is None:
            try:
                left, _ = load_pair(job.left, job.right)
            except EdgeStereoError:
                continue
            return left.shape[1], left.shape[0]
    return None


def run_batch(jobs: list[PairJob], predictor: Predictor, options: BatchOptions, *,
              progress: bool = True, recorder: RerunLogger | None = None) -> BatchSummary:
    """Infer every pair of ``jobs`` and write its outputs into ``options.out``; see the module docstring.
    recorder: also log every frame inferred (not those already done) to this Rerun recording, on
    the ``frame`` timeline at the pair's position in ``jobs``.

    A frame that cannot be read, has another size than the batch's (the first readable pair's) or
    fails with an :class:`~edgestereo.errors.EdgeStereoError` is recorded in ``failed`` and the batch
    goes on; an :class:`~edgestereo.errors.OutputError` (a full disk …) stops it and discards the
    video. A calibration for another frame size is refused before anything is written. The first
    SIGINT/SIGTERM stops it cleanly (``stopped``).
    """
    from tqdm import tqdm

    from edgestereo.video import VideoWriter

    options.check()
    state_path = options.out / STATE_FILE
    state = {} if options.overwrite else _read_state(state_path)
    setup = options.calibration
    writer = FrameWriter(options.kinds, FRAME_FILES, title=predictor.name,
                         depth_unit=setup.unit if setup is not None else "", max_depth=options.max_depth,
                         cloud_stride=options.cloud_stride)
    if "disparity_range" in state and options.disparity_range is None:
        writer.set_ranges(state["disparity_range"], state.get("depth_range"))
    picture_kind = "panel" if options.panel else "color"

    def is_done(job: PairJob) -> bool:
        return not options.overwrite and all(p.is_file() for p in writer.paths(options.out / job.name).values())

    # The frame size is the first readable pair's (a calibration for another size is refused here,
    # before anything is written); frames of other sizes are bad frames.
    size = tuple(state["size"]) if "size" in state else _first_pair_size(jobs)
    rectifier = setup.rectifier(size, options.alpha) if setup is not None and size else None
    writer.calibration = rectifier.calibration if rectifier is not None else None
    prepare_output_dir(options.out)

    def prepare(job: PairJob) -> PipelineFrame[PairJob]:
        if job.problem:
            raise EdgeStereoError(job.problem)
        if is_done(job):
            picture = read_image(writer.paths(options.out / job.name, [picture_kind])[picture_kind]) \
                if options.video is not None else None
            return PipelineFrame(job, extra=picture)
        left, right = load_pair(job.left, job.right)
        if (left.shape[1], left.shape[0]) != size:
            raise EdgeStereoError(f"{job.left}: {left.shape[1]}x{left.shape[0]}, the batch's frames are "
                                  f"{size[0]}x{size[1]}")
        if rectifier is not None:
            left, right = rectifier(left, right)
        return PipelineFrame(job, left, right)

    summary = BatchSummary(len(jobs))
    positions = {job.name: position for position, job in enumerate(jobs)}
    if recorder is not None:
        recorder.log_model(predictor.name, runtime_label(predictor))
    stop = threading.Event()
    video = VideoWriter(options.video, options.fps) if options.video is not None else None
    start = time.perf_counter()
    with stop_on_signals(stop), tqdm(total=len(jobs), unit="frame", dynamic_ncols=True, disable=not progress) as bar:
        try:
            for frame in run_pipeline(jobs, prepare, predictor, stop=stop):
                bar.update(1)
                try:
                    if frame.error:
                        summary.failed.append((frame.item.name, frame.error))
                        continue
                    if frame.disparity is None:
                        summary.skipped += 1
                        if video is not None:
                            video.write(frame.extra)
                        continue
                    if writer.disparity_range is None:
                        ranges = stable_ranges(frame.disparity, writer.calibration, options.disparity_range)
                        writer.set_ranges(*ranges)
                        state.update(size=list(size), disparity_range=list(ranges[0]),
                                     depth_range=list(ranges[1]) if ranges[1] else None)
                        _write_state(state_path, state)
                    written = writer.write(options.out / frame.item.name, frame.left, frame.right, frame.disparity)
                    if recorder is not None:
                        recorder.log_frame(positions[frame.item.name], frame.left, frame.right, frame.disparity,
                                           calibration=writer.calibration, depth_unit=writer.depth_unit,
                                           latency_ms=frame.infer_ms, name=frame.item.name,
                                           disparity_range=writer.disparity_range)
                    if video is not None:
                        video.write(written.pictures[picture_kind])
                except OutputError:
                    raise  # a full disk or a lost folder fails every later frame too
                except EdgeStereoError as exc:
                    summary.failed.append((frame.item.name, str(exc)))
                    continue
                summary.done += 1
                summary.latencies_ms.append(frame.infer_ms)
                bar.set_postfix_str(f"{frame.infer_ms:.0f} ms/inference", refresh=False)
        except OutputError:
            if video is not None:
                video.discard()
            raise
        finally:
            if video is not None:
                video.close()
    summary.elapsed_s = time.perf_counter() - start
    summary.video_frames = video.frames if video is not None else 0
    summary.stopped = stop.is_set()
    return summary
