"""RAFT-Stereo to ONNX: the npu4d graph check, ONNX Runtime vs the PyTorch deploy path, and the CLI.

CI size: 128x256 and 2 iterations (the issue's 384x640 files take the same code path).
"""

import contextlib
import io
import re

import numpy as np
import pytest
import torch

from edgestereo.apps.cli import main
from edgestereo.data.io import read_pfm, write_image
from edgestereo.export.check import check_onnx
from edgestereo.export.exporter import export_onnx, verify_onnx
from edgestereo.models import create_model
from network_fixtures import assert_parity
from stereo_fixtures import shifted_pair

HEIGHT, WIDTH, ITERS = 128, 256, 2
BANNED = {"GridSample", "Einsum", "ScatterND", "ScatterElements", "NonZero", "Loop", "If", "Shape"}


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def _parity(text: str) -> tuple[float, float]:
    mean, largest = re.search(r"mean \|Δ\| (\S+) px, max \|Δ\| (\S+) px", text).groups()
    return float(mean), float(largest)


def _assert_npu4d(path) -> None:
    report = check_onnx(path, "npu4d")
    assert report.ok, report.format()
    assert report.max_rank <= 4 and not BANNED & set(report.op_histogram)
    assert "GatherElements" in report.op_histogram  # the lookup is a gather, not a GridSample


@pytest.fixture(scope="module")
def realtime(tmp_path_factory):
    """`edgestereo export` of the realtime model from a DataParallel .pth, with --verify.

    Returns (checkpoint, onnx file, exit code, stdout).
    """
    folder = tmp_path_factory.mktemp("raft_realtime")
    torch.manual_seed(0)
    state = create_model("raft-stereo-realtime").state_dict()
    checkpoint = folder / "raftstereo-realtime.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, checkpoint)
    onnx_path = folder / "raft_realtime.onnx"
    code, text = _cli("export", "--model", "raft-stereo-realtime", "--pretrained", str(checkpoint),
                      "--height", str(HEIGHT), "--width", str(WIDTH), "--iters", str(ITERS),
                      "--out", str(onnx_path), "--verify")
    return checkpoint, onnx_path, code, text


def test_realtime_export_fits_npu4d_and_matches_pytorch(realtime):
    _, onnx_path, code, text = realtime
    assert code == 0, text
    assert "result      ok: fits npu4d" in text and "max rank    4" in text
    mean, largest = _parity(text)
    assert mean <= 1e-3 and largest <= 1e-2
    _assert_npu4d(onnx_path)
    # the deploy graph is also what TensorRT gets (RAFTStereo.export_uses_deploy)
    assert check_onnx(onnx_path, "tensorrt").ok
    # and what the RK3588 compiler takes without CPU fallbacks we can avoid (a Neg at the output was one)
    rknn = check_onnx(onnx_path, "rknn")
    assert rknn.ok, rknn.format()
    assert _cli("check-onnx", str(onnx_path), "--profile", "npu4d")[0] == 0


def test_standard_export_fits_npu4d_and_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    model = create_model("raft-stereo", iters=ITERS)
    path = export_onnx(model, tmp_path / "raft_standard.onnx", HEIGHT, WIDTH, profile="npu4d")
    _assert_npu4d(path)
    parity = verify_onnx(model, path)
    assert parity.torch_path == "deploy"
    assert_parity(parity)


def test_infer_with_the_checkpoint_and_with_the_onnx_file_agree(realtime, tmp_path):
    checkpoint, onnx_path, _, _ = realtime
    left, right = shifted_pair(HEIGHT, WIDTH, disparity=8)
    write_image(tmp_path / "left.png", left)
    write_image(tmp_path / "right.png", right)
    pair = [str(tmp_path / "left.png"), str(tmp_path / "right.png")]
    code, text = _cli("infer", *pair, "--model", "raft-stereo-realtime", "--pretrained", str(checkpoint),
                      "--iters", str(ITERS), "--out", str(tmp_path / "torch"))
    assert code == 0 and "raft-stereo-realtime" in text
    assert _cli("infer", *pair, "--onnx", str(onnx_path), "--out", str(tmp_path / "onnx"))[0] == 0
    with_torch = read_pfm(tmp_path / "torch" / "disparity.pfm")
    with_onnx = read_pfm(tmp_path / "onnx" / "disparity.pfm")
    assert with_torch.shape == (HEIGHT, WIDTH) and np.isfinite(with_torch).all()
    difference = np.abs(with_torch - with_onnx)
    assert difference.mean() <= 1e-3 and difference.max() <= 1e-2


def test_export_size_not_divisible_names_the_nearest_sizes(tmp_path, capsys):
    code = main(["export", "--model", "raft-stereo-realtime", "--random-weights", "--height", "100", "--width", "250",
                 "--out", str(tmp_path / "x.onnx")])
    error = capsys.readouterr().err
    assert code == 2 and "multiples of 32" in error
    assert "height 100 (nearest valid: 96 or 128)" in error and "width 250 (nearest valid: 224 or 256)" in error
    assert not (tmp_path / "x.onnx").exists()


def test_check_onnx_refuses_a_file_that_is_not_onnx(tmp_path, capsys):
    fake = tmp_path / "raftstereo-realtime.onnx"
    torch.save({"weights": torch.zeros(2)}, fake)
    assert main(["check-onnx", str(fake), "--profile", "npu4d"]) == 2
    assert str(fake) in capsys.readouterr().err
