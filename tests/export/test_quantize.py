"""INT8 post-training quantization on the tiny test network: QDQ output, npu4d check, parity with
float, options, layer groups, sensitivity analysis, and each bad input of the issue."""

import numpy as np
import onnx
import pytest

from edgestereo.errors import EdgeStereoError
from edgestereo.export.check import check_onnx
from edgestereo.export.exporter import export_onnx
from edgestereo.quant.ptq import (
    QuantizeOptions,
    analyze_sensitivity,
    calibration_feeds,
    is_quantized,
    layer_groups,
    match_nodes,
    quantize_onnx,
)
from edgestereo.quant.scoring import fit_sample, score_onnx
from edgestereo.runtime.onnx_predictor import OnnxPredictor
from stereo_fixtures import shifted_pair

HEIGHT, WIDTH = 32, 64


def _samples(count, height=HEIGHT, width=WIDTH, disparity=4):
    samples = []
    for seed in range(count):
        left, right = shifted_pair(height, width, disparity=disparity, seed=seed)
        samples.append({"left": left, "right": right, "disp": np.full((height, width), disparity, np.float32),
                        "valid": np.ones((height, width), bool)})
    return samples


@pytest.fixture
def float_onnx(tiny_model, tmp_path):
    return export_onnx(tiny_model, tmp_path / "tiny.onnx", HEIGHT, WIDTH)


def test_quantized_file_is_qdq_passes_npu4d_and_stays_close_to_float(float_onnx, tmp_path):
    samples = _samples(4)
    out = tmp_path / "tiny.int8.onnx"
    report = quantize_onnx(float_onnx, out, calibration_feeds(samples, HEIGHT, WIDTH), requested_samples=4)
    assert report.num_samples == 4 and not report.notes and report.quantized_nodes > 0
    assert is_quantized(out) and not is_quantized(float_onnx)
    assert check_onnx(out, "npu4d").ok, check_onnx(out, "npu4d").format()
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert metadata["precision"] == "int8" and metadata["model"] == "tiny-test-stereo"
    left, right = samples[0]["left"], samples[0]["right"]
    float_disp, int8_disp = OnnxPredictor(float_onnx)(left, right), OnnxPredictor(out)(left, right)
    # the tiny network's disparity spans 0..8 px; int8 must track it, not reproduce it exactly
    assert np.abs(float_disp - int8_disp).mean() < 0.5
    assert not np.array_equal(float_disp, int8_disp)


@pytest.mark.parametrize("options", [
    QuantizeOptions(method="entropy"),
    QuantizeOptions(method="percentile", percentile=99.9),
    QuantizeOptions(per_channel=True, activation_type="int8"),
    QuantizeOptions(reduce_range=True),
])
def test_every_method_and_type_writes_a_checked_file(float_onnx, tmp_path, options):
    out = tmp_path / "q.onnx"
    quantize_onnx(float_onnx, out, calibration_feeds(_samples(2), HEIGHT, WIDTH), options)
    assert check_onnx(out, "npu4d").ok
    graph = onnx.load(str(out)).graph
    initializers = {init.name: init for init in graph.initializer}
    # activations go through QuantizeLinear; its zero point's type is the activation type
    activation_types = {initializers[n.input[2]].data_type for n in graph.node if n.op_type == "QuantizeLinear"}
    expected = onnx.TensorProto.INT8 if options.activation_type == "int8" else onnx.TensorProto.UINT8
    assert activation_types == {expected}


def test_keep_float_leaves_the_matched_nodes_unquantized(float_onnx, tmp_path):
    out = tmp_path / "q.onnx"
    # the tiny network runs its features on each view: the two Convs share one weight, and both must
    # stay float for the weight to stay float
    options = QuantizeOptions(keep_float=("/features/features.4*",))
    report = quantize_onnx(float_onnx, out, calibration_feeds(_samples(2), HEIGHT, WIDTH), options)
    assert report.kept_float == {"/features/features.4*": ["/features/features.4/Conv", "/features/features.4_1/Conv"]}
    graph = onnx.load(str(out)).graph
    initializers = {i.name for i in graph.initializer}
    for name in ("/features/features.4/Conv", "/features/features.4_1/Conv"):
        conv = next(n for n in graph.node if n.name == name)
        assert conv.input[1] in initializers and conv.input[2] in initializers  # float weight and bias
    conv0 = next(n for n in graph.node if n.name == "/features/features.0/Conv")
    assert conv0.input[1] not in initializers  # the others read a DequantizeLinear


