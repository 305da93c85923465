"""Fixtures of the tiny test-only stereo network (``tiny_stereo``), so export tests do not depend on
the big models: the network, its registry entry, and its float and int8 ONNX files (exported once,
each checked before any test uses it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgestereo.export.exporter import export_onnx, verify_onnx
from edgestereo.models import _registry
from edgestereo.quant.ptq import calibration_feeds, quantize_onnx
from edgestereo.runtime.onnx_predictor import OnnxPredictor
from network_fixtures import assert_parity
from tiny_matching import assert_close_relative, step_pair_sample
from tiny_stereo import TINY_NAME, TinyStereo, TinyStereoConfig, tiny_factory


@pytest.fixture
def tiny_model() -> TinyStereo:
    model = tiny_factory().eval()
    model.model_name = TINY_NAME
    return model


@pytest.fixture
def registered_tiny(monkeypatch) -> str:
    """Registers the tiny network for the duration of one test (CLI tests build models by name)."""
    _registry.list_models()  # load the real families first, so the entry is not lost to a later load
    entry = _registry.ModelEntry(TINY_NAME, TinyStereo, TinyStereoConfig(), "test-only tiny stereo network")
    monkeypatch.setitem(_registry._REGISTRY, TINY_NAME, entry)
    return TINY_NAME


#: the size of the shared exported files; the tiny network on its example inputs gives std ≈ 4 px
ONNX_HEIGHT, ONNX_WIDTH = 32, 64


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """The tiny network exported once (npu4d, 32x64) and checked against PyTorch: tests that only read a
    float graph share it. Do not write beside it."""
    model = tiny_factory().eval()
    model.model_name = TINY_NAME
    path = export_onnx(model, tmp_path_factory.mktemp("tiny-onnx") / "tiny.onnx", ONNX_HEIGHT, ONNX_WIDTH)
    assert_parity(verify_onnx(model, path), min_std=3.0)
    return path


@pytest.fixture(scope="session")
def tiny_int8_onnx(tiny_onnx, tmp_path_factory) -> Path:
    """:func:`tiny_onnx` quantized (minmax, per tensor, 4 step pairs) and checked against it on a step
    pair: within 5 % of the float output's spread (measured 1.5 %, max 0.93 px)."""
    samples = [step_pair_sample(ONNX_HEIGHT, ONNX_WIDTH, seed=seed) for seed in range(4)]
    path = tmp_path_factory.mktemp("tiny-int8") / "tiny.int8.onnx"
    quantize_onnx(tiny_onnx, path, calibration_feeds(samples, ONNX_HEIGHT, ONNX_WIDTH), requested_samples=4)
    left, right = samples[0]["left"], samples[0]["right"]
    assert_close_relative(OnnxPredictor(path)(left, right), OnnxPredictor(tiny_onnx)(left, right),
                          mean_share=0.05, max_px=2.0)
    return path
