"""edgestereo compile --target rk3588: the toolkit-log parser and the missing environment in the default
run; a real build in the simulator (slow) where the rknn-toolkit2 environment (`make rknn-env`) exists."""

import json
import sys
import types
from pathlib import Path

import onnx
import onnx.helper as oh
import pytest

from edgestereo.apps.cli import main
from edgestereo.errors import EdgeStereoError
from edgestereo.export import rknn
from edgestereo.export.rknn import RknnBuild, find_rknn_python, parse_rknn_log
from edgestereo.runtime.factory import create_predictor
from edgestereo.runtime.onnx_file import subgraph_boundary

_LOG = """I rknn-toolkit2 version: 2.5.0
\x1b[1;33mW\x1b[0m \x1b[1;33mbuild: Not support convert to softmax in opset15!\x1b[0m
E RKNN: [04:45:54.969] Unkown op target: 0
E RKNN: [04:45:54.994] Unkown op target: 0
D RKNN: [04:46:04.659] ID   OpType             DataType Target InputShape     OutputShape
D RKNN: [04:46:04.659] 0    InputOperator      FLOAT16  CPU    \\              (1,3,384,640)
D RKNN: [04:46:04.659] 2    Conv               FLOAT16  NPU    (1,3,384,640)  (1,3,384,640)
D RKNN: [04:46:04.659] 123  ReduceMax          FLOAT16  CPU    (1,4,384,640)  (1,1,384,640)
D RKNN: [04:46:04.659] 126  Exp                FLOAT16  CPU    (1,4,384,640)  (1,4,384,640)
W RKNN: [04:46:04.545] Warning: Tensor /a need parameter qtype, type is set to float16 by default!
I OpFusing 0:  12%|█████▌   | 12/100\rI OpFusing 0: 100%|██████| 100/100
"""


def test_parse_rknn_log_counts_cpu_ops_and_messages():
    cpu, npu, messages = parse_rknn_log(_LOG)
    assert cpu == {"ReduceMax": 1, "Exp": 1} and npu == 1
    assert messages == {"E Unkown op target: 0": 2, "W Not support convert to softmax in opset15!": 1}


def test_the_worker_names_the_stage_where_the_toolkit_raised(tmp_path, monkeypatch):
    """rknn-toolkit2 raises from inside build() (e.g. an IndexError in one of its fusion rules) as well
    as returning non-zero: the answer names the stage and the exception instead of "start-up"."""
    from edgestereo.export import rknn_worker

    class RaisingToolkit:
        def __init__(self, verbose: bool) -> None:
            pass

        def config(self, **options: object) -> None:
            pass

        def load_onnx(self, model: str) -> int:
            return 0

        def build(self, **options: object) -> int:
            raise IndexError("list index out of range")

    api = types.ModuleType("rknn.api")
    api.RKNN = RaisingToolkit
    monkeypatch.setitem(sys.modules, "rknn", types.ModuleType("rknn"))
    monkeypatch.setitem(sys.modules, "rknn.api", api)
    monkeypatch.setattr(rknn_worker.metadata, "version", lambda name: "2.5.0")
    request = {"result": str(tmp_path / "answer.json"), "target": "rk3588", "onnx": "m.onnx", "out": "m.rknn",
               "int8": False, "probes": [], "outputs": []}
    (tmp_path / "request.json").write_text(json.dumps(request))
    assert rknn_worker.main(str(tmp_path / "request.json")) == 1
    answer = json.loads((tmp_path / "answer.json").read_text())
    assert answer == {"ok": False, "stage": "build", "toolkit": "2.5.0",
                      "error": "IndexError: list index out of range"}


def test_a_missing_environment_names_the_command_that_creates_it(tmp_path, capsys):
    with pytest.raises(EdgeStereoError, match="make rknn-env"):
        find_rknn_python(tmp_path / "nothing")
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"")
    assert main(["compile", str(onnx_file), "--out", str(tmp_path / "m.rknn"), "--rknn-env", str(tmp_path)]) == 2
    assert "make rknn-env" in capsys.readouterr().err
    assert not (tmp_path / "m.rknn").exists()


def _simulated(monkeypatch, tmp_path, shift_px: float) -> list:
    """Stand in for the toolkit: the simulator's outputs are ONNX Runtime's, the evaluation pairs' (all
    probes after the first) shifted by ``shift_px``. Returns what each build saw: (probes,
    calibration pairs, float subgraphs)."""
    seen = []

    def build(onnx_path, out, python, *, probes, calibration=(), float_subgraphs=(), **options):
        Path(out).write_bytes(b"rknn")
        predictor = create_predictor(onnx=str(onnx_path), device="cpu")
        outputs = [predictor.run_tensors(left, right) + (shift_px if index else 0.0)
                   for index, (left, right) in enumerate(probes)]
        seen.append((len(probes), len(calibration), list(float_subgraphs)))
        return RknnBuild("rknn-toolkit2 test", "rk3588", "int8" if calibration else "fp16", 0.0, 0.0, outputs)

    monkeypatch.setattr(rknn, "build_rknn", build)
    monkeypatch.setattr(rknn, "find_rknn_python", lambda env=None: tmp_path / "python")
    return seen


