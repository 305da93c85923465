"""StereoNet: the published architecture (names, shapes, parameter counts), Lightning checkpoints
read safely without Lightning, grey/colour handling, deploy path parity, training outputs."""

import os
import subprocess
import sys

import pytest
import torch

from edgestereo.errors import EdgeStereoError, ReadError
from edgestereo.models import create_model
from edgestereo.models.blocks.image import rgb_to_grey
from volume3d_fixtures import calibrate_batchnorm, pair_tensors, write_lightning_checkpoint

# Trainable parameters of StereoNet_PyTorch's own tests (tests/conftest.py), in_channels=3.
PUBLISHED_PARAMETER_COUNTS = [((3, 1), 398978), ((4, 1), 424610), ((3, 3), 624644), ((4, 3), 650276)]

# A sample of StereoNet_PyTorch's state-dict keys with their shapes (in_channels=1, k=3/3).
PUBLISHED_KEYS = {
    "feature_extractor.net.segment_0_conv_0.weight": (32, 1, 5, 5),
    "feature_extractor.net.segment_0_conv_2.bias": (32,),
    "feature_extractor.net.segment_1_res_5.conv_2.weight": (32, 32, 3, 3),
    "feature_extractor.net.segment_1_res_5.batch_norm_2.num_batches_tracked": (),
    "feature_extractor.net.segment_2_conv_0.weight": (32, 32, 3, 3),
    "cost_volumizer.net.segment_0_conv_0.weight": (32, 32, 3, 3, 3),
    "cost_volumizer.net.segment_0_bn_3.running_var": (32,),
    "cost_volumizer.net.segment_1_conv_0.weight": (1, 32, 3, 3, 3),
    "cost_volumizer.net.segment_1_conv_0.bias": (1,),
    "refiners.0.net.segment_0_conv_0.weight": (32, 2, 3, 3),
    "refiners.1.net.segment_1_res_3.conv_1.weight": (32, 32, 3, 3),
    "refiners.2.net.segment_1_res_5.batch_norm_1.running_mean": (32,),
    "refiners.2.net.segment_2_conv_0.weight": (1, 32, 3, 3),
}
SIZE = (64, 128)


@pytest.mark.parametrize(("layers", "count"), PUBLISHED_PARAMETER_COUNTS)
def test_parameter_counts_match_published(layers, count):
    model = create_model("stereonet", k_downsampling_layers=layers[0], k_refinement_layers=layers[1])
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == count


def test_state_dict_names_and_shapes_match_published():
    state = create_model("stereonet", in_channels=1).state_dict()
    assert {key: tuple(state[key].shape) for key in PUBLISHED_KEYS} == PUBLISHED_KEYS
    # a ResBlock holds 2 conv weights and 2·5 batch-norm entries: features 3·2 + 6·12 + 2,
    # cost filter 4·(2 + 5) + 2, refiners 3·(2 + 6·12 + 2)
    assert len(state) == 80 + 30 + 228


def test_forward_and_divisor():
    model = create_model("stereonet", max_disp=48, k_downsampling_layers=4)
    assert model.divisor == 16 and model.num_candidates == 3
    left, right = pair_tensors(*SIZE)
    with torch.no_grad():
        disparity = model(left, right)
    assert disparity.shape == (1, 1, *SIZE) and torch.isfinite(disparity).all()
    with pytest.raises(EdgeStereoError, match="multiple of 16"):
        model(left[..., :120], right[..., :120])


@pytest.fixture(scope="module")
def keystone_like(tmp_path_factory):
    """A grey StereoNet and its Lightning checkpoint as the KeystoneDepth one is laid out (max_disp 48
    instead of 256 to keep the test small)."""
    torch.manual_seed(0)
    model = calibrate_batchnorm(create_model("stereonet", in_channels=1, max_disp=48), *SIZE)
    hparams = {"in_channels": 1, "k_downsampling_layers": 3, "k_refinement_layers": 3, "candidate_disparities": 48,
               "feature_extractor_filters": 32, "cost_volumizer_filters": 32}
    path = tmp_path_factory.mktemp("stereonet") / "epoch=21-step=696366.ckpt"
    return model, write_lightning_checkpoint(path, model.state_dict(), hparams)


def test_lightning_checkpoint_gives_architecture_and_weights(keystone_like):
    source, path = keystone_like
    model = create_model("stereonet", pretrained=path)
    assert model.config.in_channels == 1 and model.config.max_disp == 48
    assert model.mean == (111.5684, 113.6528) and model.std == (61.9625, 62.0313)
    left, right = pair_tensors(*SIZE)
    with torch.no_grad():
        torch.testing.assert_close(model(left, right), source(left, right))


