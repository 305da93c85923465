"""Stereo frames into a Rerun recording (an ``.rrd`` file, a running viewer, or both): what
``--rerun`` and ``--rerun-connect`` of ``infer``, ``batch`` and ``live`` use, and a small object
for a loop of your own. Needs the optional extra (``pip install 'edgestereo[rerun]'``); the
Rerun SDK is imported when a logger is created.

Each frame goes on the ``frame`` timeline (and, with ``wall_clock``, on ``time``):

========================  ===================================================================
``left``, ``right``       the (rectified) views, RGB images
``disparity``             the disparity, colour-mapped as in the PNG outputs (near is red)
``world``                 the left camera's frame (x right, y down, z forward), static
``world/camera``          the pinhole camera of the calibration (image size, fx, fy, cx, cy)
``world/camera/depth``    depth as a depth image (metres when the unit is m, cm or mm)
``world/points``          the coloured point cloud, as the PLY output (max_depth, cloud_stride)
``latency_ms``            the inference time of the frame (scalar)
``frame_name``            the frame's name, when given (text log)
``model``                 model name and runtime (static text)
========================  ===================================================================

The ``world`` entities need a calibration; without one a frame logs images and disparity only.
The file is written under a temporary name and renamed when the logger closes, so a run that
fails leaves no partial recording.

>>> with RerunLogger("seq.rrd", max_depth=20.0) as recording:  # doctest: +SKIP
...     for index, (left, right) in enumerate(pairs):
...         result = predict(left, right, predictor, calib=calib)
...         recording.log_frame(index, left, right, result.disparity, calibration=calib, depth_unit="m",
...                             latency_ms=result.timings["inference_ms"])
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from edgestereo.errors import EdgeStereoError

if TYPE_CHECKING:  # numpy and the rest load with the first frame: the commands import this module to parse
    import numpy as np

    from edgestereo.geometry import StereoCalibration

__all__ = ["DEFAULT_VIEWER", "INSTALL_HINT", "RerunLogger", "runtime_label", "viewer_url"]

#: where a Rerun viewer started with ``rerun`` listens.
DEFAULT_VIEWER = "rerun+http://127.0.0.1:9876/proxy"
INSTALL_HINT = "pip install 'edgestereo[rerun]'"
#: depth unit → metres per unit; the 3-D view is in metres when the unit is known, else in its unit.
_METRES = {"m": 1.0, "cm": 0.01, "mm": 0.001}


def viewer_url(address: str) -> str:
    """A viewer's gRPC URL from what a user types: a ``rerun+http://…/proxy`` URL, ``HOST:PORT`` or ``PORT``."""
    if "://" in address:
        return address
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise EdgeStereoError(f"--rerun-connect {address!r}: expected HOST:PORT, a port or a "
                              "rerun+http://HOST:PORT/proxy URL")
    return f"rerun+http://{host or '127.0.0.1'}:{port}/proxy"


