"""StereoNet and GwcNet exported for TensorRT (5-D reference path, RT-Stereo style) and for the strict
4-D NPU profile (deploy path): each graph passes its profile's check and matches PyTorch in ONNX
Runtime at 128×256 with max disparity 48 and seeded random weights. Through the CLI as well."""

import onnx
import pytest
import torch

from edgestereo.apps.cli import main
from edgestereo.export.check import check_onnx
from edgestereo.export.exporter import export_onnx, verify_onnx
from edgestereo.models import create_model
from network_fixtures import assert_parity
from volume3d_fixtures import calibrate_batchnorm, pair_tensors, write_lightning_checkpoint

HEIGHT, WIDTH, MAX_DISP = 128, 256, 48
CASES = [
    pytest.param("stereonet", {"in_channels": 1}, "npu4d", id="stereonet-grey-npu4d"),
    pytest.param("stereonet", {"in_channels": 1}, "tensorrt", id="stereonet-grey-tensorrt"),
    # GwcNet exports take 20-40 s each on a 2-core CPU: `make test-slow`
    pytest.param("gwcnet-gc", {}, "npu4d", id="gwcnet-gc-npu4d", marks=pytest.mark.slow),
    pytest.param("gwcnet-gc", {}, "tensorrt", id="gwcnet-gc-tensorrt", marks=pytest.mark.slow),
    pytest.param("gwcnet-g", {}, "npu4d", id="gwcnet-g-npu4d", marks=pytest.mark.slow),
    pytest.param("gwcnet-g", {}, "tensorrt", id="gwcnet-g-tensorrt", marks=pytest.mark.slow),
]


def _tensorrt_hazards(path) -> list[str]:
    """What RT-Stereo had to patch out of GwcNet for TensorRT: output padding on transposed
    convolutions and Squeeze without explicit axes."""
    hazards = []
    for node in onnx.load(str(path)).graph.node:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "ConvTranspose" and any(attributes.get("output_padding", [])):
            hazards.append(f"{node.name}: output_padding {attributes['output_padding']}")
        if node.op_type == "Squeeze" and len(node.input) < 2 and "axes" not in attributes:
            hazards.append(f"{node.name}: Squeeze without axes")
    return hazards


@pytest.mark.parametrize(("name", "overrides", "profile"), CASES)
def test_export_checks_and_matches_pytorch(name, overrides, profile, tmp_path):
    torch.manual_seed(0)
    model = calibrate_batchnorm(create_model(name, max_disp=MAX_DISP, **overrides), HEIGHT, WIDTH)
    path = export_onnx(model, tmp_path / f"{name}-{profile}.onnx", HEIGHT, WIDTH, profile=profile)
    report = check_onnx(path, profile)
    assert report.ok, report.format()
    if profile == "npu4d":
        assert report.max_rank <= 4
        assert not model.is_deploy  # export restores the model's path
    else:
        assert report.max_rank == 5 and not _tensorrt_hazards(path)
    left, right = pair_tensors(HEIGHT, WIDTH, disparity=9)
    parity = verify_onnx(model, path, left, right)
    assert parity.torch_path == ("deploy" if profile == "npu4d" else "reference")
    assert_parity(parity)


def test_small_gwcnet_g_npu4d_export_matches_pytorch(tmp_path):
    """The default run's GwcNet ONNX parity: gwcnet-g at 64x128, max disparity 32, calibrated BatchNorm
    (unsaturated: thousands of distinct values), the 4-D deploy graph against PyTorch."""
    torch.manual_seed(0)
    model = calibrate_batchnorm(create_model("gwcnet-g", max_disp=32), 64, 128)
    path = export_onnx(model, tmp_path / "gwcnet-g.onnx", 64, 128, profile="npu4d")
    report = check_onnx(path, "npu4d")
    assert report.ok and report.max_rank <= 4, report.format()
    left, right = pair_tensors(64, 128, disparity=9)
    assert_parity(verify_onnx(model, path, left, right), min_std=0.5, min_distinct=500)


def test_cli_infer_with_a_lightning_checkpoint_and_export(tmp_path, capsys):
    """No model-specific code in the apps: a StereoNet_PyTorch checkpoint through infer and export."""
    import cv2

    torch.manual_seed(0)
    source = calibrate_batchnorm(create_model("stereonet", in_channels=1, max_disp=32, k_refinement_layers=1), 64, 128)
    hparams = {"in_channels": 1, "k_downsampling_layers": 3, "k_refinement_layers": 1, "candidate_disparities": 32}
    checkpoint = write_lightning_checkpoint(tmp_path / "stereonet.ckpt", source.state_dict(), hparams)
    left, right = pair_tensors(64, 128)
    for view, name in ((left, "left.png"), (right, "right.png")):
        cv2.imwrite(str(tmp_path / name), view[0].permute(1, 2, 0).numpy()[:, :, ::-1].astype("uint8"))
    assert main(["infer", str(tmp_path / "left.png"), str(tmp_path / "right.png"), "--model", "stereonet",
                 "--pretrained", str(checkpoint), "--device", "cpu", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "disparity.pfm").is_file()
    onnx_path = tmp_path / "stereonet.onnx"
    assert main(["export", "--model", "stereonet", "--pretrained", str(checkpoint), "--height", "64", "--width", "128",
                 "--profile", "npu4d", "--out", str(onnx_path), "--verify"]) == 0
    assert "parity" in capsys.readouterr().out
    assert main(["check-onnx", str(onnx_path), "--profile", "npu4d"]) == 0
    assert "max rank    4" in capsys.readouterr().out
    assert main(["export", "--model", "gwcnet-g", "--random-weights", "--max-disp", "40", "--height", "64",
                 "--width", "128", "--out", str(tmp_path / "bad.onnx")]) == 2
    assert "multiple of 16" in capsys.readouterr().err
