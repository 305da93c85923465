"""RAFT-Stereo on this CPU: PyTorch reference / deploy / bf16 autocast and ONNX Runtime, side by side.

Default: raft-stereo-realtime at 384x640, 7 iterations, batch 1. Each configuration runs in a fresh
process (so one's freed memory does not hide the next one's peak) through edgestereo's bench
runners: median and p90 latency of the network alone, the process's peak resident memory, and its
rise over the idle process with the model loaded. GFLOPs are torch.utils.flop_counter's
count (2 per multiply-add, convolutions and matrix products) of the reference path, the same work
for every row; GFLOP/s = GFLOPs / median latency, and the share of the machine's fp32 matmul rate
measured at start shows how far each row is from what this CPU can do. Random weights: timing does
not depend on them. The ONNX file is the npu4d export (the deploy path), timed in ONNX Runtime. The
CPU's vector features are printed: without AVX512-BF16 or AMX, PyTorch runs bf16 convolutions in its
slow reference kernel (aten::_slow_conv2d_forward), so the bf16 row can take minutes per call.

Issue target: ONNX Runtime deploy no slower than 1.1x the PyTorch reference (fp32).

The load average is printed before and after, and the 1-minute load beside each row: on a shared
machine the figures are only as good as the quiet they ran in.

usage:
  .venv/bin/python benchmarks/bench_raft_stereo.py             # 384x640, 7 iterations, 10 runs
  .venv/bin/python benchmarks/bench_raft_stereo.py --quick     # 128x256, 2 iterations, 2 runs: a smoke run
  .venv/bin/python benchmarks/bench_raft_stereo.py --model raft-stereo --iters 32
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import onnxruntime as ort
import torch
from torch.utils.flop_counter import FlopCounterMode

from edgestereo.runtime.benchmark import environment

#: row key → (label, runtime, precision, path).
CONFIGURATIONS = {
    "reference": ("PyTorch reference", "torch", "fp32", "reference"),
    "deploy": ("PyTorch deploy", "torch", "fp32", "deploy"),
    "bf16": ("PyTorch reference, bf16 autocast", "torch", "bf16", "reference"),
    "onnx": ("ONNX Runtime deploy (npu4d file)", "onnxruntime", "fp32", "deploy"),
}
ORT_VS_TORCH_LIMIT = 1.1


@dataclass
class Measurement:
    label: str
    #: timed runs; "1 (cold)" when one call already overran the time budget and is the figure.
    runs: str
    median_ms: float
    p90_ms: float
    peak_mb: float
    idle_mb: float | None


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def _model(args: argparse.Namespace, path: str):
    from edgestereo.models import create_model

    torch.manual_seed(0)
    return create_model(args.model, iters=args.iters).deploy(path == "deploy")


def _export(args: argparse.Namespace, onnx_path: Path) -> None:
    """The npu4d file, written in a process of its own so the timed one holds only the ONNX session."""
    from edgestereo.export.exporter import export_onnx

    export_onnx(_model(args, "deploy"), onnx_path, args.height, args.width, profile="npu4d")


def _measure(label: str, runtime: str, precision: str, path: str, args: argparse.Namespace,
             onnx_path: Path) -> Measurement:
    """One configuration, in a fresh process, so its peak RSS (``ru_maxrss``) is its own. The first
    call is a warm-up that also sizes the run: as many timed runs as fit in ``--budget-s`` (at most
    ``--runs``); when not even two fit, the first call is the figure."""
    import resource

    from edgestereo.runtime.benchmark import OnnxBenchRunner, TorchBenchRunner, random_pair

    torch.set_num_threads(args.threads)
    if runtime == "onnxruntime":
        runner = OnnxBenchRunner(onnx_path, threads=args.threads)
    else:
        runner = TorchBenchRunner(_model(args, path), args.height, args.width, device="cpu", precision=precision)
    idle = _rss_mb()
    inputs = runner.prepare(*random_pair(args.height, args.width))

    def timed() -> float:
        start = time.perf_counter()
        runner.infer(inputs)
        return time.perf_counter() - start

    first_s = timed()
    runs = min(args.runs, int(args.budget_s / first_s))
    if runs < 2:
        seconds, runs_label = [first_s], "1 (cold)"
    else:
        for _ in range(args.warmup - 1):
            timed()
        seconds, runs_label = [timed() for _ in range(runs)], str(runs)
    ms = sorted(1e3 * s for s in seconds)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux reports KiB
    return Measurement(label, runs_label, statistics.median(ms), ms[min(len(ms) - 1, int(0.9 * len(ms)))],
                       peak_mb, idle)


def _in_fresh_process(function, *arguments):
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *arguments).result()


def reference_gflops(name: str, height: int, width: int, iters: int) -> float:
    """GFLOPs of one reference forward pass (batch 1), counted on the meta device: no compute."""
    from edgestereo.models import create_model

    with torch.device("meta"):
        model = create_model(name, iters=iters)
        left = torch.zeros(1, 3, height, width)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(left, left)
    return counter.get_total_flops() / 1e9


def matmul_gflops(threads: int, size: int = 2048, runs: int = 5) -> float:
    """This machine's fp32 matrix-multiply rate in PyTorch, GFLOP/s: the practical ceiling for convolutions."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        torch.mm(a, b)
        seconds.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(seconds) / 1e9


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="raft-stereo-realtime", help="a RAFT-Stereo variant (default realtime)")
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--iters", type=int, default=7, help="refinement iterations (default 7)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per configuration (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="intra-op threads for PyTorch and ONNX Runtime (default: all CPUs)")
    parser.add_argument("--budget-s", type=float, default=120.0,
                        help="fewer runs for a configuration whose first call shows that --runs would take longer "
                             "than this many seconds (default 120; bf16 without AVX512-BF16/AMX is that slow)")
    parser.add_argument("--rows", nargs="+", choices=list(CONFIGURATIONS), default=list(CONFIGURATIONS),
                        help="configurations to time (default: all)")
    parser.add_argument("--quick", action="store_true", help="128x256, 2 iterations, 1 warm-up, 2 runs: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.height, args.width, args.iters, args.runs, args.warmup = 128, 256, 2, 2, 1

    print(f"# bench_raft_stereo: {args.model}, {args.width}x{args.height}, {args.iters} iterations, batch 1")
    machine = environment(args.threads)
    print(f"# {machine['cpu']} ({', '.join(machine['cpu_features']) or 'no AVX2'}), {os.cpu_count()} CPUs, "
          f"{args.threads} threads, torch {torch.__version__}, onnxruntime {ort.__version__}")
    print(f"load average before: {_load()}")
    gflops = reference_gflops(args.model, args.height, args.width, args.iters)
    ceiling = matmul_gflops(args.threads)
    print(f"work: {gflops:.1f} GFLOPs per pair; machine: {ceiling:.0f} GFLOP/s fp32 matmul ({args.threads} threads)\n")

    print("| configuration | runs | median ms | p90 ms | peak RSS MiB | rise MiB | GFLOP/s | % of matmul rate | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-raft-") as folder:
        onnx_path = Path(folder) / f"{args.model}-{args.height}x{args.width}.onnx"
        for key in args.rows:
            label, runtime, precision, path = CONFIGURATIONS[key]
            if runtime == "onnxruntime" and not onnx_path.exists():
                _in_fresh_process(_export, args, onnx_path)
            row = _in_fresh_process(_measure, label, runtime, precision, path, args, onnx_path)
            results[key] = row
            rate = gflops / row.median_ms * 1e3
            rise = f"{row.peak_mb - row.idle_mb:.0f}" if row.idle_mb is not None else "-"
            print(f"| {label} | {row.runs} | {row.median_ms:.0f} | {row.p90_ms:.0f} | {row.peak_mb:.0f} | {rise} | "
                  f"{rate:.1f} | {100 * rate / ceiling:.0f} | {os.getloadavg()[0]:.1f} |", flush=True)

    if {"reference", "onnx"} <= results.keys():
        ratio = results["onnx"].median_ms / results["reference"].median_ms
        verdict = "met" if ratio <= ORT_VS_TORCH_LIMIT else "NOT met"
        print(f"\nONNX Runtime deploy / PyTorch reference: {ratio:.2f}x (target ≤ {ORT_VS_TORCH_LIMIT}x: {verdict})")
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
