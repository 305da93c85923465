"""Issue 17: every bad input and output-side fault ends in one line on stderr and exit code 2, is
found before any work where it can be, and leaves nothing partial behind. One test per case of
the issue (``test_caseNN_…``)."""

import errno
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from edgestereo import DEFAULT_MODEL
from edgestereo.apps.cli import main
from edgestereo.data.io import write_image, write_pfm
from edgestereo.errors import EdgeStereoError
from edgestereo.models import create_model
from stereo_fixtures import shifted_pair

SGBM = ["--model", "sgbm", "--max-disp", "32"]
TINY_RECIPE = Path(__file__).parents[1] / "training" / "tiny.yaml"


def one_line_error(capsys, code, message):
    """Exit code 2 and a single line on stderr naming ``message``, no traceback; returns the line."""
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert message in err, err
    return err


@pytest.fixture
def pair(tmp_path):
    """tmp/left.png, tmp/right.png: a 48x128 pair at 8 px disparity."""
    left, right = shifted_pair(48, 128, disparity=8)
    write_image(tmp_path / "left.png", left)
    write_image(tmp_path / "right.png", right)
    return tmp_path


@pytest.fixture
def unwritable(tmp_path, monkeypatch):
    """A folder in which creating a file fails with EACCES, also for root (who ignores permission bits)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    mkstemp = tempfile.mkstemp

    def refuse(*args, **kwargs):
        if Path(kwargs.get("dir") or tempfile.gettempdir()).absolute().is_relative_to(folder):
            raise PermissionError(errno.EACCES, "Permission denied")
        return mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    return folder


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("a file where a folder should be")
    return path


def disk_full_after(monkeypatch, suffix, allowed=0):
    """Writing a file whose name ends in ``suffix`` fails with ENOSPC after ``allowed`` of them succeeded."""
    write_bytes = Path.write_bytes
    count = {"n": 0}

    def write(self, data):
        if self.name.endswith(suffix):
            count["n"] += 1
            if count["n"] > allowed:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", write)


# --------------------------------------------------------------------------- 1-4: output folders and files
@pytest.mark.parametrize("command", [["pack", "--dataset", "synthetic", "--opt", "num=1"],
                                     ["synth", "--num", "1", "--size", "32", "64", "--max-disp", "12"]])
def test_case01_02_pack_and_synth_out_is_a_file_or_unwritable(command, a_file, unwritable, capsys):
    one_line_error(capsys, main([*command, "--out", str(a_file)]), "a-file is a file); choose another folder")
    one_line_error(capsys, main([*command, "--out", str(a_file / "sub")]), "a-file is a file")
    one_line_error(capsys, main([*command, "--out", str(unwritable / "set")]), "Permission denied")
    assert list(unwritable.iterdir()) == []


def test_case03_train_root_dir_is_a_file_or_unwritable(a_file, unwritable, capsys):
    train = ["train", "--config", str(TINY_RECIPE), "--trainer.default_root_dir"]
    one_line_error(capsys, main([*train, str(a_file)]), "trainer.default_root_dir")
    one_line_error(capsys, main([*train, str(unwritable / "run")]), "Permission denied")
    assert list(unwritable.iterdir()) == []


def test_case04_eval_out_that_is_a_folder_fails_before_evaluating(tmp_path, capsys):
    code = main(["eval", *SGBM, "--dataset", "synthetic", "--dataset-option", "num=1", "--dataset-option",
                 "size=[32,64]", "--dataset-option", "max_disp=12", "--out", str(tmp_path), "--quiet"])
    one_line_error(capsys, code, "cannot be written (it is a folder)")
    assert "EPE" not in capsys.readouterr().out


# --------------------------------------------------------------------------- 5, 8, 11, 15: options and inputs
def test_case05_a_config_value_of_the_wrong_type_names_the_key(pair, capsys):
    code = main(["infer", str(pair / "left.png"), str(pair / "right.png"), "--out", str(pair / "out"),
                 "--set", "max_disp=abc"])
    config_type = type(create_model(DEFAULT_MODEL).config).__name__  # --set changes the default model's config
    one_line_error(capsys, code, f"max_disp='abc': {config_type}.max_disp is int, e.g. max_disp=")
    code = main(["infer", str(pair / "left.png"), str(pair / "right.png"), "--out", str(pair / "out"),
                 "--set", "stage_channels=[16,x]"])
    one_line_error(capsys, code, "stage_channels is tuple[int, ...]")
    assert not (pair / "out").exists()


@pytest.mark.parametrize("shape", [(0, 0, 3), (1, 1, 3), (15, 200, 3)])
def test_case08_15_empty_and_tiny_images_are_refused(shape):
    from edgestereo import predict

    image = np.zeros(shape, np.uint8)
    with pytest.raises(EdgeStereoError, match=rf"images of {shape[1]}x{shape[0]} pixels are too small for stereo"):
        predict(image, image, "stereonet-plus-small", random_weights=True)


def test_case15_tiny_image_and_negative_eval_max_disp_on_the_command_line(pair, capsys):
    write_image(pair / "dot.png", np.zeros((1, 1, 3), np.uint8))
    code = main(["infer", str(pair / "dot.png"), str(pair / "dot.png"), "--out", str(pair / "out"), *SGBM])
    one_line_error(capsys, code, "images of 1x1 pixels are too small for stereo: give a pair of at least 16x16")
    code = main(["eval", *SGBM, "--dataset", "synthetic", "--eval-max-disp", "-5"])
    one_line_error(capsys, code, "--eval-max-disp must be a positive number of pixels, got -5")


def test_case11_an_image_given_as_weights_is_named_as_such(pair, capsys):
    code = main(["infer", str(pair / "left.png"), str(pair / "right.png"), "--pretrained", str(pair / "left.png")])
    err = one_line_error(capsys, code, "left.png: not a PyTorch checkpoint (a PNG image)")
    assert "pickl" not in err and "Weights only" not in err


# --------------------------------------------------------------------------- 9: large images
def test_case09_an_8000x6000_pair_is_refused_in_one_line_before_it_runs(tmp_path, capsys):
    flat = np.full((6000, 8000, 3), 128, np.uint8)  # compresses to a small PNG, decodes quickly
    write_image(tmp_path / "big.png", flat)
    del flat
    code = main(["infer", str(tmp_path / "big.png"), str(tmp_path / "big.png"), "--out", str(tmp_path / "out"),
                 "--max-memory", "4"])
    one_line_error(capsys, code, "image 8000x6000 needs about ")
    capsys.readouterr()
    assert not (tmp_path / "out").exists()


def test_case09_scale_runs_smaller_views_and_writes_full_size_outputs(pair, capsys):
    from edgestereo.data.io import read_pfm

    assert main(["infer", str(pair / "left.png"), str(pair / "right.png"), "--out", str(pair / "out"), "--scale",
                 "0.5", *SGBM]) == 0
    assert "sgbm at scale 0.5" in capsys.readouterr().out
    disparity = read_pfm(pair / "out" / "disparity.pfm")
    assert disparity.shape == (48, 128) and np.nanmedian(disparity[:, 40:]) == pytest.approx(8, abs=1)


# --------------------------------------------------------------------------- 12, 13, 18: ground truth, calibration
def test_case12_a_ground_truth_without_valid_pixels_is_refused_before_any_output(pair, capsys):
    write_pfm(pair / "gt.pfm", np.full((48, 128), np.nan, np.float32))
    code = main(["infer", str(pair / "left.png"), str(pair / "right.png"), "--gt", str(pair / "gt.pfm"),
                 "--out", str(pair / "out"), *SGBM])
    one_line_error(capsys, code, "gt.pfm: the ground truth has no valid pixel")
    assert not (pair / "out").exists()


def rectified_json(path, width, height):
    path.write_text(json.dumps({"fx": 400, "fy": 400, "cx": width / 2, "cy": height / 2, "baseline": 0.1,
                                "width": width, "height": height, "unit": "m"}))
    return path


def test_case13_a_calibration_for_another_image_size_is_refused_by_infer_and_batch(pair, capsys):
    calib = rectified_json(pair / "cam.json", 640, 480)
    code = main(["infer", str(pair / "left.png"), str(pair / "right.png"), "--calib", str(calib),
                 "--out", str(pair / "out"), *SGBM])
    one_line_error(capsys, code, "cam.json is for 640x480 frames, these are 128x48")
    code = main(["batch", "--left", str(pair / "left.png"), "--right", str(pair / "right.png"), "--calib", str(calib),
                 "--out", str(pair / "out"), *SGBM])
    one_line_error(capsys, code, "cam.json is for 640x480 frames, these are 128x48")
    assert "wrote" not in capsys.readouterr().out
    assert not (pair / "out").exists()


def test_case18_predict_reads_the_calibration_files_the_cli_reads(pair):
    from edgestereo import predict

    result = predict(pair / "left.png", pair / "right.png", "sgbm", calib=rectified_json(pair / "cam.json", 128, 48))
    assert np.nanmedian(result.depth[:, 40:]) == pytest.approx(400 * 0.1 / 8, rel=0.05)
    with pytest.raises(EdgeStereoError, match="is for 640x480 frames"):
        predict(pair / "left.png", pair / "right.png", "sgbm", calib=rectified_json(pair / "big.yaml", 640, 480))


# --------------------------------------------------------------------------- 16: training and data-set options
def test_case16_train_crop_size_is_checked_against_the_network_before_training(tmp_path, capsys):
    code = main(["train", "--config", str(TINY_RECIPE), "--trainer.default_root_dir", str(tmp_path / "run"),
                 "--data.crop_size", "[100,250]"])
    one_line_error(capsys, code, "data.crop_size [100, 250]: stereonet-plus-small needs multiples of 32; use e.g. "
                                 "[96, 224]")
    assert not (tmp_path / "run").exists()


def test_case16_synth_names_the_setting_that_differs_and_pack_refuses_ignored_options(tmp_path, capsys):
    synth = ["synth", "--out", str(tmp_path / "set"), "--num", "1", "--size", "32", "64", "--seed", "3"]
    assert main([*synth, "--max-disp", "12"]) == 0
    capsys.readouterr()
    one_line_error(capsys, main([*synth, "--max-disp", "24"]), "other settings (max_disp 12.0 there, 24.0 asked)")
    code = main(["pack", "--dataset", "synthetic", "--root", str(tmp_path / "set"), "--opt", "num=3", "--out",
                 str(tmp_path / "pack")])
    one_line_error(capsys, code, "drop the option(s) num")
    assert not (tmp_path / "pack").exists()


# --------------------------------------------------------------------------- 6, 10: the ONNX I/O contract
def stereo_graph(path, output_channels=1, height=48, width=128):
    """left, right (1,3,H,W) → disparity (1,output_channels,H,W); the stereo contract with one channel."""
    import onnx
    from onnx import TensorProto, helper

    reduce = helper.make_node("ReduceMean", ["difference"], ["disparity"], axes=[1], keepdims=1)
    nodes = [helper.make_node("Sub", ["left", "right"], ["difference"]),
             reduce if output_channels == 1 else helper.make_node("Relu", ["difference"], ["disparity"])]
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 3, height, width])
              for name in ("left", "right")]
    output = helper.make_tensor_value_info("disparity", TensorProto.FLOAT, [1, output_channels, height, width])
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", inputs, [output]),
                                opset_imports=[helper.make_opsetid("", 17)], ir_version=10), str(path))
    return path


def test_case06_an_onnx_file_with_a_3_channel_output_is_refused_everywhere(pair, capsys):
    bad = stereo_graph(pair / "bad.onnx", output_channels=3)
    problem = "output disparity (1,3,48,128) is not (1,1,H,W)"
    images = [str(pair / "left.png"), str(pair / "right.png")]
    for command in (["infer", *images, "--out", str(pair / "out")],
                    ["batch", "--left", images[0], "--right", images[1], "--out", str(pair / "out")],
                    ["bench", "--iters", "1", "--warmup", "0"],
                    ["eval", "--dataset", "synthetic", "--dataset-option", "num=1", "--quiet"]):
        one_line_error(capsys, main([*command, "--onnx", str(bad)]), problem)
    assert not (pair / "out").exists()
    assert main(["check-onnx", str(bad)]) == 1
    report = capsys.readouterr().out
    assert problem in report and "ok: fits" not in report and "edgestereo cannot run it" in report
    code = main(["quantize", "--onnx", str(bad), "--calib-dataset", "synthetic", "--num-samples", "1", "--out",
                 str(pair / "bad.int8.onnx")])
    one_line_error(capsys, code, problem)
    assert not (pair / "bad.int8.onnx").exists()


def test_case10_quantize_refuses_to_overwrite_its_float_source(pair, capsys, monkeypatch):
    source = stereo_graph(pair / "float.onnx")
    before = source.read_bytes()
    monkeypatch.chdir(pair)
    for out in (str(source), "float.onnx", "./sub/../float.onnx"):
        code = main(["quantize", "--onnx", str(source), "--calib-dataset", "synthetic", "--out", out])
        one_line_error(capsys, code, "would replace the float graph it is made from")
    assert source.read_bytes() == before


# --------------------------------------------------------------------------- 7: a full disk
def test_case07_infer_on_a_full_disk_leaves_no_file_and_no_folder(pair, monkeypatch, capsys):
    disk_full_after(monkeypatch, ".png")  # disparity.pfm is written, disparity.png fails
    code = main(["infer", str(pair / "left.png"), str(pair / "right.png"), "--out", str(pair / "out"), *SGBM])
    one_line_error(capsys, code, "No space left on device")
    assert not (pair / "out").exists()


@pytest.mark.parametrize("blocked", ["cloud.ply", "depth.pfm", "disparity.pfm"])
def test_case07_infer_fails_after_other_files_were_placed_and_leaves_none_of_them(pair, blocked, capsys):
    """The last step of writing a pair is renaming its files into place; when one rename fails (here its
    name is taken by a folder), the pair's files already renamed are removed again."""
    calibration = pair / "calib.txt"
    calibration.write_text("cam0=[400 0 63.5; 0 400 23.5; 0 0 1]\ncam1=[400 0 63.5; 0 400 23.5; 0 0 1]\n"
                           "doffs=0\nbaseline=100\nwidth=128\nheight=48\nndisp=32\n")
    out = pair / "out"
    (out / blocked).mkdir(parents=True)
    code = main(["infer", str(pair / "left.png"), str(pair / "right.png"), "--out", str(out),
                 "--calib", str(calibration), *SGBM])
    one_line_error(capsys, code, f"{blocked}: cannot write (Is a directory)")
    assert [p.name for p in out.iterdir()] == [blocked]


