"""StereoNet and GwcNet latency on this machine: PyTorch reference (5-D) and deploy (rank ≤ 4) paths in
fp32 and bf16, and ONNX Runtime on the TensorRT-profile and npu4d-profile graphs.

The rows follow RT-Stereo's table (GwcNet on a Jetson Xavier through TensorRT: 480p with 192 and 96
disparity levels, half and full precision). Each row is the median of ``--runs`` timed calls of the
network alone after one warm-up call, batch 1, random weights (timing does not depend on them). The
|Δ| columns compare each row's disparity with the PyTorch reference fp32 output on the same textured
pair (batch-norm statistics taken from that pair, so the random network's output is not a saturated
constant): they show what bf16 costs in accuracy, and that the exported graphs compute the same thing.

ONNX Runtime rows are fp32: its CPU provider has no bf16 convolutions. On a CPU without AVX512-BF16
or AMX, PyTorch runs bf16 convolutions in its slow reference kernels (minutes per call at 480×640);
the bf16 rows are then skipped unless ``--bf16`` is given (``--quick`` always runs them, small).

The load average is printed before and after: on a shared machine the figures are only as good as
the quiet they ran in.

usage:
  .venv/bin/python benchmarks/bench_3d_models.py            # 480x640, 192 and 96 levels, gwcnet-gc and stereonet
  .venv/bin/python benchmarks/bench_3d_models.py --quick    # 64x128, 32 levels, one run: a smoke run
  .venv/bin/python benchmarks/bench_3d_models.py --models gwcnet-g --disparities 192 --runs 5 --bf16
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgestereo.export.exporter import export_onnx
from edgestereo.models import create_model
from edgestereo.runtime.benchmark import calibrate_batchnorm, environment, random_pair
from edgestereo.runtime.onnx_predictor import OnnxPredictor


@dataclass
class Row:
    model: str
    disparities: int
    runtime: str
    precision: str
    median_ms: float | None
    runs: int
    mean_delta: float | None
    max_delta: float | None
    note: str = ""


def _time(call: Callable[[], np.ndarray], runs: int) -> tuple[np.ndarray, float]:
    """One warm-up call (its output is returned), then the median of ``runs`` timed calls, in ms."""
    output = call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return output, statistics.median(times)


def _torch_call(model, left: torch.Tensor, right: torch.Tensor, precision: str) -> Callable[[], np.ndarray]:
    def call() -> np.ndarray:
        with torch.inference_mode():
            if precision == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return model(left, right)[0, 0].float().numpy()
            return model(left, right)[0, 0].numpy()

    return call


def _onnx_call(path: Path, left: np.ndarray, right: np.ndarray, threads: int) -> Callable[[], np.ndarray]:
    predictor = OnnxPredictor(path, threads=threads, providers=["CPUExecutionProvider"])
    return lambda: predictor.run_tensors(left, right)


def _delta(output: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    diff = np.abs(output.astype(np.float64) - reference.astype(np.float64))
    return float(diff.mean()), float(diff.max())


def bench_model(name: str, disparities: int, height: int, width: int, args: argparse.Namespace,
                bf16: bool) -> list[Row]:
    torch.manual_seed(0)
    model = create_model(name, max_disp=disparities)
    left_np, right_np = random_pair(height, width)
    left = torch.from_numpy(left_np).permute(2, 0, 1)[None].float()
    right = torch.from_numpy(right_np).permute(2, 0, 1)[None].float()
    calibrate_batchnorm(model, left, right)
    rows: list[Row] = []
    reference = None
    for path_name, deploy in (("reference (5-D)", False), ("deploy (4-D)", True)):
        model.deploy(deploy)
        for precision in ("fp32", "bf16"):
            label = f"PyTorch {path_name}"
            if precision == "bf16" and not bf16:
                rows.append(Row(name, disparities, label, precision, None, 0, None, None,
                                "skipped: no bf16 kernels on this CPU (--bf16 to force)"))
                continue
            output, median = _time(_torch_call(model, left, right, precision), args.runs)
            if reference is None:
                reference = output
            rows.append(Row(name, disparities, label, precision, median, args.runs, *_delta(output, reference)))
            print(f"  {name} {disparities} {label} {precision}: {median:.0f} ms", flush=True)
    model.deploy(False)
    inputs = [np.ascontiguousarray(im.transpose(2, 0, 1)[None], dtype=np.float32) for im in (left_np, right_np)]
    with tempfile.TemporaryDirectory(prefix="bench-3d-") as work:
        for profile, label in (("tensorrt", "ORT, tensorrt graph (5-D)"), ("npu4d", "ORT, npu4d graph (4-D)")):
            start = time.perf_counter()
            path = export_onnx(model, Path(work) / f"{name}-{profile}.onnx", height, width, profile=profile)
            export_s = time.perf_counter() - start
            output, median = _time(_onnx_call(path, *inputs, args.threads), args.runs)
            rows.append(Row(name, disparities, label, "fp32", median, args.runs, *_delta(output, reference),
                            f"export {export_s:.0f} s"))
            print(f"  {name} {disparities} {label}: {median:.0f} ms", flush=True)
    return rows


def format_rows(rows: list[Row], height: int, width: int) -> str:
    header = ("model", "levels", "runtime / path", "prec", "median ms", "runs", "mean |Δ| px", "max |Δ| px", "note")
    table = [header]
    for r in rows:
        table.append((
            r.model, str(r.disparities), r.runtime, r.precision,
            f"{r.median_ms:.0f}" if r.median_ms is not None else "-", str(r.runs),
            f"{r.mean_delta:.1e}" if r.mean_delta is not None else "-",
            f"{r.max_delta:.1e}" if r.max_delta is not None else "-", r.note,
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [f"{width}x{height}, batch 1, |Δ| against the PyTorch reference fp32 output"]
    for index, row in enumerate(table):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64x128, 32 levels, 1 run: a smoke run")
    parser.add_argument("--models", nargs="+", default=["gwcnet-gc", "stereonet"])
    parser.add_argument("--disparities", nargs="+", type=int, default=[192, 96])
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--runs", type=int, default=2, help="timed calls per row, after one warm-up (default 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="intra-op threads for PyTorch and ONNX Runtime (default: all cores)")
    parser.add_argument("--bf16", action="store_true", help="run the bf16 rows even without bf16 CPU kernels")
    args = parser.parse_args()
    if args.quick:
        args.height, args.width, args.disparities, args.runs = 64, 128, [32], 1
    torch.set_num_threads(args.threads)
    env = environment(args.threads)
    bf16 = args.quick or args.bf16 or bool({"avx512_bf16", "amx_bf16"} & set(env["cpu_features"]))
    print(f"cpu: {env['cpu']} ({env['logical_cpus']} logical), features: {', '.join(env['cpu_features']) or '-'}")
    print(f"torch {torch.__version__}, threads {args.threads}, load average before: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    rows = []
    for name in args.models:
        for disparities in args.disparities:
            rows.extend(bench_model(name, disparities, args.height, args.width, args, bf16))
    print()
    print(format_rows(rows, args.height, args.width))
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
