"""`edgestereo bench` end to end, and its bad input: one line, exit code 2."""

import json

import onnx
import pytest
from onnx import TensorProto, helper

from edgestereo.apps.cli import main


def _identity_graph(path, height, width):
    nodes = [helper.make_node("ReduceMean", ["left"], ["l"], axes=[1], keepdims=1),
             helper.make_node("ReduceMean", ["right"], ["r"], axes=[1], keepdims=1),
             helper.make_node("Sub", ["l", "r"], ["disparity"])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, height, width]) for n in ("left", "right")]
    output = helper.make_tensor_value_info("disparity", TensorProto.FLOAT, [1, 1, height, width])
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", inputs, [output]),
                                opset_imports=[helper.make_opsetid("", 17)], ir_version=10), str(path))
    return path


def test_bench_sgbm_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--model", "sgbm", "--max-disp", "16", "--height", "32", "--width", "64", "--iters", "3",
                 "--warmup", "1", "--streams", "2", "--threads", "1", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "sgbm" in printed and "FPS×K" in printed and "machine" in printed and "versions" in printed
    record = json.loads(out.read_text())
    assert record["streams"] == 2 and record["threads"] == 1 and record["latency"]["median_ms"] > 0
    assert record["environment"]["threads"]["requested"] == 1


def test_bench_onnx_file(tmp_path, capsys):
    path = _identity_graph(tmp_path / "g.onnx", 16, 32)
    assert main(["bench", "--onnx", str(path), "--iters", "2", "--warmup", "0"]) == 0
    assert "onnxruntime" in capsys.readouterr().out


def test_bench_model_through_onnxruntime(tmp_path, capsys):
    code = main(["bench", "--model", "stereonet-plus-small", "--random-weights", "--max-disp", "32", "--runtime",
                 "onnxruntime",
                 "--height", "64", "--width", "64", "--iters", "1", "--warmup", "0"])
    assert code == 0
    assert "stereonet-plus-small  onnxruntime  fp32" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "stereonet-plus-small", "--height", "100", "--width", "70"], "cannot take 70x100"),
    (["--model", "raft-stereo-realtime", "--random-weights", "--height", "64", "--width", "64", "--warmup", "1"],
     "too small"),
    (["--model", "sgbm", "--height", "32"], "--model needs --height and --width"),
    (["--model", "sgbm", "--height", "32", "--width", "32", "--streams", "0"], "--streams must be ≥ 1"),
    (["--model", "sgbm", "--height", "32", "--width", "32", "--precision", "int8"], "int8 runs in ONNX Runtime"),
    (["--model", "stereonet-plus-small", "--height", "64", "--width", "64", "--runtime", "onnxruntime",
      "--precision", "int8"], "edgestereo quantize"),
])
def test_bench_bad_input(argv, message, capsys):
    assert main(["bench", *argv, "--iters", "1"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bench_onnx_bad_input(tmp_path, capsys):
    path = _identity_graph(tmp_path / "g.onnx", 16, 32)
    assert main(["bench", "--onnx", str(path), "--height", "32", "--width", "32"]) == 2
    assert "takes 32x16 (static)" in capsys.readouterr().err
    assert main(["bench", "--onnx", str(path), "--precision", "int8"]) == 2
    assert "is a fp32 graph, not int8" in capsys.readouterr().err
    assert main(["bench", "--onnx", str(path), "--runtime", "torch"]) == 2
    assert "cannot be combined with --runtime torch" in capsys.readouterr().err
    assert main(["bench", "--onnx", str(tmp_path / "missing.onnx")]) == 2
    err = capsys.readouterr().err
    assert "missing.onnx: ONNX file not found" in err and err.count("\n") == 1
