"""Fixtures of the training tests: a tiny recipe (tiny.yaml, the small StereoNetPlus for 2 steps on a
few 64×128 synthetic pairs) and a run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

TINY = Path(__file__).with_name("tiny.yaml")


@pytest.fixture(scope="session")
def tiny_recipe() -> Path:
    return TINY


@pytest.fixture
def tiny_args(tmp_path: Path) -> list[str]:
    """LightningCLI arguments of a 2-step run in ``tmp_path/run``."""
    return ["--config", str(TINY), "--trainer.default_root_dir", str(tmp_path / "run")]


@pytest.fixture(autouse=True, scope="package")
def one_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP threads that wait for each other make a
    step several times slower. Package scope: module fixtures (a reference run) are set up before
    function ones, and a reference summed with other threads than the runs compared with it differs
    in the last bits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
