"""`edgestereo export`, `check-onnx` and `infer --onnx` end to end on the tiny test network."""

import json

import numpy as np
import onnx
import pytest

from edgestereo.apps.cli import main
from edgestereo.data.io import read_pfm, write_image
from edgestereo.models import save_pretrained
from stereo_fixtures import shifted_pair


def _metadata(path):
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def _user_error(capsys, code, *fragments):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err, err
    for fragment in fragments:
        assert fragment in err, err


def test_export_verify_and_check(registered_tiny, tmp_path, capsys):
    out = tmp_path / "tiny.onnx"
    assert main(["export", "--model", registered_tiny, "--random-weights", "--height", "32", "--width", "64",
                 "--out", str(out), "--verify"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote      {out}" in printed and "ok: fits npu4d" in printed and "max rank    4" in printed
    verify = next(line for line in printed.splitlines() if line.startswith("verify"))
    assert "deploy path" in verify and "mean |Δ|" in verify and verify.endswith("ok")

    assert main(["check-onnx", str(out), "--profile", "npu4d"]) == 0
    assert "ops         " in capsys.readouterr().out


def test_check_onnx_exits_1_with_the_violations(registered_tiny, tmp_path, capsys):
    out = tmp_path / "ref.onnx"
    assert main(["export", "--model", registered_tiny, "--random-weights", "--height", "32", "--width", "32",
                 "--out", str(out), "--profile", "generic"]) == 0
    capsys.readouterr()
    assert main(["check-onnx", str(out), "--profile", "npu4d"]) == 1
    printed = capsys.readouterr().out
    assert "max rank    5" in printed and "violation(s) of npu4d" in printed and "has rank 5 > 4" in printed


def test_config_options_pass_through(registered_tiny, tmp_path, capsys):
    out = tmp_path / "narrow.onnx"
    assert main(["export", "--model", registered_tiny, "--random-weights", "--height", "16", "--width", "32",
                 "--out", str(out), "--max-disp", "16", "--set", "channels=16", "--fp16", "--external-data"]) == 0
    assert json.loads(_metadata(out)["config"]) == {"max_disp": 16, "channels": 16}
    assert _metadata(out)["precision"] == "fp16" and (tmp_path / "narrow.onnx.data").is_file()
    capsys.readouterr()
    # the tiny network has no `iters`: the model's config names what it knows
    code = main(["export", "--model", registered_tiny, "--random-weights", "--height", "16", "--width", "32",
                 "--out", str(out), "--iters", "7"])
    _user_error(capsys, code, "unknown option(s) iters for TinyStereoConfig", "known: channels, max_disp")


@pytest.mark.parametrize(("args", "fragments"), [
    (["--height", "30", "--width", "64"], ["multiples of 4", "height 30 (nearest valid: 28 or 32)"]),
    (["--height", "32", "--width", "64", "--opset", "11"], ["opset 11 is not supported"]),
    (["--height", "32", "--width", "64", "--set", "channels"], ["--set 'channels': expected KEY=VALUE"]),
])
def test_export_user_errors(registered_tiny, tmp_path, capsys, args, fragments):
    code = main(["export", "--model", registered_tiny, "--random-weights", "--out", str(tmp_path / "x.onnx"), *args])
    _user_error(capsys, code, *fragments)
    assert not any(tmp_path.iterdir())


def test_export_refuses_sgbm_and_bad_names(tmp_path, capsys):
    code = main(["export", "--model", "sgbm", "--height", "32", "--width", "32", "--out", str(tmp_path / "s.onnx")])
    _user_error(capsys, code, "'sgbm' cannot be exported to ONNX")
    code = main(["export", "--model", "sgbm", "--height", "32", "--width", "32", "--out", str(tmp_path / "s.pt")])
    _user_error(capsys, code, "must end in .onnx")
    assert not any(tmp_path.iterdir())


def test_check_onnx_on_a_file_that_is_not_onnx(tmp_path, capsys):
    path = tmp_path / "notes.onnx"
    path.write_text("hello\n")
    _user_error(capsys, main(["check-onnx", str(path)]), f"{path}: not an ONNX file")


def test_infer_onnx_matches_the_torch_path(registered_tiny, tiny_model, tmp_path, capsys):
    weights = save_pretrained(tiny_model, tmp_path / "tiny.safetensors")
    left, right = shifted_pair(30, 46, disparity=4)  # not multiples of 4: both paths pad to 32x48
    write_image(tmp_path / "left.png", left)
    write_image(tmp_path / "right.png", right)
    onnx_file = tmp_path / "tiny.onnx"
    assert main(["export", "--model", registered_tiny, "--pretrained", str(weights), "--height", "32",
                 "--width", "48", "--out", str(onnx_file)]) == 0
    pair = [str(tmp_path / "left.png"), str(tmp_path / "right.png")]
    assert main(["infer", *pair, "--model", registered_tiny, "--pretrained", str(weights), "--out",
                 str(tmp_path / "torch")]) == 0
    assert main(["infer", *pair, "--onnx", str(onnx_file), "--out", str(tmp_path / "ort")]) == 0
    assert "tiny-test-stereo (onnx)" in capsys.readouterr().out
    torch_disparity = read_pfm(tmp_path / "torch" / "disparity.pfm")
    onnx_disparity = read_pfm(tmp_path / "ort" / "disparity.pfm")
    assert onnx_disparity.shape == (30, 46)
    assert np.abs(onnx_disparity - torch_disparity).max() <= 1e-3


@pytest.mark.parametrize("extra", [["--model", "sgbm"], ["--max-disp", "32"], ["--precision", "bf16"]])
def test_infer_onnx_refuses_model_options(tmp_path, capsys, extra):
    left, right = shifted_pair(16, 16)
    write_image(tmp_path / "l.png", left)
    write_image(tmp_path / "r.png", right)
    code = main(["infer", str(tmp_path / "l.png"), str(tmp_path / "r.png"), "--onnx", str(tmp_path / "m.onnx"),
                 "--out", str(tmp_path / "out"), *extra])
    _user_error(capsys, code, "--onnx runs an exported file; it cannot be combined with", extra[0])