def _check_viewer(url: str) -> None:
    """Raise unless something listens at the viewer's address: the SDK would only retry in the background."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme.endswith("https") else 9876)
    except ValueError:
        host = port = None
    if parts.scheme not in ("rerun", "rerun+http", "rerun+https") or not host or parts.path != "/proxy":
        raise EdgeStereoError(f"--rerun-connect {url!r}: expected HOST:PORT, a port or a "
                              "rerun+http://HOST:PORT/proxy URL")
    try:
        socket.create_connection((host, port), timeout=2.0).close()
    except OSError as exc:
        raise EdgeStereoError(f"no Rerun viewer at {url} ({exc.strerror or exc}); start one with `rerun`") from None


class RerunLogger:
    """Logs stereo frames to a Rerun recording; see the module docstring for what goes where.

    path: the ``.rrd`` file to write (atomically, on :meth:`close`), or None. connect: a viewer to
    stream to (see :func:`viewer_url`; :data:`DEFAULT_VIEWER` is where ``rerun`` listens), or None.
    max_depth, cloud_stride: thin the point cloud as for PLY files. disparity_range: colour range
    (px) of the disparity; default: the first frame's, then kept. wall_clock: also log frames on a
    ``time`` timeline (the time of logging). Raises :class:`~edgestereo.errors.EdgeStereoError`
    before anything is written when the SDK is missing, the file cannot be written or no viewer listens.
    """

    def __init__(self, path: str | Path | None = None, *, connect: str | None = None, max_depth: float | None = None,
                 cloud_stride: int = 1, disparity_range: Sequence[float] | None = None, wall_clock: bool = False,
                 application_id: str = "edgestereo") -> None:
        from edgestereo.data.io import atomic_path

        if path is None and connect is None:
            raise EdgeStereoError("a Rerun logger needs a file to write or a viewer to connect to")
        if cloud_stride < 1:
            raise EdgeStereoError(f"--cloud-stride must be ≥ 1, got {cloud_stride}")
        self.path = Path(path) if path is not None else None
        if self.path is not None and (self.path.suffix != ".rrd" or self.path.is_dir()):
            raise EdgeStereoError(f"--rerun {self.path}: expected a file name ending in .rrd")
        try:
            import rerun as rr
        except ImportError:
            raise EdgeStereoError(f"Rerun logging needs the Rerun SDK: {INSTALL_HINT}") from None
        self.url = viewer_url(connect) if connect is not None else None
        if self.url is not None:
            _check_viewer(self.url)
        self.max_depth = max_depth
        self.cloud_stride = cloud_stride
        self.disparity_range = tuple(disparity_range) if disparity_range is not None else None
        self.wall_clock = wall_clock
        #: frames logged so far.
        self.frames = 0
        self._world_logged = False
        self._rr = rr
        self._exit = contextlib.ExitStack()
        try:
            sinks = []
            if self.path is not None:
                sinks.append(rr.FileSink(str(self._exit.enter_context(atomic_path(self.path)))))
            if self.url is not None:
                sinks.append(rr.GrpcSink(self.url))
            self.stream = rr.RecordingStream(application_id)
            self.stream.set_log_time_enabled(False)  # the frame timeline, and time for live streams, say when
            self.stream.set_sinks(*sinks)
        except BaseException:
            self._exit.__exit__(*sys.exc_info())  # drops the temporary file
            raise

    def log_model(self, name: str, runtime: str = "") -> None:
        """The model's name and the runtime it runs in (e.g. "torch fp32 cpu"), as static text."""
        text = f"model: {name}" + (f"\nruntime: {runtime}" if runtime else "")
        self.stream.log("model", self._rr.TextDocument(text), static=True)

    def log_frame(self, frame: int, left: np.ndarray, right: np.ndarray, disparity: np.ndarray, *,
                  calibration: StereoCalibration | None = None, depth_unit: str = "",
                  depth: np.ndarray | None = None, latency_ms: float | None = None, name: str | None = None,
                  disparity_range: Sequence[float] | None = None) -> None:
        """Log frame number ``frame``: left, right (H,W,3) uint8 RGB, disparity (H,W) pixels.

        calibration: the views' rectified intrinsics; with it depth (baseline units, ``depth`` when
        already computed), the camera and the point cloud are logged too. depth_unit: the
        baseline's unit ("m", "cm", "mm" give a 3-D view in metres). latency_ms: the inference time.
        name: the frame's name (a file name). disparity_range: this frame's colour range (px),
        instead of the logger's.
        """
        import numpy as np

        from edgestereo.geometry import disparity_to_points
        from edgestereo.runtime.frame_writer import depth_map, stable_ranges
        from edgestereo.viz import colorize_disparity

        rr = self._rr
        if self.disparity_range is None:
            self.disparity_range = stable_ranges(disparity, None)[0]
        self.stream.set_time("frame", sequence=frame)
        if self.wall_clock:
            self.stream.set_time("time", timestamp=time.time())
        self.stream.log("left", rr.Image(left))
        self.stream.log("right", rr.Image(right))
        colored = colorize_disparity(disparity, *(disparity_range or self.disparity_range))
        self.stream.log("disparity", rr.Image(colored))
        if latency_ms is not None:
            self.stream.log("latency_ms", rr.Scalars(latency_ms))
        if name is not None:
            self.stream.log("frame_name", rr.TextLog(name))
        if calibration is not None:
            if not self._world_logged:
                self.stream.log("world", rr.ViewCoordinates.RDF, static=True)
                self._world_logged = True
            metres = _METRES.get(depth_unit, 1.0)
            depth = depth if depth is not None else depth_map(disparity, calibration)
            height, width = disparity.shape
            self.stream.log("world/camera", rr.Pinhole(focal_length=[calibration.fx, calibration.fy],
                                                       principal_point=[calibration.cx, calibration.cy],
                                                       resolution=[width, height]))
            self.stream.log("world/camera/depth", rr.DepthImage(np.nan_to_num(depth, nan=0.0), meter=1.0 / metres))
            points, colors = disparity_to_points(disparity, calibration, left, max_depth=self.max_depth,
                                                 stride=self.cloud_stride)
            self.stream.log("world/points", rr.Points3D(points * metres, colors=colors))
        self.frames += 1

    def close(self) -> None:
        """Finish the recording: flush it to the viewer and move the file into place."""
        try:
            self.stream.flush()
        except RuntimeError as exc:  # the SDK's one exception type, here: the viewer went away
            failure = EdgeStereoError(f"Rerun: {exc}")
            self.__exit__(EdgeStereoError, failure, None)
            raise failure from None
        self.stream.disconnect()
        self._exit.close()

    def __enter__(self) -> RerunLogger:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Close the recording, or after an exception drop the file."""
        if kind is None:
            self.close()
            return
        self.stream.disconnect()
        self._exit.__exit__(kind, error, traceback)


def runtime_label(predictor: Any) -> str:
    """What a predictor runs in, e.g. "torch fp32 cpu" or "onnxruntime fp16"; "" for a plain callable."""
    parts = (getattr(predictor, "runtime", ""), getattr(predictor, "precision", ""), getattr(predictor, "device", ""))
    return " ".join(str(part) for part in parts if part)
