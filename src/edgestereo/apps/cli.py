"""The ``edgestereo`` command. Each sub-command lives in its own module with ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; heavy imports happen inside ``run``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from edgestereo import __version__
from edgestereo.errors import EdgeStereoError

#: sub-command → module; the order is the order of ``edgestereo --help``.
COMMANDS = {
    "infer": "edgestereo.apps.infer",
    "batch": "edgestereo.apps.batch",
    "live": "edgestereo.apps.live",
    "calibrate": "edgestereo.apps.calibrate",
    "export": "edgestereo.apps.export",
    "check-onnx": "edgestereo.apps.check_onnx",
    "quantize": "edgestereo.apps.quantize",
    "compile": "edgestereo.apps.compile",
    "bench": "edgestereo.apps.bench",
    "models": "edgestereo.apps.list_models",
    "sample": "edgestereo.apps.sample",
    "synth": "edgestereo.apps.synth",
    "pack": "edgestereo.apps.pack",
    "train": "edgestereo.apps.train",
    "eval": "edgestereo.apps.eval",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgestereo",
        description="Deep stereo depth estimation: inference, export, training and deployment tools.",
    )
    parser.add_argument("--version", action="version", version=f"edgestereo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        # a sub-command that forwards options to another parser (train → LightningCLI) says so
        command.set_defaults(_run=module.run, _forwards_unknown=getattr(module, "FORWARDS_UNKNOWN_ARGS", False))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2."""
    import cv2

    # OpenCV's own log lines ([ WARN…], [ERROR…]) would come before the message that says what is wrong
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not args._forwards_unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.forwarded = unknown
    try:
        return int(args._run(args) or 0)
    except EdgeStereoError as exc:
        print(f"edgestereo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and friends: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps Python's exit-time flush quiet
        return 0
    except KeyboardInterrupt:
        print(f"edgestereo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
