"""Argument groups the sub-commands share, and their translation into the library's typed values
(model choice → :func:`~edgestereo.runtime.factory.create_predictor`, calibration options →
a calibration source). Argument parsing stops here."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from edgestereo import DEFAULT_MODEL
from edgestereo.errors import EdgeStereoError
from edgestereo.runtime.factory import DEFAULT_THREADS
from edgestereo.runtime.memory import DEFAULT_MAX_MEMORY_GB
from edgestereo.runtime.rerun_logger import DEFAULT_VIEWER, INSTALL_HINT, RerunLogger

__all__ = [
    "add_calibration_arguments",
    "add_config_arguments",
    "add_model_arguments",
    "add_rerun_arguments",
    "add_threads_argument",
    "add_view_arguments",
    "add_weights_arguments",
    "build_network",
    "build_predictor",
    "calibration_source",
    "check_calibration_args",
    "config_overrides",
    "progress_bar",
    "rectified_calibration",
    "rerun_recorder",
]


def add_config_arguments(group: argparse._ActionsContainer) -> None:
    """--max-disp, --iters, --set KEY=VALUE: overrides of the model's config fields (the model's
    config dataclass rejects fields it does not have)."""
    group.add_argument("--max-disp", type=int, default=None, metavar="N",
                       help="maximum disparity the model searches, in pixels")
    group.add_argument("--iters", type=int, default=None, metavar="N",
                       help="refinement iterations, for iterative models")
    group.add_argument("--set", dest="config_set", action="append", default=[], metavar="KEY=VALUE",
                       help="any other config field of the model, e.g. --set hidden_dims=[128,128]; repeatable")


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides :func:`add_config_arguments` collected, values parsed as YAML scalars/lists."""
    import yaml

    overrides: dict[str, Any] = {}
    for option, key in (("--max-disp", "max_disp"), ("--iters", "iters")):
        value = getattr(args, key, None)
        if value is not None:
            if value < 1:
                raise EdgeStereoError(f"{option} must be ≥ 1, got {value}")
            overrides[key] = value
    for item in getattr(args, "config_set", []):
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise EdgeStereoError(f"--set {item!r}: expected KEY=VALUE")
        if key in overrides:
            raise EdgeStereoError(f"--set {item!r}: {key} is given twice")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise EdgeStereoError(f"--set {item!r}: cannot parse the value {text!r}") from None
        overrides[key] = value
    return overrides


def add_weights_arguments(group: argparse._ActionsContainer) -> None:
    """--pretrained FILE | --random-weights: the weights of a network (default: the packaged ones)."""
    weights = group.add_mutually_exclusive_group()
    weights.add_argument("--pretrained", default=None, metavar="PATH",
                         help="checkpoint to load (safetensors, or a published .pth/.ckpt); default: the weights "
                              "packaged with edgestereo; a model that ships none needs this or --random-weights")
    weights.add_argument("--random-weights", action="store_true",
                         help="run an untrained network (for timing or export tests; its output means nothing)")


