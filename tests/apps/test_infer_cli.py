"""`edgestereo infer` end to end, and each user mistake: one line, exit code 2, no partial output."""

import subprocess
import sys

import numpy as np
import pytest

from edgestereo.api import DEFAULT_MODEL
from edgestereo.apps.cli import main
from edgestereo.data.io import read_pfm, read_ply, write_image, write_pfm
from stereo_fixtures import shifted_pair

CALIB = "cam0=[400 0 63.5; 0 400 23.5; 0 0 1]\ncam1=[400 0 63.5; 0 400 23.5; 0 0 1]\n" \
        "doffs=0\nbaseline=100\nwidth=128\nheight=48\nndisp=32\n"


@pytest.fixture
def files(tmp_path):
    left, right = shifted_pair(48, 128, disparity=8)
    write_image(tmp_path / "left.png", left)
    write_image(tmp_path / "right.png", right)
    write_pfm(tmp_path / "gt.pfm", np.full((48, 128), 8.0, np.float32))
    (tmp_path / "calib.txt").write_text(CALIB)
    return tmp_path


def _infer(files, *extra, out="out"):
    """The CLI's mechanics, on the fast classical model."""
    return main(["infer", str(files / "left.png"), str(files / "right.png"), "--out", str(files / out),
                 "--model", "sgbm", "--max-disp", "32", *extra])


def test_infer_writes_every_output_and_prints_metrics(files, capsys):
    assert _infer(files, "--calib", str(files / "calib.txt"), "--gt", str(files / "gt.pfm")) == 0
    printed = capsys.readouterr().out
    assert "EPE" in printed and "bad2" in printed and "D1" in printed
    out = files / "out"
    assert sorted(p.name for p in out.iterdir()) == ["cloud.ply", "depth.pfm", "disparity.pfm", "disparity.png",
                                                      "panel.png"]
    disparity = read_pfm(out / "disparity.pfm")
    assert np.median(disparity[:, 40:]) == pytest.approx(8.0, abs=0.2)
    depth = read_pfm(out / "depth.pfm")
    assert np.nanmedian(depth[:, 40:]) == pytest.approx(400 * 100 / 8, rel=0.03)
    points, colors = read_ply(out / "cloud.ply")
    assert len(points) == len(colors) > 0


def test_focal_and_baseline_give_depth_without_calib_file(files):
    assert _infer(files, "--focal", "400", "--baseline", "0.1", out="o2") == 0
    assert (files / "o2" / "depth.pfm").is_file() and (files / "o2" / "cloud.ply").is_file()


def test_grey_left_with_colour_right_is_converted(files):
    left = np.asarray(__import__("cv2").imread(str(files / "left.png"), 0))
    write_image(files / "left.png", left)
    assert _infer(files) == 0


def _expect_user_error(capsys, code, pattern, out_dir=None):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert pattern in err, err
    if out_dir is not None:
        assert not out_dir.exists() or not any(p.suffix in {".pfm", ".png", ".ply"} for p in out_dir.iterdir())


def test_without_a_model_infer_runs_the_packaged_default(files, capsys):
    out = files / "default"
    assert main(["infer", str(files / "left.png"), str(files / "right.png"), "--out", str(out)]) == 0
    assert DEFAULT_MODEL in capsys.readouterr().out
    disparity = read_pfm(out / "disparity.pfm")
    assert disparity.shape == (48, 128) and np.isfinite(disparity).all()


def test_missing_file(files, capsys):
    code = main(["infer", str(files / "nope.png"), str(files / "right.png"), "--out", str(files / "out")])
    _expect_user_error(capsys, code, "nope.png: file not found", files / "out")


def test_empty_file(files, capsys):
    (files / "left.png").write_bytes(b"")
    _expect_user_error(capsys, _infer(files), "file is empty", files / "out")


def test_text_file_named_png(files, capsys):
    (files / "left.png").write_text("not an image")
    _expect_user_error(capsys, _infer(files), "not an image", files / "out")


def test_left_and_right_of_different_sizes(files, capsys):
    write_image(files / "right.png", np.zeros((48, 100, 3), np.uint8))
    _expect_user_error(capsys, _infer(files), "differ in size", files / "out")


@pytest.mark.parametrize("content, message", [(b"Pf\nxx\n", "bad PFM header"),
                                              (b"Pf\n128 48\n-1.0\n" + bytes(100), "truncated PFM data")])
def test_bad_ground_truth_pfm(files, capsys, content, message):
    (files / "gt.pfm").write_bytes(content)
    _expect_user_error(capsys, _infer(files, "--gt", str(files / "gt.pfm")), message, files / "out")


def test_kitti_ground_truth_that_is_8_bit(files, capsys):
    write_image(files / "gt.png", np.full((48, 128), 8, np.uint8))
    _expect_user_error(capsys, _infer(files, "--gt", str(files / "gt.png")), "wrong bit depth", files / "out")


def test_calibration_missing_keys(files, capsys):
    (files / "calib.txt").write_text("cam0=[1 0 0; 0 1 0; 0 0 1]\nwidth=128\n")
    _expect_user_error(capsys, _infer(files, "--calib", str(files / "calib.txt")), "missing keys", files / "out")


def test_focal_without_baseline(files, capsys):
    _expect_user_error(capsys, _infer(files, "--focal", "400"), "--focal needs --baseline", files / "out")


def test_unwritable_output_folder(files, capsys):
    (files / "blocker").write_text("a file where the folder should go")
    code = main(["infer", str(files / "left.png"), str(files / "right.png"), "--out", str(files / "blocker" / "o")])
    _expect_user_error(capsys, code, "output folder cannot be written")


def test_unknown_model_lists_known_ones(files, capsys):
    _expect_user_error(capsys, _infer(files, "--model", "sgbn"), "Known models: ", files / "out")


def test_models_and_help(capsys):
    assert main(["models"]) == 0
    assert "sgbm" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["infer", "--help"])
    assert info.value.code == 0
    assert "--calib" in capsys.readouterr().out


def test_console_script_runs_as_a_process(files):
    result = subprocess.run([sys.executable, "-m", "edgestereo.apps.cli", "infer", str(files / "nope.png"),
                             str(files / "right.png")], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("file not found")


def test_sample_command_writes_the_motorcycle_pair(tmp_path, capsys):
    assert main(["sample", "motorcycle", "--out", str(tmp_path)]) == 0
    gt = read_pfm(tmp_path / "disp0.pfm")
    assert gt.shape == (500, 741) and np.isinf(gt).sum() > 0
    assert "baseline=193.001" in (tmp_path / "calib.txt").read_text()
