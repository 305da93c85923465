"""INT8 post-training quantization on the tiny (matching) test network: QDQ output, npu4d check,
closeness to float relative to the output's spread, options, layer groups, sensitivity analysis with a
deliberately fragile layer, and each bad input of the issue."""

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
from tiny_matching import assert_close_relative, step_pair_sample
from tiny_stereo import FragileTinyStereo, TinyStereoConfig

HEIGHT, WIDTH = 32, 64


def _samples(count, height=HEIGHT, width=WIDTH):
    """Step pairs (a far and a near plane) with their exact disparity."""
    return [step_pair_sample(height, width, seed=seed) for seed in range(count)]


@pytest.fixture
def float_onnx(tiny_onnx):
    """The shared float file (read only), exported at HEIGHT x WIDTH."""
    return tiny_onnx


def _assert_tracks_float(quantized, float_onnx, mean_share=0.05, max_px=2.0):
    """The quantized graph follows the float one on a step pair, relative to the float output's spread."""
    sample = step_pair_sample(HEIGHT, WIDTH, seed=0)
    left, right = sample["left"], sample["right"]
    assert_close_relative(OnnxPredictor(quantized)(left, right), OnnxPredictor(float_onnx)(left, right),
                          mean_share=mean_share, max_px=max_px)


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
    # float spans 4..16 px (std 6 px); int8 tracks it within 5 % of that spread (measured: 1.5 %, max 0.93 px),
    # a constant output would be 97 % off
    assert_close_relative(int8_disp, float_disp, mean_share=0.05, max_px=2.0)
    assert len(np.unique(int8_disp)) > 50 and not np.array_equal(float_disp, int8_disp)


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
    _assert_tracks_float(out, float_onnx)


def test_keep_float_leaves_the_matched_nodes_unquantized(float_onnx, tmp_path):
    out = tmp_path / "q.onnx"
    # the tiny network runs its features on each view: the two Convs share one weight, and both must
    # stay float for the weight to stay float
    options = QuantizeOptions(keep_float=("/features/features.4*",))
    report = quantize_onnx(float_onnx, out, calibration_feeds(_samples(2), HEIGHT, WIDTH), options)
    assert list(report.kept_float) == ["/features/features.4*"]
    assert sorted(report.kept_float["/features/features.4*"]) == ["/features/features.4/Conv",
                                                                   "/features/features.4_1/Conv"]
    graph = onnx.load(str(out)).graph
    initializers = {i.name for i in graph.initializer}
    for name in ("/features/features.4/Conv", "/features/features.4_1/Conv"):
        conv = next(n for n in graph.node if n.name == name)
        assert conv.input[1] in initializers and conv.input[2] in initializers  # float weight and bias
    conv0 = next(n for n in graph.node if n.name == "/features/features.0/Conv")
    assert conv0.input[1] not in initializers  # the others read a DequantizeLinear
    _assert_tracks_float(out, float_onnx)


def test_fewer_calibration_samples_than_asked_are_used_and_reported(float_onnx, tmp_path):
    report = quantize_onnx(float_onnx, tmp_path / "q.onnx", calibration_feeds(_samples(2), HEIGHT, WIDTH),
                           requested_samples=10)
    assert report.num_samples == 2
    assert report.notes == ["asked for 10 calibration pairs, the data set has 2: used them all"]
    assert "note        asked for 10" in report.format()
    _assert_tracks_float(tmp_path / "q.onnx", float_onnx)  # the two pairs did calibrate it


def test_already_quantized_file_is_refused(tiny_int8_onnx, tmp_path):
    feeds = calibration_feeds(_samples(1), HEIGHT, WIDTH)
    with pytest.raises(EdgeStereoError, match=r"tiny.int8.onnx: the graph is already quantized .*DequantizeLinear"):
        quantize_onnx(tiny_int8_onnx, tmp_path / "again.onnx", feeds)
    assert not (tmp_path / "again.onnx").exists()


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


def test_sensitivity_analysis_finds_the_fragile_layer_and_its_proposal_works(tmp_path):
    model = FragileTinyStereo(TinyStereoConfig()).eval()
    model.model_name = "tiny-test-stereo"
    source = export_onnx(model, tmp_path / "fragile.onnx", HEIGHT, WIDTH)
    samples = _samples(2)
    feeds = calibration_feeds(samples, HEIGHT, WIDTH)
    float_epe = score_onnx(source, samples)["epe"]
    assert float_epe < 0.5  # the offset is exact in float: the network still matches
    report = analyze_sensitivity(source, feeds, samples, target_ratio=1.5)
    assert report.float_epe == pytest.approx(float_epe)
    assert report.int8_epe > 3 * float_epe  # all int8: the fragile layer ruins it
    assert {g.group for g in report.groups} >= {"/features", "/fragile", "(top level)"}
    assert all(g.cost == pytest.approx(g.epe - float_epe) for g in report.groups)
    # the exporter names the module's second call (the right view) /fragile_1: one group per call
    fragile = {"/fragile", "/fragile_1"}
    costs = sorted(report.groups, key=lambda g: -g.cost)
    assert {g.group for g in costs[:2]} == fragile and min(g.cost for g in costs[:2]) > 1.0
    assert set(report.keep_float) == fragile and sorted(report.patterns) == ["/fragile/*", "/fragile_1/*"]
    assert report.met_target and report.mixed_epe <= 1.5 * float_epe
    text = report.format()
    assert "float EPE" in text and "keep float:" in text and "/fragile" in text
    # the proposal, applied, quantizes everything else and meets the target
    out = tmp_path / "mixed.onnx"
    quantize_onnx(source, out, feeds, QuantizeOptions(keep_float=tuple(report.patterns)))
    assert score_onnx(out, samples)["epe"] == pytest.approx(report.mixed_epe, abs=1e-4)
