"""Compile an exported ONNX stereo graph for a Rockchip NPU (rknn-toolkit2), run the result in the
toolkit's simulator on a calibration pair and compare it with ONNX Runtime (fp32) on the same input.

A build is refused (exit 1, nothing written) when it misses its bound: the simulator's EPE on
--eval-samples pairs with ground truth (default 8) more than --max-epe-increase above ONNX Runtime's
fp32 EPE (default 0.5 % fp16; 3 % int8, the project's int8 target) and, when --tolerance is given,
the simulator's mean |Δ| against ONNX Runtime on a calibration pair over it. (|Δ EPE| is at most
the mean |Δ|; a pixel bound alone refused fp16 builds whose rounding moved EPE by 0.05 %.) The .rknn
file appears only complete (temporary name, then renamed). The graph is checked against `check-onnx
--profile rknn` first; what the profile finds is printed but does not stop the build (the compiler
then runs those operators on its CPU).

--int8 quantizes with the toolkit's own quantizer on --num-samples pairs of the calibration data
set (the data sets of `edgestereo quantize`; the synthetic one needs no --calib-root). --keep-float
PATTERN (node names, as `edgestereo quantize --keep-float`) keeps the part of the graph it matches in
float16 on the NPU (the toolkit's hybrid quantization, from the tensors entering that part to those
leaving it).
--eval-samples N scores N pairs of --eval-split with ground truth: EPE of ONNX Runtime and of the
simulator, and their ratio.

rknn-toolkit2 pins an old torch/numpy/onnx, so it runs in its own environment, created once with
`make rknn-env` in the edgestereo checkout (.venv-rknn; another folder: --rknn-env or
$EDGESTEREO_RKNN_ENV). The toolkit's log is long; --log FILE keeps it.

example:
  edgestereo export --height 384 --width 640 --out default.onnx
  edgestereo compile default.onnx --target rk3588 --out default.rknn
  edgestereo compile default.onnx --target rk3588 --int8 --keep-float '/upsample/*' --out default.int8.rknn
  edgestereo compile other.onnx --target rk3588 --int8 --quant-algorithm mmse --out other.int8.rknn
"""

from __future__ import annotations

import argparse

HELP = "compile an ONNX file for a Rockchip NPU (rknn-toolkit2) and check it in the simulator"

#: default --max-epe-increase, percent of ONNX Runtime's fp32 EPE: fp16 rounding, and the int8 target
#: (within 3 % of float).
MAX_EPE_INCREASE_PCT = {"fp16": 0.5, "int8": 3.0}
#: default --eval-samples.
EVAL_SAMPLES = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgestereo.export.rknn import RKNN_TARGETS

    parser.add_argument("onnx", metavar="MODEL.onnx", help="float ONNX file from `edgestereo export`")
    parser.add_argument("--target", default=RKNN_TARGETS[0], choices=RKNN_TARGETS,
                        help=f"NPU to compile for (default {RKNN_TARGETS[0]})")
    parser.add_argument("--out", required=True, metavar="FILE.rknn", help="file to write")
    parser.add_argument("--int8", action="store_true", help="int8 (the toolkit's quantizer); default fp16")
    parser.add_argument("--quant-algorithm", default="normal", choices=("normal", "mmse", "kl_divergence"),
                        help="the toolkit's calibration method for --int8 (default normal)")
    parser.add_argument("--keep-float", action="append", default=[], metavar="PATTERN",
                        help="with --int8: nodes whose names match this fnmatch pattern stay float16 "
                             "(e.g. '/upsample/*'; repeatable)")
    parser.add_argument("--tolerance", type=float, default=None, metavar="PX",
                        help="also bound the simulator's mean |Δ| vs ONNX Runtime on the parity pair, pixels "
                             "(default: no pixel bound)")
    parser.add_argument("--max-epe-increase", type=float, default=None, metavar="PCT",
                        help="largest simulator EPE above ONNX Runtime's fp32 EPE on --eval-samples pairs "
                             f"accepted, percent (default {MAX_EPE_INCREASE_PCT['fp16']:g} fp16, "
                             f"{MAX_EPE_INCREASE_PCT['int8']:g} int8)")
    data = parser.add_argument_group("calibration and evaluation data")
    data.add_argument("--calib-dataset", default="synthetic", metavar="NAME",
                      help="data set name (synthetic, sceneflow, kitti2015, folder, lmdb, …; default synthetic)")
    data.add_argument("--calib-root", default=None, metavar="PATH", help="its folder (not needed for synthetic)")
    data.add_argument("--calib-split", default="train", help="split to calibrate on (default train)")
    data.add_argument("--num-samples", type=int, default=16, metavar="N",
                      help="int8 calibration pairs (default 16); the parity pair is the first")
    data.add_argument("--seed", type=int, default=0, help="seed of the synthetic data set (default 0)")
    data.add_argument("--eval-split", default="val", help="split scored by --eval-samples (default val)")
    data.add_argument("--eval-samples", type=int, default=None, metavar="N",
                      help="score N pairs with ground truth: EPE of ONNX Runtime and of the simulator "
                           f"(default {EVAL_SAMPLES}; 0 needs --tolerance)")
    tool = parser.add_argument_group("toolkit")
    tool.add_argument("--rknn-env", default=None, metavar="DIR",
                      help="the rknn-toolkit2 venv (default $EDGESTEREO_RKNN_ENV, else .venv-rknn)")
    tool.add_argument("--log", default=None, metavar="FILE", help="keep the toolkit's full log here")


