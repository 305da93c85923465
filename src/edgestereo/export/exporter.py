"""Export a :class:`~edgestereo.models.StereoModel` to a static-shape ONNX file, and check its parity.

The file has inputs ``left`` and ``right`` (1,3,H,W) float32 RGB in [0,255] and the output
``disparity`` (1,1,H,W) float32 pixels, simplified with onnxslim. Which path of the model is
traced depends on the target profile (:mod:`edgestereo.export.profiles`,
:meth:`StereoModel.export_uses_deploy`): ``npu4d`` always uses the deploy path (export-safe ops,
same weights); ``tensorrt`` and ``generic`` keep the reference path unless the model says otherwise.

>>> from edgestereo.models import create_model
>>> model = create_model("raft-stereo-realtime", iters=7)
>>> path = export_onnx(model, "raft.onnx", 384, 640)  # profile npu4d: the deploy path
>>> print(verify_onnx(model, path))  # doctest: +SKIP
parity vs PyTorch (deploy path, 640x384): mean |Δ| 4.87e-06 px, max |Δ| 3.53e-05 px
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgestereo.errors import EdgeStereoError
from edgestereo.export.profiles import get_profile
from edgestereo.runtime.onnx_file import OnnxMetadata

if TYPE_CHECKING:
    import onnx
    import torch

    from edgestereo.models._base import StereoModel

__all__ = [
    "INPUT_NAMES",
    "MAX_OPSET",
    "MIN_OPSET",
    "OUTPUT_NAME",
    "ParityReport",
    "check_export_size",
    "export_onnx",
    "verify_onnx",
]

INPUT_NAMES = ("left", "right")
OUTPUT_NAME = "disparity"
#: opset 17 is the oldest the issue allows; 20 is the newest the TorchScript exporter writes
#: and the newest TensorRT 10 parses.
MIN_OPSET, MAX_OPSET = 17, 20
#: issue acceptance: ONNX Runtime vs PyTorch on the exported path, fp32.
PARITY_MEAN_PX, PARITY_MAX_PX = 1e-3, 1e-2
_PROTOBUF_LIMIT = 2**31 - 1


def _nearest_multiples(value: int, divisor: int) -> list[int]:
    below = value // divisor * divisor
    return [v for v in (below, below + divisor) if v > 0]


def check_export_size(height: int, width: int, divisor: int, name: str = "the model") -> None:
    """Raise unless ``height`` and ``width`` are positive multiples of ``divisor``; the error names
    the nearest valid sizes."""
    problems = []
    for label, value in (("height", height), ("width", width)):
        if value < 1 or value % divisor:
            options = " or ".join(str(v) for v in _nearest_multiples(max(value, 1), divisor))
            problems.append(f"{label} {value} (nearest valid: {options})")
    if problems:
        raise EdgeStereoError(
            f"{name} takes sizes that are multiples of {divisor}; not {', '.join(problems)}"
        )


def _model_label(model: StereoModel) -> str:
    return repr(model.model_name) if model.model_name else type(model).__name__


def _check_request(model: StereoModel, height: int, width: int, profile: str, opset: int) -> None:
    if not getattr(model, "exportable", True):
        raise EdgeStereoError(f"model {_model_label(model)} cannot be exported to ONNX: "
                              f"{type(model).__name__} is not a network (exportable = False)")
    get_profile(profile)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise EdgeStereoError(f"opset {opset} is not supported (use {MIN_OPSET} to {MAX_OPSET})")
    check_export_size(height, width, model.divisor, f"model {_model_label(model)}")


def _trace_to_onnx(model: StereoModel, left: torch.Tensor, right: torch.Tensor, path: Path, opset: int) -> None:
    import torch

    # The TorchScript exporter (dynamo=False): tracing at one fixed size unrolls the Python loops
    # (refinement iterations, per-disparity shifts) into a flat, static graph without Loop/If, which
    # is what NPUs and TensorRT want, with the stable node names the graph check reports. The dynamo
    # exporter needs onnxscript, which edgestereo does not depend on, and these graphs have no
    # dynamic shapes or data-dependent control flow for it to capture. torch marks the TorchScript
    # exporter deprecated since 2.9; torch 2.13 still ships it (revisit when it is removed).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        # Sizes are static by design, so shapes turned into constants are intended; wrong constants
        # would show up in verify_onnx's parity check.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # The exporter's own folding skips some Slices; onnxslim folds them afterwards.
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        # InstanceNorm without running stats normalises with the input's statistics in eval mode too.
        warnings.filterwarnings("ignore", message=r".*operator 'instance_norm' is set to train=True")
        torch.onnx.export(
            model,
            (left, right),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            do_constant_folding=True,
        )


def _simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    return onnxslim.slim(proto)


def _toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (Kahn)."""
    produced_by = {name: index for index, node in enumerate(graph.node) for name in node.output if name}
    waiting_on = [{produced_by[i] for i in node.input if i in produced_by} for node in graph.node]
    consumers: dict[int, list[int]] = {}
    for index, producers in enumerate(waiting_on):
        for producer in producers:
            consumers.setdefault(producer, []).append(index)
    ready = [index for index, producers in enumerate(waiting_on) if not producers]
    order = []
    while ready:
        index = ready.pop(0)
        order.append(index)
        for consumer in consumers.get(index, []):
            waiting_on[consumer].discard(index)
            if not waiting_on[consumer]:
                ready.append(consumer)
    if len(order) != len(graph.node):
        raise RuntimeError("the exported graph has a cycle")
    nodes = [graph.node[i] for i in order]
    del graph.node[:]
    graph.node.extend(nodes)


