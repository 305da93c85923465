"""Training throughput on this machine: samples/s of every network, fp32 and bf16 autocast, and
DDP with 2 processes against 1.

1. per network and precision, in a fresh process: one optimisation step as `edgestereo train` runs
   it (forward_train, the family's published loss, backward, gradient clipping, AdamW) on a batch of
   synthetic pairs already in memory, so the figure is the model's, not the data pipeline's; one
   warm-up step, then the median over the timed steps;
2. DDP: `edgestereo train` itself (Lightning, gloo on CPU) with --trainer.devices 1 and 2 on a
   pre-rendered synthetic folder, samples/s of all processes together (TrainingSpeed, per step,
   median after two warm-up steps). On one machine the processes share its cores (Lightning gives
   each cores/processes threads), so the ratio shows the cost of the all-reduce, not a speed-up.

3. ``--pipeline``: `edgestereo train` itself on scenes rendered on the fly, as the recipes train:
   rendering in the training process (``num_workers: 0``) against one persistent DataLoader worker,
   at 256x512 batch 2 and at the campaign's first phase (scenes rendered at 128x256, batch 8); median
   samples/s over the logged steps after warm-up, with the training process on one thread.

Prints Markdown tables with the load average, since on a shared machine the figures move with it.

usage:
  .venv/bin/python benchmarks/bench_training.py            # every network, 256x512, batch 2; DDP 1 vs 2
  .venv/bin/python benchmarks/bench_training.py --quick    # stereonet-plus-small at 64x128: a smoke run
  .venv/bin/python benchmarks/bench_training.py --models stereonet-plus --size 192 384 --batch 4 --skip-ddp
  .venv/bin/python benchmarks/bench_training.py --pipeline    # the training loop with its data pipeline
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_average() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


# --------------------------------------------------------------------------- one network, one precision
def measure_step(model_name: str, precision: str, size: tuple[int, int], batch: int, steps: int,
                 budget: float) -> dict:
    """Runs in its own process: median seconds per optimisation step on an in-memory batch (the
    first step alone when it took more than ``budget`` seconds)."""
    import torch

    from edgestereo.data import collate_stereo, create_dataset
    from edgestereo.training.lit_module import StereoLitModule

    torch.manual_seed(0)
    module = StereoLitModule(model=model_name)
    max_disp = float(min(getattr(module.model.config, "max_disp", 192), size[1] // 2))
    pairs = create_dataset("synthetic", num=batch, size=size, max_disp=max_disp)
    data = collate_stereo([pairs[i] for i in range(batch)])
    optimizer = torch.optim.AdamW(module.model.parameters(), lr=1e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    times = []
    for step in range(steps + 1):
        if step == 1 and times[0] > budget:
            # a configuration this slow is timed by its first step alone (one-time set-up included)
            break
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            outputs = module.model.forward_train(data["left"], data["right"])
        loss = module.supervised(outputs, data)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.model.parameters(), 1.0)
        optimizer.step()
        times.append(time.perf_counter() - start)
    step = statistics.median(times[1:] or times)
    return {"model": model_name, "precision": precision, "seconds_per_step": step, "samples_per_s": batch / step,
            "params": sum(p.numel() for p in module.model.parameters()), "loss": loss.item(),
            "first_step_only": len(times) == 1}


def run_worker(model_name: str, precision: str, size: tuple[int, int], batch: int, steps: int,
               threads: int | None, budget: float) -> dict:
    command = [sys.executable, __file__, "--worker", model_name, precision, "--size", *map(str, size),
               "--batch", str(batch), "--steps", str(steps), "--budget", str(budget)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=10 * budget)
    except subprocess.TimeoutExpired:
        return {"model": model_name, "precision": precision, "error": f"> {10 * budget:.0f} s for one step"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"model": model_name, "precision": precision, "error": last}
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- `edgestereo train` itself
#: a short training recipe without validation or checkpoints; ``data`` is the data block's own lines
TRAIN_RECIPE = """\
seed_everything: 0
trainer:
  accelerator: cpu
  max_steps: {steps}
  enable_progress_bar: false
  enable_model_summary: false
  enable_checkpointing: false
  num_sanity_val_steps: 0
  log_every_n_steps: 1
