"""Stereo frame sources: two cameras, one side-by-side camera, a side-by-side video file, an OAK-D.

Every source yields (left, right) pairs of (H,W,3) uint8 RGB images and is closed (the cameras
released) by :meth:`StereoSource.close` or a ``with`` block. Live cameras are read by a
background thread that keeps only the newest frame, so a slow model processes the most recent
view instead of a growing backlog. A side-by-side video file plays as a camera does, which makes
it the stand-in for a camera in tests and for replaying recordings. depthai (OAK-D) is imported
only when an OAK-D is asked for.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from edgestereo.data.io import native_messages
from edgestereo.errors import EdgeStereoError, ReadError
from edgestereo.geometry import StereoCalibration

__all__ = [
    "CameraStereoSource",
    "OakDStereoSource",
    "StereoSource",
    "VideoStereoSource",
    "split_side_by_side",
]

Pair = tuple[np.ndarray, np.ndarray]


def split_side_by_side(frame: np.ndarray) -> Pair:
    """(H,2W,3) side-by-side frame (left view in the left half) → (left, right), each (H,W,3)."""
    if frame.shape[1] % 2:
        raise EdgeStereoError(f"a side-by-side frame needs an even width, got {frame.shape[1]}")
    half = frame.shape[1] // 2
    return np.ascontiguousarray(frame[:, :half]), np.ascontiguousarray(frame[:, half:])


class StereoSource(ABC):
    """Base class: ``read()`` returns the next (left, right) pair or None at the end of the stream.

    ``calibration`` is set by sources that know their rectified intrinsics (an OAK-D), with
    ``depth_unit`` naming the unit of its baseline; ``rectified`` says whether pairs arrive
    rectified. ``fps`` is the nominal frame rate when known.
    """

    description = "stereo source"
    calibration: StereoCalibration | None = None
    depth_unit = ""
    rectified = False
    fps: float | None = None

    @abstractmethod
    def read(self) -> Pair | None:
        """The next (left, right) pair of (H,W,3) uint8 RGB images, or None at the end of the stream."""

    @abstractmethod
    def close(self) -> None:
        """Release the device or file."""

    def __iter__(self) -> Iterator[Pair]:
        while (pair := self.read()) is not None:
            yield pair

    def __enter__(self) -> StereoSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


# --------------------------------------------------------------------------- video file
class VideoStereoSource(StereoSource):
    """A side-by-side video file played as a stereo camera.

    Every frame is delivered in order unless ``realtime`` is set: then frames are paced at the
    file's frame rate and those the consumer is too slow for are dropped, as with a live camera.
    ``loop`` restarts at the end instead of ending the stream.
    """

    def __init__(self, path: str | Path, *, loop: bool = False, realtime: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ReadError(self.path, "file not found" if not self.path.exists() else "is not a file")
        with native_messages() as messages:
            self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            detail = f" ({messages[-1][:120]})" if messages else ""
            raise ReadError(self.path, f"not a video OpenCV can decode{detail}")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or None
        self.loop = loop
        self.realtime = realtime
        self.description = f"side-by-side video {self.path.name}"
        self._position = 0  # frames taken from the file since it was last (re)started
        self._consumed = 0
        self._start: float | None = None

    def _next_frame(self) -> np.ndarray | None:
        ok, frame = self._capture.read()
        if not ok and self.loop and self._position > 0:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._position, self._start = 0, time.perf_counter()
            ok, frame = self._capture.read()
        if not ok:
            if self._consumed == 0:
                raise ReadError(self.path, "video has no frame OpenCV can decode")
            return None
        self._position += 1
        self._consumed += 1
        return frame

    def read(self) -> Pair | None:
        if self._start is None:
            self._start = time.perf_counter()
        frame = self._next_frame()
        if frame is not None and self.realtime and self.fps:
            # Skip to the frame a camera would be showing now, then wait until it is due.
            while frame is not None and self._position <= int((time.perf_counter() - self._start) * self.fps):
                frame = self._next_frame()
            if frame is not None:
                time.sleep(max(0.0, self._start + (self._position - 1) / self.fps - time.perf_counter()))
        return None if frame is None else split_side_by_side(_bgr_to_rgb(frame))

    def close(self) -> None:
        self._capture.release()


# --------------------------------------------------------------------------- UVC cameras
class _LatestFrames:
    """A thread that reads ``grab`` continuously and keeps only the newest result."""

    def __init__(self, grab: Any, timeout: float) -> None:
        self._grab = grab
        self._timeout = timeout
        self._condition = threading.Condition()
        self._latest: Pair | None = None
        self._count = 0
        self._delivered = 0
        self._error: str | None = None
        self._running = True
        self._thread = threading.Thread(target=self._run, name="edgestereo-camera", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._running:
            try:
                pair = self._grab()
            except (EdgeStereoError, cv2.error) as exc:
                pair, error = None, str(exc).strip()
            else:
                error = None if pair is not None else "the camera stopped delivering frames"
            with self._condition:
                if pair is None:
                    self._error = error
                    self._condition.notify_all()
                    return
                self._latest, self._count = pair, self._count + 1
                self._condition.notify_all()

    def next(self) -> Pair:
        """The newest pair not returned before; waits for one."""
        with self._condition:
            self._condition.wait_for(lambda: self._count > self._delivered or self._error is not None, self._timeout)
            if self._count > self._delivered:
                self._delivered = self._count
                return self._latest
            raise EdgeStereoError(self._error or f"no frame from the camera within {self._timeout:.0f} s")

    def stop(self) -> None:
        self._running = False
        self._thread.join(timeout=self._timeout)


def _open_device(device: int | str, size: tuple[int, int] | None, fps: float | None) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(device)
    if not capture.isOpened():
        raise EdgeStereoError(f"camera {device!r} could not be opened (is it connected, and free?)")
    if size is not None:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
    if fps is not None:
        capture.set(cv2.CAP_PROP_FPS, fps)
    return capture


class CameraStereoSource(StereoSource):
    """UVC cameras through OpenCV: two devices (``left``, ``right``) or one side-by-side device
    (``side_by_side``). ``size`` (W, H) and ``fps`` are requested from each device; a
    side-by-side device's ``size`` is that of the whole frame (both views)."""

    def __init__(
        self,
        left: int | str | None = None,
        right: int | str | None = None,
        *,
        side_by_side: int | str | None = None,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        timeout: float = 5.0,
    ) -> None:
        if (side_by_side is None) == (left is None or right is None):
            raise EdgeStereoError("give a left and a right device, or one side-by-side device")
        devices = [side_by_side] if side_by_side is not None else [left, right]
        self._captures: list[cv2.VideoCapture] = []
        try:
            for device in devices:
                self._captures.append(_open_device(device, size, fps))
        except EdgeStereoError:
            self.close()
            raise
        self.fps = self._captures[0].get(cv2.CAP_PROP_FPS) or fps
        self.description = (f"side-by-side camera {side_by_side}" if side_by_side is not None
                            else f"cameras {left} (left) and {right} (right)")
        self._latest = _LatestFrames(self._grab, timeout)

    def _grab(self) -> Pair | None:
        # grab() all devices first, decode after: the two exposures are as close in time as UVC allows.
        if not all(capture.grab() for capture in self._captures):
            return None
        frames = []
        for capture in self._captures:
            ok, frame = capture.retrieve()
            if not ok:
                return None
            frames.append(_bgr_to_rgb(frame))
        if len(frames) == 1:
            return split_side_by_side(frames[0])
        left, right = frames
        if left.shape != right.shape:
            raise EdgeStereoError(f"the cameras deliver different sizes: left {left.shape[1]}x{left.shape[0]}, "
                                  f"right {right.shape[1]}x{right.shape[0]}; set --camera-size")
        return left, right

    def read(self) -> Pair | None:
        return self._latest.next()

    def close(self) -> None:
        latest = getattr(self, "_latest", None)
        if latest is not None:
            latest.stop()
        for capture in self._captures:
            capture.release()