def _to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # keep_io_types: callers feed and read float32 whatever the inner precision.
    converted = convert_float_to_float16(proto, keep_io_types=True)
    # The converter appends the input/output Casts at the end of the node list.
    _toposort(converted.graph)
    return converted


def _metadata(model: StereoModel, profile: str, deploy: bool, fp16: bool) -> OnnxMetadata:
    from edgestereo import __version__

    return OnnxMetadata(
        model=model.model_name or type(model).__name__,
        config=dataclasses.asdict(model.config) if dataclasses.is_dataclass(model.config) else {},
        divisor=model.divisor,
        profile=profile,
        path="deploy" if deploy else "reference",
        precision="fp16" if fp16 else "fp32",
        edgestereo_version=__version__,
    )


def _save(proto: onnx.ModelProto, path: Path, external_data: bool) -> None:
    import onnx

    from edgestereo.data.io import atomic_path, write_errors_named

    if not external_data:
        if proto.ByteSize() > _PROTOBUF_LIMIT:
            raise EdgeStereoError(f"{path}: the graph is over 2 GB; export with external data (--external-data)")
        with atomic_path(path) as tmp:
            onnx.save_model(proto, str(tmp))
        return
    data_name = f"{path.name}.data"
    # onnx writes the weights next to the graph under the name stored in the graph, so both files
    # are staged in a hidden folder beside the target and then renamed into place (weights first).
    path.parent.mkdir(parents=True, exist_ok=True)
    with write_errors_named(path), tempfile.TemporaryDirectory(prefix=f".{path.stem}.", dir=path.parent) as stage:
        staged = Path(stage) / path.name
        onnx.save_model(proto, str(staged), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024)
        staged_data = Path(stage) / data_name
        if staged_data.is_file():  # absent when every tensor is under onnx's 1 kB inline threshold
            with atomic_path(path.with_name(data_name)) as tmp:
                os.replace(staged_data, tmp)
        with atomic_path(path) as tmp:
            os.replace(staged, tmp)