def _check_args(args: argparse.Namespace) -> None:
    from edgestereo.errors import EdgeStereoError

    if not args.out.endswith(".rknn"):
        raise EdgeStereoError(f"--out {args.out}: the file name must end in .rknn")
    if args.keep_float and not args.int8:
        raise EdgeStereoError("--keep-float keeps part of an int8 build in float16: add --int8")
    if args.eval_samples is None:
        args.eval_samples = EVAL_SAMPLES
    if args.max_epe_increase is None:
        args.max_epe_increase = MAX_EPE_INCREASE_PCT["int8" if args.int8 else "fp16"]
    for option, value, least in (("--num-samples", args.num_samples, 1), ("--eval-samples", args.eval_samples, 0)):
        if value < least:
            raise EdgeStereoError(f"{option} must be ≥ {least}, got {value}")
    if args.tolerance is not None and args.tolerance <= 0:
        raise EdgeStereoError(f"--tolerance must be > 0 pixels, got {args.tolerance}")
    if args.max_epe_increase < 0:
        raise EdgeStereoError(f"--max-epe-increase must be ≥ 0 percent, got {args.max_epe_increase}")
    if args.eval_samples == 0 and args.tolerance is None:
        raise EdgeStereoError("a build is checked by its EPE on --eval-samples pairs (≥ 1) or against "
                              "--tolerance PX: give one of them")


def _feeds(samples: list, height: int, width: int) -> list[tuple]:
    from edgestereo.quant.ptq import calibration_feeds

    return [(feed["left"], feed["right"]) for feed in calibration_feeds(samples, height, width)]


def _epe(predictions: list, samples: list, height: int, width: int) -> float:
    import numpy as np

    from edgestereo.evaluation.metrics import disparity_metrics
    from edgestereo.quant.scoring import fit_sample

    fitted = [fit_sample(sample, height, width) for sample in samples]
    truth = np.concatenate([np.asarray(s["disp"], np.float32).ravel() for s in fitted])
    valid = np.concatenate([np.asarray(s.get("valid", s["disp"] > 0), bool).ravel() for s in fitted])
    crops = [p[: s["disp"].shape[0], : s["disp"].shape[1]].ravel() for p, s in zip(predictions, fitted)]
    return disparity_metrics(np.concatenate(crops), truth, valid)["epe"]


