"""The weights that ship inside the package: present, small, loadable, and the default model's."""

import json
from pathlib import Path

import numpy as np
import pytest

from edgestereo.api import DEFAULT_MODEL
from edgestereo.data.datasets import create_dataset
from edgestereo.errors import EdgeStereoError, WeightsRequiredError
from edgestereo.models import create_model, get_model_entry, list_models, resolve_weights
from edgestereo.models._factory import packaged_weights_path
from edgestereo.runtime.predictor import TorchPredictor

SHIPPED = [name for name in list_models() if get_model_entry(name).packaged_weights]


def test_the_default_model_ships_weights():
    assert DEFAULT_MODEL in SHIPPED
    assert resolve_weights(DEFAULT_MODEL) is True


def test_the_weights_rule():
    """Given weights, else packaged ones, else a refusal naming --pretrained unless an untrained
    network is asked for; a classical method needs none."""
    assert resolve_weights(DEFAULT_MODEL, "mine.safetensors") == Path("mine.safetensors")
    assert resolve_weights(DEFAULT_MODEL, random_weights=True) is None
    assert resolve_weights("sgbm") is None
    assert resolve_weights("raft-stereo-realtime", random_weights=True) is None
    with pytest.raises(WeightsRequiredError, match=r"raft-stereo-realtime ships no weights.*--pretrained"):
        resolve_weights("raft-stereo-realtime")
    with pytest.raises(EdgeStereoError, match="exclude each other"):
        resolve_weights(DEFAULT_MODEL, "mine.safetensors", random_weights=True)


@pytest.mark.parametrize("name", SHIPPED)
def test_packaged_file_is_small_and_describes_its_network(name):
    path = packaged_weights_path(get_model_entry(name))
    assert path.stat().st_size < 20 * 2**20
    meta = json.loads(Path(path).with_suffix(".json").read_text())
    model = create_model(name, pretrained=True)
    assert meta["model"] == name
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()} == vars(model.config)


def test_a_model_without_packaged_weights_says_which_have_them():
    with pytest.raises(EdgeStereoError, match=f"models with weights: .*{DEFAULT_MODEL}"):
        create_model("stereonet", pretrained=True)


def test_shipped_default_model_has_learned_stereo():
    """On held-out synthetic pairs (a seed and size training never saw) the shipped weights are far
    better than the same network untrained: they are trained weights, loaded the right way round."""
    pairs = create_dataset("synthetic", split="test", num=2, size=(192, 320), max_disp=96, seed=11)
    epe = {}
    for label, weights in (("shipped", True), ("untrained", None)):
        predict = TorchPredictor(create_model(DEFAULT_MODEL, pretrained=weights))
        errors = [np.abs(predict(s["left"], s["right"]) - s["disp"])[s["valid"]] for s in pairs]
        epe[label] = float(np.concatenate(errors).mean())
    assert epe["shipped"] < 0.5 * epe["untrained"], epe


#: docs/default-model.md and the README quote these (benchmarks/eval_default_model.py prints them): the
#: packaged default model on the motorcycle pair, every pixel with ground truth.
DOCUMENTED_MOTORCYCLE = {"epe": 1.713, "bad2": 15.11, "bad3": 11.69}


def test_the_documented_motorcycle_figures_of_the_default_model():
    from edgestereo.data.samples import load_motorcycle
    from edgestereo.evaluation.metrics import disparity_metrics

    left, right, gt = load_motorcycle()
    predicted = TorchPredictor(create_model(DEFAULT_MODEL, pretrained=True))(left, right)
    metrics = disparity_metrics(predicted, gt, np.isfinite(gt))
    assert metrics["valid_px"] == 343_274
    for key, documented in DOCUMENTED_MOTORCYCLE.items():
        # the documents round to 3 (EPE) or 2 (percentages) decimals
        assert metrics[key] == pytest.approx(documented, abs=5e-4 if key == "epe" else 5e-3), key
