"""Deploy to an NPU, measured: the same export in ONNX Runtime (fp32), OpenVINO CPU (fp32) and compiled
for the Rockchip RK3588 (rknn-toolkit2, fp16 and int8) and run in the toolkit's simulator.

Per model one table (with int8, also ONNX Runtime's QDQ int8 graph calibrated on the same pairs, the
level RKNN int8 is compared with): build time (RKNN), CPU latency (ONNX Runtime, OpenVINO; median of --runs at
--threads threads; the simulator's time says nothing about the NPU and is not shown), mean / max |Δ|
of the disparity against ONNX Runtime fp32 on the first synthetic calibration pair (pixels), EPE over
--eval pairs of the synthetic validation split, and the operators the compiler left on the CPU. The
default model runs with its packaged weights at 384×640; raft-stereo-realtime with seeded random
weights (BatchNorm statistics from two training-mode passes) at 256×512, 7 iterations, fp16 only
unless --raft-int8 (its build takes about ten minutes on two cores). Needs `make rknn-env`.

usage:
  .venv/bin/python benchmarks/bench_rknn.py                       # default model, then raft-stereo-realtime
  .venv/bin/python benchmarks/bench_rknn.py --models stereonet-plus-small --eval 16
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from edgestereo import DEFAULT_MODEL
from edgestereo.evaluation.metrics import disparity_metrics
from edgestereo.export import export_onnx
from edgestereo.export.rknn import build_rknn, find_rknn_python
from edgestereo.quant.ptq import QuantizeOptions, calibration_feeds, quantize_onnx
from edgestereo.quant.scoring import load_samples
from edgestereo.runtime.benchmark import benchmark_network, environment
from edgestereo.runtime.factory import create_predictor


def cpu_label() -> str:
    """The CPU's model name and the vector extensions that matter to these runtimes."""
    env = environment()
    return f"{env['cpu']} ({', '.join(env['cpu_features']) or 'no AVX2'})"


def latency_ms(predictor, left: np.ndarray, right: np.ndarray, runs: int) -> float:
    predictor.run_tensors(left, right)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        predictor.run_tensors(left, right)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def epe(predictions: list[np.ndarray], samples: list[dict]) -> float:
    truth = np.concatenate([np.asarray(s["disp"], np.float32).ravel() for s in samples])
    valid = np.concatenate([np.asarray(s["valid"], bool).ravel() for s in samples])
    return disparity_metrics(np.concatenate([p.ravel() for p in predictions]), truth, valid)["epe"]


def delta(got: np.ndarray, expected: np.ndarray) -> str:
    diff = np.abs(got.astype(np.float64) - expected)
    return f"{diff.mean():.4f} | {diff.max():.3f}"


def bench(name: str, size: tuple[int, int], args: argparse.Namespace, python: Path, int8: bool) -> None:
    height, width = size
    with tempfile.TemporaryDirectory(prefix="bench-rknn-") as work:
        network = benchmark_network(name, {"iters": args.iters} if name.startswith("raft") else {})
        onnx_file = export_onnx(network, Path(work) / "model.onnx", height, width)
        calibration = load_samples("synthetic", None, "train", args.calib, size, 0)
        evaluation = load_samples("synthetic", None, "val", args.eval, size, 0)
        feeds = [(f["left"], f["right"]) for f in calibration_feeds(calibration, height, width)]
        probes = feeds[:1] + [(f["left"], f["right"]) for f in calibration_feeds(evaluation, height, width)]
        ort = create_predictor(onnx=onnx_file, device="cpu", threads=args.threads)
        reference = [ort.run_tensors(*pair) for pair in probes]
        print(f"\n{name} {width}×{height} ({cpu_label()}, {args.threads} threads; EPE over {args.eval} synthetic "
              f"val pairs)\n")
        print("| runtime | build | CPU latency | mean \\|Δ\\| px | max \\|Δ\\| px | EPE px | on the CPU |")
        print("|---|---|---|---|---|---|---|")
        print(f"| ONNX Runtime fp32 | – | {latency_ms(ort, *probes[0], args.runs):.1f} ms | 0 | 0 | "
              f"{epe(reference[1:], evaluation):.3f} | – |")
        openvino = create_predictor(onnx=onnx_file, device="cpu", threads=args.threads, runtime="openvino")
        outputs = [openvino.run_tensors(*pair) for pair in probes]
        print(f"| OpenVINO CPU fp32 | – | {latency_ms(openvino, *probes[0], args.runs):.1f} ms | "
              f"{delta(outputs[0], reference[0])} | {epe(outputs[1:], evaluation):.3f} | – |")
        if int8:  # the ONNX Runtime QDQ path on the same calibration pairs: the level RKNN int8 is held to
            qdq_file = Path(work) / "model.qdq.onnx"
            quantize_onnx(onnx_file, qdq_file, calibration_feeds(calibration, height, width), QuantizeOptions())
            qdq = create_predictor(onnx=qdq_file, device="cpu", threads=args.threads)
            outputs = [qdq.run_tensors(*pair) for pair in probes]
            print(f"| ONNX Runtime int8 (QDQ, per tensor, same calibration) | – | "
                  f"{latency_ms(qdq, *probes[0], args.runs):.1f} ms | {delta(outputs[0], reference[0])} | "
                  f"{epe(outputs[1:], evaluation):.3f} | – |")
        for precision in ("fp16", "int8") if int8 else ("fp16",):
            build = build_rknn(onnx_file, Path(work) / f"model.{precision}.rknn", python, probes=probes,
                               calibration=feeds if precision == "int8" else ())
            cpu = ", ".join(f"{op} {n}" for op, n in build.cpu_ops.most_common()) or "none"
            kinds = dict.fromkeys(m[2:].split(":")[0] for m in build.errors)  # "REGTASK", "Unkown op target"
            errors = f"; errors: {', '.join(kinds)}" if kinds else ""
            print(f"| RKNN RK3588 {precision} (simulator) | {build.build_s:.0f} s | – | "
                  f"{delta(build.outputs[0], reference[0])} | {epe(build.outputs[1:], evaluation):.3f} | "
                  f"{cpu}{errors} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[DEFAULT_MODEL, "raft-stereo-realtime"])
    parser.add_argument("--size", type=int, nargs=2, default=(384, 640), metavar=("H", "W"))
    parser.add_argument("--raft-size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
    parser.add_argument("--iters", type=int, default=7, help="RAFT-Stereo iterations (default 7)")
    parser.add_argument("--calib", type=int, default=16, help="int8 calibration pairs (default 16)")
    parser.add_argument("--eval", type=int, default=8, help="validation pairs scored (default 8)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--raft-int8", action="store_true", help="also build RAFT-Stereo int8")
    args = parser.parse_args()
    python = find_rknn_python()
    for name in args.models:
        raft = name.startswith("raft")
        bench(name, tuple(args.raft_size if raft else args.size), args, python, int8=args.raft_int8 or not raft)


if __name__ == "__main__":
    main()
