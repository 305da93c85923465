"""Quantization-aware training with torchao PT2E: fake quantization, calibration, training step,
weights written back for export; the stage table's format and scoring."""

import numpy as np
import pytest
import torch

from edgestereo.errors import EdgeStereoError
from edgestereo.export.qat import QATModel, StageResult, format_stage_table, score_torch
from edgestereo.models import create_model


def test_a_model_that_is_not_a_network_is_refused():
    with pytest.raises(EdgeStereoError, match="not a network"):
        QATModel(create_model("sgbm"), 32, 32)


def test_size_not_a_multiple_of_the_divisor_is_refused():
    with pytest.raises(EdgeStereoError, match="not a multiple of 32"):
        QATModel(create_model("stereonet-plus-small"), 48, 64)


def test_stage_table_lists_each_stage_against_float():
    metrics = {"epe": 1.0, "bad1": 10.0, "bad3": 5.0, "d1": 4.0}
    table = format_stage_table([StageResult("float", "torch fp32", metrics),
                                StageResult("int8", "onnxruntime QDQ", {**metrics, "epe": 1.02})])
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["stage", "runtime", "EPE"]
    assert "+0.00%" in lines[2] and "+2.00%" in lines[3] and "1.0200" in lines[3]


def test_score_torch_pools_pixels_and_crops_to_the_size():
    disp = np.full((40, 80), 3.0, np.float32)
    sample = {"left": np.zeros((40, 80, 3), np.uint8), "right": np.zeros((40, 80, 3), np.uint8), "disp": disp,
              "valid": np.ones((40, 80), bool)}
    metrics = score_torch(lambda left, right: torch.full((1, 1, *left.shape[-2:]), 4.0), [sample], 32, 64)
    assert metrics["epe"] == pytest.approx(1.0) and metrics["valid_px"] == 32 * 64
    with pytest.raises(EdgeStereoError, match="smaller than"):
        score_torch(lambda left, right: left[:, :1], [sample], 64, 64)


@pytest.mark.slow
def test_qat_calibrates_trains_and_writes_back():
    torch.manual_seed(0)
    model = create_model("stereonet-plus-small", max_disp=32)
    qat = QATModel(model, 64, 64)
    left, right = model.example_inputs(64, 64, batch=2)
    assert qat.calibrate([(left, right)]) == 1
    with torch.no_grad():
        float_out = model.deploy().eval()(left, right)
        fake_quant_out = qat.eval()(left, right)
    # fake quantization changes the output, but only by quantization noise
    assert not torch.equal(float_out, fake_quant_out)
    assert (float_out - fake_quant_out).abs().mean() < 0.1 * float_out.abs().mean() + 0.5
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qat.train()
    optimizer = torch.optim.SGD(qat.parameters(), lr=1e-2)
    loss = sum(p.mean() for p in qat.forward_train(left[:1], right[:1]))  # batch size differs from the trace
    loss.backward()
    optimizer.step()
    tuned = qat.write_back()
    assert tuned is model
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(before[k], v)]
    assert "backbone.stem.0.weight" in changed
    with pytest.raises(EdgeStereoError, match="takes 64x64 crops"):
        qat.forward_train(*model.example_inputs(32, 64))
