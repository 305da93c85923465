"""`edgestereo quantize` end to end on the tiny network and the synthetic data set, and its bad input."""

import onnx
import pytest

from edgestereo.apps.cli import main
from edgestereo.export.exporter import export_onnx
from edgestereo.quant.ptq import is_quantized


@pytest.fixture
def float_onnx(tiny_model, tmp_path):
    return export_onnx(tiny_model, tmp_path / "tiny.onnx", 32, 64)


def _quantize(float_onnx, *extra):
    return main(["quantize", "--onnx", str(float_onnx), "--calib-dataset", "synthetic", *extra])


def test_quantize_writes_a_checked_qdq_file(float_onnx, tmp_path, capsys):
    out = tmp_path / "tiny.int8.onnx"
    assert _quantize(float_onnx, "--num-samples", "2", "--per-channel", "--keep-float", "/correlation/*",
                     "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "calibration minmax on 2 pair(s)" in printed and "per channel" in printed
    assert "kept float  /correlation/*" in printed and "check       npu4d: ok" in printed
    assert is_quantized(out)
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert "samples=2" in metadata["quantization"]


def test_calibration_set_smaller_than_asked_is_used_whole(float_onnx, tmp_path, capsys, monkeypatch):
    from edgestereo.quant import scoring

    real = scoring.load_samples
    # a data set that holds 2 pairs, whatever is asked of it
    monkeypatch.setattr(scoring, "load_samples",
                        lambda name, root, split, num, *rest: real(name, root, split, 2, *rest))
    assert _quantize(float_onnx, "--num-samples", "5", "--out", str(tmp_path / "q.onnx")) == 0
    assert "asked for 5 calibration pairs, the data set has 2: used them all" in capsys.readouterr().out


def test_analyze_prints_each_group_and_a_proposal(float_onnx, capsys):
    assert _quantize(float_onnx, "--num-samples", "1", "--eval-samples", "1", "--analyze") == 0
    printed = capsys.readouterr().out
    assert "float EPE" in printed and "/features" in printed and "cost (px)" in printed


@pytest.mark.parametrize(("extra", "message"), [
    (["--keep-float", "/nothing/*", "--out", "x.onnx"], "--keep-float '/nothing/*' matches no node"),
    (["--out", "x.txt"], "must end in .onnx"),
    ([], "--out FILE.onnx is required"),
    (["--analyze", "--out", "x.onnx"], "--analyze only reports"),
    (["--num-samples", "0", "--out", "x.onnx"], "--num-samples must be ≥ 1"),
])
def test_quantize_bad_input(float_onnx, extra, message, capsys):
    assert _quantize(float_onnx, *extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_quantizing_a_quantized_file_is_refused(float_onnx, tmp_path, capsys):
    out = tmp_path / "q.onnx"
    assert _quantize(float_onnx, "--num-samples", "1", "--out", str(out)) == 0
    capsys.readouterr()
    assert _quantize(out, "--out", str(tmp_path / "again.onnx")) == 2
    assert "already quantized" in capsys.readouterr().err
