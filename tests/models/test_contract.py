"""Every registered model honours the one contract; a new model is tested by being registered."""

import dataclasses

import numpy as np
import pytest
import torch

import edgestereo
from edgestereo.errors import EdgeStereoError
from edgestereo.models import StereoModel, create_model, list_models, load_model, save_pretrained
from network_fixtures import calibrated


def _inputs(model: StereoModel, batch: int = 2):
    side = max(32, model.divisor)
    left, right = model.example_inputs(2 * side, 4 * side, batch=batch)
    return left, right


def _few_steps(name: str) -> dict:
    """Two refinement steps for iterative models (a config field ``iters``): the contract does not
    depend on the count, and 32 published steps would make this file the slowest in the suite."""
    with torch.device("meta"):
        config = create_model(name).config
    fields = {f.name for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else set()
    return {key: 2 for key in ("iters", "train_iters") if key in fields}


@pytest.fixture(params=list_models())
def model(request) -> StereoModel:
    torch.manual_seed(0)
    return create_model(request.param, **_few_steps(request.param))


def test_forward_shape_and_values(model):
    left, right = _inputs(model)
    with torch.no_grad():
        out = model(left, right)
    assert out.shape == (2, 1, *left.shape[-2:]) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert model.model_name in list_models()


@pytest.mark.parametrize("name", list_models())
def test_deploy_keeps_state_dict_and_output(name):
    # calibrated BatchNorm: a fresh GwcNet saturates its softmax (exact half-integers, deploy − reference
    # exactly 0), which would make this comparison trivially true
    model = calibrated(name, **_few_steps(name))
    left, right = _inputs(model)
    keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    with torch.no_grad():
        reference = model(left, right)
        deployed = model.deploy()(left, right)
    assert model.is_deploy
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == keys
    if model.exportable:  # a network: its output must vary for the comparison to mean anything
        assert reference.std() >= 0.1 and len(torch.unique(reference.round(decimals=3))) >= 500, name
    difference = (deployed - reference).abs()
    assert difference.mean() <= 1e-3 and difference.max() <= 2e-2, (difference.mean(), difference.max())
    model.deploy(False)
    assert not model.is_deploy


def test_training_step_has_gradients(model):
    if not model.exportable:
        pytest.skip(f"{model.model_name} is not a trainable network")
    model.train()
    left, right = _inputs(model, batch=1)
    predictions = model.forward_train(left, right)
    # a list of predictions, or a dict of them (e.g. {"left": [...], "right": [...]})
    entries = predictions if isinstance(predictions, list) else list(predictions.values())
    tensors = [t for entry in entries for t in (entry if isinstance(entry, (list, tuple)) else [entry])]
    loss = sum(p.float().mean() for p in tensors if isinstance(p, torch.Tensor))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and any(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_save_and_load_round_trip(model, tmp_path):
    path = save_pretrained(model, tmp_path / "weights.safetensors")
    assert path.with_suffix(".json").is_file()
    loaded = load_model(path)
    assert loaded.model_name == model.model_name and loaded.config == model.config
    saved, restored = model.state_dict(), loaded.state_dict()
    assert saved.keys() == restored.keys()
    for key, value in saved.items():
        assert torch.equal(restored[key], value), key
    left, right = _inputs(model, batch=1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(left, right), model.eval()(left, right))


def test_registry_errors():
    with pytest.raises(EdgeStereoError, match=r"unknown model 'sgbn'.*Did you mean sgbm"):
        create_model("sgbn")
    with pytest.raises(EdgeStereoError, match=r"unknown option.*not_a_field"):
        create_model("sgbm", not_a_field=1)


def test_public_api_surface():
    expected = {"EdgeStereoError", "RerunLogger", "StereoCalibration", "StereoModel", "StereoResult", "create_model",
                "list_models", "load_model", "predict", "save_pretrained"}
    assert expected <= set(edgestereo.__all__)
    for name in expected:
        assert getattr(edgestereo, name) is not None
    with pytest.raises(AttributeError):
        edgestereo.not_there  # noqa: B018


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, edgestereo; print(int('torch' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "0"


def test_shape_errors():
    model = create_model("sgbm")
    with pytest.raises(EdgeStereoError, match="shapes differ"):
        model(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(EdgeStereoError, match=r"\(B,3,H,W\)"):
        model(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))
    assert np.isfinite(model(torch.zeros(1, 3, 8, 40), torch.zeros(1, 3, 8, 40)).numpy()).all()
