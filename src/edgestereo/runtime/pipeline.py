"""A threaded decode → infer → encode pipeline for streams of stereo pairs.

One thread decodes (reads files or camera frames, rectifies), one runs the predictor, and the
caller's thread encodes (writes files, shows a window) while iterating over the results, so the
three overlap: OpenCV, NumPy and PyTorch release the GIL in their heavy parts. Results come back
in input order. A frame that cannot be decoded or inferred for a reason the user can fix (an
:class:`~edgestereo.errors.EdgeStereoError`) becomes a failed result and the stream goes on; any
other exception stops the pipeline and is raised in the caller's thread.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from edgestereo.errors import EdgeStereoError

__all__ = ["PipelineFrame", "run_pipeline", "stop_on_signals"]

T = TypeVar("T")

_END = object()


@dataclass
class PipelineFrame(Generic[T]):
    """One item on its way through the pipeline.

    ``prepare`` fills ``left``/``right`` ((H,W,3) uint8 RGB) for frames to infer; the infer step
    sets ``disparity`` ((H,W) float32 pixels) and ``infer_ms``. A frame whose ``left`` is None
    (already done, say) passes the infer step untouched; ``extra`` carries whatever ``prepare``
    wants the encoder to have. ``error`` is the one-line reason a frame failed.
    """

    item: T
    left: np.ndarray | None = None
    right: np.ndarray | None = None
    disparity: np.ndarray | None = None
    error: str | None = None
    infer_ms: float = 0.0
    extra: Any = None


@dataclass
class _Crash:
    exc: BaseException


def _put(q: queue.Queue, value: Any, cancelled: threading.Event) -> bool:
    """Put unless the pipeline was cancelled; False if it was (a full queue must not block shutdown)."""
    while not cancelled.is_set():
        try:
            q.put(value, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def run_pipeline(
    items: Iterable[T],
    prepare: Callable[[T], PipelineFrame[T]],
    predictor: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    depth: int = 2,
    stop: threading.Event | None = None,
) -> Iterator[PipelineFrame[T]]:
    """Decode (``prepare``) and infer (``predictor``) in two background threads; yield frames in order.

    ``depth`` bounds the frames waiting between steps (memory stays small). Setting ``stop``
    ends the stream cleanly: no new item is taken, frames already decoded are still inferred and
    yielded. Closing the generator early cancels both threads.
    """
    if depth < 1:
        raise EdgeStereoError(f"pipeline depth must be ≥ 1, got {depth}")
    stop = stop or threading.Event()
    cancelled = threading.Event()
    decoded: queue.Queue = queue.Queue(maxsize=depth)
    inferred: queue.Queue = queue.Queue(maxsize=depth)

    def decode() -> None:
        try:
            iterator = iter(items)
            while not stop.is_set() and not cancelled.is_set():
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                try:
                    frame = prepare(item)
                except EdgeStereoError as exc:
                    frame = PipelineFrame(item, error=str(exc))
                if not _put(decoded, frame, cancelled):
                    return
            _put(decoded, _END, cancelled)
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            _put(decoded, _Crash(exc), cancelled)

    def infer() -> None:
        try:
            while not cancelled.is_set():
                try:
                    frame = decoded.get(timeout=0.1)
                except queue.Empty:
                    continue
                if isinstance(frame, PipelineFrame) and frame.left is not None and frame.error is None:
                    start = time.perf_counter()
                    try:
                        frame.disparity = predictor(frame.left, frame.right)
                    except EdgeStereoError as exc:
                        frame.error = str(exc)
                    frame.infer_ms = (time.perf_counter() - start) * 1e3
                if not _put(inferred, frame, cancelled) or frame is _END or isinstance(frame, _Crash):
                    return
        except BaseException as exc:
            _put(inferred, _Crash(exc), cancelled)

    threads = [threading.Thread(target=decode, name="edgestereo-decode", daemon=True),
               threading.Thread(target=infer, name="edgestereo-infer", daemon=True)]
    for thread in threads:
        thread.start()
    try:
        while True:
            try:
                frame = inferred.get(timeout=0.1)
            except queue.Empty:
                continue
            if frame is _END:
                return
            if isinstance(frame, _Crash):
                raise frame.exc
            yield frame
    finally:
        cancelled.set()
        for thread in threads:
            thread.join()


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """Turn the first SIGINT (Ctrl-C) or SIGTERM into ``stop.set()`` so a loop can finish its frame
    and close its files; a second SIGINT interrupts at once. Outside the main thread (where
    handlers cannot be installed) nothing is changed."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
