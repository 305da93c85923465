"""The memory estimate of an inference, the refusal of pairs over the limit, and --scale."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from torch import nn

from edgestereo.errors import EdgeStereoError
from edgestereo.models import create_model
from edgestereo.models._memory import traced_peak_bytes
from edgestereo.runtime.memory import MemoryLimitError, check_memory, estimate_bytes, memory_limit
from edgestereo.runtime.predictor import ScaledPredictor, TorchPredictor
from stereo_fixtures import shifted_pair


def test_tracing_counts_the_tensors_a_pass_keeps_alive():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert traced_peak_bytes(conv, (1, 3, 64, 64)) == 8 * 64 * 64 * 4
    # ReLU in place adds nothing; two convolutions in a row keep the input of the second alive with its output
    chain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1))
    assert traced_peak_bytes(chain, (1, 3, 64, 64)) == 2 * 8 * 64 * 64 * 4


def test_the_estimate_grows_with_the_pixels_and_sgbm_has_its_own():
    network = create_model("stereonet-plus-small")
    small, large = network.inference_bytes(384, 640), network.inference_bytes(768, 1280)
    assert 3.5 < large / small < 4.5
    assert estimate_bytes(network, 768, 1280) > 1.5 * large
    sgbm = create_model("sgbm", max_disp=64)
    assert estimate_bytes(sgbm, 1000, 1500) == pytest.approx(1.5 * (80 * 1000 * 1564 + 56 * 1000 * 1500) + 5e7,
                                                             rel=0.01)


def test_an_8000x6000_pair_is_refused_with_a_scale_that_fits():
    network = create_model("stereonet-plus-small")
    with pytest.raises(MemoryLimitError) as info:
        check_memory(network, 6000, 8000, limit=int(4e9))
    error = info.value
    assert error.needed > 8e9 and error.fit.scale == 0.5 and error.fit.needed <= 4e9
    assert str(error).startswith("image 8000x6000 needs about ")
    assert "more than the 4.0 GB allowed; run it at --scale 0.5 (4000x3000, about " in str(error)
    assert "--max-memory GB" in str(error)


def test_the_predictor_refuses_before_running_and_scale_gets_it_through():
    network = create_model("stereonet-plus-small")
    left, right = shifted_pair(256, 512, disparity=8)
    limit_gb = estimate_bytes(network, 128, 256) / 1e9 * 1.01  # fits at half size only
    predictor = TorchPredictor(network, "cpu", max_memory=limit_gb)
    with pytest.raises(MemoryLimitError, match=r"image 512x256 needs about .* run it at --scale 0\.5 \(256x128"):
        predictor(left, right)
    scaled = ScaledPredictor(TorchPredictor(network, "cpu", max_memory=limit_gb), 0.5)
    assert scaled(left, right).shape == (256, 512)
    between = (estimate_bytes(network, 64, 128) + estimate_bytes(network, 128, 256)) / 2e9
    too_little = ScaledPredictor(TorchPredictor(network, "cpu", max_memory=between), 0.5)
    with pytest.raises(MemoryLimitError,
                       match=r"image 512x256 at --scale 0\.5 \(256x128\) needs about \d+ MB.* --scale 0\.375 \(192x96"):
        too_little(left, right)


def test_prepare_checks_a_size_before_any_pair_of_it_runs():
    network = create_model("stereonet-plus-small")
    limit_gb = estimate_bytes(network, 128, 256) / 1e9 * 1.01
    predictor = TorchPredictor(network, "cpu", max_memory=limit_gb)
    with pytest.raises(MemoryLimitError, match=r"image 512x256 needs about"):
        predictor.prepare(256, 512)
    predictor.prepare(128, 256)  # fits, and is remembered
    assert (128, 256) in predictor._sizes_checked
    between = (estimate_bytes(network, 64, 128) + estimate_bytes(network, 128, 256)) / 2e9
    scaled = ScaledPredictor(TorchPredictor(network, "cpu", max_memory=between), 0.5)
    with pytest.raises(MemoryLimitError, match=r"image 512x256 at --scale 0\.5 \(256x128\)"):
        scaled.prepare(256, 512)


def test_scaled_disparity_comes_back_in_the_input_pixels():
    def half_width_disparity(left, right):
        assert left.shape == (24, 64, 3)
        return np.full(left.shape[:2], 4.0, np.float32)

    half_width_disparity.name = "constant"
    out = ScaledPredictor(half_width_disparity, 0.5)(*shifted_pair(48, 128))
    assert out.shape == (48, 128) and np.allclose(out, 8.0)
    with pytest.raises(EdgeStereoError, match=r"--scale must be in \(0, 4\], got 0"):
        ScaledPredictor(half_width_disparity, 0)


def test_memory_limit_options():
    assert memory_limit(2.5) == 2_500_000_000
    assert 0 < memory_limit() <= 4e9
    with pytest.raises(EdgeStereoError, match="--max-memory must be a positive number of GB, got -1"):
        memory_limit(-1)


_MEASURE = """
import json, torch
torch.set_num_threads(1)
from edgestereo.models import create_model
from edgestereo.runtime.benchmark import peak_memory_added
from edgestereo.runtime.memory import estimate_bytes
from edgestereo.runtime.predictor import TorchPredictor
from stereo_fixtures import shifted_pair
network = create_model("stereonet-plus-small")
predictor = TorchPredictor(network, "cpu")
left, right = shifted_pair(384, 640, disparity=8)
predictor(left[:64, :128].copy(), right[:64, :128].copy())  # first call: lazy initialisation
print(json.dumps([estimate_bytes(network, 384, 640), peak_memory_added(lambda: predictor(left, right))[1]]))
"""


def test_the_estimate_covers_the_measured_peak_of_a_real_run():
    # a fresh process: in a long test session the allocator's history blurs the measurement
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", _MEASURE], capture_output=True, text=True, check=True, env=env)
    estimate, measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured <= estimate <= 3 * measured, (estimate, measured)
