"""The precision table: the variants of one network on its way to int8 (float weights, calibrated
int8, QAT weights, QAT int8 …) scored on the same pairs, a row per variant with its EPE cost against
the first row, as the StereoNetPlus reference reports float → calibration → QAT → int.

A variant is a label and a predictor (PyTorch weights, or an ONNX file in ONNX Runtime); every
variant sees the same pairs, so the rows differ only by what the variant changed.

>>> rows = evaluate_variants([Variant("float", torch_predictor, "torch fp32"),  # doctest: +SKIP
...                           Variant("int8", onnx_predictor, "onnxruntime int8")], dataset)
>>> print(format_precision_table(variant_results(rows)))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgestereo.errors import EdgeStereoError

__all__ = ["Variant", "VariantResult", "check_variant_labels", "evaluate_variants", "format_precision_table",
           "variant_results"]


@dataclass(frozen=True)
class Variant:
    """One row to evaluate: ``predictor`` maps (H,W,3) uint8 ×2 to (H,W) float32 px; ``runtime``
    says what runs it ("torch fp32", "onnxruntime int8"); ``file`` where its weights came from."""

    label: str
    predictor: Callable[[np.ndarray, np.ndarray], np.ndarray]
    runtime: str
    file: str = ""


@dataclass(frozen=True)
class VariantResult:
    """One row of the precision table: metrics hold ``epe`` (px), ``bad1``, ``bad3``, ``d1`` (%)."""

    variant: str
    runtime: str
    metrics: dict[str, float]
    #: median time per pair, when measured.
    runtime_ms: float | None = None


def check_variant_labels(labels: Sequence[str]) -> None:
    """Raise EdgeStereoError unless there is at least one label and no label repeats."""
    if not labels:
        raise EdgeStereoError("a precision table needs at least one variant")
    repeated = [label for index, label in enumerate(labels) if label in labels[:index]]
    if repeated:
        raise EdgeStereoError(f"variant label {repeated[0]!r} is used twice; give each variant its own label")


def evaluate_variants(
    variants: Sequence[Variant],
    dataset: Any,
    *,
    noc_dataset: Any | None = None,
    max_disp: float | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """:func:`~edgestereo.evaluation.evaluator.evaluate` each variant on the same pairs of ``dataset``.

    Returns one report per variant, in order, with ``variant``, ``runtime`` and ``file`` added.
    Raises EdgeStereoError when the data set has no ground truth (a precision table compares errors)
    or when two variants share a label.
    """
    from edgestereo.evaluation.evaluator import evaluate

    check_variant_labels([variant.label for variant in variants])
    reports = []
    for variant in variants:
        report = evaluate(variant.predictor, dataset, noc_dataset=noc_dataset, max_disp=max_disp, limit=limit,
                          progress=progress)
        if not report["all"]:
            raise EdgeStereoError(f"{report['dataset']}: no pair with ground truth; a precision table needs it")
        reports.append({"variant": variant.label, "runtime": variant.runtime, "file": variant.file, **report})
    return reports


def variant_results(reports: Sequence[dict[str, Any]], mask: str = "all") -> list[VariantResult]:
    """Rows of :func:`format_precision_table` from :func:`evaluate_variants` reports (``mask`` "all" or "noc")."""
    rows = []
    for report in reports:
        metrics = report.get(mask)
        if not metrics:
            raise EdgeStereoError(f"variant {report['variant']!r}: no {mask!r} metrics on {report['dataset']}")
        rows.append(VariantResult(report["variant"], report["runtime"], metrics, report["runtime_ms"]["median"]))
    return rows


def format_precision_table(rows: Sequence[VariantResult]) -> str:
    """A row per variant: EPE (px), its change over the first row (px and %), bad-1/3 and D1 (%), and
    the median time per pair where it was measured."""
    if not rows:
        return ""
    base = rows[0].metrics["epe"]
    label_width = max(7, *(len(row.variant) for row in rows))
    runtime_width = max(7, *(len(row.runtime) for row in rows))
    header = (f"{'variant':<{label_width}}  {'runtime':<{runtime_width}}  {'EPE (px)':>8}  {'ΔEPE (px)':>9}  "
              f"{'ΔEPE (%)':>8}  {'bad1 (%)':>8}  {'bad3 (%)':>8}  {'D1 (%)':>6}  {'ms/pair':>8}")
    rule = "  ".join("-" * width for width in (label_width, runtime_width, 8, 9, 8, 8, 8, 6, 8))
    lines = [header, rule]
    for row in rows:
        m = row.metrics
        change = (m["epe"] / base - 1) * 100 if base > 0 else 0.0
        timing = f"{row.runtime_ms:>8.1f}" if row.runtime_ms is not None else f"{'–':>8}"
        lines.append(f"{row.variant:<{label_width}}  {row.runtime:<{runtime_width}}  {m['epe']:>8.4f}  "
                     f"{m['epe'] - base:>+9.4f}  {change:>+7.2f}%  {m['bad1']:>8.2f}  {m['bad3']:>8.2f}  "
                     f"{m['d1']:>6.2f}  {timing}")
    return "\n".join(lines)