def add_threads_argument(group: argparse._ActionsContainer, what: str = "PyTorch, ONNX Runtime and OpenCV") -> None:
    """--threads T, default :data:`~edgestereo.runtime.factory.DEFAULT_THREADS`."""
    group.add_argument("--threads", type=int, default=DEFAULT_THREADS, metavar="T",
                       help=f"intra-op threads of {what} (default {DEFAULT_THREADS}: half the CPUs; all of them "
                            "slow a busy machine down many times over)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --pretrained | --random-weights, --max-disp, --iters, --set, --onnx, --device,
    --precision, --scale, --max-memory, --threads."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None, help=f"registered model name (default: {DEFAULT_MODEL}, or the "
                       "model a --pretrained file records; see `edgestereo models`)")
    add_weights_arguments(group)
    add_config_arguments(group)
    group.add_argument("--onnx", default=None, metavar="FILE",
                       help="run an exported ONNX file (ONNX Runtime, or --runtime openvino) instead of a PyTorch "
                            "model")
    group.add_argument("--runtime", default="onnxruntime", choices=["onnxruntime", "openvino"],
                       help="what runs an --onnx file (default onnxruntime; openvino: pip install "
                            "'edgestereo[openvino]')")
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    group.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "auto"],
                       help="PyTorch autocast precision fp32 (default), bf16, fp16; with --runtime openvino: fp32 "
                            "(exact), bf16 (CPUs with native bfloat16) or auto (OpenVINO's choice)")
    group.add_argument("--scale", type=float, default=1.0, metavar="S",
                       help="run the network on the views resized by S (e.g. 0.5 for 12-MP photographs: a quarter "
                            "of the memory and time); the disparity comes back at the input size (default 1)")
    group.add_argument("--max-memory", type=float, default=None, metavar="GB",
                       help=f"refuse pairs whose inference would take more memory than this (default "
                            f"{DEFAULT_MAX_MEMORY_GB:g} GB, or 80%% of the free memory when less; on a GPU 80%% of "
                            "its free memory); PyTorch models")
    add_threads_argument(group)


def build_network(args: argparse.Namespace) -> Any:
    """The PyTorch network that --model, --pretrained / --random-weights and the config options name."""
    from edgestereo.runtime.factory import load_network

    return load_network(args.model, pretrained=args.pretrained, random_weights=args.random_weights,
                        config=config_overrides(args))


def build_predictor(args: argparse.Namespace) -> Any:
    """The predictor the model arguments describe: PyTorch, or ONNX Runtime with --onnx."""
    from edgestereo.runtime.factory import create_predictor

    if args.onnx:
        clashes = [option for option, given in (
            ("--model", args.model is not None), ("--pretrained", args.pretrained is not None),
            ("--random-weights", args.random_weights), ("--max-disp", args.max_disp is not None),
            ("--iters", args.iters is not None), ("--set", bool(args.config_set)),
            ("--precision", args.precision != "fp32" and args.runtime != "openvino"),
            ("--max-memory", args.max_memory is not None)) if given]
        if clashes:
            raise EdgeStereoError(f"--onnx runs an exported file; it cannot be combined with {', '.join(clashes)} "
                                  "(export with those options instead)")
    elif args.runtime != "onnxruntime":
        raise EdgeStereoError(f"--runtime {args.runtime} runs an exported file: give --onnx FILE (`edgestereo export` "
                              "writes one)")
    return create_predictor(args.model, onnx=args.onnx, pretrained=args.pretrained, random_weights=args.random_weights,
                            device=args.device, precision=args.precision, threads=args.threads,
                            config=config_overrides(args), scale=args.scale, max_memory=args.max_memory,
                            runtime=args.runtime if args.onnx else None)


def add_calibration_arguments(parser: argparse.ArgumentParser) -> None:
    """--calib FILE | --focal F --baseline B [--doffs D]."""
    group = parser.add_argument_group("calibration (for depth and point clouds)")
    group.add_argument("--calib", default=None, metavar="FILE",
                       help="Middlebury calib.txt, or rectified intrinsics (fx, fy, cx, cy, baseline) as JSON/YAML; "
                            "batch and live also rectify with an OpenCV stereo calibration (K1, D1, K2, D2, R, T)")
    group.add_argument("--focal", type=float, default=None, metavar="F", help="focal length in pixels")
    group.add_argument("--baseline", type=float, default=None, metavar="B",
                       help="baseline, in the unit depth should have")
    group.add_argument("--doffs", type=float, default=0.0, metavar="D",
                       help="principal-point x offset between the cameras, pixels (default 0)")


def check_calibration_args(args: argparse.Namespace) -> None:
    """Fail fast on inconsistent calibration options, before any heavy work."""
    if args.calib and (args.focal is not None or args.baseline is not None):
        raise EdgeStereoError("give either --calib or --focal/--baseline, not both")
    if (args.focal is None) != (args.baseline is None):
        given, needed = ("--focal", "--baseline") if args.focal is not None else ("--baseline", "--focal")
        raise EdgeStereoError(f"{given} needs {needed} as well")