def test_an_int8_build_is_held_to_its_epe_against_float(tiny_onnx, tmp_path, monkeypatch, capsys):
    seen = _simulated(monkeypatch, tmp_path, shift_px=0.0)
    kept = tmp_path / "kept.rknn"
    assert main(["compile", str(tiny_onnx), "--int8", "--num-samples", "2", "--out", str(kept)]) == 0
    out = capsys.readouterr().out
    assert "+0.00%) (bound: ≤ +3%)" in out and "no pixel bound" in out and kept.is_file()
    assert seen == [(1 + 8, 2, [])]  # the parity pair and the 8 default evaluation pairs; 2 calibration pairs

    _simulated(monkeypatch, tmp_path, shift_px=3.0)
    refused = tmp_path / "refused.rknn"
    assert main(["compile", str(tiny_onnx), "--int8", "--num-samples", "2", "--eval-samples", "3",
                 "--out", str(refused)]) == 1
    err = capsys.readouterr().err
    assert "refused: simulator int8 EPE is +" in err and "over the bound +3%" in err
    assert err.rstrip().endswith("try --keep-float PATTERN (`edgestereo quantize --analyze` ranks the costly "
                                 "layer groups) or --quant-algorithm mmse or kl_divergence")
    assert not refused.exists() and not list(tmp_path.glob(".refused*"))
    # a looser bound accepts the same build
    assert main(["compile", str(tiny_onnx), "--int8", "--num-samples", "2", "--eval-samples", "3",
                 "--max-epe-increase", "1000", "--out", str(refused)]) == 0


def test_an_fp16_build_is_held_to_its_epe_and_to_a_pixel_bound_when_given(tiny_onnx, tmp_path, monkeypatch, capsys):
    seen = _simulated(monkeypatch, tmp_path, shift_px=0.0)
    kept = tmp_path / "kept.rknn"
    assert main(["compile", str(tiny_onnx), "--out", str(kept)]) == 0
    assert "+0.00%) (bound: ≤ +0.5%)" in capsys.readouterr().out and kept.is_file()
    assert seen == [(1 + 8, 0, [])]  # the parity pair and the 8 default evaluation pairs, no calibration

    _simulated(monkeypatch, tmp_path, shift_px=3.0)  # moves the evaluation pairs, not the parity pair
    refused = tmp_path / "refused.rknn"
    assert main(["compile", str(tiny_onnx), "--eval-samples", "3", "--out", str(refused)]) == 1
    err = capsys.readouterr().err
    assert "refused: simulator fp16 EPE is +" in err and "over the bound +0.5%" in err and not refused.exists()
    assert "--quant-algorithm" not in err  # fp16 has no calibration to change
    # without evaluation pairs the pixel bound alone holds it, and the parity pair is unmoved
    assert main(["compile", str(tiny_onnx), "--eval-samples", "0", "--tolerance", "0.01", "--out", str(refused)]) == 0


def test_subgraph_boundary_pairs_each_entering_tensor_with_the_leaving_ones_it_reaches(tiny_onnx):
    # the tiny network's feature extractor runs once per view: two separate chains, so two pairs, not four
    proto = onnx.load(tiny_onnx)
    features = [node.name for node in proto.graph.node if node.name.startswith("/features/")]
    assert subgraph_boundary(proto, features) == [
        ("/Sub_output_0", "/features/features.4/Conv_output_0"),
        ("/Sub_1_output_0", "/features/features.4_1/Conv_output_0")]
    # weights and Constant outputs do not enter; a chosen node's output read outside and a graph output leave
    graph = oh.make_graph(
        [oh.make_node("Constant", [], ["c"], name="/k", value=oh.make_tensor("v", 1, [1], [2.0])),
         oh.make_node("Mul", ["x", "w"], ["a"], name="/part/Mul"),
         oh.make_node("Add", ["a", "c"], ["y"], name="/part/Add"),
         oh.make_node("Relu", ["a"], ["z"], name="/after/Relu")],
        "g", [oh.make_tensor_value_info("x", 1, [1])], [oh.make_tensor_value_info("y", 1, [1]),
                                                        oh.make_tensor_value_info("z", 1, [1])],
        initializer=[oh.make_tensor("w", 1, [1], [3.0])])
    assert subgraph_boundary(oh.make_model(graph), ["/part/Mul", "/part/Add"]) == [("x", "a"), ("x", "y")]


