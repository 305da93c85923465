"""`edgestereo live` driven end to end by a side-by-side MP4 made from synthetic pairs (the camera
stand-in): frames written, disparity close to the ground truth, a clean stop on SIGTERM."""

import json
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from edgestereo.apps.cli import main
from edgestereo.apps.live import display_available
from edgestereo.camera import CameraStereoSource, VideoStereoSource, split_side_by_side
from edgestereo.data.io import read_image, read_pfm
from edgestereo.errors import EdgeStereoError
from edgestereo.video import VideoWriter
from stereo_fixtures import shifted_pair

DISPARITY = 8
FRAMES = 6
MODEL = ["--model", "sgbm", "--max-disp", "32"]


def _video_frames(path):
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.fixture(scope="module")
def sbs_video(tmp_path_factory):
    """FRAMES side-by-side 48x(2·128) frames of planes at DISPARITY px, MPEG-4 at 10 fps."""
    path = tmp_path_factory.mktemp("video") / "sbs.mp4"
    with VideoWriter(path, fps=10) as video:
        for i in range(FRAMES):
            left, right = shifted_pair(48, 128, disparity=DISPARITY, seed=i)
            video.write(np.concatenate([left, right], axis=1))
    return path


def test_live_from_a_side_by_side_video_writes_every_frame(sbs_video, tmp_path, capsys):
    prefix = tmp_path / "out" / "frame"
    code = main(["live", "--source", str(sbs_video), "--output-prefix", str(prefix), "--save", "color,disparity",
                 "--video", str(tmp_path / "out" / "live.mp4"), "--no-window", *MODEL])
    assert code == 0
    assert f"frames     {FRAMES}" in capsys.readouterr().out
    pictures = sorted((tmp_path / "out").glob("frame_*.png"))
    assert [p.name for p in pictures] == [f"frame_{i:05d}.png" for i in range(1, FRAMES + 1)]
    for i in range(1, FRAMES + 1):
        disparity = read_pfm(tmp_path / "out" / f"frame_{i:05d}_disp.pfm")
        assert disparity.shape == (48, 128)
        assert np.median(np.abs(disparity[:, 16:] - DISPARITY)) < 0.1  # SGBM recovers a constant shift
    assert _video_frames(tmp_path / "out" / "live.mp4") == FRAMES


def test_panel_depth_and_max_frames_with_rectified_intrinsics(sbs_video, tmp_path):
    (tmp_path / "cam.json").write_text(json.dumps({"fx": 400, "fy": 400, "cx": 63.5, "cy": 23.5, "baseline": 0.1,
                                                    "unit": "m"}))
    prefix = tmp_path / "f"
    code = main(["live", "--source", str(sbs_video), "--output-prefix", str(prefix), "--save", "color,depth",
                 "--panel", "--calib", str(tmp_path / "cam.json"), "--max-frames", "2", "--no-window", *MODEL])
    assert code == 0
    assert sorted(p.name for p in tmp_path.glob("f_*")) == ["f_00001.png", "f_00001_depth.pfm", "f_00002.png",
                                                          "f_00002_depth.pfm"]
    depth = read_pfm(tmp_path / "f_00002_depth.pfm")
    assert np.nanmedian(depth[:, 16:]) == pytest.approx(400 * 0.1 / DISPARITY, rel=0.02)
    assert read_image(tmp_path / "f_00001.png").shape[1] > 4 * 128  # left | right | disparity | bar | depth | bar


def test_scale_runs_on_smaller_views_and_keeps_the_input_size(sbs_video, tmp_path):
    prefix = tmp_path / "f"
    code = main(["live", "--source", str(sbs_video), "--output-prefix", str(prefix), "--save", "disparity",
                 "--scale", "0.5", "--max-frames", "1", "--no-window", *MODEL])
    assert code == 0
    disparity = read_pfm(tmp_path / "f_00001_disp.pfm")
    assert disparity.shape == (48, 128)
    assert np.median(disparity[:, 24:]) == pytest.approx(DISPARITY, abs=1)


def test_sigterm_stops_cleanly_with_complete_files(sbs_video, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "edgestereo.apps.cli", "live", "--source", str(sbs_video), "--loop",
               "--output-prefix", str(out / "frame"), "--video", str(out / "live.mp4"), "--no-window", *MODEL]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("frame_*.png"))) < 3 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "(stopped)" in stdout and "Traceback" not in stderr
    pictures = sorted(out.glob("frame_*.png"))
    assert len(pictures) >= 3
    for picture in pictures:  # every frame on disk is complete
        assert read_image(picture).shape == (48, 128, 3)
    assert _video_frames(out / "live.mp4") == len(pictures)
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def _expect_user_error(capsys, code, message):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_source_mistakes_end_with_one_line(sbs_video, tmp_path, capsys):
    base = ["live", "--no-window", "--output-prefix", str(tmp_path / "f"), *MODEL]
    _expect_user_error(capsys, main(base), "give one source")
    _expect_user_error(capsys, main([*base, "--source", str(sbs_video), "--sbs-device", "0"]),
                       "got --sbs-device and --source")
    _expect_user_error(capsys, main([*base, "--source", str(tmp_path / "none.mp4")]), "none.mp4: file not found")
    (tmp_path / "text.mp4").write_text("not a video")
    _expect_user_error(capsys, main([*base, "--source", str(tmp_path / "text.mp4")]), "text.mp4: ")
    _expect_user_error(capsys, main([*base, "--left-device", "0"]), "--left-device and --right-device go together")
    _expect_user_error(capsys, main([*base, "--sbs-device", "7", "--loop"]), "--loop and --realtime apply to --source")
    _expect_user_error(capsys, main([*base, "--source", str(sbs_video), "--save", "ply"]),
                       "--save ply needs a calibration")
    (tmp_path / "blocker").write_text("a file where the folder should go")
    _expect_user_error(capsys, main(["live", "--no-window", "--source", str(sbs_video), "--output-prefix",
                                     str(tmp_path / "blocker" / "f"), *MODEL]), "output folder cannot be written")


