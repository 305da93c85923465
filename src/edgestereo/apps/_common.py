"""Argument groups and helpers shared by the sub-commands (model choice, calibration, outputs)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from edgestereo.errors import EdgeStereoError

__all__ = [
    "add_calibration_arguments",
    "add_config_arguments",
    "add_model_arguments",
    "build_predictor",
    "calibration_from_args",
    "check_calibration_args",
    "config_overrides",
    "prepare_output_dir",
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
        # config dataclasses are frozen and hold tuples, never lists
        overrides[key] = tuple(value) if isinstance(value, list) else value
    return overrides


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --pretrained, --max-disp, --iters, --set, --onnx, --device, --precision."""
    from edgestereo.api import DEFAULT_MODEL

    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None, help=f"registered model name (default: {DEFAULT_MODEL}; "
                       "see `edgestereo models`)")
    group.add_argument("--pretrained", default=None, metavar="PATH",
                       help="checkpoint to load (safetensors, or a published .pth/.ckpt; default: the weights "
                            "packaged with edgestereo, for a model that ships them)")
    add_config_arguments(group)
    group.add_argument("--onnx", default=None, metavar="FILE",
                       help="run an exported ONNX file in ONNX Runtime instead of a PyTorch model")
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    group.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                       help="PyTorch autocast precision (default fp32)")


def _check_onnx_args(args: argparse.Namespace) -> None:
    """--onnx runs a fixed graph: options that build or change a PyTorch model do not apply."""
    clashes = [option for option, given in (
        ("--model", args.model is not None),
        ("--pretrained", args.pretrained is not None),
        ("--max-disp", getattr(args, "max_disp", None) is not None),
        ("--iters", getattr(args, "iters", None) is not None),
        ("--set", bool(getattr(args, "config_set", []))),
        ("--precision", getattr(args, "precision", "fp32") != "fp32"),
    ) if given]
    if clashes:
        raise EdgeStereoError(f"--onnx runs an exported file; it cannot be combined with {', '.join(clashes)} "
                              "(export with those options instead)")


def build_predictor(args: argparse.Namespace) -> Any:
    """The predictor the model arguments describe: PyTorch, or ONNX Runtime with --onnx."""
    if getattr(args, "onnx", None):
        from edgestereo.runtime.onnx_predictor import OnnxPredictor

        _check_onnx_args(args)
        return OnnxPredictor(args.onnx, device=args.device)

    from edgestereo.api import DEFAULT_MODEL
    from edgestereo.models import create_model, default_weights
    from edgestereo.runtime.predictor import TorchPredictor

    name = args.model or DEFAULT_MODEL
    model = create_model(name, pretrained=default_weights(name, args.pretrained), **config_overrides(args))
    return TorchPredictor(model, args.device, args.precision)


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


def calibration_from_args(args: argparse.Namespace, width: int, height: int):
    """A :class:`StereoCalibration` and its depth unit label from the arguments, or (None, "")."""
    from edgestereo.calibration import read_calibration
    from edgestereo.geometry import StereoCalibration

    check_calibration_args(args)
    if args.calib:
        setup = read_calibration(args.calib)
        if setup.rectified is None:
            raise EdgeStereoError(f"{args.calib}: describes unrectified cameras; rectify the pair first "
                                  "(`edgestereo batch --calib` does)")
        return setup.rectified, setup.unit
    if args.focal is None:
        return None, ""
    return StereoCalibration.from_focal(args.focal, args.baseline, width, height, args.doffs), ""


def prepare_output_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that files can be written in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise EdgeStereoError(f"{path}: output folder cannot be written ({exc.strerror or exc})") from None
    return path
