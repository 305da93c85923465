"""GwcNet-g / GwcNet-gc: the published names and shapes, DataParallel checkpoints, the variant and
max-disparity refusals, grey input, deploy path parity, the four training outputs."""

import pytest
import torch

from edgestereo.errors import EdgeStereoError
from edgestereo.models import create_model
from volume3d_fixtures import calibrate_batchnorm, pair_tensors

# A sample of xy-guo/GwcNet's state-dict keys (without DataParallel's "module.") and their shapes.
PUBLISHED_KEYS = {
    "feature_extraction.firstconv.0.0.weight": (32, 3, 3, 3),
    "feature_extraction.firstconv.4.1.running_mean": (32,),
    "feature_extraction.layer1.2.conv2.0.weight": (32, 32, 3, 3),
    "feature_extraction.layer2.0.downsample.0.weight": (64, 32, 1, 1),
    "feature_extraction.layer2.15.conv1.0.0.weight": (64, 64, 3, 3),
    "feature_extraction.layer3.0.downsample.1.weight": (128,),
    "feature_extraction.layer4.2.conv2.1.num_batches_tracked": (),
    "dres0.2.1.running_var": (32,),
    "dres1.2.0.weight": (32, 32, 3, 3, 3),
    "dres2.conv1.0.0.weight": (64, 32, 3, 3, 3),
    "dres3.conv5.0.weight": (128, 64, 3, 3, 3),  # ConvTranspose3d: (in, out, …)
    "dres4.conv6.1.bias": (32,),
    "dres4.redir2.0.weight": (64, 64, 1, 1, 1),
    "classif0.0.0.weight": (32, 32, 3, 3, 3),
    "classif3.2.weight": (1, 32, 3, 3, 3),
}
VARIANT_KEYS = {
    "gwcnet-g": {"dres0.0.0.weight": (32, 40, 3, 3, 3)},
    "gwcnet-gc": {"dres0.0.0.weight": (32, 64, 3, 3, 3), "feature_extraction.lastconv.0.0.weight": (128, 320, 3, 3),
                  "feature_extraction.lastconv.2.weight": (12, 128, 1, 1)},
}
PARAMETERS = {"gwcnet-g": 6_518_560, "gwcnet-gc": 6_909_728}
SIZE = (64, 128)


@pytest.mark.parametrize("name", ["gwcnet-g", "gwcnet-gc"])
def test_state_dict_names_shapes_and_size(name):
    model = create_model(name)
    state = model.state_dict()
    expected = {**PUBLISHED_KEYS, **VARIANT_KEYS[name]}
    assert {key: tuple(state[key].shape) for key in expected} == expected
    assert ("feature_extraction.lastconv.2.weight" in state) == (name == "gwcnet-gc")
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name]
    assert model.config.max_disp == 192 and model.divisor == 16


@pytest.fixture(scope="module")
def published_gc(tmp_path_factory):
    """A GwcNet-gc and its checkpoint as xy-guo/GwcNet's main.py saves it: DataParallel state dict
    under "model", beside the Adam state and the epoch."""
    torch.manual_seed(0)
    model = calibrate_batchnorm(create_model("gwcnet-gc", max_disp=32), *SIZE)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    checkpoint = {"epoch": 15, "model": {f"module.{k}": v for k, v in model.state_dict().items()},
                  "optimizer": optimizer.state_dict()}
    path = tmp_path_factory.mktemp("gwcnet") / "checkpoint_000015.ckpt"
    torch.save(checkpoint, path)
    return model, path


def test_dataparallel_checkpoint_loads(published_gc):
    source, path = published_gc
    model = create_model("gwcnet-gc", pretrained=path, max_disp=32)
    left, right = pair_tensors(*SIZE)
    with torch.no_grad():
        expected = source(left, right)
        torch.testing.assert_close(model(left, right), expected)
    assert expected.std() > 0.5


def test_variant_mismatch_is_refused(published_gc, tmp_path):
    _, path = published_gc
    with pytest.raises(EdgeStereoError, match=r"holds gwcnet-gc weights.*but gwcnet-g was requested; load it as "
                                              r"gwcnet-gc"):
        create_model("gwcnet-g", pretrained=path)
    g_path = tmp_path / "g.ckpt"
    torch.save({"model": {f"module.{k}": v for k, v in create_model("gwcnet-g").state_dict().items()}}, g_path)
    with pytest.raises(EdgeStereoError, match=r"holds gwcnet-g weights.*load it as gwcnet-g"):
        create_model("gwcnet-gc", pretrained=g_path)


@pytest.mark.parametrize(("max_disp", "nearest"), [(100, "96 or 112"), (8, "16"), (200, "192 or 208")])
def test_max_disp_must_be_a_multiple_of_16(max_disp, nearest):
    with pytest.raises(EdgeStereoError, match=f"multiple of 16.*got {max_disp}; nearest valid: {nearest}"):
        create_model("gwcnet-g", max_disp=max_disp)


def test_grey_input_is_repeated_to_rgb():
    model = create_model("gwcnet-g", max_disp=16).eval()
    left, right = pair_tensors(32, 64)
    grey_left, grey_right = left.mean(1, keepdim=True), right.mean(1, keepdim=True)
    with torch.no_grad():
        torch.testing.assert_close(model(grey_left, grey_right),
                                   model(grey_left.expand(-1, 3, -1, -1), grey_right.expand(-1, 3, -1, -1)))


@pytest.mark.parametrize("name", [pytest.param("gwcnet-g", marks=pytest.mark.slow), "gwcnet-gc"])
def test_deploy_path_parity_at_128x256(name):
    torch.manual_seed(0)
    model = calibrate_batchnorm(create_model(name, max_disp=48), 128, 256)
    keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    left, right = pair_tensors(128, 256)
    with torch.no_grad():
        reference = model(left, right)
        deployed = model.deploy()(left, right)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == keys
    assert reference.std() > 0.5
    difference = (deployed - reference).abs()
    assert difference.mean() <= 1e-3 and difference.max() <= 1e-2


def test_training_returns_the_four_predictions():
    model = create_model("gwcnet-g", max_disp=16).eval()
    left, right = pair_tensors(32, 64)
    with torch.no_grad():
        outputs = model.forward_train(left, right)
        final = model(left, right)
    assert [tuple(d.shape) for d in outputs] == [(1, 1, 32, 64)] * 4
    torch.testing.assert_close(outputs[-1], final)
