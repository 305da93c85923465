"""A new model family is one file (toy_family.py): registered for a test only, it runs through
`infer`, `export` and `eval` with its weights, its checkpoint adapter and its training loss, and
the weights rule holds for it as for the shipped families."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgestereo.apps.cli import main
from edgestereo.data.io import read_pfm, write_image
from edgestereo.models import _registry, create_model, list_models, save_pretrained
from stereo_fixtures import shifted_pair

FAMILY_FILE = Path(__file__).with_name("toy_family.py")
EVAL_DATA = ["--dataset", "synthetic", "--dataset-option", "num=2", "--dataset-option", "size=[32,64]",
             "--dataset-option", "max_disp=16", "--quiet"]


def register_toy_family(monkeypatch: pytest.MonkeyPatch) -> None:
    """Import the family file as edgestereo imports the files of edgestereo/models/, into a copy of
    the registry that ``monkeypatch`` puts back afterwards."""
    _registry.list_models()  # the shipped families first
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    spec = importlib.util.spec_from_file_location("toy_family", FAMILY_FILE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)


@pytest.fixture
def toy(monkeypatch, tmp_path) -> dict[str, Path]:
    """The family registered, a pair on disk, trained-looking weights and a published-style file."""
    register_toy_family(monkeypatch)
    left, right = shifted_pair(32, 64, disparity=4)
    write_image(tmp_path / "left.png", left)
    write_image(tmp_path / "right.png", right)
    torch.manual_seed(0)
    model = create_model("toy-stereo")
    published = tmp_path / "published.pth"
    torch.save({k.replace("features.", "backbone.", 1): v for k, v in model.state_dict().items()}, published)
    return {"pair": [str(tmp_path / "left.png"), str(tmp_path / "right.png")],
            "weights": save_pretrained(model, tmp_path / "toy.safetensors"), "published": published}


def test_registered_for_the_test_only():
    with pytest.MonkeyPatch.context() as patch:
        register_toy_family(patch)
        assert {"toy-stereo", "toy-stereo-wide"} <= set(list_models())
    assert "toy-stereo" not in list_models()


def test_infer_export_and_eval_work_with_a_family_from_one_file(toy, tmp_path, capsys):
    weights = str(toy["weights"])
    # the weights file names its model: no --model needed
    assert main(["infer", *toy["pair"], "--pretrained", weights, "--out", str(tmp_path / "torch")]) == 0
    assert "toy-stereo" in capsys.readouterr().out
    onnx_file = tmp_path / "toy.onnx"
    assert main(["export", "--pretrained", weights, "--height", "32", "--width", "64", "--out", str(onnx_file),
                 "--verify"]) == 0
    printed = capsys.readouterr().out
    assert "ok: fits npu4d" in printed and printed.rstrip().endswith("ok")
    assert main(["infer", *toy["pair"], "--onnx", str(onnx_file), "--out", str(tmp_path / "ort")]) == 0
    torch_disparity = read_pfm(tmp_path / "torch" / "disparity.pfm")
    assert np.abs(read_pfm(tmp_path / "ort" / "disparity.pfm") - torch_disparity).max() <= 1e-3

    out = tmp_path / "eval.json"
    assert main(["eval", "--variant", f"float={weights}", "--variant", f"onnx={onnx_file}", *EVAL_DATA,
                 "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["variants"]
    assert [row["runtime"] for row in rows] == ["torch fp32", "onnxruntime fp32"]


def test_its_checkpoint_adapter_and_its_loss_come_from_its_file(toy, tmp_path):
    from edgestereo.training.losses import MultiScaleSmoothL1Loss, published_loss

    assert main(["infer", *toy["pair"], "--model", "toy-stereo", "--pretrained", str(toy["published"]),
                 "--out", str(tmp_path / "published")]) == 0
    assert main(["infer", *toy["pair"], "--pretrained", str(toy["weights"]), "--out", str(tmp_path / "own")]) == 0
    np.testing.assert_array_equal(read_pfm(tmp_path / "published" / "disparity.pfm"),
                                  read_pfm(tmp_path / "own" / "disparity.pfm"))
    assert published_loss(create_model("toy-stereo")) == MultiScaleSmoothL1Loss(weights=(1.0,), max_disp=32.0)


def test_the_weights_rule_holds_for_it(toy, tmp_path, capsys):
    code = main(["infer", *toy["pair"], "--model", "toy-stereo-wide", "--out", str(tmp_path / "none")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "toy-stereo-wide ships no weights" in err
    assert "--pretrained" in err and not (tmp_path / "none" / "disparity.pfm").exists()
    assert main(["infer", *toy["pair"], "--model", "toy-stereo-wide", "--random-weights",
                 "--out", str(tmp_path / "random")]) == 0