def test_case07_batch_on_a_full_disk_stops_keeps_whole_frames_and_no_video(pair, monkeypatch, capsys):
    for i in range(3):
        (pair / "in" / "left").mkdir(parents=True, exist_ok=True)
        (pair / "in" / "right").mkdir(exist_ok=True)
        left, right = shifted_pair(48, 128, disparity=8, seed=i)
        write_image(pair / "in" / "left" / f"f{i}.png", left)
        write_image(pair / "in" / "right" / f"f{i}.png", right)
    disk_full_after(monkeypatch, ".png", allowed=1)  # frame f0 is written, f1's picture fails
    code = main(["batch", "--dir", str(pair / "in"), "--out", str(pair / "out"), "--video", str(pair / "out" / "v.mp4"),
                 *SGBM])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "No space left on device" in err[-1] and "Traceback" not in "\n".join(err)
    names = sorted(p.name for p in (pair / "out").iterdir() if not p.name.startswith(".edgestereo"))
    assert names == ["f0.png", "f0_disp.pfm"]  # f1 left nothing (its PFM was written, then removed), no video


def test_case07_export_on_a_full_disk(tmp_path, monkeypatch, capsys):
    import onnx

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(onnx, "save_model", full)
    code = main(["export", "--model", "stereonet-plus-small", "--random-weights", "--height", "64", "--width", "128",
                 "--out", str(tmp_path / "m.onnx")])
    one_line_error(capsys, code, "m.onnx: cannot write (No space left on device)")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- 14: outputs checked first
