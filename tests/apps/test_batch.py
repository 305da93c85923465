"""`edgestereo batch`: folders, globs and lists; a corrupt frame in the middle; resume; video; user errors."""

import json

import cv2
import numpy as np
import pytest

from edgestereo.apps.cli import main
from edgestereo.data.io import read_pfm, read_ply, write_image
from stereo_fixtures import shifted_pair

DISPARITY = 8
MODEL = ["--model", "sgbm", "--max-disp", "32"]


def _video_frames(path):
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.fixture
def folder(tmp_path):
    """in/left, in/right: five 48x128 pairs at 8 px disparity; frame_002's left image is corrupt."""
    for side in ("left", "right"):
        (tmp_path / "in" / side).mkdir(parents=True)
    for i in range(5):
        left, right = shifted_pair(48, 128, disparity=DISPARITY, seed=i)
        write_image(tmp_path / "in" / "left" / f"frame_{i:03d}.png", left)
        write_image(tmp_path / "in" / "right" / f"frame_{i:03d}.png", right)
    (tmp_path / "in" / "left" / "frame_002.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return tmp_path


def _batch(folder, *extra):
    return main(["batch", "--dir", str(folder / "in"), "--out", str(folder / "out"), *MODEL, *extra])


def test_corrupt_frame_in_the_middle_is_reported_and_skipped(folder, capsys):
    code = _batch(folder, "--video", str(folder / "out" / "run.mp4"), "--panel", "--save", "disparity,color")
    printed = capsys.readouterr().out
    assert code == 1
    assert "5 listed: 4 done, 0 already done, 1 failed" in printed
    assert "failed     frame_002: " in printed and "frame_002.png: not an image" in printed
    assert "inference  mean" in printed and "median" in printed
    out = folder / "out"
    done = sorted(p.name for p in out.glob("frame_*"))
    assert done == [f"frame_{i:03d}{suffix}" for i in (0, 1, 3, 4) for suffix in (".png", "_disp.pfm")]
    for i in (0, 1, 3, 4):
        disparity = read_pfm(out / f"frame_{i:03d}_disp.pfm")
        assert np.median(np.abs(disparity[:, 16:] - DISPARITY)) < 0.1
    assert _video_frames(out / "run.mp4") == 4
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_rerun_resumes_without_redoing_frames(folder, capsys):
    video = str(folder / "out" / "run.mp4")
    _batch(folder, "--video", video)
    stamps = {p.name: p.stat().st_mtime_ns for p in (folder / "out").glob("frame_*")}
    state = json.loads((folder / "out" / ".edgestereo-batch.json").read_text())
    capsys.readouterr()

    left, _ = shifted_pair(48, 128, disparity=DISPARITY, seed=2)
    write_image(folder / "in" / "left" / "frame_002.png", left)  # the corrupt frame, repaired
    assert _batch(folder, "--video", video) == 0
    printed = capsys.readouterr().out
    assert "5 listed: 1 done, 4 already done, 0 failed" in printed
    assert {name: (folder / "out" / name).stat().st_mtime_ns for name in stamps} == stamps
    assert (folder / "out" / "frame_002_disp.pfm").is_file()
    # The colour range of the first run is kept, and the video holds every frame again, in order.
    assert json.loads((folder / "out" / ".edgestereo-batch.json").read_text()) == state
    assert _video_frames(video) == 5


def test_overwrite_redoes_every_frame(folder, capsys):
    _batch(folder)
    capsys.readouterr()
    _batch(folder, "--overwrite")
    assert "4 done, 0 already done, 1 failed" in capsys.readouterr().out


def test_frame_of_another_size_and_missing_partner_are_skipped(folder, capsys):
    write_image(folder / "in" / "left" / "frame_003.png", np.zeros((40, 100, 3), np.uint8))
    write_image(folder / "in" / "right" / "frame_003.png", np.zeros((40, 100, 3), np.uint8))
    (folder / "in" / "right" / "frame_004.png").unlink()
    assert _batch(folder) == 1
    printed = capsys.readouterr().out
    assert "2 done, 0 already done, 3 failed" in printed
    assert "frame_003.png: 100x40, the batch's frames are 128x48" in printed
    assert "frame_004: frame_004.png: no right image of that name" in printed


def test_globs_and_calibration_give_depth_and_clouds(folder, capsys):
    in_dir = folder / "in"
    code = main(["batch", "--left", str(in_dir / "left" / "*.png"), "--right", str(in_dir / "right" / "*.png"),
                 "--out", str(folder / "out"), *MODEL, "--focal", "400", "--baseline", "0.1",
                 "--save", "depth,ply"])
    assert code == 1
    depth = read_pfm(folder / "out" / "frame_000_depth.pfm")
    assert np.nanmedian(depth[:, 16:]) == pytest.approx(400 * 0.1 / DISPARITY, rel=0.02)
    points, colors = read_ply(folder / "out" / "frame_000.ply")
    assert len(points) == len(colors) > 0


def test_pairs_list_and_an_opencv_rig_that_rectifies(folder, capsys):
    lines = [f"left/frame_{i:03d}.png right/frame_{i:03d}.png" for i in (0, 1)]
    (folder / "in" / "pairs.txt").write_text("# left right\n" + "\n".join(lines) + "\n")
    K = [[400.0, 0, 63.5], [0, 400.0, 23.5], [0, 0, 1]]
    (folder / "rig.json").write_text(json.dumps({"K1": K, "D1": [0] * 5, "K2": K, "D2": [0] * 5,
                                                 "R": np.eye(3).tolist(), "T": [-0.1, 0, 0],
                                                 "image_size": [128, 48], "unit": "m"}))
    code = main(["batch", "--pairs", str(folder / "in" / "pairs.txt"), "--out", str(folder / "out"), *MODEL,
                 "--calib", str(folder / "rig.json"), "--save", "depth", "--panel"])
    assert code == 0
    assert "2 listed: 2 done" in capsys.readouterr().out
    depth = read_pfm(folder / "out" / "frame_001_depth.pfm")
    assert np.nanmedian(depth[:, 16:]) == pytest.approx(400 * 0.1 / DISPARITY, rel=0.03)


def _expect_user_error(capsys, code, message):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_user_errors_end_with_one_line(folder, capsys):
    in_dir = folder / "in"
    _expect_user_error(capsys, main(["batch", "--out", str(folder / "o")]), "give one input")
    _expect_user_error(capsys, main(["batch", "--dir", str(in_dir), "--pairs", "x.txt", "--out", str(folder / "o")]),
                       "got --pairs and --dir")
    _expect_user_error(capsys, main(["batch", "--left", str(in_dir / "left" / "*.png"), "--right",
                                     str(in_dir / "right" / "frame_00[01].png"), "--out", str(folder / "o")]),
                       "--left matches 5 files but --right matches 2")
    _expect_user_error(capsys, _batch(folder, "--save", "depth"), "--save depth needs a calibration")
    _expect_user_error(capsys, _batch(folder, "--save", "disp"), "unknown output(s) disp")
    _expect_user_error(capsys, main(["batch", "--dir", str(folder), "--out", str(folder / "o")]),
                       "folder not found (--dir expects left/ and right/ inside)")
    _expect_user_error(capsys, _batch(folder, "--calib", str(folder / "none.yaml")), "none.yaml: file not found")
    assert not (folder / "out").exists() and not (folder / "o").exists()


@pytest.mark.slow
def test_onnx_runtime_goes_through_the_same_batch_path(folder, capsys):
    """One set of weights, run by PyTorch (--model --pretrained) and by ONNX Runtime (--onnx): the
    batch code is the same, so the disparities agree."""
    import torch

    from edgestereo.export.exporter import export_onnx
    from edgestereo.models import create_model, save_pretrained

    torch.manual_seed(0)
    model = create_model("stereonet-plus-small").eval()
    save_pretrained(model, folder / "weights.safetensors")
    export_onnx(model, folder / "model.onnx", 64, 128)  # frames are 48x128: the ONNX predictor pads them
    (folder / "in" / "left" / "frame_002.png").unlink()
    (folder / "in" / "right" / "frame_002.png").unlink()
    torch_args = ["--model", "stereonet-plus-small", "--pretrained", str(folder / "weights.safetensors")]
    for runtime, options in (("torch", torch_args), ("onnx", ["--onnx", str(folder / "model.onnx")])):
        assert main(["batch", "--dir", str(folder / "in"), "--out", str(folder / runtime), *options,
                     "--device", "cpu"]) == 0
    for i in (0, 1, 3, 4):
        by_torch = read_pfm(folder / "torch" / f"frame_{i:03d}_disp.pfm")
        by_onnx = read_pfm(folder / "onnx" / f"frame_{i:03d}_disp.pfm")
        assert by_onnx.shape == (48, 128)
        assert np.abs(by_torch - by_onnx).max() < 1e-2
