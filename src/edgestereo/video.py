"""Write MP4 videos frame by frame without ever leaving a half-written file under the final name."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from edgestereo.data.io import atomic_path
from edgestereo.errors import EdgeStereoError

__all__ = ["VideoWriter"]


class VideoWriter:
    """Appends (H,W,3) uint8 RGB frames to an MPEG-4 video (``mp4v``) at ``fps`` frames per second.

    The file is written under a temporary name beside ``path`` and renamed onto it by
    :meth:`close`, so an interrupted run leaves either the previous file or a complete video.
    The frame size is fixed by the first frame; odd sizes are padded by one black row or column
    because the encoder needs even sizes. Nothing is created until the first frame arrives.

    >>> import tempfile, numpy as np
    >>> path = Path(tempfile.mkdtemp()) / "demo.mp4"
    >>> with VideoWriter(path, fps=5) as video:
    ...     video.write(np.zeros((48, 64, 3), np.uint8))
    >>> path.is_file(), video.frames
    (True, 1)
    """

    def __init__(self, path: str | Path, fps: float = 10.0) -> None:
        if fps <= 0:
            raise EdgeStereoError(f"video frame rate must be positive, got {fps}")
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".m4v", ".mov", ".avi"):
            raise EdgeStereoError(f"{self.path}: videos are written as .mp4 (or .m4v, .mov, .avi)")
        self.fps = float(fps)
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self._writer: cv2.VideoWriter | None = None
        self._target: contextlib.AbstractContextManager[Path] | None = None

    def write(self, frame: np.ndarray) -> None:
        """Append one (H,W,3) uint8 RGB frame; every frame must have the first one's size."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise EdgeStereoError(f"{self.path}: video frames are (H,W,3) uint8, got {frame.shape} {frame.dtype}")
        h, w = frame.shape[:2]
        if self._writer is None:
            self._open(w, h)
        elif (w, h) != self.size:
            raise EdgeStereoError(f"{self.path}: frame is {w}x{h}, the video is {self.size[0]}x{self.size[1]}")
        even_w, even_h = w + w % 2, h + h % 2
        if (even_w, even_h) != (w, h):
            frame = cv2.copyMakeBorder(frame, 0, even_h - h, 0, even_w - w, cv2.BORDER_CONSTANT, value=0)
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def _open(self, width: int, height: int) -> None:
        self._target = atomic_path(self.path)
        tmp = self._target.__enter__()
        size = (width + width % 2, height + height % 2)
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
        if not writer.isOpened():
            self._target.__exit__(EdgeStereoError, None, None)
            self._target = None
            raise EdgeStereoError(f"{self.path}: OpenCV cannot write MPEG-4 video here (no FFmpeg backend?)")
        self._writer = writer
        self.size = (width, height)

    def close(self) -> None:
        """Finish the video and rename it into place (no file when no frame was written)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            target, self._target = self._target, None
            target.__exit__(None, None, None)

    def discard(self) -> None:
        """Stop writing and delete the video: a run that failed leaves no partial file under its name."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            target, self._target = self._target, None
            target.__exit__(EdgeStereoError, EdgeStereoError(f"{self.path}: discarded"), None)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # Frames already encoded are complete, so the video is kept even when the run stopped on an error.
        self.close()
