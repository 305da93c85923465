"""Quantize an exported ONNX stereo graph to INT8 (ONNX Runtime static quantization, QDQ form),
calibrated on pairs from any edgestereo data set, and check the result against --profile.

The QDQ file keeps standard ONNX operators and 4-D tensors (it passes `check-onnx --profile
npu4d`); ONNX Runtime runs it with int8 kernels, NPU compilers read its scales. --keep-float
leaves nodes matching a pattern (fnmatch on node names, which follow the PyTorch module path) in
float. --analyze quantizes one layer group at a time, prints the EPE cost of each on the
evaluation split and proposes the --keep-float set that meets --target (× float EPE).

A data set with fewer pairs than --num-samples is used whole (the report says so). The synthetic
data set needs no --calib-root: its pairs are generated at the graph's size.

example:
  edgestereo export --model stereonet-plus --pretrained snp.safetensors --height 384 --width 640 --out snp.onnx
  edgestereo quantize --onnx snp.onnx --calib-dataset synthetic --num-samples 64 --out snp.int8.onnx
  edgestereo quantize --onnx snp.onnx --calib-dataset sceneflow --calib-root /data/SceneFlow --analyze
  edgestereo quantize --onnx snp.onnx --calib-dataset synthetic --keep-float '/regression/*' --out snp.int8.onnx
"""

from __future__ import annotations

import argparse

from edgestereo.apps._common import add_threads_argument

HELP = "INT8 post-training quantization of an ONNX file (QDQ), sensitivity analysis, mixed precision"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgestereo.export.profiles import PROFILES
    from edgestereo.quant.ptq import ACTIVATION_TYPES, METHODS

    parser.add_argument("--onnx", required=True, metavar="FILE", help="float ONNX file from `edgestereo export`")
    parser.add_argument("--out", default=None, metavar="FILE.int8.onnx", help="file to write (not with --analyze)")
    data = parser.add_argument_group("calibration data")
    data.add_argument("--calib-dataset", required=True, metavar="NAME",
                      help="data set name (synthetic, sceneflow, kitti2015, folder, lmdb, …)")
    data.add_argument("--calib-root", default=None, metavar="PATH", help="its folder (not needed for synthetic)")
    data.add_argument("--calib-split", default="train", help="split to calibrate on (default train)")
    data.add_argument("--num-samples", type=int, default=32, metavar="N", help="calibration pairs (default 32)")
    data.add_argument("--seed", type=int, default=0, help="seed of the synthetic data set (default 0)")
    quant = parser.add_argument_group("quantization")
    quant.add_argument("--method", default="minmax", choices=METHODS, help="calibration method (default minmax)")
    quant.add_argument("--percentile", type=float, default=99.999, help="for --method percentile (default 99.999)")
    quant.add_argument("--per-channel", action="store_true", help="one weight scale per output channel")
    quant.add_argument("--activation-type", default="uint8", choices=ACTIVATION_TYPES,
                       help="uint8 (asymmetric, U8S8; default) or int8 (symmetric, S8S8); weights are int8")
    quant.add_argument("--reduce-range", action="store_true",
                       help="7-bit weights: avoids int16 saturation in x86 int8 kernels on CPUs without VNNI")
    quant.add_argument("--keep-float", nargs="+", default=[], metavar="NODE_PATTERN",
                       help="leave nodes whose name matches in float, e.g. '/regression/*' '/superpixel/*'")
    quant.add_argument("--profile", default="npu4d", choices=list(PROFILES),
                       help="check the result against this target (default npu4d; exit 1 on a violation)")
    analysis = parser.add_argument_group("sensitivity analysis")
    analysis.add_argument("--analyze", action="store_true",
                          help="quantize one layer group at a time, print each EPE cost, propose --keep-float")
    analysis.add_argument("--target", type=float, default=1.03, metavar="RATIO",
                          help="target EPE as a multiple of the float EPE (default 1.03)")
    analysis.add_argument("--eval-split", default="val", help="split scored by --analyze (default val)")
    analysis.add_argument("--eval-samples", type=int, default=16, metavar="N", help="pairs scored (default 16)")
    analysis.add_argument("--group-depth", type=int, default=1, metavar="D",
                          help="module-path depth that forms a layer group (default 1: /backbone, /neck, …)")
    add_threads_argument(parser, "ONNX Runtime while --analyze scores, and OpenCV")


def _check_args(args: argparse.Namespace) -> None:
    from edgestereo.errors import EdgeStereoError

    if args.analyze and args.out:
        raise EdgeStereoError("--analyze only reports; run again with --out and the proposed --keep-float")
    if not args.analyze and not args.out:
        raise EdgeStereoError("--out FILE.onnx is required (or --analyze)")
    if args.out and not args.out.endswith(".onnx"):
        raise EdgeStereoError(f"--out {args.out}: the file name must end in .onnx")
    for option, value in (("--num-samples", args.num_samples), ("--eval-samples", args.eval_samples)):
        if value < 1:
            raise EdgeStereoError(f"{option} must be ≥ 1, got {value}")
    if args.target < 1:
        raise EdgeStereoError(f"--target is a ratio to the float EPE and must be ≥ 1, got {args.target}")


def run(args: argparse.Namespace) -> int:
    import sys

    from edgestereo.export.check import check_onnx
    from edgestereo.quant.ptq import (
        QuantizeOptions,
        analyze_sensitivity,
        calibration_feeds,
        check_output_path,
        graph_input_size,
        match_nodes,
        quantize_onnx,
        require_float_graph,
    )
    from edgestereo.quant.scoring import load_samples
    from edgestereo.runtime.onnx_file import OnnxMetadata

    _check_args(args)
    if args.out:
        check_output_path(args.onnx, args.out)
    options = QuantizeOptions(method=args.method, per_channel=args.per_channel, activation_type=args.activation_type,
                              reduce_range=args.reduce_range, keep_float=tuple(args.keep_float),
                              percentile=args.percentile)
    proto = require_float_graph(args.onnx)
    match_nodes(proto, options.keep_float)  # fail on a bad pattern before generating data
    size = graph_input_size(proto, args.onnx)
    max_disp = OnnxMetadata.of(proto).max_disp
    samples = load_samples(args.calib_dataset, args.calib_root, args.calib_split, args.num_samples, size, args.seed,
                           max_disp)
    feeds = calibration_feeds(samples, *size)
    if args.analyze:
        evaluation = load_samples(args.calib_dataset, args.calib_root, args.eval_split, args.eval_samples, size,
                                  args.seed, max_disp)
        if len(samples) < args.num_samples:
            print(f"note: asked for {args.num_samples} calibration pairs, the data set has {len(samples)}: "
                  "used them all")
        report = analyze_sensitivity(args.onnx, feeds, evaluation, options, target_ratio=args.target,
                                     depth=args.group_depth, threads=args.threads,
                                     log=lambda line: print(line, file=sys.stderr))
        print(report.format())
        return 0
    report = quantize_onnx(args.onnx, args.out, feeds, options, requested_samples=args.num_samples)
    print(report.format())
    check = check_onnx(args.out, args.profile)
    print(f"check       {args.profile}: " + ("ok" if check.ok else f"{len(check.violations)} violation(s)"))
    for violation in check.violations:
        print(f"  {violation}")
    return 0 if check.ok else 1
