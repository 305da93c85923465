"""A pytest plugin that sabotages ONNX Runtime, to measure which tests would notice a broken graph.

``pytest -p sabotage_ort`` makes every ``InferenceSession.run`` return, for each floating-point output,
an array of that output's mean (the shape and dtype are kept, the content is gone). At the end it
lists the tests that ran an ONNX Runtime session and which of them still passed. A test that claims
closeness or parity must not be among them; refusals and graph-structure checks may rightly pass.
Not part of ``make test``: see docs/testing.md.
"""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest

_original_run = onnxruntime.InferenceSession.run
_ran_session: set[str] = set()
_outcomes: dict[str, str] = {}
_current: list[str] = []


def _constant_run(self, output_names, input_feed, run_options=None):
    if _current:
        _ran_session.add(_current[0])
    outputs = _original_run(self, output_names, input_feed, run_options)
    return [np.full_like(out, out.mean()) if isinstance(out, np.ndarray) and np.issubdtype(out.dtype, np.floating)
            else out for out in outputs]


def pytest_configure(config: pytest.Config) -> None:
    onnxruntime.InferenceSession.run = _constant_run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    _current[:] = [item.nodeid]
    yield
    _current.clear()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _outcomes[report.nodeid] = report.outcome


def pytest_terminal_summary(terminalreporter) -> None:
    ran = sorted(_ran_session)
    passed = [nodeid for nodeid in ran if _outcomes.get(nodeid) == "passed"]
    terminalreporter.section("ONNX Runtime sabotage: outputs replaced by their mean")
    for nodeid in passed:
        terminalreporter.write_line(f"still passes: {nodeid}")
    share = len(passed) / len(ran) if ran else 0.0
    terminalreporter.write_line(f"{len(passed)} of {len(ran)} tests that ran ONNX Runtime still pass ({share:.0%})")
