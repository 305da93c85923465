"""StereoNetPlus on this CPU: parameters, GFLOPs, ONNX Runtime fp32 latency, FPS and achieved GFLOP/s.

Every StereoNetPlus variant, and in the same run raft-stereo-realtime and sgbm when they are
registered, at 384x640 and 544x960 (batch 1). Networks are exported with edgestereo's exporter
(``--profile``, default npu4d: the graph an NPU gets) and timed in ONNX Runtime on the CPU with
``--threads`` intra-op threads; SGBM is timed as OpenCV runs it (``cv2.setNumThreads``). GFLOPs
are torch.utils.flop_counter's count (2 per multiply-add; convolutions and matrix products only) of
the exported path. Latency is the median of ``--runs`` runs after warm-up (fewer when a model
spends ``--budget`` seconds, at least 3); random weights, since the timing does not depend on them.

Wall-clock figures need a quiet machine; the load average is printed before and after. The last
column is the CPU time of one frame on one thread (ONNX Runtime with 1 intra-op thread runs on the
calling thread, SGBM with cv2.setNumThreads(1)), the fastest of the runs: other processes on the
machine barely change it, so it compares models and sizes even while the machine is shared.

Issue targets (2 cores, ONNX Runtime fp32): ≥ 20 FPS at 384x640, ≥ 8 FPS at 544x960.

usage:
  .venv/bin/python benchmarks/bench_stereonet_plus.py            # both sizes, 20 runs
  .venv/bin/python benchmarks/bench_stereonet_plus.py --quick    # 384x640, 3 runs: a smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import onnxruntime as ort
import torch
from torch.utils.flop_counter import FlopCounterMode

from edgestereo.export.exporter import export_onnx
from edgestereo.models import StereoModel, create_model, list_models
from edgestereo.runtime.onnx_predictor import OnnxPredictor

BASELINES = ("raft-stereo-realtime", "sgbm")
SIZES = ((384, 640), (544, 960))
TARGET_FPS = {(384, 640): 20.0, (544, 960): 8.0}


@dataclass
class Row:
    model: str
    height: int
    width: int
    params_m: float
    gflops: float | None
    runtime: str
    median_ms: float
    min_ms: float
    cpu_ms: float

    @property
    def fps(self) -> float:
        return 1e3 / self.median_ms

    def markdown(self) -> str:
        gflops = f"{self.gflops:.2f}" if self.gflops is not None else "-"
        achieved = f"{self.gflops / self.median_ms * 1e3:.1f}" if self.gflops is not None else "-"
        target = TARGET_FPS.get((self.height, self.width))
        verdict = ("yes" if self.fps >= target else "no") if target and self.model.startswith("stereonet-plus") else ""
        return (f"| {self.model} | {self.width}x{self.height} | {self.params_m:.3f} | {gflops} | {self.runtime} | "
                f"{self.median_ms:.1f} | {self.min_ms:.1f} | {self.fps:.1f} | {achieved} | {verdict} | "
                f"{self.cpu_ms:.1f} |")


def count_gflops(model: StereoModel, height: int, width: int, deploy: bool) -> float:
    """GFLOPs of one forward pass at (height, width), batch 1, on the chosen path."""
    was_deploy = model.is_deploy
    model.deploy(deploy)
    try:
        left, right = model.example_inputs(height, width)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(left, right)
    finally:
        model.deploy(was_deploy)
    return counter.get_total_flops() / 1e9


def time_calls(call, warmup: int, runs: int, budget_s: float) -> list[float]:
    """Milliseconds of up to ``runs`` calls after ``warmup`` untimed ones; stops after ``budget_s``
    seconds once 3 calls are timed."""
    for _ in range(warmup):
        call()
    latencies: list[float] = []
    started = time.perf_counter()
    while len(latencies) < runs and (len(latencies) < 3 or time.perf_counter() - started < budget_s):
        start = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - start) * 1e3)
    return latencies


def cpu_time_ms(call, runs: int, budget_s: float) -> float:
    """The smallest CPU time of this process over up to ``runs`` calls of a single-threaded ``call``, ms."""
    call()
    best = float("inf")
    started = time.perf_counter()
    for done in range(runs):
        if done >= 3 and time.perf_counter() - started > budget_s:
            break
        start = time.process_time()
        call()
        best = min(best, (time.process_time() - start) * 1e3)
    return best


def bench_network(name: str, height: int, width: int, args: argparse.Namespace, folder: Path) -> Row:
    model = create_model(name).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    gflops = count_gflops(model, height, width, model.export_uses_deploy(args.profile))
    path = export_onnx(model, folder / f"{name}-{height}x{width}.onnx", height, width, profile=args.profile)
    predictor = OnnxPredictor(path, threads=args.threads, providers=["CPUExecutionProvider"])
    single = OnnxPredictor(path, threads=1, providers=["CPUExecutionProvider"])
    left, right = (t.numpy() for t in model.example_inputs(height, width))
    latencies = time_calls(lambda: predictor.run_tensors(left, right), args.warmup, args.runs, args.budget)
    cpu_ms = cpu_time_ms(lambda: single.run_tensors(left, right), args.runs, args.budget)
    return Row(name, height, width, params, gflops, f"ORT fp32 ({args.profile})",
               statistics.median(latencies), min(latencies), cpu_ms)


def bench_sgbm(height: int, width: int, args: argparse.Namespace) -> Row:
    model = create_model("sgbm")
    left, right = (t[0].permute(1, 2, 0).byte().numpy() for t in model.example_inputs(height, width))
    cv2.setNumThreads(1)
    cpu_ms = cpu_time_ms(lambda: model.match(left, right), args.runs, args.budget)
    cv2.setNumThreads(args.threads)
    latencies = time_calls(lambda: model.match(left, right), args.warmup, args.runs, args.budget)
    return Row("sgbm", height, width, 0.0, None, "OpenCV", statistics.median(latencies), min(latencies), cpu_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="384x640 only, 1 warm-up and 3 runs: a smoke run")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2, this machine's cores)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per model and size (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="seconds of timed runs per model, size and column before stopping early (default 30)")
    parser.add_argument("--profile", default="npu4d", choices=["npu4d", "tensorrt", "generic"],
                        help="export profile of the timed graphs (default npu4d)")
    parser.add_argument("--models", nargs="+", default=None,
                        help="models to time (default: every stereonet-plus variant, then raft-stereo-realtime, sgbm)")
    args = parser.parse_args()
    sizes = SIZES[:1] if args.quick else SIZES
    if args.quick:
        args.runs, args.warmup = 3, 1
    torch.set_num_threads(args.threads)
    registered = list_models()
    names = args.models or [n for n in registered if n.startswith("stereonet-plus")] + [
        n for n in BASELINES if n in registered]

    print(f"# bench_stereonet_plus: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{args.threads} threads, onnxruntime {ort.__version__}, torch {torch.__version__}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| model | size (WxH) | params (M) | GFLOPs | runtime | median ms | min ms | FPS | GFLOP/s | target met "
          "| CPU ms, 1 thread |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-stereonet-plus-") as tmp:
        for height, width in sizes:
            for name in names:
                if name == "sgbm":
                    row = bench_sgbm(height, width, args)
                else:
                    row = bench_network(name, height, width, args, Path(tmp))
                print(row.markdown(), flush=True)
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("targets: >= 20 FPS at 384x640 and >= 8 FPS at 544x960 (median latency, ONNX Runtime fp32)")


if __name__ == "__main__":
    main()