model:
  model: {model}
  val_images: 0
data:
  dataset: synthetic
  val_split: null
  crop_size: [{height}, {width}]
  batch_size: {batch}
{data}speed:
  smoothing: 0.0
"""


def train_rate(recipe: Path, run_dir: Path, steps: int, extra: list[str], env: dict | None = None) -> float | str:
    """Run `edgestereo train` on ``recipe``: median samples/s of the logged steps after warm-up (all
    processes together under DDP), or the error line."""
    command = [sys.executable, "-m", "edgestereo.apps.cli", "train", "--config", str(recipe), "--no-export",
               "--trainer.default_root_dir", str(run_dir), "--step_checkpoint.every_n_steps", str(10 * steps), *extra]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    if done.returncode != 0:
        return "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    from edgestereo.training.progress import read_curve  # lightning: only where a run was trained

    rates = [reading.value for reading in read_curve(run_dir / "logs", "train/samples_per_s")]
    skip = 2 if len(rates) < 20 else 5
    return statistics.median(rates[skip:] or rates)


def measure_ddp(model_name: str, devices: int, root: Path, work: Path, size: tuple[int, int], batch: int,
                steps: int) -> float | str:
    """samples/s of all processes together (median of the per-step rates after two warm-up steps)."""
    recipe = work / f"ddp{devices}.yaml"
    recipe.write_text(TRAIN_RECIPE.format(steps=steps, model=model_name, height=size[0], width=size[1], batch=batch,
                                          data=f"  root: {root}\n  augmentation: none\n"))
    return train_rate(recipe, work / f"run{devices}", steps,
                      ["--trainer.devices", str(devices), "--trainer.strategy", "ddp" if devices > 1 else "auto"])


# --------------------------------------------------------------------------- the whole training loop
#: (model, scene and crop size, batch, DataLoader workers): the old recipe's setting and the campaign's
PIPELINE_ROWS = (
    ("stereonet-plus-small", (256, 512), 2, 0),
    ("stereonet-plus-small", (256, 512), 2, 1),
    ("stereonet-plus2-small", (256, 512), 2, 0),
    ("stereonet-plus2-small", (256, 512), 2, 1),
    ("stereonet-plus2-small", (128, 256), 8, 1),
)


def measure_pipeline(model_name: str, size: tuple[int, int], batch: int, workers: int, steps: int,
                     work: Path) -> float | str:
    """samples/s of `edgestereo train` with the training process on one thread (median after warm-up)."""
    recipe = work / f"pipeline-{model_name}-{size[0]}-{batch}-{workers}.yaml"
    data = (f"  options: {{num: 1000, size: [{size[0]}, {size[1]}], max_disp: {size[1] * 3 // 8}, seed: 0}}\n"
            f"  augmentation: synthetic\n  num_workers: {workers}\n")
    recipe.write_text(TRAIN_RECIPE.format(steps=steps, model=model_name, height=size[0], width=size[1], batch=batch,
                                          data=data))
    return train_rate(recipe, work / recipe.stem, steps, [], env={**os.environ, "OMP_NUM_THREADS": "1"})


def pipeline_table(steps: int) -> None:
    print("## The training loop with its data pipeline (edgestereo train, scenes rendered on the fly)\n")
    print(f"load average before: {load_average()}\n")
    print("| model | scenes and crops | batch | DataLoader workers | samples/s | Mpx/s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as work_dir:
        for model_name, size, batch, workers in PIPELINE_ROWS:
            rate = measure_pipeline(model_name, size, batch, workers, steps, Path(work_dir))
            cells = (f"{rate:.3g} | {rate * size[0] * size[1] / 1e6:.2f}" if isinstance(rate, float)
                     else f"{rate} | –")
            print(f"| {model_name} | {size[0]}x{size[1]} | {batch} | {workers} | {cells} |", flush=True)
    print(f"\nload average after: {load_average()}\n")


# --------------------------------------------------------------------------- tables
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="stereonet-plus-small at 64x128, 2 steps")
    parser.add_argument("--models", default=None, help="comma-separated names (default: every network)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per configuration")
    parser.add_argument("--skip-ddp", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads per network measurement (default: PyTorch's, one per core)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds: a configuration whose first step takes longer is timed by that step alone, "
                             "and given up after ten times as long (default 60)")
    parser.add_argument("--pipeline", action="store_true",
                        help="only the training loop with its data pipeline (workers 0 vs 1, progressive sizes)")
    parser.add_argument("--worker", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pipeline:
        pipeline_table(args.steps or 40)
        return
    size = tuple(args.size or ((64, 128) if args.quick else (256, 512)))
    steps = args.steps or (2 if args.quick else 5)
    if args.worker:
        print(json.dumps(measure_step(args.worker[0], args.worker[1], size, args.batch, steps, args.budget)))
        return

    from edgestereo.models import create_model, list_models

    if args.models:
        names = args.models.split(",")
    elif args.quick:
        names = ["stereonet-plus-small"]
    else:
        names = [name for name in list_models() if create_model(name).exportable]
    threads = args.threads or os.cpu_count()
    print(f"## Training throughput, {size[0]}x{size[1]}, batch {args.batch}, {threads} intra-op thread(s)\n")
    print(f"load average before: {load_average()}\n")
    print("| model | parameters | fp32 samples/s | bf16 samples/s | fp32 s/step | bf16 s/step |")
    print("|---|---|---|---|---|---|")
    first_step_only = False
    for name in names:
        cells = {}
        for precision in ("fp32", "bf16"):
            cells[precision] = run_worker(name, precision, size, args.batch, steps, args.threads, args.budget)
        rates, steps_s = [], []
        for precision in ("fp32", "bf16"):
            cell = cells[precision]
            if "error" in cell:
                rates.append(cell["error"])
                steps_s.append("–")
            else:
                mark = "*" if cell["first_step_only"] else ""
                first_step_only |= cell["first_step_only"]
                rates.append(f"{cell['samples_per_s']:.3g}{mark}")
                steps_s.append(f"{cell['seconds_per_step']:.3g}")
        params = next((f"{c['params']:,}" for c in cells.values() if "params" in c), "–")
        print(f"| {name} | {params} | {' | '.join(rates)} | {' | '.join(steps_s)} |", flush=True)
    if first_step_only:
        print(f"\n\\* the first step alone (it took more than {args.budget:.0f} s)")
    print(f"\nload average after: {load_average()}\n")
    if args.skip_ddp:
        return

    from edgestereo.data.synthetic.dataset import synthetic_config, write_synthetic

    ddp_model = names[0] if args.quick else "stereonet-plus"
    ddp_steps = 4 if args.quick else 12
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as work_dir:
        work = Path(work_dir)
        # enough pairs that neither run repeats one within its steps
        write_synthetic(work / "data", 2 * args.batch * (ddp_steps + 1),
                        synthetic_config(size, max_disp=min(192, size[1] // 2)))
        one = measure_ddp(ddp_model, 1, work / "data", work, size, args.batch, ddp_steps)
        two = measure_ddp(ddp_model, 2, work / "data", work, size, args.batch, ddp_steps)
    print(f"## DDP on one machine: {ddp_model}, {size[0]}x{size[1]}, batch {args.batch} per process\n")
    print("| processes | samples/s (all processes) |")
    print("|---|---|")
    for count, rate in ((1, one), (2, two)):
        print(f"| {count} | {rate:.2f} |" if isinstance(rate, float) else f"| {count} | {rate} |")
    if isinstance(one, float) and isinstance(two, float):
        print(f"\n2 processes / 1 process: {two / one:.2f}x")
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()
