"""Disparity for a live stereo stream: what ``edgestereo live`` runs.

:func:`run_stream` reads pairs from a :class:`~edgestereo.camera.StereoSource`, rectifies them,
infers one frame at a time (a live view wants the newest frame, not a queue of old ones) and hands
each picture to a ``show`` callback (a window), writes per-frame files and an MP4.

>>> with VideoStereoSource("recording.mp4") as source:  # doctest: +SKIP
...     summary = run_stream(source, create_predictor(), StreamOptions(prefix="out/frame"))
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgestereo.calibration import FocalBaseline, Rectifier, StereoSetup
from edgestereo.data.io import check_output_dir, check_output_file
from edgestereo.errors import EdgeStereoError, OutputError
from edgestereo.runtime.batch_runner import SAVE_KINDS
from edgestereo.runtime.frame_writer import FRAME_FILES, FrameWriter, stable_ranges
from edgestereo.runtime.pipeline import PipelineFrame, run_pipeline, stop_on_signals
from edgestereo.runtime.predictor import Predictor
from edgestereo.runtime.rerun_logger import runtime_label

if TYPE_CHECKING:
    from edgestereo.runtime.rerun_logger import RerunLogger

__all__ = ["StreamOptions", "StreamSummary", "run_stream"]


@dataclass(frozen=True)
class StreamOptions:
    """How :func:`run_stream` treats a stream.

    prefix: write each frame as ``PREFIX_00001`` + the suffixes of :data:`FRAME_FILES` (None: no
    files); save: the kinds written there (from ``SAVE_KINDS``); video: an MP4 of the pictures at
    ``fps`` (default: the source's, else 10). panel: pictures are the four-panel view.
    disparity_range: fixed colour range (px; default the first frame's). calibration / alpha:
    rectification and depth, as for a batch (a source that knows its own calibration, an OAK-D,
    needs none). max_frames: stop after that many frames. max_depth, cloud_stride: point clouds.
    """

    prefix: str | None = None
    save: tuple[str, ...] = ("color",)
    video: Path | None = None
    fps: float | None = None
    panel: bool = False
    disparity_range: tuple[float, float] | None = None
    calibration: StereoSetup | FocalBaseline | None = None
    alpha: float = 0.0
    max_frames: int | None = None
    max_depth: float | None = None
    cloud_stride: int = 1

    def check(self, source_calibrated: bool = False) -> None:
        """Raise on options that cannot work together, before the model or the camera starts."""
        for kind in self.save:
            if kind not in SAVE_KINDS:
                raise EdgeStereoError(f"--save: unknown output {kind}; choose from {', '.join(SAVE_KINDS)}")
        if self.max_frames is not None and self.max_frames < 1:
            raise EdgeStereoError(f"--max-frames must be ≥ 1, got {self.max_frames}")
        if self.fps is not None and self.fps <= 0:
            raise EdgeStereoError(f"--fps must be positive, got {self.fps:g}")
        if self.disparity_range is not None and not 0 <= self.disparity_range[0] < self.disparity_range[1]:
            low, high = self.disparity_range
            raise EdgeStereoError(f"--disp-range needs 0 ≤ LOW < HIGH, got {low:g} {high:g}")
        if self.cloud_stride < 1:
            raise EdgeStereoError(f"--cloud-stride must be ≥ 1, got {self.cloud_stride}")
        needs = [kind for kind in self.save if kind in ("depth", "ply")]
        if needs and self.calibration is None and not source_calibrated:
            raise EdgeStereoError(f"--save {','.join(needs)} needs a calibration (--calib, or --focal and "
                                  "--baseline)")
        if self.prefix:
            check_output_dir(Path(self.prefix).parent)
        if self.video is not None:
            check_output_file(self.video)


@dataclass
class StreamSummary:
    """What a stream did: frames shown, frames that failed, inference latencies (ms), the frame rate at
    the end (a moving average), frames in the video, and whether it was stopped."""

    shown: int = 0
    failures: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    rate: float = 0.0
    video_frames: int = 0
    video_fps: float = 0.0
    stopped: bool = False


def run_stream(source: Any, predictor: Predictor, options: StreamOptions, *,
               show: Callable[[np.ndarray, float], bool] | None = None,
               on_failure: Callable[[int, str], None] | None = None,
               recorder: RerunLogger | None = None) -> StreamSummary:
    """Run ``predictor`` on the pairs of ``source`` (a :class:`~edgestereo.camera.StereoSource`).

    show(picture, frames_per_second) gets the panel of every frame (the writer's picture with
    ``options.panel``) and returns False to stop. on_failure(frame_number, reason) hears of frames
    that fail after the first success; before it, a failure is a setup problem and is raised. The
    first SIGINT/SIGTERM stops cleanly: the frames in flight are finished and the video finalised.
    recorder: also log every frame to this Rerun recording, on the ``frame`` timeline at its number.
    """
    from edgestereo.video import VideoWriter

    options.check(source_calibrated=source.calibration is not None)
    setup = options.calibration
    kinds = tuple("panel" if kind == "color" and options.panel else kind for kind in options.save)
    writer = FrameWriter(kinds, FRAME_FILES, title=predictor.name,
                         depth_unit=setup.unit if setup is not None else source.depth_unit,
                         max_depth=options.max_depth, cloud_stride=options.cloud_stride)
    rectifier: Rectifier | None = None

    def prepare(item: tuple[int, tuple[np.ndarray, np.ndarray]]) -> PipelineFrame[int]:
        nonlocal rectifier
        index, (left, right) = item
        if rectifier is None:
            size = (left.shape[1], left.shape[0])
            rectifier = (Rectifier(size, source.calibration) if source.calibration is not None
                         else setup.rectifier(size, options.alpha) if setup is not None else None)
            writer.calibration = rectifier.calibration if rectifier is not None else None
        if rectifier is not None:
            left, right = rectifier(left, right)
        return PipelineFrame(index, left, right)

    summary = StreamSummary(video_fps=options.fps or source.fps or 10.0)
    if recorder is not None:
        recorder.log_model(predictor.name, runtime_label(predictor))
    stop = threading.Event()
    frames = itertools.islice(enumerate(source, 1), options.max_frames)
    video = VideoWriter(options.video, summary.video_fps) if options.video is not None else None
    last = None
    try:
        with stop_on_signals(stop):
            # One frame in flight per step: a live view wants the newest frame, not a queue of old ones.
            for frame in run_pipeline(frames, prepare, predictor, depth=1, stop=stop):
                if frame.error:
                    if summary.shown == 0:  # before any success it is the setup (size, calibration), not one frame
                        raise EdgeStereoError(frame.error)
                    summary.failures += 1
                    if on_failure is not None:
                        on_failure(frame.item, frame.error)
                    continue
                if writer.disparity_range is None:
                    writer.set_ranges(*stable_ranges(frame.disparity, writer.calibration, options.disparity_range))
                pictures = {}
                if options.prefix:
                    pictures = writer.write(f"{options.prefix}_{frame.item:05d}", frame.left, frame.right,
                                            frame.disparity).pictures
                picture = pictures.get("panel" if options.panel else "color")
                if picture is None and (video is not None or (show is not None and options.panel)):
                    picture = writer.picture(frame.left, frame.right, frame.disparity, panel=options.panel)
                if video is not None:
                    video.write(picture)
                if recorder is not None:
                    recorder.log_frame(frame.item, frame.left, frame.right, frame.disparity,
                                       calibration=writer.calibration, depth_unit=writer.depth_unit,
                                       latency_ms=frame.infer_ms, disparity_range=writer.disparity_range)
                now = time.perf_counter()
                if last is not None:
                    step = 1.0 / max(now - last, 1e-6)
                    summary.rate = step if summary.rate == 0 else 0.9 * summary.rate + 0.1 * step
                last = now
                summary.shown += 1
                summary.latencies_ms.append(frame.infer_ms)
                if show is not None:
                    view = picture if options.panel else writer.picture(frame.left, frame.right, frame.disparity,
                                                                        panel=True)
                    if not show(view, summary.rate):
                        stop.set()
    except OutputError:
        if video is not None:
            video.discard()
        raise
    finally:
        if video is not None:
            video.close()
            summary.video_frames = video.frames
    summary.stopped = stop.is_set()
    return summary
