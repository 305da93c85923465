"""The precision table: several variants of one network on the same pairs, a row each, the EPE
change against the first row; `edgestereo eval --variant LABEL=FILE` (alias --stage)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgestereo.apps.cli import main
from edgestereo.errors import EdgeStereoError
from edgestereo.evaluation.precision_table import (
    Variant,
    VariantResult,
    evaluate_variants,
    format_precision_table,
    variant_results,
)
from tiny_qat_stereo import TINY_QAT_NAME, register_tiny_qat

#: the synthetic pairs of the CLI tests: 64x128, the size the ONNX files are exported at
DATA = ["--dataset", "synthetic", "--root", "-", "--split", "val", "--dataset-option", "num=2",
        "--dataset-option", "size=[64,128]", "--dataset-option", "max_disp=24", "--quiet"]


def _plane(disparity: float = 3.0) -> dict:
    return {"left": np.zeros((8, 16, 3), np.uint8), "right": np.zeros((8, 16, 3), np.uint8),
            "disp": np.full((8, 16), disparity, np.float32), "valid": np.ones((8, 16), bool)}


def _constant(value: float):
    return lambda left, right: np.full(left.shape[:2], value, np.float32)


def test_each_variant_is_scored_on_the_same_pairs_and_compared_with_the_first():
    variants = [Variant("float", _constant(3.0), "torch fp32"), Variant("int8", _constant(3.5), "onnxruntime int8"),
                Variant("QAT", _constant(2.0), "torch fp32", "qat.safetensors")]
    reports = evaluate_variants(variants, [_plane(), _plane()])
    assert [r["variant"] for r in reports] == ["float", "int8", "QAT"] and reports[2]["file"] == "qat.safetensors"
    assert [r["all"]["epe"] for r in reports] == pytest.approx([0.0, 0.5, 1.0])
    assert all(r["pairs"] == 2 for r in reports)
    rows = variant_results(reports)
    assert rows[1] == VariantResult("int8", "onnxruntime int8", reports[1]["all"], reports[1]["runtime_ms"]["median"])


def test_the_table_gives_the_change_against_the_first_row_in_pixels_and_percent():
    metrics = {"epe": 1.1271, "bad1": 10.0, "bad3": 5.0, "d1": 4.0}
    table = format_precision_table([VariantResult("float", "torch fp32", metrics, 12.5),
                                    VariantResult("QAT int8 (per channel)", "onnxruntime int8",
                                                  {**metrics, "epe": 1.1352})])
    header, rule, first, second = table.splitlines()
    assert header.split()[:4] == ["variant", "runtime", "EPE", "(px)"]
    assert len(rule) == len(header) == len(first) == len(second)
    assert first.startswith("float ") and "+0.0000" in first and "+0.00%" in first and first.endswith("12.5")
    assert second.startswith("QAT int8 (per channel)  onnxruntime int8")
    assert "1.1352" in second and "+0.0081" in second and "+0.72%" in second and second.endswith("–")


def test_a_precision_table_needs_ground_truth_and_distinct_labels():
    no_truth = {**_plane(), "valid": np.zeros((8, 16), bool)}
    with pytest.raises(EdgeStereoError, match="no pair with ground truth"):
        evaluate_variants([Variant("float", _constant(3.0), "torch fp32")], [no_truth])
    with pytest.raises(EdgeStereoError, match="variant label 'a' is used twice"):
        evaluate_variants([Variant("a", _constant(3.0), "x"), Variant("a", _constant(3.0), "y")], [_plane()])


@pytest.fixture
def variant_files(monkeypatch, tmp_path) -> dict[str, Path]:
    """Float and fine-tuned weights of the tiny network, the float ONNX file and its int8 QDQ form."""
    from edgestereo.data import create_dataset
    from edgestereo.export.exporter import export_onnx
    from edgestereo.models import create_model, save_pretrained
    from edgestereo.quant.ptq import QuantizeOptions, calibration_feeds, quantize_onnx

    register_tiny_qat(monkeypatch)
    torch.manual_seed(0)
    model = create_model(TINY_QAT_NAME)
    files = {"float": save_pretrained(model, tmp_path / "float.safetensors"),
             "float_onnx": export_onnx(model, tmp_path / "float.onnx", 64, 128)}
    calibration = create_dataset("synthetic", split="train", num=2, size=(64, 128), max_disp=24)
    files["int8"] = Path(quantize_onnx(files["float_onnx"], tmp_path / "float.int8.onnx",
                                       calibration_feeds([calibration[i] for i in range(2)], 64, 128),
                                       QuantizeOptions(per_channel=True)).output)
    with torch.no_grad():
        model.features[0].weight.mul_(1.5)
    files["tuned"] = save_pretrained(model, tmp_path / "tuned.safetensors")
    # a published-style file: a bare state dict that does not name its model
    files["bare"] = tmp_path / "bare.pth"
    torch.save(model.state_dict(), files["bare"])
    return files


def test_eval_prints_one_table_with_a_row_per_variant_and_writes_every_row(variant_files, tmp_path, capsys):
    out = tmp_path / "variants.json"
    code = main(["eval", "--variant", f"float={variant_files['float']}", "--variant",
                 f"PTQ int8={variant_files['int8']}", "--variant", f"tuned={variant_files['tuned']}", "--variant",
                 f"float onnx={variant_files['float_onnx']}",
                 *DATA, "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "synthetic: 2 pairs, 2 with ground truth; ΔEPE against 'float'" in printed
    document = json.loads(out.read_text())
    assert document["variants"] == [
        {"variant": "float", "runtime": "torch fp32", "file": str(variant_files["float"])},
        {"variant": "PTQ int8", "runtime": "onnxruntime int8", "file": str(variant_files["int8"])},
        {"variant": "tuned", "runtime": "torch fp32", "file": str(variant_files["tuned"])},
        {"variant": "float onnx", "runtime": "onnxruntime fp32", "file": str(variant_files["float_onnx"])},
    ]
    reports = document["results"][0]["variants"]
    epe = [r["all"]["epe"] for r in reports]
    assert len(reports[0]["per_pair"]) == 2
    # the float ONNX file scores as its PyTorch weights; the tuned weights score differently
    assert epe[3] == pytest.approx(epe[0], abs=1e-3) and abs(epe[2] - epe[0]) > 1e-3
    table = printed.split("ΔEPE against 'float'\n", 1)[1].splitlines()
    rows = table[2:6]
    assert [row[:10].rstrip() for row in rows] == ["float", "PTQ int8", "tuned", "float onnx"]
    assert f"{epe[1]:.4f}" in rows[1] and f"{epe[1] - epe[0]:+.4f}" in rows[1]
    # the first row is the single-model evaluation of the same file
    single = tmp_path / "single.json"
    assert main(["eval", "--model", TINY_QAT_NAME, "--pretrained", str(variant_files["float"]), *DATA,
                 "--out", str(single)]) == 0
    assert json.loads(single.read_text())["results"][0]["all"]["epe"] == pytest.approx(epe[0], abs=1e-6)


def test_a_file_that_does_not_name_its_model_needs_model(variant_files, capsys):
    """Also: --stage is --variant under its former name."""
    stage = f"published={variant_files['bare']}"
    assert main(["eval", "--stage", stage, *DATA]) == 2
    assert "the file does not name its model; add --model NAME" in capsys.readouterr().err
    assert main(["eval", "--model", TINY_QAT_NAME, "--stage", stage, *DATA]) == 0


@pytest.mark.parametrize(("extra", "message"), [
    (["--variant", "float"], "--variant 'float': expected LABEL=FILE"),
    (["--variant", "=x.onnx"], "--variant '=x.onnx': expected LABEL=FILE"),
    (["--variant", "int8=/no/such.onnx"], "--variant 'int8=/no/such.onnx': file /no/such.onnx not found"),
    (["--variant", "a={file}", "--onnx", "{file}"], "--variant gives each row its own file; it cannot be combined with "
                                                  "--onnx"),
    (["--variant", "a={file}", "--save-pred", "preds"], "cannot be combined with --save-pred"),
    (["--variant", "a={file}", "--variant", "a={file}"], "variant label 'a' is used twice"),
])
def test_variant_option_errors(tmp_path, capsys, extra, message):
    file = tmp_path / "net.onnx"
    file.write_bytes(b"")
    args = [item.format(file=file) for item in extra]
    assert main(["eval", *args, "--dataset", "synthetic", "--dataset-option", "num=1", "--quiet"]) == 2
    assert message in capsys.readouterr().err