def test_a_missing_camera_is_a_user_error(tmp_path, capsys):
    _expect_user_error(capsys, main(["live", "--no-window", "--sbs-device", str(tmp_path / "no-such-camera"),
                                     "--output-prefix", str(tmp_path / "f"), *MODEL]), "could not be opened")


def test_oakd_without_depthai_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "depthai", None)  # as if the optional extra were not installed
    _expect_user_error(capsys, main(["live", "--oakd", "--no-window", "--output-prefix", str(tmp_path / "f"),
                                     *MODEL]), "pip install 'edgestereo[oakd]'")


def test_no_display_means_no_window(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        assert display_available() is False


# --------------------------------------------------------------------------- the camera stand-in
def test_video_source_plays_in_order_and_loops(sbs_video):
    with VideoStereoSource(sbs_video) as source:
        pairs = list(source)
    assert len(pairs) == FRAMES and pairs[0][0].shape == (48, 128, 3)
    with VideoStereoSource(sbs_video, loop=True) as source:
        assert sum(1 for _ in zip(range(2 * FRAMES + 1), source)) == 2 * FRAMES + 1


def test_realtime_video_source_drops_frames_a_slow_consumer_misses(sbs_video):
    with VideoStereoSource(sbs_video, realtime=True) as source:
        start = time.perf_counter()
        assert source.read() is not None
        time.sleep(0.35)  # 3.5 frame periods at 10 fps: a camera would be showing frame 4 by now
        delivered = 1 + len(list(source))
        elapsed = time.perf_counter() - start
    assert delivered <= FRAMES - 2  # frames 2 and 3 were dropped
    assert elapsed >= (FRAMES - 1) / 10 - 0.05  # the rest was paced at the file's rate, not read at once


def test_split_side_by_side_needs_an_even_width():
    left, right = split_side_by_side(np.arange(2 * 4 * 3, dtype=np.uint8).reshape(1, 8, 3))
    assert left.shape == right.shape == (1, 4, 3) and right[0, 0, 0] == 12
    with pytest.raises(Exception, match="even width"):
        split_side_by_side(np.zeros((2, 5, 3), np.uint8))


def test_calibration_for_another_frame_size_stops_at_the_first_frame(sbs_video, tmp_path, capsys):
    (tmp_path / "cam.json").write_text(json.dumps({"fx": 400, "cx": 63.5, "cy": 23.5, "baseline": 0.1,
                                                    "width": 1280, "height": 720}))
    _expect_user_error(capsys, main(["live", "--source", str(sbs_video), "--calib", str(tmp_path / "cam.json"),
                                     "--no-window", "--output-prefix", str(tmp_path / "f"), *MODEL]),
                       "is for 1280x720 frames, these are 128x48")
    assert not list(tmp_path.glob("f_*"))


# OpenCV opens a video file wherever it opens a camera, which lets the UVC path run here without one.
@pytest.fixture(scope="module")
def two_videos(sbs_video):
    paths = (sbs_video.with_name("left.mp4"), sbs_video.with_name("right.mp4"))
    with VideoWriter(paths[0], fps=10) as left_video, VideoWriter(paths[1], fps=10) as right_video:
        for left, right in VideoStereoSource(sbs_video):
            left_video.write(left)
            right_video.write(right)
    return paths


def test_two_device_source_keeps_the_newest_pair_and_reports_the_end(two_videos):
    with CameraStereoSource(str(two_videos[0]), str(two_videos[1]), timeout=5) as source:
        left, right = source.read()
        assert left.shape == right.shape == (48, 128, 3)
        with pytest.raises(EdgeStereoError, match="stopped delivering frames"):
            for _ in range(FRAMES + 1):  # the grabbing thread drops what is not read in time
                source.read()


def test_live_from_a_side_by_side_device(sbs_video, tmp_path):
    code = main(["live", "--sbs-device", str(sbs_video), "--max-frames", "1", "--output-prefix", str(tmp_path / "f"),
                 "--save", "disparity", "--no-window", *MODEL])
    assert code == 0
    disparity = read_pfm(tmp_path / "f_00001_disp.pfm")
    assert np.median(np.abs(disparity[:, 16:] - DISPARITY)) < 0.1