def test_fewer_calibration_samples_than_asked_are_used_and_reported(float_onnx, tmp_path):
    report = quantize_onnx(float_onnx, tmp_path / "q.onnx", calibration_feeds(_samples(2), HEIGHT, WIDTH),
                           requested_samples=10)
    assert report.num_samples == 2
    assert report.notes == ["asked for 10 calibration pairs, the data set has 2: used them all"]
    assert "note        asked for 10" in report.format()


def test_already_quantized_file_is_refused(float_onnx, tmp_path):
    out = tmp_path / "q.onnx"
    feeds = calibration_feeds(_samples(1), HEIGHT, WIDTH)
    quantize_onnx(float_onnx, out, feeds)
    with pytest.raises(EdgeStereoError, match=r"q.onnx: the graph is already quantized .*DequantizeLinear"):
        quantize_onnx(out, tmp_path / "again.onnx", feeds)


def test_keep_float_pattern_that_matches_nothing_is_refused(float_onnx, tmp_path):
    with pytest.raises(EdgeStereoError, match=r"--keep-float '/head/\*' matches no node.*/features/\*"):
        quantize_onnx(float_onnx, tmp_path / "q.onnx", calibration_feeds(_samples(1), HEIGHT, WIDTH),
                      QuantizeOptions(keep_float=("/head/*",)))
    assert not (tmp_path / "q.onnx").exists()


def test_empty_calibration_set_is_refused(float_onnx, tmp_path):
    with pytest.raises(EdgeStereoError, match="calibration data set is empty"):
        quantize_onnx(float_onnx, tmp_path / "q.onnx", [])


def test_bad_options_are_refused():
    with pytest.raises(EdgeStereoError, match="unknown calibration method 'kl'"):
        QuantizeOptions(method="kl")
    with pytest.raises(EdgeStereoError, match="unknown activation type"):
        QuantizeOptions(activation_type="int4")


def test_samples_are_cropped_or_padded_to_the_graph():
    big = _samples(1, 40, 80)[0]
    fitted = fit_sample(big, HEIGHT, WIDTH)
    assert fitted["left"].shape == (HEIGHT, WIDTH, 3) and fitted["disp"].shape == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(fitted["left"], big["left"][4:36, 8:72])
    small = _samples(1, 24, 60)
    feed = calibration_feeds(small, HEIGHT, WIDTH)[0]
    assert feed["left"].shape == (1, 3, HEIGHT, WIDTH) and feed["left"].dtype == np.float32
    np.testing.assert_array_equal(feed["left"][0, :, 4:28, 2:62], small[0]["left"].transpose(2, 0, 1))
    assert len(calibration_feeds(_samples(3), HEIGHT, WIDTH, num_samples=2)) == 2


def test_layer_groups_follow_module_paths(float_onnx):
    groups = layer_groups(float_onnx)
    assert "/features" in groups and "/correlation" in groups and "(top level)" in groups
    assert all(name.startswith("/features/") for name in groups["/features"])
    deeper = layer_groups(float_onnx, depth=2)
    assert "/features/features.0" in deeper
    assert match_nodes(float_onnx, ["/features/features.0/*"]) == {"/features/features.0/*":
                                                                    ["/features/features.0/Conv"]}


def test_sensitivity_analysis_scores_each_group_and_proposes_a_float_set(float_onnx):
    samples = _samples(2)
    feeds = calibration_feeds(samples, HEIGHT, WIDTH)
    float_epe = score_onnx(float_onnx, samples)["epe"]
    # a target below any int8 result forces the proposal to keep groups in float
    report = analyze_sensitivity(float_onnx, feeds, samples, target_ratio=1.0)
    assert report.float_epe == pytest.approx(float_epe)
    assert {g.group for g in report.groups} >= {"/features", "(top level)"}
    assert all(g.cost == pytest.approx(g.epe - float_epe) for g in report.groups)
    costly = [g.group for g in sorted(report.groups, key=lambda g: -g.cost) if g.cost > 0]
    assert report.keep_float == costly[: len(report.keep_float)]
    text = report.format()
    assert "float EPE" in text and "/features" in text
    if report.keep_float:
        assert "keep float:" in text and report.patterns