# --------------------------------------------------------------------------- OAK-D
class OakDStereoSource(StereoSource):
    """The two mono cameras of an OAK-D, rectified on the device, with the rectified intrinsics
    and baseline from the device's calibration (baseline in metres).

    Needs the optional ``depthai`` package (``pip install 'edgestereo[oakd]'``, DepthAI 3).
    ``size`` (W, H) is the resolution asked of the mono cameras.
    """

    rectified = True
    depth_unit = "m"

    def __init__(self, size: tuple[int, int] = (640, 400), fps: float = 30.0, timeout: float = 5.0) -> None:
        try:
            import depthai as dai
        except ImportError:
            raise EdgeStereoError("--oakd needs the depthai package: pip install 'edgestereo[oakd]'") from None
        if not hasattr(dai.node, "Camera") or not hasattr(dai.node.StereoDepth, "rectifiedLeft"):
            raise EdgeStereoError(f"depthai {getattr(dai, '__version__', '?')} is too old: edgestereo uses the "
                                  "DepthAI 3 API (pip install 'depthai>=3')")
        self.fps = fps
        self.timeout = timeout
        self.description = "OAK-D (rectified on the device)"
        try:
            self._pipeline = dai.Pipeline()
            cameras = [self._pipeline.create(dai.node.Camera).build(socket)
                       for socket in (dai.CameraBoardSocket.CAM_B, dai.CameraBoardSocket.CAM_C)]
            stereo = self._pipeline.create(dai.node.StereoDepth)
            cameras[0].requestOutput(size, fps=fps).link(stereo.left)
            cameras[1].requestOutput(size, fps=fps).link(stereo.right)
            stereo.setRectification(True)
            self._queues = (stereo.rectifiedLeft.createOutputQueue(maxSize=2, blocking=False),
                            stereo.rectifiedRight.createOutputQueue(maxSize=2, blocking=False))
            device_calibration = self._pipeline.getDefaultDevice().readCalibration()
            self._pipeline.start()
        except RuntimeError as exc:
            raise EdgeStereoError(f"OAK-D could not be started ({exc})") from None
        # StereoDepth rectifies both views onto the right camera's intrinsics.
        intrinsics = np.asarray(device_calibration.getCameraIntrinsics(dai.CameraBoardSocket.CAM_C, *size))
        baseline_cm = device_calibration.getBaselineDistance(dai.CameraBoardSocket.CAM_C, dai.CameraBoardSocket.CAM_B)
        self.calibration = StereoCalibration(float(intrinsics[0, 0]), float(intrinsics[1, 1]), float(intrinsics[0, 2]),
                                             float(intrinsics[1, 2]), abs(float(baseline_cm)) / 100.0)

    def read(self) -> Pair | None:
        deadline = time.perf_counter() + self.timeout
        frames: list[Any] = [None, None]
        # The two rectified streams come from the same StereoDepth step: pair them by sequence number.
        while time.perf_counter() < deadline and self._pipeline.isRunning():
            for i, q in enumerate(self._queues):
                if frames[i] is None:
                    frames[i] = q.tryGet()
            if frames[0] is not None and frames[1] is not None:
                left_seq, right_seq = frames[0].getSequenceNum(), frames[1].getSequenceNum()
                if left_seq == right_seq:
                    return _bgr_to_rgb(frames[0].getCvFrame()), _bgr_to_rgb(frames[1].getCvFrame())
                frames[0 if left_seq < right_seq else 1] = None
            else:
                time.sleep(0.001)
        raise EdgeStereoError(f"no frame from the OAK-D within {self.timeout:.0f} s")

    def close(self) -> None:
        pipeline = getattr(self, "_pipeline", None)
        if pipeline is not None and pipeline.isRunning():
            pipeline.stop()
