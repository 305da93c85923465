"""The memory a predictor's check estimates for a pair against the peak it really takes.

Each row runs in a fresh process: the network is built (random weights), run once on a 64x128
pair, then on a pair of the row's size; "measured" is how far that second call (the predictor's own
check included) raised the resident memory, sampled every millisecond
(``runtime.benchmark.peak_memory_added``), "traced" the network's own tensors
(``StereoModel.inference_bytes``) and "estimate" what ``runtime.memory.estimate_bytes`` adds to them
(input and output copies, the margin) and compares with the limit. With ``--refuse WxH`` the last
row is a pair the default limit refuses: its time to refuse and the process's peak memory.

usage:
  .venv/bin/python benchmarks/memory_estimate.py
  .venv/bin/python benchmarks/memory_estimate.py --models stereonet-plus-small gwcnet-gc --sizes 640x384
  .venv/bin/python benchmarks/memory_estimate.py --refuse 8000x6000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_CHILD = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from edgestereo.errors import EdgeStereoError
from edgestereo.models import create_model
from edgestereo.runtime.benchmark import peak_memory_added
from edgestereo.runtime.memory import estimate_bytes
from edgestereo.runtime.predictor import TorchPredictor

name, height, width, refuse = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
model = create_model(name)
predictor = TorchPredictor(model, "cpu", max_memory=None if refuse else 1e3)
left = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
right = np.roll(left, -4, axis=1)
predictor(left[:64, :128].copy(), right[:64, :128].copy())
step = model.divisor
traced = model.inference_bytes(-(-height // step) * step, -(-width // step) * step)
estimate = estimate_bytes(model, height, width)


def run():
    try:
        predictor(left, right)
        return "ran"
    except EdgeStereoError as exc:
        return str(exc)


start = time.perf_counter()
outcome, added = peak_memory_added(run)
seconds = time.perf_counter() - start
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))
print(json.dumps({"traced": traced, "estimate": estimate, "added": added, "peak": peak, "seconds": seconds,
                  "outcome": outcome}))
"""


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def _measure(model: str, width: int, height: int, refuse: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", _CHILD, model, str(height), str(width), "1" if refuse else "0"],
                            capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["stereonet-plus-small", "stereonet-plus2-small"])
    parser.add_argument("--sizes", nargs="+", type=_size, default=[(640, 384), (1280, 768), (2560, 1536)],
                        metavar="WxH")
    parser.add_argument("--refuse", type=_size, default=None, metavar="WxH",
                        help="also a pair of this size with the default limit (first model)")
    args = parser.parse_args()
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    print(f"cpu {cpu}, 1 thread; MB = 10^6 bytes")
    print(f"{'model':<24}{'size':>11}{'traced MB':>11}{'estimate MB':>13}{'measured MB':>13}{'est/meas':>10}")
    for model in args.models:
        for width, height in args.sizes:
            row = _measure(model, width, height, refuse=False)
            measured = row["added"]
            print(f"{model:<24}{f'{width}x{height}':>11}{row['traced'] / 1e6:>11.0f}{row['estimate'] / 1e6:>13.0f}"
                  f"{measured / 1e6:>13.0f}{row['estimate'] / measured:>10.2f}")
    if args.refuse is not None:
        width, height = args.refuse
        row = _measure(args.models[0], width, height, refuse=True)
        print(f"\n{args.models[0]} {width}x{height} with the default limit: {row['seconds']:.1f} s, process peak "
              f"{row['peak'] / 1e9:.2f} GB\n  {row['outcome']}")


if __name__ == "__main__":
    main()
