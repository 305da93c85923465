"""benchmark(): the timing loop, the streams, the statistics, the environment record, and bad input."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgestereo.errors import EdgeStereoError
from edgestereo.models import create_model
from edgestereo.runtime.benchmark import (
    LatencyStats,
    OnnxBenchRunner,
    TorchBenchRunner,
    benchmark,
    environment,
    format_results,
)
from edgestereo.runtime.onnx_file import graph_precision


class CountingRunner:
    """A runner that records which step ran in which order and how often."""

    runtime = "test"
    precision = "fp32"
    name = "counting"
    input_size = (8, 12)

    def __init__(self):
        self.calls = []

    def prepare(self, left, right):
        self.calls.append("prepare")
        return left

    def infer(self, inputs):
        self.calls.append("infer")
        return inputs[..., 0].astype(np.float32)

    def postprocess(self, output):
        self.calls.append("post")
        return output

    def for_stream(self):
        return CountingRunner()


def _mean_graph(path, height, width, quantized=False):
    """disparity = mean_c(left) - mean_c(right), optionally through a QuantizeLinear/DequantizeLinear pair."""
    nodes = [helper.make_node("ReduceMean", ["left"], ["l"], axes=[1], keepdims=1),
             helper.make_node("ReduceMean", ["right"], ["r"], axes=[1], keepdims=1),
             helper.make_node("Sub", ["l", "r"], ["d"])]
    initializers = []
    if quantized:
        initializers = [helper.make_tensor("scale", TensorProto.FLOAT, [], [0.5]),
                        helper.make_tensor("zero", TensorProto.INT8, [], [0])]
        nodes += [helper.make_node("QuantizeLinear", ["d", "scale", "zero"], ["q"]),
                  helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["disparity"])]
    else:
        nodes.append(helper.make_node("Identity", ["d"], ["disparity"]))
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, height, width]) for n in ("left", "right")]
    output = helper.make_tensor_value_info("disparity", TensorProto.FLOAT, [1, 1, height, width])
    model = helper.make_model(helper.make_graph(nodes, "mean", inputs, [output], initializer=initializers),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.save(model, str(path))
    return path


def test_steps_run_in_order_and_are_counted():
    runner = CountingRunner()
    result = benchmark(runner, iters=4, warmup=2)
    assert runner.calls == ["prepare", "infer", "post"] * 6
    assert result.iters == 4 and result.streams == 1 and result.fps_streams == pytest.approx(result.fps_single)
    assert result.fps_single == pytest.approx(1e3 / result.latency.median_ms)
    assert 0 < result.latency.median_ms <= result.latency.p90_ms <= result.latency.max_ms


def test_streams_run_concurrently_on_their_own_runners():
    result = benchmark(CountingRunner(), iters=3, warmup=0, streams=3, threads=1)
    assert result.streams == 3 and result.fps_streams > 0 and result.threads == 1


def test_latency_stats():
    stats = LatencyStats.of([0.001, 0.002, 0.003, 0.004, 0.010])
    assert stats.median_ms == pytest.approx(3.0) and stats.max_ms == pytest.approx(10.0)
    assert stats.p90_ms == pytest.approx(7.6) and stats.mean_ms == pytest.approx(4.0)


def test_torch_runner_times_a_network_and_records_the_environment():
    model = create_model("stereonet-plus-small", max_disp=32)
    result = benchmark(TorchBenchRunner(model, 64, 64), iters=2, warmup=1)
    assert (result.name, result.runtime, result.precision, result.height, result.width) == \
        ("stereonet-plus-small", "torch", "fp32", 64, 64)
    assert result.peak_rss_mb is None or result.peak_rss_mb > 10
    record = json.loads(json.dumps(result.to_json()))
    assert {"cpu", "cpu_features", "versions", "threads", "platform"} <= set(record["environment"])
    assert record["environment"]["versions"]["torch"]
    table = format_results([result])
    assert "stereonet-plus-small" in table and "median ms" in table


def test_bf16_runs_in_pytorch():
    model = create_model("stereonet-plus-small", max_disp=32)
    result = benchmark(TorchBenchRunner(model, 64, 64, precision="bf16"), iters=1, warmup=0)
    assert result.precision == "bf16"


def test_onnx_runner_reads_size_and_precision(tmp_path):
    float_path = _mean_graph(tmp_path / "f.onnx", 8, 16)
    int8_path = _mean_graph(tmp_path / "q.onnx", 8, 16, quantized=True)
    assert graph_precision(float_path) == "fp32" and graph_precision(int8_path) == "int8"
    runner = OnnxBenchRunner(int8_path, threads=1)
    assert runner.input_size == (8, 16) and runner.precision == "int8"
    result = benchmark(runner, iters=3, warmup=1, streams=2)
    assert result.runtime == "onnxruntime" and result.fps_streams > 0


def test_size_the_model_cannot_take_is_refused():
    model = create_model("stereonet-plus-small")
    with pytest.raises(EdgeStereoError, match=r"cannot take 70x100.*multiples of 32 \(e.g. 96x128\)"):
        TorchBenchRunner(model, 100, 70)


def test_int8_is_not_a_pytorch_precision():
    with pytest.raises(EdgeStereoError, match="int8 runs in ONNX Runtime"):
        TorchBenchRunner(create_model("sgbm"), 32, 32, precision="int8")
    with pytest.raises(EdgeStereoError, match="only fp32 applies"):
        TorchBenchRunner(create_model("sgbm"), 32, 32, precision="bf16")


def test_bad_counts_are_refused():
    with pytest.raises(EdgeStereoError, match="iters and streams must be"):
        benchmark(CountingRunner(), iters=0)


def test_environment_names_thread_settings():
    env = environment(threads=2)
    assert env["threads"]["requested"] == 2 and env["logical_cpus"] >= 1
