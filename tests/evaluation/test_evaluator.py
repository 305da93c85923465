"""The evaluator (any predictor × any data set) and `edgestereo eval`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgestereo.apps.cli import main
from edgestereo.data import create_dataset
from edgestereo.data.io import read_disparity
from edgestereo.errors import EdgeStereoError
from edgestereo.evaluation.evaluator import evaluate, format_report, prediction_name
from edgestereo.evaluation.metrics import disparity_metrics

SYNTHETIC = {"num": 3, "size": (48, 96), "max_disp": 24, "seed": 5}


@pytest.fixture(scope="module")
def synthetic():
    return create_dataset("synthetic", split="test", **SYNTHETIC)


class Oracle:
    """Returns the ground truth of the pair it is shown, plus a fixed offset."""

    name = "oracle"

    def __init__(self, dataset, offset: float = 0.0):
        self.truths = {dataset[i]["left"].tobytes(): dataset[i]["disp"] for i in range(len(dataset))}
        self.offset = offset

    def __call__(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return self.truths[left.tobytes()] + self.offset


class Shifted:
    """A predictor with a known error pattern: truth + 2 px on the left half of every image."""

    name = "shifted"

    def __init__(self, dataset):
        self.oracle = Oracle(dataset)

    def __call__(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        out = self.oracle(left, right).copy()
        out[:, : out.shape[1] // 2] += 2.0
        return out


def test_oracle_scores_zero_and_a_biased_predictor_scores_its_bias(synthetic):
    perfect = evaluate(Oracle(synthetic), synthetic)
    assert perfect["pairs"] == perfect["pairs_scored"] == 3
    assert perfect["all"]["epe"] == 0.0 and perfect["all"]["d1"] == 0.0
    biased = evaluate(Oracle(synthetic, offset=1.5), synthetic)
    assert biased["all"]["epe"] == pytest.approx(1.5, abs=1e-5)
    assert biased["all"]["bad1"] == 100.0 and biased["all"]["bad2"] == 0.0


def test_metrics_are_pooled_over_pixels(synthetic):
    predictor = Shifted(synthetic)
    report = evaluate(predictor, synthetic)
    samples = [synthetic[i] for i in range(len(synthetic))]
    predictions = np.concatenate([predictor(s["left"], s["right"]).ravel() for s in samples])
    truths = np.concatenate([s["disp"].ravel() for s in samples])
    valid = np.concatenate([s["valid"].ravel() for s in samples])
    pooled = disparity_metrics(predictions, truths, valid)
    for key in ("epe", "bad0.5", "bad1", "bad3", "d1", "valid_px"):
        assert report["all"][key] == pytest.approx(pooled[key], rel=1e-9)
    assert [entry["name"] for entry in report["per_pair"]] == ["000000", "000001", "000002"]
    assert report["runtime_ms"]["median"] >= 0


def test_noc_mask_and_max_disp(synthetic):
    noc = create_dataset("synthetic", split="test", noc=True, **SYNTHETIC)
    report = evaluate(Shifted(synthetic), synthetic, noc_dataset=noc)
    assert report["noc"]["valid_px"] < report["all"]["valid_px"]
    capped = evaluate(Shifted(synthetic), synthetic, max_disp=8.0)
    assert capped["all"]["valid_px"] < report["all"]["valid_px"]
    with pytest.raises(EdgeStereoError, match="not have the same pairs"):
        evaluate(Shifted(synthetic), synthetic, noc_dataset=create_dataset("synthetic", **{**SYNTHETIC, "num": 2}))


@pytest.mark.parametrize("fmt", ["pfm", "kitti"])
def test_predictions_are_saved_for_a_submission(synthetic, tmp_path, fmt):
    report = evaluate(Oracle(synthetic), synthetic, save_dir=tmp_path, save_format=fmt, limit=2)
    assert report["pairs"] == 2
    expected = tmp_path / ("disp_0/000001.png" if fmt == "kitti" else "000001.pfm")
    assert report["per_pair"][1]["file"] == str(expected)
    np.testing.assert_allclose(read_disparity(expected), synthetic[1]["disp"], atol=1 / 256 if fmt == "kitti" else 0)


def test_pairs_without_ground_truth_are_predicted_but_not_scored(synthetic):
    class NoTruth:
        name = "no-gt"

        def __len__(self):
            return 2

        def __getitem__(self, index):
            sample = dict(synthetic[index])
            sample["valid"] = np.zeros_like(sample["valid"])
            return sample

    report = evaluate(Oracle(synthetic), NoTruth())
    assert report["pairs"] == 2 and report["pairs_scored"] == 0 and report["all"] is None
    assert "no ground truth" in format_report(report)


def test_prediction_names_follow_the_layouts():
    assert prediction_name({"scene": "Adirondack"}, 3) == "Adirondack"
    assert prediction_name({"files": {"left": "/k/training/image_2/000007_10.png"}}, 7) == "000007_10"
    assert prediction_name({}, 12) == "000012"


def test_eval_cli_table_json_and_kitti_pngs(tmp_path, capsys):
    out = tmp_path / "results.json"
    code = main(["eval", "--model", "sgbm", "--max-disp", "32", "--dataset", "synthetic", "--root", "-",
                 "--split", "test", "--dataset-option", "num=2", "--dataset-option", "size=[48,96]",
                 "--dataset-option", "max_disp=24", "--out", str(out), "--save-pred", str(tmp_path / "pred"),
                 "--save-format", "kitti", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "synthetic: 2 pairs, 2 with ground truth" in printed and "noc" in printed and "runtime per pair" in printed
    document = json.loads(out.read_text())
    assert document["predictor"] == "sgbm"
    result = document["results"][0]
    assert result["all"]["epe"] > 0 and result["noc"]["epe"] <= result["all"]["epe"] + 1e-9
    assert sorted(p.name for p in (tmp_path / "pred" / "synthetic" / "disp_0").iterdir()) == ["000000.png",
                                                                                               "000001.png"]


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "kitti2015", "--root", "/no/such/folder"], "--root /no/such/folder: folder not found"),
    (["--dataset", "synthetic", "--dataset", "kitti2015", "--root", "-"], "2 --dataset but 1 --root"),
    (["--dataset", "synthetc"], "unknown data set 'synthetc'. Did you mean synthetic"),
    (["--dataset", "synthetic", "--dataset-option", "nmu=3"], "unknown synthetic option"),
    (["--dataset", "synthetic", "--limit", "0"], "--limit must be ≥ 1"),
])
def test_eval_cli_user_errors(args, message, capsys):
    assert main(["eval", "--model", "sgbm", *args]) == 2
    assert message in capsys.readouterr().err


def test_eval_cli_runs_an_onnx_file_through_the_same_interface(tmp_path, capsys):
    """--onnx and the PyTorch model it was exported from score the same."""
    import torch

    from edgestereo.export.exporter import export_onnx
    from edgestereo.models import create_model, save_pretrained

    torch.manual_seed(0)
    model = create_model("stereonet-plus-small", max_disp=32)
    weights = save_pretrained(model, tmp_path / "net.safetensors")
    onnx_file = export_onnx(model, tmp_path / "net.onnx", 64, 128)
    data = ["--dataset", "synthetic", "--dataset-option", "num=2", "--dataset-option", "size=[64,128]",
            "--dataset-option", "max_disp=24", "--quiet"]
    assert main(["eval", "--onnx", str(onnx_file), *data, "--out", str(tmp_path / "onnx.json")]) == 0
    assert main(["eval", "--model", "stereonet-plus-small", "--pretrained", str(weights), *data,
                 "--out", str(tmp_path / "torch.json")]) == 0
    capsys.readouterr()
    onnx_epe, torch_epe = (json.loads((tmp_path / f"{k}.json").read_text())["results"][0]["all"]["epe"]
                           for k in ("onnx", "torch"))
    assert onnx_epe == pytest.approx(torch_epe, abs=1e-3)
