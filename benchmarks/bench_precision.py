"""The model × precision × runtime latency grid: PyTorch fp32 and bf16, ONNX Runtime fp32 and int8
(QDQ from `edgestereo quantize`: U8S8 and S8S8, per tensor and per channel), at one size.

Each ONNX file is exported (npu4d graph) and quantized here, calibrated on a few synthetic pairs
(the calibration does not change the timing). Latency is the network alone (median of --iters
after warm-up); the last column is the speed-up over the model's ONNX Runtime fp32 row. Weights are
random unless --pretrained is given: timing does not depend on them.

    .venv/bin/python benchmarks/bench_precision.py                      # 384x640, stereonet-plus + raft-stereo-realtime
    .venv/bin/python benchmarks/bench_precision.py --quick              # smoke run: small model, 128x256
    .venv/bin/python benchmarks/bench_precision.py --threads 4 --json grid.json
    .venv/bin/python benchmarks/bench_precision.py --models raft-stereo-realtime --torch-precisions fp32
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

#: (label, QuantizeOptions fields) of the int8 variants timed.
INT8_VARIANTS = (
    ("int8 U8S8", {}),
    ("int8 U8S8 pc", {"per_channel": True}),
    ("int8 S8S8", {"activation_type": "int8"}),
    ("int8 S8S8 pc", {"activation_type": "int8", "per_channel": True}),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["stereonet-plus", "raft-stereo-realtime"])
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the runtime's)")
    parser.add_argument("--torch-precisions", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                        help="PyTorch rows (bf16 is emulated, ~10x slower, on CPUs without AVX512-BF16/AMX)")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--calib-samples", type=int, default=4)
    parser.add_argument("--json", default=None, metavar="OUT")
    parser.add_argument("--quick", action="store_true", help="stereonet-plus-small at 128x256, 3 iterations")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.height, args.width, args.iters, args.warmup = ["stereonet-plus-small"], 128, 256, 3, 1
        args.calib_samples = 2
    return args


def main(argv: list[str] | None = None) -> int:
    import torch

    from edgestereo.export.exporter import export_onnx
    from edgestereo.models import create_model
    from edgestereo.quant.ptq import QuantizeOptions, calibration_feeds, quantize_onnx
    from edgestereo.quant.scoring import load_samples
    from edgestereo.runtime.benchmark import OnnxBenchRunner, TorchBenchRunner, benchmark

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = (args.height, args.width)
    results = []
    with tempfile.TemporaryDirectory(prefix="edgestereo-grid-") as work:
        for name in args.models:
            model = create_model(name)
            calib = load_samples("synthetic", None, "train", args.calib_samples, size,
                                 max_disp=float(getattr(model.config, "max_disp", 192)))
            feeds = calibration_feeds(calib, *size)
            runners = [(f"torch {p}", lambda p=p, model=model: TorchBenchRunner(model, *size, precision=p))
                       for p in args.torch_precisions]
            float_onnx = export_onnx(model, Path(work) / f"{name}.onnx", *size)
            runners.append(("onnxruntime fp32", lambda path=float_onnx: OnnxBenchRunner(path, threads=args.threads)))
            for label, fields in INT8_VARIANTS:
                out = Path(work) / f"{name}.{label.replace(' ', '_')}.onnx"
                quantize_onnx(float_onnx, out, feeds, QuantizeOptions(**fields))
                runners.append((f"onnxruntime {label}", lambda out=out: OnnxBenchRunner(out, threads=args.threads)))
            for label, build in runners:
                result = benchmark(build(), iters=args.iters, warmup=args.warmup, threads=args.threads)
                result.name = name
                results.append((label, result))
                print(f"{name:<22} {label:<26} {result.latency.median_ms:8.1f} ms", file=sys.stderr)
    load = os.getloadavg()[0]
    print(f"{args.width}x{args.height}, threads {args.threads or 'default'}, {args.iters} iterations; "
          f"load average {load:.2f}")
    print(f"{'model':<22}  {'runtime / precision':<26}  {'median ms':>9}  {'p90 ms':>7}  {'FPS':>6}  "
          f"{'vs ORT fp32':>11}")
    print(f"{'-' * 22}  {'-' * 26}  {'-' * 9}  {'-' * 7}  {'-' * 6}  {'-' * 11}")
    for label, result in results:
        name = result.name
        reference = next(r.latency.median_ms for lab, r in results if r.name == name and lab == "onnxruntime fp32")
        speedup = reference / result.latency.median_ms
        print(f"{name:<22}  {label:<26}  {result.latency.median_ms:>9.1f}  {result.latency.p90_ms:>7.1f}  "
              f"{result.fps_single:>6.2f}  {speedup:>10.2f}×")
    if args.json:
        records = [{"label": label, **result.to_json()} for label, result in results]
        Path(args.json).write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
