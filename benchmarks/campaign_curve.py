"""The default-model campaign's validation curve and its working days, from the committed logs.

Reads every ``logs/version_N/metrics.csv`` of the run (``edgestereo.training.progress.read_curve``:
sittings joined, re-run steps taken from the later sitting) and the run's ``days.csv`` (one row per
working day: its last step, the run's wall clock in minutes and the CPU, written by hand at the end of
each day). Prints one row per day: steps, samples seen (counted from the recipe's phases), wall clock,
the first and the best ``val/epe`` (the 100 synthetic validation pairs) and the day's gain: how much
the best reading so far fell over the day, the figure the issue's stop rule reads (two days in a row
under 3 % once the milestone is met). ``--readings`` also prints every reading.

usage:
  .venv/bin/python benchmarks/campaign_curve.py
  .venv/bin/python benchmarks/campaign_curve.py --readings
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import yaml

from edgestereo.errors import EdgeStereoError
from edgestereo.training.progress import Stage, read_curve, summarise_stages

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "runs" / "stereonet_plus2_small_campaign"
RECIPE = REPO / "configs" / "stereonet_plus2_small_campaign.yaml"
STOP_GAIN = 0.03


def batch_sizes(recipe: Path) -> list[tuple[int, int]]:
    """(steps, batch size) of each epoch of the recipe's phases, then (0, batch size) for the rest."""
    data = yaml.safe_load(recipe.read_text())["data"]
    num = data["options"]["num"]
    epochs = [(phase["epochs"], phase["batch_size"]) for phase in data.get("phases", [])]
    return [(count * (num // batch), batch) for count, batch in epochs] + [(0, data["batch_size"])]


def samples_seen(step: int, schedule: list[tuple[int, int]]) -> int:
    """Training pairs seen after ``step`` steps of ``schedule`` (from :func:`batch_sizes`)."""
    seen = 0
    for steps, batch in schedule:
        taken = step if steps == 0 else min(step, steps)
        seen += taken * batch
        step -= taken
    return seen


def _duration(minutes: int) -> str:
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _reading(stage: Stage) -> str:
    if not stage.readings:
        return "–"
    first, best = stage.readings[0], stage.best
    text = f"{first.value:.3f} (step {first.step:,})"
    if best is not first:
        text += f" → {best.value:.3f} (step {best.step:,})"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=RUN, help="the run folder (logs/ and days.csv)")
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="its config, for the batch sizes")
    parser.add_argument("--readings", action="store_true", help="also print every validation reading")
    args = parser.parse_args(argv)
    try:
        curve = read_curve(args.run / "logs")
        with (args.run / "days.csv").open(newline="") as handle:
            days = list(csv.DictReader(handle))
        stages = summarise_stages(curve, [int(day["last_step"]) for day in days])
        schedule = batch_sizes(args.recipe)
    except (OSError, KeyError, ValueError, EdgeStereoError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"run: {args.run.name}, {len(curve)} readings of val/epe (px); gain: fall of the best so far")
    print("| day | CPU, 2 cores | steps | samples seen | wall clock | val/epe first → best | day gain |")
    print("|---|---|---|---|---|---|---|")
    for day, stage in zip(days, stages, strict=True):
        gain = "–" if stage.gain is None else f"{100 * stage.gain:.2f} %"
        print(f"| {day['day']} | {day['cpu']} | {stage.first_step:,} → {stage.last_step:,} | "
              f"{samples_seen(stage.last_step, schedule):,} | {_duration(int(day['wall_clock_min']))} | "
              f"{_reading(stage)} | {gain} |")
    total = sum(int(day["wall_clock_min"]) for day in days)
    under = 0
    for stage in reversed(stages):
        if stage.gain is None or stage.gain >= STOP_GAIN:
            break
        under += 1
    print(f"wall clock in all: {_duration(total)}; days in a row at the end gaining under "
          f"{100 * STOP_GAIN:.0f} %: {under}")
    if args.readings:
        print("\n| step | val/epe |\n|---|---|")
        for reading in curve:
            print(f"| {reading.step:,} | {reading.value:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