def calibration_source(args: argparse.Namespace) -> Any:
    """The :class:`~edgestereo.calibration.StereoSetup` that --calib reads, the
    :class:`~edgestereo.calibration.FocalBaseline` of --focal/--baseline, or None."""
    from edgestereo.calibration import FocalBaseline, read_calibration

    check_calibration_args(args)
    if args.calib:
        return read_calibration(args.calib)
    if args.focal is not None:
        return FocalBaseline(args.focal, args.baseline, args.doffs)
    return None


def rectified_calibration(args: argparse.Namespace, width: int, height: int) -> tuple[Any, str]:
    """The rectified :class:`~edgestereo.geometry.StereoCalibration` of a single pair of ``width`` ×
    ``height`` and its depth unit label, or (None, ""); a file describing unrectified cameras, or made
    for another image size, is refused."""
    from edgestereo.calibration import pair_calibration

    source = calibration_source(args)
    if source is None:
        return None, ""
    return pair_calibration(source, (width, height)), source.unit


def add_view_arguments(parser: argparse.ArgumentParser) -> None:
    """--panel, --disp-range, --alpha, --max-depth, --cloud-stride (batch and live)."""
    group = parser.add_argument_group("pictures and rectification")
    group.add_argument("--panel", action="store_true",
                       help="pictures show left | right | disparity | depth instead of the coloured disparity")
    group.add_argument("--disp-range", nargs=2, type=float, default=None, metavar=("LOW", "HIGH"),
                       help="disparity colour range in pixels (default: from the first frame, then fixed)")
    group.add_argument("--alpha", type=float, default=0.0,
                       help="rectification of an OpenCV stereo calibration: 0 keeps valid pixels only (default), "
                            "1 keeps every camera pixel")
    group.add_argument("--max-depth", type=float, default=None, help="point clouds: drop points farther than this")
    group.add_argument("--cloud-stride", type=int, default=1, metavar="N", help="point clouds: keep every N-th pixel")


def add_rerun_arguments(parser: argparse.ArgumentParser) -> None:
    """--rerun FILE.rrd, --rerun-connect [ADDR] (infer, batch, live)."""
    group = parser.add_argument_group(f"Rerun recording (needs {INSTALL_HINT})")
    group.add_argument("--rerun", metavar="FILE.rrd",
                       help="log each frame's views, coloured disparity, depth, camera and point cloud, the model "
                            "and the latency to a Rerun recording; open it with `rerun FILE.rrd`")
    group.add_argument("--rerun-connect", nargs="?", const=DEFAULT_VIEWER, metavar="ADDR",
                       help="stream the same to a running Rerun viewer: HOST:PORT or a rerun+http:// URL "
                            f"(default {DEFAULT_VIEWER}, where `rerun` listens)")


@contextlib.contextmanager
def rerun_recorder(args: argparse.Namespace, *, calibrated: bool, wall_clock: bool = False
                   ) -> Iterator[RerunLogger | None]:
    """The :class:`~edgestereo.runtime.rerun_logger.RerunLogger` that --rerun / --rerun-connect ask
    for (None without them), opened now, so a missing SDK, an unwritable file or an absent viewer
    stops the command before any work; the file is moved into place when the block ends without
    an error. Says once when, for want of a calibration, only images and disparity are logged."""
    if args.rerun is None and args.rerun_connect is None:
        yield None
        return
    with RerunLogger(args.rerun, connect=args.rerun_connect, max_depth=args.max_depth,
                     cloud_stride=args.cloud_stride, wall_clock=wall_clock) as recorder:
        if not calibrated:
            print("rerun      no calibration: logging images and disparity only (--calib, or --focal and "
                  "--baseline, add depth, camera and points)")
        yield recorder


@contextlib.contextmanager
def progress_bar(desc: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback for the library; its bar appears at the first call, so a
    run refused before any work prints its one-line error alone."""
    from tqdm import tqdm

    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True)
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()
