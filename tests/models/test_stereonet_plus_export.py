"""StereoNetPlus through edgestereo's exporter: the npu4d graph, natively 4-D, runs in ONNX Runtime
like PyTorch, and holds only ops that an int8 QDQ graph carries."""

import pytest
import torch

from edgestereo.export.check import check_onnx
from edgestereo.export.onnx import export_onnx, verify_onnx
from edgestereo.models import create_model

#: what the graph may contain: each op has a QDQ form in ONNX Runtime's quantizer or passes
#: quantized tensors through unchanged (Slice, Pad, Concat, Resize); no Softmax, whose NCHW form
#: ONNX Runtime runs by transposing, no Transpose/Reshape at all.
QDQ_FRIENDLY_OPS = {
    "Add", "Concat", "Conv", "ConvTranspose", "Div", "Exp", "LeakyRelu", "Mul", "Pad", "ReduceMax",
    "ReduceMean", "ReduceSum", "Relu", "Resize", "Slice", "Sub",
}


def _calibrated(name: str):
    """BatchNorm statistics from a few training-mode passes, as in a trained model (see test_stereonet_plus)."""
    torch.manual_seed(0)
    model = create_model(name)
    left, right = model.example_inputs(64, 128, batch=2)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(left, right)
    return model.eval()


def _export_and_check(name: str, height: int, width: int, tmp_path) -> None:
    model = _calibrated(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx", height, width, profile="npu4d")
    report = check_onnx(path, "npu4d")
    assert report.ok, report.format()
    assert report.max_rank <= 4
    assert set(report.op_histogram) <= QDQ_FRIENDLY_OPS, report.format()
    parity = verify_onnx(model, path)
    assert parity.torch_path == "deploy"
    assert parity.within(1e-3, 1e-2), str(parity)


@pytest.mark.parametrize("name", ["stereonet-plus", "stereonet-plus-small"])
def test_npu4d_export_passes_check_and_matches_pytorch(name, tmp_path):
    _export_and_check(name, 64, 128, tmp_path)


@pytest.mark.slow
def test_reference_size_export(tmp_path):
    _export_and_check("stereonet-plus", 544, 960, tmp_path)
