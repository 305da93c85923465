"""ONNX Runtime against OpenVINO on the same exported files: latency and parity.

Each network is exported with edgestereo's exporter (npu4d, the graph an NPU gets) and run on the same
random pair in ONNX Runtime (fp32) and in OpenVINO at fp32 (exact), bf16 (only where the CPU has native
bfloat16) and auto (OpenVINO's choice). Printed per row: median and minimum latency over ``--runs``
runs after warm-up, at ``--threads`` threads, and mean / max |Δ| of the disparity against ONNX Runtime
(pixels). The default model runs with its packaged weights; the others with seeded random weights
(BatchNorm statistics from a few training-mode passes, so activations have a trained model's range).

usage:
  .venv/bin/python benchmarks/bench_runtimes.py                       # default model, v2-small, raft-stereo-realtime
  .venv/bin/python benchmarks/bench_runtimes.py --models stereonet-plus-small --size 544 960 --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from edgestereo import DEFAULT_MODEL
from edgestereo.export import export_onnx
from edgestereo.runtime.benchmark import benchmark_network
from edgestereo.runtime.factory import create_predictor
from edgestereo.runtime.openvino_predictor import native_bf16

ROWS = (("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "auto"))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_runs(predictor, left: np.ndarray, right: np.ndarray, runs: int, warmup: int) -> tuple[list[float], np.ndarray]:
    for _ in range(warmup):
        out = predictor(left, right)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        out = predictor(left, right)
        seconds.append(time.perf_counter() - start)
    return seconds, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[DEFAULT_MODEL, "stereonet-plus-small", "raft-stereo-realtime"])
    parser.add_argument("--size", type=int, nargs=2, default=(384, 640), metavar=("H", "W"))
    parser.add_argument("--raft-size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"),
                        help="RAFT-Stereo networks run at this size (default 256 512)")
    parser.add_argument("--iters", type=int, default=7, help="RAFT-Stereo iterations (default 7)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    bf16 = native_bf16()
    print(f"# bench_runtimes: {cpu_name()}, {os.cpu_count()} CPUs, native bf16: {'yes' if bf16 else 'no'}, "
          f"{args.threads} threads, load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("| model | size | runtime | precision | median ms | min ms | mean |Δ| px | max |Δ| px |")
    print("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-runtimes-") as work:
        for name in args.models:
            height, width = args.raft_size if name.startswith("raft") else args.size
            network = benchmark_network(name, {"iters": args.iters} if name.startswith("raft") else {})
            path = export_onnx(network, Path(work) / f"{name}.onnx", height, width)
            left = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            right = np.roll(left, -8, axis=1)
            reference = None
            for runtime, precision in ROWS:
                if precision == "bf16" and not bf16:
                    print(f"| {name} | {width}x{height} | {runtime} | bf16 | (no native bf16 on this CPU) | | | |")
                    continue
                predictor = create_predictor(onnx=path, runtime=runtime, precision=precision, threads=args.threads)
                seconds, out = time_runs(predictor, left, right, args.runs, args.warmup)
                if reference is None:
                    reference = out
                difference = np.abs(out - reference)
                label = precision if runtime == "onnxruntime" else f"{precision} ({predictor.inference_precision})"
                print(f"| {name} | {width}x{height} | {runtime} | {label} | {1e3 * statistics.median(seconds):.1f} | "
                      f"{1e3 * min(seconds):.1f} | {difference.mean():.2g} | {difference.max():.2g} |", flush=True)
    print(f"\nload average after: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