def _format_counts(counts: dict) -> str:
    return ", ".join(f"{key} {n}" for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _fused_boundary_hint(error, proto, float_subgraphs) -> Exception:
    """``error`` (an ``RknnBuildError``) with a way out when the toolkit names a tensor that enters a
    float16 part and that its optimiser fused away (on day 7, the output of a division by a constant):
    keeping the node that makes it in float16 too starts the part one node earlier. Otherwise
    ``error`` unchanged."""
    import re

    from edgestereo.export.rknn import RknnBuildError

    entering = {first for first, _ in float_subgraphs}
    named = [token for token in re.findall(r"[^\s'\"]+", error.detail) if token in entering]
    makers = [node.name for node in proto.graph.node if named and named[0] in node.output and node.name]
    if not makers:
        return error
    return RknnBuildError(error.stage, f"{error.detail}; the toolkit's graph no longer has {named[0]}, which "
                                       f"enters a float16 part: add --keep-float '{makers[0]}' to start the part "
                                       "at the node that makes it")


class _Refused(Exception):
    """A build the parity bound refuses: one line and exit status 1 (not a user error)."""


def run(args: argparse.Namespace) -> int:
    """Compile, report; a refused build or a failed toolkit stage is one line on stderr and exit 1."""
    import sys

    from edgestereo.export.rknn import RknnBuildError

    try:
        return _compile(args)
    except (_Refused, RknnBuildError) as exc:
        print(f"edgestereo compile: {'refused' if isinstance(exc, _Refused) else 'failed'}: {exc}", file=sys.stderr)
        return 1


def _compile(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    import numpy as np

    from edgestereo.data.io import atomic_path
    from edgestereo.errors import EdgeStereoError
    from edgestereo.export.check import check_onnx
    from edgestereo.export.rknn import RknnBuildError, build_rknn, find_rknn_python
    from edgestereo.quant.ptq import check_output_path, graph_input_size, match_nodes, require_float_graph
    from edgestereo.quant.scoring import load_samples
    from edgestereo.runtime.factory import create_predictor
    from edgestereo.runtime.onnx_file import OnnxMetadata, subgraph_boundary

    _check_args(args)
    check_output_path(args.onnx, args.out)
    python = find_rknn_python(args.rknn_env)
    proto = require_float_graph(args.onnx)
    height, width = graph_input_size(proto, args.onnx)
    precision = "int8" if args.int8 else "fp16"
    float_subgraphs, kept_note = [], ""
    if args.keep_float:
        kept = {name for names in match_nodes(proto, args.keep_float).values() for name in names}
        float_subgraphs = subgraph_boundary(proto, sorted(kept))
        if not float_subgraphs:
            raise EdgeStereoError(f"--keep-float {' '.join(args.keep_float)}: no path from the rest of the graph "
                                  f"runs through the {len(kept)} matched nodes to its output; nothing to keep "
                                  "in float16")
        kept_note = f" ({len(kept)} nodes float16)"

    check = check_onnx(args.onnx, "rknn")
    print("check       rknn profile: " + ("ok" if check.ok else f"{len(check.violations)} finding(s), built anyway"))
    for violation in check.violations[:10]:
        print(f"  {violation}")
    if len(check.violations) > 10:
        print(f"  … {len(check.violations) - 10} more (edgestereo check-onnx {args.onnx} --profile rknn)")

    max_disp = OnnxMetadata.of(proto).max_disp
    count = args.num_samples if args.int8 else 1
    calibration = _feeds(load_samples(args.calib_dataset, args.calib_root, args.calib_split, count, (height, width),
                                      args.seed, max_disp), height, width)
    evaluation = []
    if args.eval_samples:
        evaluation = load_samples(args.calib_dataset, args.calib_root, args.eval_split, args.eval_samples,
                                  (height, width), args.seed, max_disp)
    probes = calibration[:1] + _feeds(evaluation, height, width)

    print(f"building    {args.onnx} → {args.target} {precision}{kept_note} (rknn-toolkit2 in {python.parent.parent}) …",
          file=sys.stderr, flush=True)
    predictor = create_predictor(onnx=args.onnx, device="cpu")
    expected = [predictor.run_tensors(left, right) for left, right in probes]
    with atomic_path(args.out) as tmp:
        try:
            build = build_rknn(args.onnx, tmp, python, probes=probes, target=args.target,
                               calibration=calibration if args.int8 else (), quantized_algorithm=args.quant_algorithm,
                               float_subgraphs=float_subgraphs, log_path=args.log)
        except RknnBuildError as exc:
            raise _fused_boundary_hint(exc, proto, float_subgraphs) from None
        diff = np.abs(build.outputs[0].astype(np.float64) - expected[0])
        mean, peak = float(diff.mean()), float(diff.max())
        print(f"rknn        {build.toolkit}, {build.target} {build.precision}{kept_note}: built in "
              f"{build.build_s:.1f} s, simulated {len(probes)} pair(s) in {build.simulate_s:.1f} s")
        cpu = f", CPU {sum(build.cpu_ops.values())} ({_format_counts(build.cpu_ops)})" if build.cpu_ops else ", CPU 0"
        print(f"ops         NPU {build.npu_ops}{cpu}")
        print("messages    " + ("none" if not build.messages else f"{len(build.messages)} distinct:"))
        for message, n in build.messages.items():
            print(f"  {message}" + (f"  (×{n})" if n > 1 else ""))
        bound = f"bound: mean ≤ {args.tolerance:g} px" if args.tolerance is not None else "no pixel bound"
        print(f"parity      simulator vs ONNX Runtime fp32 on {args.calib_dataset}/{args.calib_split} pair 0: "
              f"mean |Δ| {mean:.4f} px, max |Δ| {peak:.3f} px ({bound})")
        increase = None
        if evaluation:
            float_epe = _epe(expected[1:], evaluation, height, width)
            rknn_epe = _epe(build.outputs[1:], evaluation, height, width)
            increase = 100.0 * (rknn_epe / float_epe - 1.0)
            print(f"epe         {len(evaluation)} {args.calib_dataset}/{args.eval_split} pairs: ONNX Runtime fp32 "
                  f"{float_epe:.3f} px, simulator {precision} {rknn_epe:.3f} px ({increase:+.2f}%) "
                  f"(bound: ≤ +{args.max_epe_increase:g}%)")
        if args.tolerance is not None and mean > args.tolerance:
            raise _Refused(f"simulator parity mean |Δ| {mean:.4f} px is over the bound {args.tolerance:g} px; "
                           f"{args.out} not written")
        if increase is not None and increase > args.max_epe_increase:
            # what brought the default model within its bound (docs/npu.md)
            tries = []
            if args.int8 and not args.keep_float:
                tries.append("--keep-float PATTERN (`edgestereo quantize --analyze` ranks the costly layer groups)")
            if args.int8 and args.quant_algorithm == "normal":
                tries.append("--quant-algorithm mmse or kl_divergence")
            hint = f"; try {' or '.join(tries)}" if tries else ""
            raise _Refused(f"simulator {precision} EPE is {increase:+.2f}% against ONNX Runtime fp32, over the bound "
                           f"+{args.max_epe_increase:g}%; {args.out} not written{hint}")
    print(f"wrote       {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB)")
    return 0

