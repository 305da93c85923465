"""`--rerun` and `--rerun-connect` on `infer`, `batch` and `live`: the recording read back with the SDK
(entities, one entry per frame, image sizes, the points of the PLY outputs), a missing SDK, an
unwritable path and a failed run (one line, exit code 2, no partial recording), and a viewer."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgestereo.apps.cli import main
from edgestereo.data.io import read_image, read_ply, write_image, write_pfm
from edgestereo.video import VideoWriter
from recording_fixtures import (
    CALIBRATED_ENTITIES,
    FRAME_ENTITIES,
    frames,
    image_size,
    needs_rerun,
    points,
    read_recording,
    rgb,
)
from stereo_fixtures import shifted_pair

DISPARITY = 8
PAIRS = 4
MODEL = ["--model", "sgbm", "--max-disp", "32"]
K = [[400.0, 0, 63.5], [0, 400.0, 23.5], [0, 0, 1]]
CALIB_TXT = "cam0=[400 0 63.5; 0 400 23.5; 0 0 1]\ncam1=[400 0 63.5; 0 400 23.5; 0 0 1]\n" \
            "doffs=0\nbaseline=100\nwidth=128\nheight=48\nndisp=32\n"


@pytest.fixture
def folder(tmp_path):
    """in/left, in/right: PAIRS 48x128 pairs at DISPARITY px; rig.json: an OpenCV stereo rig in metres."""
    for side in ("left", "right"):
        (tmp_path / "in" / side).mkdir(parents=True)
    for i in range(PAIRS):
        left, right = shifted_pair(48, 128, disparity=DISPARITY, seed=i)
        write_image(tmp_path / "in" / "left" / f"frame_{i:03d}.png", left)
        write_image(tmp_path / "in" / "right" / f"frame_{i:03d}.png", right)
    (tmp_path / "rig.json").write_text(json.dumps({"K1": K, "D1": [0] * 5, "K2": K, "D2": [0] * 5,
                                                   "R": np.eye(3).tolist(), "T": [-0.1, 0, 0],
                                                   "image_size": [128, 48], "unit": "m"}))
    return tmp_path


def _no_temporary_files(folder):
    return not [p for p in folder.rglob("*") if ".tmp" in p.name]


@needs_rerun
def test_batch_with_a_rig_logs_one_entry_per_frame(folder, capsys):
    recording = folder / "seq.rrd"
    code = main(["batch", "--dir", str(folder / "in"), "--calib", str(folder / "rig.json"), "--out",
                 str(folder / "out"), "--save", "color,ply", "--cloud-stride", "2", "--max-depth", "100",
                 "--rerun", str(recording), *MODEL])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"wrote      {recording} ({PAIRS} frames)" in printed and "no calibration" not in printed
    logged = read_recording(recording)
    assert set(logged) == FRAME_ENTITIES | CALIBRATED_ENTITIES | {"/world", "/model", "/frame_name"}
    for entity in FRAME_ENTITIES | CALIBRATED_ENTITIES | {"/frame_name"}:
        assert frames(logged[entity]) == list(range(PAIRS)), entity
    assert [row["TextLog:text"][0] for row in logged["/frame_name"]] == [f"frame_{i:03d}" for i in range(PAIRS)]
    assert "model: sgbm" in logged["/model"][0]["TextDocument:text"][0]
    assert all(row["Scalars:scalars"][0] > 0 for row in logged["/latency_ms"])
    for i in range(PAIRS):
        for entity in ("/left", "/right", "/disparity"):
            assert image_size(logged[entity][i]) == (128, 48), entity
        depth = logged["/world/camera/depth"][i]
        assert image_size(depth, "DepthImage") == (128, 48) and depth["DepthImage:meter"] == [1.0]
        assert logged["/world/camera"][i]["Pinhole:resolution"] == [[128.0, 48.0]]
        # the colours of the PNG, the points of the PLY (unit m: the same numbers)
        np.testing.assert_array_equal(rgb(logged["/disparity"][i]), read_image(folder / "out" / f"frame_{i:03d}.png"))
        cloud, _ = read_ply(folder / "out" / f"frame_{i:03d}.ply")
        assert 0 < len(cloud) <= 64 * 24
        np.testing.assert_allclose(points(logged["/world/points"][i]), cloud, rtol=1e-6)
    assert _no_temporary_files(folder)


@needs_rerun
def test_batch_without_a_calibration_logs_images_and_disparity_and_says_so_once(folder, capsys):
    recording = folder / "plain.rrd"
    assert main(["batch", "--dir", str(folder / "in"), "--out", str(folder / "out"), "--rerun", str(recording),
                 *MODEL]) == 0
    assert capsys.readouterr().out.count("no calibration") == 1
    logged = read_recording(recording)
    assert set(logged) == FRAME_ENTITIES | {"/model", "/frame_name"}
    assert frames(logged["/disparity"]) == list(range(PAIRS))
    # a resumed batch records the frames it infers, and says so
    assert main(["batch", "--dir", str(folder / "in"), "--out", str(folder / "out"), "--rerun",
                 str(folder / "resumed.rrd"), *MODEL]) == 0
    assert f"wrote      {folder / 'resumed.rrd'} (0 frames, not those already done)" in capsys.readouterr().out


@needs_rerun
def test_infer_logs_one_frame_in_metres(folder, capsys):
    (folder / "calib.txt").write_text(CALIB_TXT)  # Middlebury: millimetres
    recording = folder / "one.rrd"
    code = main(["infer", str(folder / "in" / "left" / "frame_000.png"), str(folder / "in" / "right" / "frame_000.png"),
                 "--calib", str(folder / "calib.txt"), "--out", str(folder / "out"), "--rerun", str(recording),
                 *MODEL])
    assert code == 0
    assert f"wrote      {recording}" in capsys.readouterr().out
    logged = read_recording(recording)
    assert set(logged) == FRAME_ENTITIES | CALIBRATED_ENTITIES | {"/world", "/model", "/frame_name"}
    assert all(frames(logged[entity]) == [0] for entity in FRAME_ENTITIES | CALIBRATED_ENTITIES)
    assert image_size(logged["/left"][0]) == image_size(logged["/world/camera/depth"][0], "DepthImage") == (128, 48)
    assert logged["/world/camera/depth"][0]["DepthImage:meter"] == [1000.0]
    cloud, _ = read_ply(folder / "out" / "cloud.ply")
    np.testing.assert_allclose(points(logged["/world/points"][0]), cloud / 1000, rtol=1e-5)
    np.testing.assert_array_equal(rgb(logged["/disparity"][0]), read_image(folder / "out" / "disparity.png"))


@pytest.fixture
def sbs_video(tmp_path):
    """3 side-by-side 48x(2·128) frames at DISPARITY px, MPEG-4 at 10 fps; cam.json: their intrinsics in metres."""
    path = tmp_path / "sbs.mp4"
    with VideoWriter(path, fps=10) as video:
        for i in range(3):
            left, right = shifted_pair(48, 128, disparity=DISPARITY, seed=i)
            video.write(np.concatenate([left, right], axis=1))
    (tmp_path / "cam.json").write_text(json.dumps({"fx": 400, "fy": 400, "cx": 63.5, "cy": 23.5, "baseline": 0.1,
                                                    "unit": "m"}))
    return path


@needs_rerun
def test_live_from_a_side_by_side_video_logs_frames_and_wall_clock(sbs_video, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where frames would go by default
    recording = tmp_path / "live.rrd"
    code = main(["live", "--source", str(sbs_video), "--calib", str(tmp_path / "cam.json"), "--no-window",
                 "--rerun", str(recording), *MODEL])
    assert code == 0
    assert f"wrote      {recording} (3 frames)" in capsys.readouterr().out
    assert not (tmp_path / "edgestereo_live").exists()  # a recording is an output: no frames by default
    logged = read_recording(recording)
    assert set(logged) == FRAME_ENTITIES | CALIBRATED_ENTITIES | {"/world", "/model"}
    for entity in FRAME_ENTITIES | CALIBRATED_ENTITIES:
        assert frames(logged[entity]) == [1, 2, 3], entity
    times = [row["time"] for row in logged["/left"]]
    assert times == sorted(times) and len(set(times)) == 3
    assert all(image_size(row) == (128, 48) for row in logged["/right"])
    assert all(len(points(row)) > 0.9 * 48 * 120 for row in logged["/world/points"])


@needs_rerun
def test_live_points_are_the_ply_points(sbs_video, tmp_path):
    recording = tmp_path / "live.rrd"
    code = main(["live", "--source", str(sbs_video), "--calib", str(tmp_path / "cam.json"), "--no-window",
                 "--output-prefix", str(tmp_path / "f"), "--save", "ply", "--max-frames", "2", "--cloud-stride", "3",
                 "--rerun", str(recording), *MODEL])
    assert code == 0
    logged = read_recording(recording)
    for i, row in enumerate(logged["/world/points"], 1):
        np.testing.assert_allclose(points(row), read_ply(tmp_path / f"f_{i:05d}.ply")[0], rtol=1e-6)


def _expect_user_error(capsys, code, message):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


@pytest.mark.parametrize("command", ["infer", "batch", "live"])
def test_without_the_extra_the_options_say_how_to_install_it(folder, sbs_video, capsys, monkeypatch, command):
    monkeypatch.setitem(sys.modules, "rerun", None)  # as if the optional extra were not installed
    out = folder / "out"
    source = {"infer": [str(folder / "in" / "left" / "frame_000.png"), str(folder / "in" / "right" / "frame_000.png"),
                        "--out", str(out)],
              "batch": ["--dir", str(folder / "in"), "--out", str(out)],
              "live": ["--source", str(sbs_video), "--no-window", "--output-prefix", str(out / "f")]}[command]
    for option in (["--rerun", str(folder / "seq.rrd")], ["--rerun-connect"]):
        _expect_user_error(capsys, main([command, *source, *option, *MODEL]), "pip install 'edgestereo[rerun]'")
        assert not (folder / "seq.rrd").exists() and not out.exists()


@needs_rerun
def test_a_path_that_cannot_be_written_is_refused_before_any_work(folder, capsys):
    (folder / "blocker").write_text("a file where the folder should go")
    batch = ["batch", "--dir", str(folder / "in"), "--out", str(folder / "out"), *MODEL]
    _expect_user_error(capsys, main([*batch, "--rerun", str(folder / "blocker" / "seq.rrd")]), "cannot write here")
    _expect_user_error(capsys, main([*batch, "--rerun", str(folder / "seq.mp4")]), "a file name ending in .rrd")
    assert not (folder / "out").exists()


@needs_rerun
def test_a_failed_run_leaves_no_recording(folder, capsys):
    write_pfm(folder / "gt.pfm", np.full((10, 10), 8.0, np.float32))  # not the images' size: fails after the model
    code = main(["infer", str(folder / "in" / "left" / "frame_000.png"), str(folder / "in" / "right" / "frame_000.png"),
                 "--gt", str(folder / "gt.pfm"), "--out", str(folder / "out"), "--rerun", str(folder / "one.rrd"),
                 *MODEL])
    _expect_user_error(capsys, code, "ground truth is 10x10")
    assert not (folder / "one.rrd").exists() and _no_temporary_files(folder)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _entities_so_far(path: Path) -> set[str]:
    """The entities in a recording the viewer is still writing: none while the file is missing or
    ends inside a frame (the SDK raises RuntimeError on a frame cut short)."""
    try:
        return set(read_recording(path)) if path.is_file() else set()
    except RuntimeError:
        return set()


@needs_rerun
@pytest.mark.filterwarnings("ignore:RRD file has no footer")  # the viewer's file is still being written
def test_connect_streams_to_a_running_viewer(folder, capsys):
    port = _free_port()
    received = folder / "received.rrd"
    # `python -m rerun` runs the viewer binary as a child: a session of its own lets the test stop both
    viewer = subprocess.Popen([sys.executable, "-m", "rerun", "--serve-grpc", "--port", str(port), "--save",
                               str(received)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        assert main(["batch", "--dir", str(folder / "in"), "--calib", str(folder / "rig.json"), "--out",
                     str(folder / "out"), "--rerun-connect", f"127.0.0.1:{port}", *MODEL]) == 0
        while time.monotonic() < deadline and "/world/points" not in _entities_so_far(received):
            time.sleep(0.2)
    finally:
        os.killpg(viewer.pid, signal.SIGTERM)
        viewer.wait(timeout=30)
    logged = read_recording(received)
    assert frames(logged["/world/points"]) == list(range(PAIRS))
    assert frames(logged["/left"]) == list(range(PAIRS))


@needs_rerun
def test_connect_without_a_viewer_is_refused_before_any_work(folder, capsys):
    code = main(["batch", "--dir", str(folder / "in"), "--out", str(folder / "out"), "--rerun-connect",
                 f"127.0.0.1:{_free_port()}", *MODEL])
    _expect_user_error(capsys, code, "no Rerun viewer at rerun+http://127.0.0.1:")
    assert not (folder / "out").exists()