def export_onnx(
    model: StereoModel,
    path: str | Path,
    height: int,
    width: int,
    *,
    profile: str = "npu4d",
    opset: int = 17,
    fp16: bool = False,
    external_data: bool = False,
    simplify: bool = True,
) -> Path:
    """Write ``model`` as ONNX for inputs ``left``/``right`` (1,3,height,width) float RGB in [0,255]
    and the output ``disparity`` (1,1,height,width) pixels, all static.

    profile: "npu4d" always traces the deploy path, "tensorrt"/"generic" what
    ``model.export_uses_deploy(profile)`` says (the reference path by default). opset: 17 to 20.
    fp16 converts weights and compute to float16 (onnxruntime's converter); inputs and outputs stay
    float32. external_data writes the weights to ``<path>.data``. simplify runs onnxslim. The
    model's deploy state and train/eval mode are restored afterwards. Returns ``path``.
    """
    import onnx
    import torch

    path = Path(path)
    _check_request(model, height, width, profile, opset)
    was_deploy, was_training = model.is_deploy, model.training
    deploy = get_profile(profile).deploy_path or model.export_uses_deploy(profile)
    model.deploy(deploy).eval()
    try:
        left, right = model.example_inputs(height, width)
        with tempfile.TemporaryDirectory(prefix="edgestereo-export-") as work, torch.no_grad():
            traced = Path(work) / "traced.onnx"
            _trace_to_onnx(model, left, right, traced, opset)
            proto = onnx.load(str(traced))
    finally:
        model.deploy(was_deploy).train(was_training)
    if simplify:
        proto = _simplify(proto)
    if fp16:
        proto = _to_fp16(proto)
    _metadata(model, profile, deploy, fp16).write(proto)
    _save(proto, path, external_data)
    return path


@dataclass(frozen=True)
class ParityReport:
    """ONNX Runtime vs PyTorch on the same inputs: |Δ| of the disparity in pixels."""

    mean_abs: float
    max_abs: float
    #: which PyTorch path the file was compared with: "deploy" or "reference".
    torch_path: str
    height: int
    width: int
    #: standard deviation (px) and number of distinct values (to 1e-3 px) of the PyTorch output: a parity
    #: figure on a near-constant output says little about the graph.
    reference_std: float
    reference_distinct: int

    def within(self, mean_px: float = PARITY_MEAN_PX, max_px: float = PARITY_MAX_PX) -> bool:
        """Whether both errors are within the tolerances (pixels)."""
        return self.mean_abs <= mean_px and self.max_abs <= max_px

    def __str__(self) -> str:
        return (f"parity vs PyTorch ({self.torch_path} path, {self.width}x{self.height}): "
                f"mean |Δ| {self.mean_abs:.2e} px, max |Δ| {self.max_abs:.2e} px "
                f"(PyTorch output: std {self.reference_std:.3g} px, {self.reference_distinct} distinct values)")


def verify_onnx(
    model: StereoModel,
    path: str | Path,
    left: torch.Tensor | None = None,
    right: torch.Tensor | None = None,
) -> ParityReport:
    """Run the file in ONNX Runtime (CPU) and ``model`` in PyTorch on the same pair and compare.

    The PyTorch side takes the path the file was exported from (its ``path`` metadata; the deploy
    path for files without it). left, right: (1,3,H,W) float RGB in [0,255] of the file's size;
    by default ``model.example_inputs``.
    """
    import numpy as np
    import torch

    from edgestereo.runtime.factory import create_predictor

    path = Path(path)
    predictor = create_predictor(onnx=path, device="cpu")
    height, width = predictor.input_size
    if left is None or right is None:
        left, right = model.example_inputs(height, width)
    deploy = OnnxMetadata.read(path).path == "deploy"
    was_deploy, was_training = model.is_deploy, model.training
    try:
        with torch.no_grad():
            expected = model.deploy(deploy).eval()(left, right)[0, 0].float().cpu().numpy()
    finally:
        model.deploy(was_deploy).train(was_training)
    got = predictor.run_tensors(left.detach().cpu().numpy(), right.detach().cpu().numpy())
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    return ParityReport(float(diff.mean()), float(diff.max()), "deploy" if deploy else "reference", height, width,
                        float(expected.std()), len(np.unique(np.round(expected, 3))))
