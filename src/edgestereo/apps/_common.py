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
    "add_model_arguments",
    "build_predictor",
    "calibration_from_args",
    "check_calibration_args",
    "prepare_output_dir",
]


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --pretrained, --max-disp, --device, --precision."""
    from edgestereo.api import DEFAULT_MODEL

    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None, help=f"registered model name (default: {DEFAULT_MODEL}; "
                       "see `edgestereo models`)")
    group.add_argument("--pretrained", default=None, metavar="PATH",
                       help="checkpoint to load (safetensors, or a published .pth/.ckpt)")
    group.add_argument("--max-disp", type=int, default=None, metavar="N",
                       help="maximum disparity the model searches, in pixels")
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    group.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                       help="PyTorch autocast precision (default fp32)")


def build_predictor(args: argparse.Namespace) -> Any:
    """The predictor the model arguments describe."""
    from edgestereo.api import DEFAULT_MODEL
    from edgestereo.models import create_model
    from edgestereo.runtime.predictor import TorchPredictor

    if args.max_disp is not None and args.max_disp < 1:
        raise EdgeStereoError(f"--max-disp must be ≥ 1, got {args.max_disp}")
    config = {"max_disp": args.max_disp} if args.max_disp is not None else {}
    model = create_model(args.model or DEFAULT_MODEL, pretrained=args.pretrained, **config)
    return TorchPredictor(model, args.device, args.precision)


def add_calibration_arguments(parser: argparse.ArgumentParser) -> None:
    """--calib FILE | --focal F --baseline B [--doffs D]."""
    group = parser.add_argument_group("calibration (for depth and point clouds)")
    group.add_argument("--calib", default=None, metavar="FILE", help="Middlebury calib.txt")
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
    from edgestereo.geometry import StereoCalibration

    check_calibration_args(args)
    if args.calib:
        return StereoCalibration.from_calib_txt(args.calib), "mm"
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
