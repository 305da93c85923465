"""The stage table: one network at each step of its way to int8 (float weights, calibrated int8,
QAT weights, QAT int8 …) scored on the same pairs, a row per stage with its EPE cost against the
first row, as the StereoNetPlus reference reports float → calibration → QAT → int.

A stage is a label and a predictor (PyTorch weights, or an ONNX file in ONNX Runtime); every
stage sees the same pairs, so the rows differ only by what the stage changed.

>>> rows = evaluate_stages([Stage("float", torch_predictor, "torch fp32"),  # doctest: +SKIP
...                         Stage("int8", onnx_predictor, "onnxruntime int8")], dataset)
>>> print(format_stage_table(stage_results(rows)))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgestereo.errors import EdgeStereoError

__all__ = ["Stage", "StageResult", "check_stage_labels", "evaluate_stages", "format_stage_table", "stage_results"]


@dataclass(frozen=True)
class Stage:
    """One row to evaluate: ``predictor`` maps (H,W,3) uint8 ×2 to (H,W) float32 px; ``runtime``
    says what runs it ("torch fp32", "onnxruntime int8"); ``file`` where its weights came from."""

    label: str
    predictor: Callable[[np.ndarray, np.ndarray], np.ndarray]
    runtime: str
    file: str = ""


@dataclass(frozen=True)
class StageResult:
    """One row of the stage table: metrics hold ``epe`` (px), ``bad1``, ``bad3``, ``d1`` (%)."""

    stage: str
    runtime: str
    metrics: dict[str, float]
    #: median time per pair, when measured.
    runtime_ms: float | None = None


def check_stage_labels(labels: Sequence[str]) -> None:
    """Raise EdgeStereoError unless there is at least one label and no label repeats."""
    if not labels:
        raise EdgeStereoError("a stage table needs at least one stage")
    repeated = [label for index, label in enumerate(labels) if label in labels[:index]]
    if repeated:
        raise EdgeStereoError(f"stage label {repeated[0]!r} is used twice; give each stage its own label")


def evaluate_stages(
    stages: Sequence[Stage],
    dataset: Any,
    *,
    noc_dataset: Any | None = None,
    max_disp: float | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """:func:`~edgestereo.evaluation.evaluator.evaluate` each stage on the same pairs of ``dataset``.

    Returns one report per stage, in order, with ``stage``, ``runtime`` and ``file`` added. Raises
    EdgeStereoError when the data set has no ground truth (a stage table compares errors) or when
    two stages share a label.
    """
    from edgestereo.evaluation.evaluator import evaluate

    check_stage_labels([stage.label for stage in stages])
    reports = []
    for stage in stages:
        report = evaluate(stage.predictor, dataset, noc_dataset=noc_dataset, max_disp=max_disp, limit=limit,
                          progress=progress)
        if not report["all"]:
            raise EdgeStereoError(f"{report['dataset']}: no pair with ground truth; a stage table needs it")
        reports.append({"stage": stage.label, "runtime": stage.runtime, "file": stage.file, **report})
    return reports


def stage_results(reports: Sequence[dict[str, Any]], mask: str = "all") -> list[StageResult]:
    """Rows of :func:`format_stage_table` from :func:`evaluate_stages` reports (``mask`` "all" or "noc")."""
    rows = []
    for report in reports:
        metrics = report.get(mask)
        if not metrics:
            raise EdgeStereoError(f"stage {report['stage']!r}: no {mask!r} metrics on {report['dataset']}")
        rows.append(StageResult(report["stage"], report["runtime"], metrics, report["runtime_ms"]["median"]))
    return rows


def format_stage_table(rows: Sequence[StageResult]) -> str:
    """A row per stage: EPE (px), its change over the first row (px and %), bad-1/3 and D1 (%), and
    the median time per pair where it was measured."""
    if not rows:
        return ""
    base = rows[0].metrics["epe"]
    stage_width = max(5, *(len(row.stage) for row in rows))
    runtime_width = max(7, *(len(row.runtime) for row in rows))
    header = (f"{'stage':<{stage_width}}  {'runtime':<{runtime_width}}  {'EPE (px)':>8}  {'ΔEPE (px)':>9}  "
              f"{'ΔEPE (%)':>8}  {'bad1 (%)':>8}  {'bad3 (%)':>8}  {'D1 (%)':>6}  {'ms/pair':>8}")
    rule = "  ".join("-" * width for width in (stage_width, runtime_width, 8, 9, 8, 8, 8, 6, 8))
    lines = [header, rule]
    for row in rows:
        m = row.metrics
        change = (m["epe"] / base - 1) * 100 if base > 0 else 0.0
        timing = f"{row.runtime_ms:>8.1f}" if row.runtime_ms is not None else f"{'–':>8}"
        lines.append(f"{row.stage:<{stage_width}}  {row.runtime:<{runtime_width}}  {m['epe']:>8.4f}  "
                     f"{m['epe'] - base:>+9.4f}  {change:>+7.2f}%  {m['bad1']:>8.2f}  {m['bad3']:>8.2f}  "
                     f"{m['d1']:>6.2f}  {timing}")
    return "\n".join(lines)