def test_keep_float_hands_the_matched_part_to_the_toolkit_as_float16(tiny_onnx, tmp_path, monkeypatch, capsys):
    seen = _simulated(monkeypatch, tmp_path, shift_px=0.0)
    out = tmp_path / "hybrid.rknn"
    assert main(["compile", str(tiny_onnx), "--int8", "--num-samples", "2", "--eval-samples", "1",
                 "--keep-float", "/features/*", "--out", str(out)]) == 0
    assert seen[-1][2] == [("/Sub_output_0", "/features/features.4/Conv_output_0"),
                           ("/Sub_1_output_0", "/features/features.4_1/Conv_output_0")]
    assert "int8 (10 nodes float16)" in capsys.readouterr().err and out.is_file()
    # a pattern that matches nothing, or float16 parts of a build that is float16 anyway: user errors
    refused = tmp_path / "refused.rknn"
    assert main(["compile", str(tiny_onnx), "--int8", "--keep-float", "/head/*", "--out", str(refused)]) == 2
    assert "--keep-float '/head/*' matches no node" in capsys.readouterr().err
    assert main(["compile", str(tiny_onnx), "--keep-float", "/features/*", "--out", str(refused)]) == 2
    assert "add --int8" in capsys.readouterr().err and not refused.exists() and len(seen) == 1
    # matched nodes that no path through the graph reaches would leave the whole build int8, unannounced
    monkeypatch.setattr("edgestereo.runtime.onnx_file.subgraph_boundary", lambda proto, names: [])
    assert main(["compile", str(tiny_onnx), "--int8", "--keep-float", "/features/*", "--out", str(refused)]) == 2
    assert "nothing to keep in float16" in capsys.readouterr().err and not refused.exists() and len(seen) == 1


def test_a_boundary_tensor_the_toolkit_fused_away_names_the_node_to_keep_as_well(tiny_onnx, tmp_path, monkeypatch,
                                                                                  capsys):
    # rknn-toolkit2 2.5.0 on the day-7 default model: hybrid_quantization_step1 raised this for a tensor
    # entering the float16 part (the output of a division by a constant, which its optimiser had folded)
    def build(onnx_path, out, python, **options):
        raise rknn.RknnBuildError("hybrid_quantization_step1", f"ValueError: The input name {tensor} is not exists. "
                                  "Please open the '/features/features.0/Conv_output_0' using netron")

    monkeypatch.setattr(rknn, "build_rknn", build)
    monkeypatch.setattr(rknn, "find_rknn_python", lambda env=None: tmp_path / "python")
    out = tmp_path / "hybrid.rknn"
    for tensor, hint in (("/Sub_output_0", "add --keep-float '/Sub' to start the part"),
                         ("/features/features.0/Conv_output_0", None)):  # not a tensor entering the part
        assert main(["compile", str(tiny_onnx), "--int8", "--num-samples", "2", "--eval-samples", "1",
                     "--keep-float", "/features/*", "--out", str(out)]) == 1
        err = capsys.readouterr().err.strip().splitlines()[-1]  # after the "building …" line
        assert err.startswith("edgestereo compile: failed: rknn-toolkit2 failed at hybrid_quantization_step1: "
                              f"ValueError: The input name {tensor} is not exists.")
        assert (hint in err) if hint else "--keep-float" not in err
        assert not out.exists() and not list(tmp_path.glob(".hybrid*"))


def test_float_subgraphs_without_calibration_are_refused_before_the_toolkit_runs(tmp_path):
    with pytest.raises(EdgeStereoError, match="part of an int8 build"):
        rknn.build_rknn(tmp_path / "m.onnx", tmp_path / "m.rknn", tmp_path / "no-python", probes=[],
                        float_subgraphs=[("a", "y")])


