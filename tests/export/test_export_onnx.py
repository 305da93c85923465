"""export_onnx on a tiny network: static graph, profiles, parity in ONNX Runtime, fp16, external data, bad input."""

import onnx
import pytest
import torch

from edgestereo.errors import EdgeStereoError
from edgestereo.export.check import check_onnx
from edgestereo.export.exporter import export_onnx, verify_onnx
from edgestereo.models import create_model
from network_fixtures import assert_parity

HEIGHT, WIDTH = 32, 64
#: the tiny network on model.example_inputs (a 4 px and a 12 px plane) gives std ≈ 4 px
TINY_MIN_STD = 3.0


def _static_shape(value: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


def test_npu4d_round_trip_export_check_parity(tiny_model, tmp_path):
    path = export_onnx(tiny_model, tmp_path / "tiny.onnx", HEIGHT, WIDTH)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"]  # no temporary file left behind
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["left", "right"]
    assert [o.name for o in proto.graph.output] == ["disparity"]
    assert _static_shape(proto.graph.input[0]) == [1, 3, HEIGHT, WIDTH]
    assert _static_shape(proto.graph.output[0]) == [1, 1, HEIGHT, WIDTH]
    assert proto.opset_import[0].version >= 17
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert metadata["path"] == "deploy" and metadata["model"] == "tiny-test-stereo" and metadata["divisor"] == "4"

    report = check_onnx(path, "npu4d")
    assert report.ok, report.format()
    assert report.max_rank == 4 and report.op_histogram["Conv"] == 6  # 3 per view

    parity = verify_onnx(tiny_model, path)
    assert parity.torch_path == "deploy"
    assert_parity(parity, min_std=TINY_MIN_STD)


def test_export_restores_the_models_state(tiny_model, tmp_path):
    tiny_model.train()
    export_onnx(tiny_model, tmp_path / "a.onnx", HEIGHT, WIDTH, profile="npu4d")
    assert tiny_model.training and not tiny_model.is_deploy
    tiny_model.deploy(True)
    export_onnx(tiny_model, tmp_path / "b.onnx", HEIGHT, WIDTH, profile="generic")
    assert tiny_model.is_deploy and tiny_model.correlation.deploy_mode


def test_reference_path_for_generic_is_5d_and_fails_npu4d(tiny_model, tmp_path):
    path = export_onnx(tiny_model, tmp_path / "ref.onnx", HEIGHT, WIDTH, profile="generic")
    assert {p.key: p.value for p in onnx.load(str(path)).metadata_props}["path"] == "reference"
    npu = check_onnx(path, "npu4d")
    assert not npu.ok and npu.max_rank == 5
    assert any("rank 5" in v.reason and v.node.startswith("/correlation/") for v in npu.violations)
    assert check_onnx(path, "generic").ok
    assert check_onnx(path, "tensorrt").ok
    parity = verify_onnx(tiny_model, path)
    assert parity.torch_path == "reference"
    assert_parity(parity, min_std=TINY_MIN_STD)


def test_a_model_can_ask_for_the_deploy_path_on_tensorrt(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(type(tiny_model), "export_uses_deploy", lambda self, profile: True)
    path = export_onnx(tiny_model, tmp_path / "trt.onnx", HEIGHT, WIDTH, profile="tensorrt")
    assert check_onnx(path, "npu4d").ok


def test_fp16_keeps_float32_io_and_stays_close(tiny_model, tmp_path):
    path = export_onnx(tiny_model, tmp_path / "half.onnx", HEIGHT, WIDTH, fp16=True)
    proto = onnx.load(str(path))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in proto.graph.initializer)
    assert check_onnx(path, "npu4d").ok  # the converter's casts come out topologically sorted
    # measured: mean 6.5e-4 px, max 6.3e-3 px on an output of std 4.1 px; a constant output is 3.5 px off
    assert_parity(verify_onnx(tiny_model, path), mean_px=2e-3, max_px=0.05, min_std=TINY_MIN_STD)


def test_external_data_beside_the_graph(tiny_model, tmp_path):
    path = export_onnx(tiny_model, tmp_path / "ext.onnx", HEIGHT, WIDTH, external_data=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ext.onnx", "ext.onnx.data"]
    weights = onnx.load(str(path), load_external_data=False).graph.initializer
    assert any(init.data_location == onnx.TensorProto.EXTERNAL for init in weights)
    assert check_onnx(path, "generic").ok
    assert_parity(verify_onnx(tiny_model, path), min_std=TINY_MIN_STD)


def test_unsimplified_export_is_bigger_and_equivalent(tiny_model, tmp_path):
    plain = export_onnx(tiny_model, tmp_path / "plain.onnx", HEIGHT, WIDTH, simplify=False)
    slim = export_onnx(tiny_model, tmp_path / "slim.onnx", HEIGHT, WIDTH)
    assert len(onnx.load(str(slim)).graph.node) < len(onnx.load(str(plain)).graph.node)
    assert_parity(verify_onnx(tiny_model, plain), min_std=TINY_MIN_STD)


@pytest.mark.parametrize(("height", "width", "expected"), [
    (30, 64, "height 30 (nearest valid: 28 or 32)"),
    (32, 66, "width 66 (nearest valid: 64 or 68)"),
    (2, 64, "height 2 (nearest valid: 4)"),
])
def test_size_not_divisible_names_the_nearest_valid_sizes(tiny_model, tmp_path, height, width, expected):
    with pytest.raises(EdgeStereoError, match="multiples of 4") as error:
        export_onnx(tiny_model, tmp_path / "x.onnx", height, width)
    assert expected in str(error.value) and "tiny-test-stereo" in str(error.value)
    assert not any(tmp_path.iterdir())


def test_sgbm_is_refused(tmp_path):
    with pytest.raises(EdgeStereoError, match=r"'sgbm' cannot be exported to ONNX"):
        export_onnx(create_model("sgbm"), tmp_path / "sgbm.onnx", 32, 32)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("option", "match"), [({"profile": "npu"}, "unknown profile"),
                                               ({"opset": 13}, "opset 13 is not supported")])
def test_bad_options(tiny_model, tmp_path, option, match):
    with pytest.raises(EdgeStereoError, match=match):
        export_onnx(tiny_model, tmp_path / "x.onnx", HEIGHT, WIDTH, **option)


def test_verify_detects_a_mismatch(tiny_model, tmp_path):
    path = export_onnx(tiny_model, tmp_path / "tiny.onnx", HEIGHT, WIDTH)
    assert verify_onnx(tiny_model, path).within()
    with torch.no_grad():
        tiny_model.features[0].bias += 1.0  # the file no longer matches the weights
    assert not verify_onnx(tiny_model, path).within()