def test_case14_batch_video_and_calibrate_preview_are_checked_before_any_work(pair, a_file, capsys):
    code = main(["batch", "--left", str(pair / "left.png"), "--right", str(pair / "right.png"), "--out",
                 str(pair / "out"), "--video", str(a_file / "v.mp4"), *SGBM])
    one_line_error(capsys, code, "a-file is a file")
    assert not (pair / "out").exists()
    code = main(["calibrate", "--left", str(pair / "left.png"), "--right", str(pair / "right.png"), "--board", "9x6",
                 "--square", "0.025", "--out", str(pair / "rig.yaml"), "--preview", str(a_file / "preview")])
    one_line_error(capsys, code, "a-file is a file")
    assert not (pair / "rig.yaml").exists()


# --------------------------------------------------------------------------- 17: no empty folders
def test_case17_failed_infer_leaves_no_output_folder(pair, capsys):
    code = main(["infer", str(pair / "left.png"), str(pair / "right.png"), "--out", str(pair / "new" / "out"),
                 "--model", "stereonet-plus-small", "--set", "no_such_field=1"])
    one_line_error(capsys, code, "no_such_field")
    assert not (pair / "new").exists()


def test_case17_train_failing_before_its_first_step_leaves_no_logs(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "set"), "--num", "2", "--size", "64", "128", "--max-disp", "24"]) == 0
    for image in (tmp_path / "set" / "left").iterdir():
        image.write_text("not an image")
    capsys.readouterr()
    code = main(["train", "--config", str(TINY_RECIPE), "--trainer.default_root_dir", str(tmp_path / "runs" / "a"),
                 "--data.root", str(tmp_path / "set"), "--data.options", "{}", "--data.val_split", "null"])
    assert code == 2 and "not an image" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- 19: native libraries' lines
def corrupt_png(path):
    """A PNG whose image data is zeroed: libpng prints an "IDAT" error of its own when it reads it."""
    write_image(path, shifted_pair(48, 128)[0])
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 8
    data[start : start + 16] = bytes(16)
    path.write_bytes(bytes(data))
    return path


def test_case19_codec_and_ffmpeg_lines_do_not_come_before_the_message(pair, capfd):
    corrupt_png(pair / "left.png")
    code = main(["infer", str(pair / "left.png"), str(pair / "right.png"), "--out", str(pair / "out"), *SGBM])
    err = capfd.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "left.png: not an image (or an image format OpenCV cannot decode); libpng error: IDAT" in err, err
    (pair / "video.mp4").write_text("not a video")
    code = main(["live", "--source", str(pair / "video.mp4"), "--no-window", *SGBM])
    err = capfd.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "video.mp4: not a video OpenCV can decode" in err, err