def test_the_worker_builds_a_hybrid_request_in_two_steps(tmp_path, monkeypatch):
    """custom_hybrid: hybrid_quantization_step1 (which writes <model>.model/.data/.quantization.cfg
    into the working directory) and step2 from those files, in a fresh toolkit instance, instead of build."""
    from edgestereo.export import rknn_worker

    calls = []

    class RecordingToolkit:
        def __init__(self, verbose: bool) -> None:
            calls.append("new")

        def config(self, **options: object) -> None:
            pass

        def load_onnx(self, model: str) -> int:
            calls.append(("load_onnx", model))
            return 0

        def build(self, **options: object) -> int:
            calls.append("build")
            return 0

        def hybrid_quantization_step1(self, dataset: str, custom_hybrid: list) -> int:
            calls.append(("step1", dataset, custom_hybrid, Path.cwd()))
            for suffix in (".model", ".data", ".quantization.cfg"):
                Path("net" + suffix).write_text("")
            return 0

        def hybrid_quantization_step2(self, model_input: str, data_input: str, model_quantization_cfg: str) -> int:
            assert all(Path(name).is_file() for name in (model_input, data_input, model_quantization_cfg))
            calls.append(("step2", model_input, data_input, model_quantization_cfg))
            return 0

        def export_rknn(self, path: str) -> int:
            calls.append("export_rknn")
            return 0

        def init_runtime(self) -> int:
            return 0

        def release(self) -> None:
            calls.append("release")

    api = types.ModuleType("rknn.api")
    api.RKNN = RecordingToolkit
    monkeypatch.setitem(sys.modules, "rknn", types.ModuleType("rknn"))
    monkeypatch.setitem(sys.modules, "rknn.api", api)
    monkeypatch.setattr(rknn_worker.metadata, "version", lambda name: "2.5.0")
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    request = {"result": str(work / "answer.json"), "target": "rk3588", "onnx": "/models/net.onnx",
               "out": str(work / "net.rknn"), "int8": True, "dataset": str(work / "dataset.txt"),
               "custom_hybrid": [["a", "y"]], "probes": [], "outputs": []}
    (work / "request.json").write_text(json.dumps(request))
    assert rknn_worker.main(str(work / "request.json")) == 0
    assert json.loads((work / "answer.json").read_text())["ok"]
    assert calls == ["new", ("load_onnx", "/models/net.onnx"), ("step1", str(work / "dataset.txt"), [["a", "y"]], work),
                     "release", "new", ("step2", "net.model", "net.data", "net.quantization.cfg"), "export_rknn",
                     "release"]


@pytest.mark.parametrize(("options", "message"), [
    (["--int8", "--eval-samples", "0"], "a build is checked by its EPE on --eval-samples pairs"),
    (["--eval-samples", "0"], "a build is checked by its EPE on --eval-samples pairs"),
    (["--tolerance", "0"], "--tolerance must be > 0 pixels"),
    (["--max-epe-increase", "-1"], "--max-epe-increase must be ≥ 0 percent"),
    (["--eval-samples", "-1"], "--eval-samples must be ≥ 0"),
])
def test_impossible_bounds_are_user_errors(tiny_onnx, tmp_path, monkeypatch, capsys, options, message):
    _simulated(monkeypatch, tmp_path, shift_px=0.0)
    assert main(["compile", str(tiny_onnx), *options, "--out", str(tmp_path / "m.rknn")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "m.rknn").exists()


def _rknn_python():
    try:
        return find_rknn_python()
    except EdgeStereoError:
        return None


@pytest.mark.slow
@pytest.mark.skipif(_rknn_python() is None, reason="no rknn-toolkit2 environment (make rknn-env)")
def test_default_model_compiles_without_cpu_fallback(tmp_path, capsys):
    onnx_file, rknn_file = tmp_path / "default.onnx", tmp_path / "default.rknn"
    assert main(["export", "--height", "96", "--width", "160", "--out", str(onnx_file)]) == 0
    assert main(["compile", str(onnx_file), "--target", "rk3588", "--out", str(rknn_file)]) == 0
    out = capsys.readouterr().out
    assert rknn_file.stat().st_size > 0
    assert any(line.startswith("epe") and "(bound: ≤ +0.5%)" in line for line in out.splitlines()), out
    # the deploy ops keep the compiler from its CPU fallbacks and their errors
    assert "Unkown op target" not in out and "softmax in opset15" not in out and "REGTASK" not in out
    assert "ReduceMax" not in next(line for line in out.splitlines() if line.startswith("ops"))
    # a bound the simulator cannot meet: refused, exit 1, nothing written
    refused = tmp_path / "refused.rknn"
    assert main(["compile", str(onnx_file), "--out", str(refused), "--tolerance", "1e-9"]) == 1
    assert "refused" in capsys.readouterr().err and not refused.exists()
    assert not list(Path(tmp_path).glob(".refused*"))


@pytest.mark.slow
@pytest.mark.skipif(_rknn_python() is None, reason="no rknn-toolkit2 environment (make rknn-env)")
def test_default_model_int8_keeps_the_upsampling_in_float16(tmp_path, capsys):
    onnx_file, rknn_file, log = tmp_path / "default.onnx", tmp_path / "default.int8.rknn", tmp_path / "rknn.log"
    assert main(["export", "--height", "96", "--width", "160", "--out", str(onnx_file)]) == 0
    assert main(["compile", str(onnx_file), "--int8", "--num-samples", "2", "--eval-samples", "2",
                 "--keep-float", "/upsample/*", "--max-epe-increase", "1000", "--log", str(log),
                 "--out", str(rknn_file)]) == 0
    assert "nodes float16" in capsys.readouterr().err and rknn_file.stat().st_size > 0
    text = log.read_text()
    assert "hybrid_quantization_step2" in text and "dtype: float16, tensor: /upsample/" in text