def test_lightning_checkpoint_loads_without_lightning(keystone_like):
    _, path = keystone_like
    code = (
        "import sys\n"
        "from edgestereo.models import create_model\n"
        f"model = create_model('stereonet', pretrained={str(path)!r})\n"
        "assert model.config.in_channels == 1\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


class _RunsCode:
    """What an untrusted pickle may carry: unpickling it would call os.mkdir."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.mkdir, (self.target,)


def test_checkpoint_pickling_code_is_refused(keystone_like, tmp_path):
    source, _ = keystone_like
    marker = tmp_path / "was-run"
    hparams = {"in_channels": 1, "candidate_disparities": 48, "callback": _RunsCode(str(marker))}
    path = write_lightning_checkpoint(tmp_path / "evil.ckpt", source.state_dict(), hparams)
    with pytest.raises(ReadError, match=r"refused to load.*(posix|os)\.mkdir"):
        create_model("stereonet", pretrained=path)
    assert not marker.exists()


def test_requested_configuration_disagreeing_with_checkpoint(keystone_like):
    _, path = keystone_like
    with pytest.raises(EdgeStereoError, match=r"trained with in_channels=1 but in_channels=3 was requested"):
        create_model("stereonet", pretrained=path, in_channels=3)
    with pytest.raises(EdgeStereoError, match=r"k_refinement_layers=3 but k_refinement_layers=2"):
        create_model("stereonet", pretrained=path, k_refinement_layers=2)
    # the candidate range is free: the 3-D filter slides along disparity
    assert create_model("stereonet", pretrained=path, max_disp=96).config.max_disp == 96


def test_older_checkpoint_without_in_channels(tmp_path):
    """The SceneFlow checkpoint predates the in_channels hyper-parameter; its first conv says RGB."""
    source = create_model("stereonet", max_disp=48, k_refinement_layers=1)
    hparams = {"k_downsampling_layers": 3, "k_refinement_layers": 1, "candidate_disparities": 48}
    path = write_lightning_checkpoint(tmp_path / "sceneflow.ckpt", source.state_dict(), hparams)
    model = create_model("stereonet", pretrained=path)
    assert model.config.in_channels == 3 and model.config.k_refinement_layers == 1
    assert model.mean == (127.5,) * 6


def test_colour_to_grey_model_and_grey_to_colour_model():
    left, right = pair_tensors(*SIZE)
    grey_model = create_model("stereonet", in_channels=1, max_disp=32).eval()
    colour_model = create_model("stereonet", max_disp=32).eval()
    with torch.no_grad():
        # a 1-channel model converts colour to BT.601 luma
        torch.testing.assert_close(grey_model(left, right), grey_model(rgb_to_grey(left), rgb_to_grey(right)))
        # a 3-channel model repeats a grey view
        grey_left, grey_right = rgb_to_grey(left), rgb_to_grey(right)
        torch.testing.assert_close(colour_model(grey_left, grey_right),
                                   colour_model(grey_left.expand(-1, 3, -1, -1), grey_right.expand(-1, 3, -1, -1)))
    with pytest.raises(EdgeStereoError, match=r"\(B,3,H,W\) or \(B,1,H,W\)"):
        colour_model(left[:, :2], right[:, :2])


def test_deploy_path_parity_at_128x256():
    torch.manual_seed(0)
    model = calibrate_batchnorm(create_model("stereonet", max_disp=48), 128, 256)
    keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    left, right = pair_tensors(128, 256, batch=2)
    with torch.no_grad():
        reference = model(left, right)
        deployed = model.deploy()(left, right)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == keys
    assert reference.std() > 0.5  # a disparity field, not a saturated constant
    difference = (deployed - reference).abs()
    assert difference.mean() <= 1e-3 and difference.max() <= 1e-2


def test_training_predicts_left_and_right_pyramids():
    model = create_model("stereonet", max_disp=32, k_refinement_layers=2).eval()
    left, right = pair_tensors(*SIZE)
    with torch.no_grad():
        outputs = model.forward_train(left, right)
        final = model(left, right)
    assert set(outputs) == {"left", "right"}
    for side in ("left", "right"):
        assert [tuple(d.shape) for d in outputs[side]] == [(1, 1, *SIZE)] * 3
    torch.testing.assert_close(outputs["left"][-1], final)
    assert (outputs["right"][-1] - final).abs().max() > 0


@pytest.mark.parametrize(("overrides", "message"), [
    ({"max_disp": 8}, r"fewer than 2 candidate disparities.*max_disp ≥ 15"),
    ({"in_channels": 2}, "in_channels must be 1 .grey. or 3"),
    ({"k_refinement_layers": 0}, "must be ≥ 1"),
    ({"in_channels": 1, "mean": (100.0, 100.0, 100.0)}, "mean needs 2 values"),
])
def test_bad_configuration(overrides, message):
    with pytest.raises(EdgeStereoError, match=message):
        create_model("stereonet", **overrides)
