"""Export a model to a static-shape ONNX file for a deployment target, check it, and verify it.

The file has inputs left, right (1,3,H,W) float RGB in [0,255] and the output disparity
(1,1,H,W) in pixels, simplified with onnxslim. --profile picks the target: npu4d traces the
model's deploy path (every tensor ≤ 4-D, no GridSample/Einsum/ScatterND); tensorrt and generic
keep the reference path unless the model chooses otherwise. The written file is checked against
the profile (exit 1 on a violation); --verify compares ONNX Runtime with PyTorch on one pair.
Config options (--iters, --max-disp, --set KEY=VALUE) override the model's config. Without --model
the default model is exported; without --pretrained a model's packaged weights are (a model that
ships none needs --pretrained FILE, or --random-weights for an untrained graph).

example:
  edgestereo export --height 384 --width 640 --out default.onnx
  edgestereo export --model raft-stereo-realtime --height 384 --width 640 --iters 7 --out raft.onnx --verify
  edgestereo check-onnx raft.onnx --profile npu4d
"""

from __future__ import annotations

import argparse

from edgestereo import DEFAULT_MODEL
from edgestereo.apps._common import add_config_arguments, add_weights_arguments, build_network

HELP = "export a model to ONNX for a target (npu4d, tensorrt, generic) and check the graph"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgestereo.export.exporter import MAX_OPSET, MIN_OPSET
    from edgestereo.export.profiles import PROFILES

    parser.add_argument("--model", default=None, help=f"registered model name (default: {DEFAULT_MODEL}, or the "
                        "model a --pretrained file records; see `edgestereo models`)")
    add_weights_arguments(parser)
    parser.add_argument("--height", type=int, required=True, help="input height, a multiple of the model's divisor")
    parser.add_argument("--width", type=int, required=True, help="input width, a multiple of the model's divisor")
    parser.add_argument("--out", required=True, metavar="FILE.onnx", help="file to write")
    parser.add_argument("--profile", default="npu4d", choices=list(PROFILES), help="deployment target (default npu4d)")
    parser.add_argument("--opset", type=int, default=MIN_OPSET, metavar="N",
                        help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {MIN_OPSET})")
    parser.add_argument("--fp16", action="store_true", help="float16 weights and compute (inputs/outputs stay float32)")
    parser.add_argument("--external-data", action="store_true",
                        help="write the weights to FILE.onnx.data beside the graph")
    parser.add_argument("--no-simplify", action="store_true", help="skip onnxslim (for debugging the exporter)")
    parser.add_argument("--verify", action="store_true",
                        help="run the file in ONNX Runtime against PyTorch and print mean/max |Δ| (exit 1 if over "
                             "1e-3 / 1e-2 px for fp32)")
    add_config_arguments(parser.add_argument_group("model config"))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgestereo.data.io import check_output_file
    from edgestereo.errors import EdgeStereoError
    from edgestereo.export.check import check_onnx
    from edgestereo.export.exporter import export_onnx, verify_onnx

    out = Path(args.out)
    if out.suffix != ".onnx":
        raise EdgeStereoError(f"--out {out}: the file name must end in .onnx")
    check_output_file(out)
    model = build_network(args)
    path = export_onnx(model, out, args.height, args.width, profile=args.profile, opset=args.opset,
                       fp16=args.fp16, external_data=args.external_data, simplify=not args.no_simplify)
    data = path.with_name(f"{path.name}.data")
    files = [path, data] if args.external_data and data.is_file() else [path]
    size_mb = sum(p.stat().st_size for p in files) / 2**20
    print(f"wrote      {' + '.join(str(p) for p in files)} ({size_mb:.1f} MB)")

    report = check_onnx(path, args.profile)
    print(report.format())
    status = 0 if report.ok else 1
    if args.verify:
        parity = verify_onnx(model, path)
        # The tolerances are the fp32 ones; an fp16 file's error is printed for the user to judge.
        passed = args.fp16 or parity.within()
        verdict = "  (fp16: not held to the fp32 tolerance)" if args.fp16 else (
            "  ok" if passed else "  FAILED (tolerance 1e-3 / 1e-2 px)")
        print(f"verify     {parity}{verdict}")
        status = status or (0 if passed else 1)
    return status
