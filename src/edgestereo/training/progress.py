"""A resumable run's validation curve across its sittings, and its stages (working days) summed up.

``edgestereo train --resume`` starts a new ``logs/version_N/metrics.csv`` at every sitting. The curve
joins them in ``N`` order. A sitting that resumed from an older checkpoint than the last step of the
one before re-runs steps; the earlier sitting's readings from those steps on belong to the abandoned
branch and are dropped. Lightning's CSV logger writes a validation reading at the step before the
one its checkpoint holds (``step`` 154999 for ``best-…-step0155000.ckpt``): :func:`read_curve`
reports the checkpoint's step.

>>> curve = read_curve("runs/stereonet_plus2_small_campaign/logs")  # doctest: +SKIP
>>> stages = summarise_stages(curve, [10_531, 23_000])               # doctest: +SKIP
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgestereo.errors import EdgeStereoError

__all__ = ["Reading", "Stage", "read_curve", "summarise_stages"]

_VERSION = re.compile(r"version_(\d+)")


@dataclass(frozen=True)
class Reading:
    """One validation reading: ``step`` the checkpoint's global step, ``value`` the metric."""

    step: int
    value: float


@dataclass(frozen=True)
class Stage:
    """The readings of one stage (steps ``first_step`` < step ≤ ``last_step``) and the best before it."""

    first_step: int
    last_step: int
    readings: tuple[Reading, ...]
    best_before: Reading | None

    @property
    def best(self) -> Reading | None:
        """The lowest reading inside the stage (the earlier one on a tie), or None without readings."""
        return min(self.readings, key=lambda reading: reading.value, default=None)

    @property
    def gain(self) -> float | None:
        """Relative fall of the best reading so far over the stage: 0.029 for 4.379 → 4.251.

        0 when the stage does not beat the best before it; None for the first stage with readings
        (nothing to compare with) or a stage without readings.
        """
        best = self.best
        if best is None or self.best_before is None:
            return None
        return max(0.0, (self.best_before.value - best.value) / self.best_before.value)


def _sittings(log_root: Path) -> list[Path]:
    folders = [(int(match.group(1)), path) for path in log_root.iterdir()
               if (match := _VERSION.fullmatch(path.name)) and (path / "metrics.csv").is_file()]
    if not folders:
        raise EdgeStereoError(f"no version_N/metrics.csv under {log_root}")
    return [path / "metrics.csv" for _, path in sorted(folders)]


def _read_sitting(path: Path, metric: str) -> tuple[int | None, dict[int, float]]:
    """(first logged step, {checkpoint step: metric}) of one sitting's metrics.csv."""
    first: int | None = None
    readings: dict[int, float] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "step" not in reader.fieldnames:
            raise EdgeStereoError(f"{path} is not a Lightning metrics.csv (no step column)")
        for line, row in enumerate(reader, start=2):
            try:
                step = int(row["step"])
                value = float(row[metric]) if row.get(metric) else None
            except (TypeError, ValueError):
                raise EdgeStereoError(f"{path}:{line}: unreadable step or {metric} {row!r}") from None
            first = step if first is None else min(first, step)
            if value is not None:
                readings[step + 1] = value
    return first, readings


def read_curve(log_root: str | Path, metric: str = "val/epe") -> list[Reading]:
    """The run's ``metric`` readings over every ``version_N/metrics.csv`` under ``log_root``, by step.

    A later sitting replaces the readings of earlier ones from its first logged step on (it resumed
    from an older checkpoint and re-ran those steps). Raises EdgeStereoError when ``log_root`` holds
    no sitting or a file is not a readable Lightning CSV log.
    """
    root = Path(log_root)
    if not root.is_dir():
        raise EdgeStereoError(f"no log folder {root}")
    curve: dict[int, float] = {}
    for path in _sittings(root):
        first, readings = _read_sitting(path, metric)
        if first is not None:
            curve = {step: value for step, value in curve.items() if step <= first}
        curve.update(readings)
    return [Reading(step, value) for step, value in sorted(curve.items())]


def summarise_stages(curve: Sequence[Reading], last_steps: Sequence[int]) -> list[Stage]:
    """Split ``curve`` into stages ending at the increasing ``last_steps`` (the first starts at step 0)."""
    if any(later <= earlier for earlier, later in itertools.pairwise(last_steps)) or (
            last_steps and last_steps[0] <= 0):
        raise EdgeStereoError(f"stage ends must be positive and increasing, got {list(last_steps)}")
    stages: list[Stage] = []
    best_before: Reading | None = None
    first_step = 0
    for last_step in last_steps:
        readings = tuple(reading for reading in curve if first_step < reading.step <= last_step)
        stage = Stage(first_step, last_step, readings, best_before)
        stages.append(stage)
        if stage.best is not None and (best_before is None or stage.best.value < best_before.value):
            best_before = stage.best
        first_step = last_step
    return stages
