"""A resumable run's validation curve across sittings and its stages (training.progress)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgestereo.errors import EdgeStereoError
from edgestereo.training.progress import Reading, read_curve, summarise_stages


def _sitting(root: Path, version: int, rows: list[tuple[int, float | None]], extra_column: bool = False) -> None:
    """One version_N/metrics.csv: training rows (value None) and validation rows at logged steps."""
    folder = root / f"version_{version}"
    folder.mkdir(parents=True)
    header = ["epoch", "step", "train/epe"] + (["val/bad3"] if extra_column else []) + ["val/epe"]
    lines = [",".join(header)]
    for step, value in rows:
        cells = ["0", str(step), "" if value is not None else "3.5"]
        cells += [""] * extra_column + ["" if value is None else str(value)]
        lines.append(",".join(cells))
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_read_curve_joins_sittings_at_checkpoint_steps(tmp_path):
    _sitting(tmp_path, 0, [(49, None), (99, 9.0), (149, None), (199, 8.0)])
    # version 10 sorts after version 2 by number, not by name
    _sitting(tmp_path, 10, [(449, None), (499, 6.0)], extra_column=True)
    _sitting(tmp_path, 2, [(249, None), (299, 7.0)])
    assert read_curve(tmp_path) == [Reading(100, 9.0), Reading(200, 8.0), Reading(300, 7.0), Reading(500, 6.0)]


def test_read_curve_drops_the_abandoned_branch_of_an_older_resume(tmp_path):
    # sitting 0 reached step 400; sitting 1 resumed from the step-150 checkpoint and re-ran 150-400
    _sitting(tmp_path, 0, [(99, 9.0), (199, 8.0), (299, 7.5), (399, 7.0)])
    _sitting(tmp_path, 1, [(199, None), (299, 7.8)])
    assert read_curve(tmp_path) == [Reading(100, 9.0), Reading(300, 7.8)]


def test_read_curve_keeps_a_reading_at_the_resumed_checkpoint(tmp_path):
    _sitting(tmp_path, 0, [(99, 9.0), (149, None)])
    _sitting(tmp_path, 1, [(149, None), (199, 8.0)])   # resumed from step 100: its first row is step 149
    assert read_curve(tmp_path) == [Reading(100, 9.0), Reading(200, 8.0)]


def test_read_curve_keeps_a_reading_when_the_resume_logs_its_first_step(tmp_path):
    _sitting(tmp_path, 0, [(99, 9.0), (149, None)])
    _sitting(tmp_path, 1, [(100, None), (199, 8.0)])   # resumed from step 100, logging every step
    assert read_curve(tmp_path) == [Reading(100, 9.0), Reading(200, 8.0)]


def test_read_curve_of_another_metric(tmp_path):
    _sitting(tmp_path, 0, [(99, 9.0)])
    assert read_curve(tmp_path, metric="train/epe") == []
    assert read_curve(tmp_path) == [Reading(100, 9.0)]


@pytest.mark.parametrize(("case", "message"), [("missing", "no log folder"), ("empty", "no version_N"),
                                               ("no step column", "no step column"), ("bad value", "unreadable")])
def test_read_curve_errors_name_the_problem(tmp_path, case, message):
    root = tmp_path / "logs"
    if case != "missing":
        (root / "version_0").mkdir(parents=True)
    if case == "no step column":
        (root / "version_0" / "metrics.csv").write_text("epoch,val/epe\n0,1.0\n")
    if case == "bad value":
        (root / "version_0" / "metrics.csv").write_text("epoch,step,val/epe\n0,99,nan?\n")
    with pytest.raises(EdgeStereoError, match=message):
        read_curve(root)


def test_stages_best_and_gain():
    curve = [Reading(100, 10.0), Reading(200, 8.0), Reading(300, 9.0), Reading(400, 7.8), Reading(500, 7.7),
             Reading(600, 7.9), Reading(700, 7.5)]
    first, second, third, empty, fourth = summarise_stages(curve, [200, 500, 600, 650, 700])
    assert first.best == Reading(200, 8.0) and first.best_before is None and first.gain is None
    assert second.readings == (Reading(300, 9.0), Reading(400, 7.8), Reading(500, 7.7))
    assert second.best_before == Reading(200, 8.0)
    assert second.gain == pytest.approx((8.0 - 7.7) / 8.0)
    assert third.best_before == Reading(500, 7.7) and third.gain == 0.0   # 7.9 does not beat 7.7
    assert empty.readings == () and empty.best is None and empty.gain is None
    assert fourth.best_before == Reading(500, 7.7)
    assert fourth.gain == pytest.approx((7.7 - 7.5) / 7.7)


def test_stage_best_is_the_earlier_on_a_tie():
    (stage,) = summarise_stages([Reading(100, 5.0), Reading(200, 5.0)], [200])
    assert stage.best == Reading(100, 5.0)


@pytest.mark.parametrize("ends", [[200, 200], [300, 100], [0, 100]])
def test_stage_ends_must_increase(ends):
    with pytest.raises(EdgeStereoError, match="increasing"):
        summarise_stages([Reading(100, 1.0)], ends)


def test_reading_logs_does_not_start_lightning():
    code = ("import sys, edgestereo.training.progress\n"
            "print(sorted(name for name in sys.modules if name.startswith('lightning')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
