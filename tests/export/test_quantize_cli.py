"""`edgestereo quantize` end to end on the tiny (matching) network and the synthetic data set, and its
bad input."""

import onnx
import pytest

from edgestereo.apps.cli import main
from edgestereo.export.exporter import export_onnx
from edgestereo.quant.ptq import is_quantized
from edgestereo.quant.scoring import load_samples
from edgestereo.runtime.onnx_predictor import OnnxPredictor
from tiny_matching import assert_close_relative
from tiny_stereo import TINY_NAME, FragileTinyStereo, TinyStereoConfig


@pytest.fixture
def float_onnx(tiny_onnx):
    """The shared float file (read only), 32x64."""
    return tiny_onnx


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
    # scored on a synthetic pair it was not calibrated on (the validation split): measured 0.32 px mean on a
    # float output of std 2.5 px (13 %; flat regions, where unit-RMS features amplify int8 noise); a
    # constant output would be ~80 % off
    pair = load_samples("synthetic", None, "val", 1, (32, 64), max_disp=32)[0]
    left, right = pair["left"], pair["right"]
    assert_close_relative(OnnxPredictor(out)(left, right), OnnxPredictor(float_onnx)(left, right),
                          mean_share=0.2, max_px=8.0)


def test_calibration_set_smaller_than_asked_is_used_whole(float_onnx, tmp_path, capsys, monkeypatch):
    from edgestereo.quant import scoring

    real = scoring.load_samples
    # a data set that holds 2 pairs, whatever is asked of it
    monkeypatch.setattr(scoring, "load_samples",
                        lambda name, root, split, num, *rest: real(name, root, split, 2, *rest))
    assert _quantize(float_onnx, "--num-samples", "5", "--out", str(tmp_path / "q.onnx")) == 0
    assert "asked for 5 calibration pairs, the data set has 2: used them all" in capsys.readouterr().out


def test_analyze_prints_each_group_and_a_proposal(tmp_path, capsys):
    model = FragileTinyStereo(TinyStereoConfig()).eval()
    model.model_name = TINY_NAME
    source = export_onnx(model, tmp_path / "fragile.onnx", 32, 64)
    assert _quantize(source, "--num-samples", "2", "--eval-samples", "2", "--analyze") == 0
    printed = capsys.readouterr().out
    assert "float EPE" in printed and "/features" in printed and "cost (px)" in printed
    groups = [line.split()[0] for line in printed.splitlines() if line.startswith("/")]
    assert set(groups[:2]) == {"/fragile", "/fragile_1"}  # the costliest first
    proposal = next(line for line in printed.splitlines() if line.startswith("keep float:"))
    assert "/fragile" in proposal and "/fragile_1" in proposal


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


def test_quantizing_a_quantized_file_is_refused(tiny_int8_onnx, tmp_path, capsys):
    assert _quantize(tiny_int8_onnx, "--out", str(tmp_path / "again.onnx")) == 2
    assert "already quantized" in capsys.readouterr().err
    assert not (tmp_path / "again.onnx").exists()
