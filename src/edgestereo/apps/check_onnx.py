"""Check an ONNX file against a deployment target: op histogram, maximum tensor rank (from ONNX
shape inference) and every violation with its node name and reason; and the stereo I/O contract
edgestereo's runtimes need (inputs left, right (1,3,H,W) float, output disparity (1,1,H,W)).
Works on any ONNX file.

profiles:
  npu4d     every tensor at most 4-D; no GridSample, Einsum, Scatter/ScatterND/ScatterElements,
            NonZero, Loop, If; only standard ONNX operators; no dynamic dimension
  tensorrt  every operator on TensorRT's ONNX operator list (TensorRT 10), opset 9-20, static shapes
  rknn      the Rockchip RK3588 NPU (rknn-toolkit2): its ONNX operator list, opset 12-19, static shapes,
            documented kernel/stride/pad, Resize, Softmax, Slice, Pad and tensor-extent limits, and the
            operators its 2.5 compiler was seen to leave on the CPU ("Unknown op target")
  generic   ONNX Runtime (CPU) can build a session for it

exit status: 0 fits the profile and the stereo contract, 1 violations or another I/O, 2 not an ONNX file.

example:
  edgestereo check-onnx model.onnx --profile npu4d
"""

from __future__ import annotations

import argparse

HELP = "check an ONNX file against a target profile (npu4d, tensorrt, rknn, generic)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgestereo.export.profiles import PROFILES

    parser.add_argument("file", help="ONNX file")
    parser.add_argument("--profile", default="npu4d", choices=list(PROFILES), help="deployment target (default npu4d)")


def run(args: argparse.Namespace) -> int:
    from edgestereo.export.check import check_onnx

    report = check_onnx(args.file, args.profile)
    print(report.format())
    return 0 if report.ok and report.stereo_ok else 1
