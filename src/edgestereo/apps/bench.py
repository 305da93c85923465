"""Time a stereo network: warm-up, then median, p90 and max latency of the network alone, FPS for
one stream and for K concurrent streams on the same loaded model (like an NPU vendor's
multi-thread perf tool), pre- and post-processing timed separately, and the peak memory. Prints a
table; --json also writes the figures with the machine, library versions and thread settings.

--model NAME runs a registered model in PyTorch (--precision fp32, bf16 or fp16 on CUDA) or, with
--runtime onnxruntime, exports it to ONNX first (fp32; --profile picks the graph). --onnx FILE runs
a file in ONNX Runtime at the size it was exported for; its precision (int8 for a QDQ file from
`edgestereo quantize`) is read from the graph. --iters counts timed frames; a model's refinement
iterations are set with --set iters=N. Weights do not change the timing: a model that ships none
is timed with --random-weights (or its --pretrained file).

example:
  edgestereo bench --model stereonet-plus --random-weights --height 384 --width 640 --threads 2 --precision bf16
  edgestereo bench --onnx snp.int8.onnx --threads 2 --streams 2 --json snp_int8.json
"""

from __future__ import annotations

import argparse

from edgestereo.apps._common import add_threads_argument, add_weights_arguments

HELP = "latency (median/p90/max), FPS for 1 and K streams, memory of a model or an ONNX file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgestereo.export.profiles import PROFILES

    source = parser.add_argument_group("what to time").add_mutually_exclusive_group(required=True)
    source.add_argument("--model", default=None, help="registered model name (see `edgestereo models`)")
    source.add_argument("--onnx", default=None, metavar="FILE", help="an exported ONNX file (ONNX Runtime)")
    model = parser.add_argument_group("model options (--model only)")
    add_weights_arguments(model)
    model.add_argument("--max-disp", type=int, default=None, metavar="N", help="maximum disparity, pixels")
    model.add_argument("--set", dest="config_set", action="append", default=[], metavar="KEY=VALUE",
                       help="config field of the model, e.g. --set iters=7; repeatable")
    model.add_argument("--profile", default="npu4d", choices=list(PROFILES),
                       help="graph to export for --runtime onnxruntime (default npu4d)")
    timing = parser.add_argument_group("timing")
    timing.add_argument("--height", type=int, default=None, help="input height (required with --model; "
                        "with --onnx it must match the file)")
    timing.add_argument("--width", type=int, default=None, help="input width (as --height)")
    timing.add_argument("--runtime", default=None, choices=["torch", "onnxruntime", "openvino"],
                        help="torch (default with --model), onnxruntime (default with --onnx) or openvino (pip "
                             "install 'edgestereo[openvino]'); with --model the last two export it first")
    timing.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16", "int8", "auto"],
                        help="PyTorch: fp32 (default), bf16, fp16 (CUDA); ONNX Runtime: read from the file, "
                             "given only to check it; OpenVINO: fp32 (default), bf16 or auto")
    add_threads_argument(timing, "each stream")
    timing.add_argument("--streams", type=int, default=1, metavar="K", help="concurrent streams (default 1)")
    timing.add_argument("--iters", type=int, default=20, metavar="N", help="timed frames per stream (default 20)")
    timing.add_argument("--warmup", type=int, default=3, metavar="N", help="untimed frames first (default 3)")
    timing.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the results as JSON")


def _check_args(args: argparse.Namespace) -> None:
    from edgestereo.errors import EdgeStereoError

    for option, value, low in (("--threads", args.threads, 1), ("--streams", args.streams, 1),
                               ("--iters", args.iters, 1), ("--warmup", args.warmup, 0)):
        if value is not None and value < low:
            raise EdgeStereoError(f"{option} must be ≥ {low}, got {value}")
    if args.onnx:
        clashes = [o for o, given in (("--pretrained", args.pretrained), ("--random-weights", args.random_weights),
                                      ("--max-disp", args.max_disp), ("--set", args.config_set),
                                      ("--runtime torch", args.runtime == "torch")) if given]
        if clashes:
            raise EdgeStereoError(f"--onnx times an exported file; it cannot be combined with {', '.join(clashes)}")
    elif args.height is None or args.width is None:
        raise EdgeStereoError("--model needs --height and --width")


def _onnx_runner(args: argparse.Namespace, path: str):
    from edgestereo.errors import EdgeStereoError
    from edgestereo.runtime.benchmark import OnnxBenchRunner

    runtime = args.runtime or "onnxruntime"
    openvino = runtime == "openvino"
    runner = OnnxBenchRunner(path, threads=args.threads, device=args.device, runtime=runtime,
                             precision=(args.precision or "fp32") if openvino else "fp32")
    height, width = runner.input_size
    given = (args.height or height, args.width or width)
    if given != (height, width):
        raise EdgeStereoError(f"{path} takes {width}x{height} (static); cannot time it at {given[1]}x{given[0]} "
                              "(export at that size)")
    if not openvino and args.precision is not None and args.precision != runner.precision:
        raise EdgeStereoError(f"{path} is a {runner.precision} graph, not {args.precision}")
    return runner


def run(args: argparse.Namespace) -> int:
    import json
    import tempfile
    from pathlib import Path

    from edgestereo.apps._common import config_overrides
    from edgestereo.data.io import atomic_path
    from edgestereo.errors import EdgeStereoError
    from edgestereo.runtime.benchmark import TorchBenchRunner, _check_size, benchmark, format_results
    from edgestereo.runtime.factory import load_network, set_threads

    _check_args(args)
    overrides = {} if args.onnx else config_overrides(argparse.Namespace(
        max_disp=args.max_disp, config_set=args.config_set))
    set_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="edgestereo-bench-") as work:
        if args.onnx:
            runner = _onnx_runner(args, args.onnx)
        else:
            def build():
                return load_network(args.model, pretrained=args.pretrained, random_weights=args.random_weights,
                                    config=overrides)

            model = build()
            runtime = args.runtime or "torch"
            if runtime == "torch":
                runner = TorchBenchRunner(model, args.height, args.width, device=args.device,
                                          precision=args.precision or "fp32", model_factory=build)
            else:
                from edgestereo.export.exporter import export_onnx

                if runtime == "onnxruntime" and args.precision not in (None, "fp32"):
                    raise EdgeStereoError(f"--runtime onnxruntime with --model exports fp32; for {args.precision} "
                                          "export/quantize a file first (edgestereo export --fp16, edgestereo "
                                          "quantize) and time it with --onnx FILE")
                if not model.exportable:
                    raise EdgeStereoError(f"{args.model} is not a neural network and has no ONNX form")
                _check_size(args.model, args.height, args.width, model.divisor)
                path = export_onnx(model, Path(work) / f"{args.model}.onnx", args.height, args.width,
                                   profile=args.profile)
                runner = _onnx_runner(args, str(path))
                runner.name = args.model
        result = benchmark(runner, iters=args.iters, warmup=args.warmup, streams=args.streams, threads=args.threads)
    print(format_results([result]))
    env = result.environment
    load = env.get("load_average")
    print(f"machine    {env['cpu']} ({env['logical_cpus']} CPUs; {' '.join(env['cpu_features']) or 'no AVX'})"
          + (f"; load average {load[0]:.2f}" if load else ""))
    print("versions   " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(result.to_json(), indent=2) + "\n")
        print(f"wrote      {args.json}")
    return 0
