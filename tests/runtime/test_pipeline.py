"""The threaded decode → infer → encode pipeline: order, per-frame failures, crashes, stopping, overlap."""

import os
import signal
import threading
import time

import numpy as np
import pytest

from edgestereo.errors import EdgeStereoError
from edgestereo.runtime.pipeline import PipelineFrame, run_pipeline, stop_on_signals

IMAGE = np.zeros((4, 6, 3), np.uint8)


def _prepare(item):
    if item == "bad":
        raise EdgeStereoError("bad: not an image")
    return PipelineFrame(item, IMAGE, IMAGE)


def _predictor(left, right):
    return np.zeros(left.shape[:2], np.float32)


def _pipeline_threads():
    return [t for t in threading.enumerate() if t.name.startswith("edgestereo-")]


def test_results_come_back_in_order_with_failures_in_place():
    rng = np.random.default_rng(0)

    def slow_predictor(left, right):
        time.sleep(float(rng.uniform(0, 0.01)))
        return _predictor(left, right)

    items = [0, 1, "bad", 3, 4, 5]
    frames = list(run_pipeline(items, _prepare, slow_predictor, depth=2))
    assert [f.item for f in frames] == items
    assert [f.error for f in frames] == [None, None, "bad: not an image", None, None, None]
    assert all(f.disparity.shape == (4, 6) for f in frames if f.error is None)
    assert not _pipeline_threads()


def test_a_predictor_user_error_fails_that_frame_only():
    def predictor(left, right):
        raise EdgeStereoError("image 6x4 is larger than the ONNX graph")

    frames = list(run_pipeline([1, 2], _prepare, predictor))
    assert [f.error for f in frames] == ["image 6x4 is larger than the ONNX graph"] * 2


def test_frames_without_images_pass_the_infer_step_untouched():
    frames = list(run_pipeline([1], lambda item: PipelineFrame(item, extra="on disk"), _predictor))
    assert frames[0].disparity is None and frames[0].extra == "on disk" and frames[0].error is None


def test_a_bug_stops_the_pipeline_and_is_raised_in_the_caller():
    def predictor(left, right):
        raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        list(run_pipeline(range(10), _prepare, predictor))
    assert not _pipeline_threads()


def test_stop_takes_no_new_item_but_finishes_those_in_flight():
    stop = threading.Event()
    taken = []

    def items():
        for i in range(1000):
            taken.append(i)
            yield i

    seen = []
    for frame in run_pipeline(items(), _prepare, _predictor, depth=1, stop=stop):
        seen.append(frame.item)
        if frame.item == 2:
            stop.set()
    assert seen == taken[: len(seen)] and len(taken) < 10  # every taken item came out, and few were taken


def test_closing_the_generator_early_cancels_the_threads():
    frames = run_pipeline(iter(range(1000)), _prepare, _predictor, depth=1)
    assert next(frames).item == 0
    frames.close()
    assert not _pipeline_threads()


def test_decoding_overlaps_inference():
    spans = {"prepare": [], "infer": []}

    def record(kind, start):
        spans[kind].append((start, time.perf_counter()))

    def prepare(item):
        start = time.perf_counter()
        time.sleep(0.02)
        record("prepare", start)
        return PipelineFrame(item, IMAGE, IMAGE)

    def predictor(left, right):
        start = time.perf_counter()
        time.sleep(0.02)
        record("infer", start)
        return _predictor(left, right)

    list(run_pipeline(range(6), prepare, predictor))
    overlapping = [(p, i) for p in spans["prepare"] for i in spans["infer"] if p[0] < i[1] and i[0] < p[1]]
    assert overlapping  # some frame was decoded while another was being inferred


def test_sigterm_sets_the_stop_event_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    with stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop.is_set()
    assert signal.getsignal(signal.SIGTERM) is before
