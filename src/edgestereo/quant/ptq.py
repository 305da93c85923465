"""INT8 post-training quantization of an exported ONNX stereo graph with ONNX Runtime (static, QDQ).

The float graph is pre-processed (ONNX Runtime's shape inference and graph clean-up), calibrated
on stereo pairs from any edgestereo data set, and rewritten with QuantizeLinear/DequantizeLinear
pairs around every quantizable operator except those a ``keep_float`` pattern names. The QDQ form
keeps the standard ONNX domain and the 4-D tensors of the deploy path, so an NPU compiler (and
``check-onnx --profile npu4d``) accepts it, and ONNX Runtime runs it with its int8 kernels.

Sensitivity analysis (:func:`analyze_sensitivity`) quantizes one layer group at a time (node
names follow the PyTorch module path, ``/backbone/stages.1/...``), scores each against the ground
truth, and proposes the smallest set of groups to keep in float for a target EPE.

>>> quantize_onnx("snp.onnx", "snp.int8.onnx", calibration_feeds(samples, 384, 640))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import io
import logging
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgestereo.errors import EdgeStereoError
from edgestereo.quant.scoring import fit_sample, score_onnx
from edgestereo.runtime.onnx_file import QUANTIZED_OPS, OnnxMetadata, graph_io, load_onnx, require_stereo_io

if TYPE_CHECKING:
    import onnx

__all__ = [
    "ACTIVATION_TYPES",
    "METHODS",
    "GroupCost",
    "QuantizeOptions",
    "QuantizeReport",
    "SensitivityReport",
    "analyze_sensitivity",
    "calibration_feeds",
    "check_output_path",
    "graph_input_size",
    "is_quantized",
    "layer_groups",
    "match_nodes",
    "quantize_onnx",
    "require_float_graph",
]

METHODS = ("minmax", "entropy", "percentile")
#: activation types: uint8 with int8 weights is ONNX Runtime's "U8S8" (x86 CPUs, most NPUs); int8 is "S8S8".
ACTIVATION_TYPES = ("uint8", "int8")
_TOP_LEVEL = "(top level)"


@dataclass(frozen=True)
class QuantizeOptions:
    """How to quantize.

    method: calibration ("minmax", "entropy" (KL divergence of histograms), "percentile").
    per_channel: one weight scale per output channel instead of one per tensor.
    activation_type: "uint8" (asymmetric, U8S8) or "int8" (symmetric, S8S8); weights are int8.
    reduce_range: 7-bit weights, which avoids the int16 saturation of x86 int8 kernels on CPUs
    without VNNI (AVX2, AVX-512F) at the cost of one bit of weight resolution.
    keep_float: fnmatch patterns of node names left in float (``/regression/*``).
    percentile: the percentile the "percentile" method keeps.
    """

    method: str = "minmax"
    per_channel: bool = False
    activation_type: str = "uint8"
    reduce_range: bool = False
    keep_float: tuple[str, ...] = ()
    percentile: float = 99.999

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise EdgeStereoError(f"unknown calibration method {self.method!r} (choose from {', '.join(METHODS)})")
        if self.activation_type not in ACTIVATION_TYPES:
            raise EdgeStereoError(f"unknown activation type {self.activation_type!r} "
                                  f"(choose from {', '.join(ACTIVATION_TYPES)})")
        if not 0 < self.percentile <= 100:
            raise EdgeStereoError(f"percentile must be in (0, 100], got {self.percentile}")


@dataclass
class QuantizeReport:
    """What :func:`quantize_onnx` did."""

    source: str
    output: str
    options: QuantizeOptions
    #: calibration pairs used (may be fewer than asked: see ``notes``).
    num_samples: int
    #: nodes left in float, by the pattern that matched them.
    kept_float: dict[str, list[str]]
    #: nodes with quantized inputs/outputs (Conv, Add, Resize …), and all nodes of the float graph.
    quantized_nodes: int
    total_nodes: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        options = self.options
        lines = [
            f"source      {self.source}",
            f"wrote       {self.output}",
            f"calibration {options.method} on {self.num_samples} pair(s); activations {options.activation_type}, "
            f"weights int8{' (7-bit)' if options.reduce_range else ''} "
            f"{'per channel' if options.per_channel else 'per tensor'}",
            f"quantized   {self.quantized_nodes} of {self.total_nodes} nodes ({self.seconds:.1f} s)",
        ]
        for pattern, nodes in self.kept_float.items():
            shown = ", ".join(nodes[:4]) + (f" (+{len(nodes) - 4} more)" if len(nodes) > 4 else "")
            lines.append(f"kept float  {pattern}: {len(nodes)} node(s): {shown}")
        lines.extend(f"note        {note}" for note in self.notes)
        return "\n".join(lines)


# --------------------------------------------------------------------------- graphs


def _load(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    import onnx

    return model if isinstance(model, onnx.ModelProto) else load_onnx(model)


def is_quantized(model: str | Path | onnx.ModelProto) -> bool:
    """Whether the graph already holds quantization operators (QDQ pairs or integer kernels)."""
    return any(node.op_type in QUANTIZED_OPS for node in _load(model).graph.node)


def graph_input_size(proto: onnx.ModelProto, source: str) -> tuple[int, int]:
    """(H, W) of the static (1,3,H,W) stereo inputs; the graph must keep the stereo I/O contract."""
    inputs, outputs = graph_io(proto)
    require_stereo_io(source, inputs, outputs)
    height, width = inputs[0].shape[2:]
    if not (isinstance(height, int) and isinstance(width, int)):
        raise EdgeStereoError(f"{source}: input {inputs[0]} must be a static (1,3,H,W) tensor to calibrate")
    return height, width


def check_output_path(source: str | Path, output: str | Path) -> None:
    """Refuse an ``output`` that would replace the float ``source`` or cannot be written."""
    from edgestereo.data.io import check_output_file

    if Path(output).resolve() == Path(source).resolve():
        raise EdgeStereoError(f"{output}: the int8 graph would replace the float graph it is made from; write it "
                              f"to another file (e.g. {Path(source).with_suffix('.int8.onnx')})")
    check_output_file(output)


def match_nodes(model: str | Path | onnx.ModelProto, patterns: Iterable[str]) -> dict[str, list[str]]:
    """Node names each fnmatch pattern matches, in graph order; EdgeStereoError for a pattern that
    matches nothing (the message shows some node names to pick from)."""
    names = [node.name for node in _load(model).graph.node if node.name]
    matched: dict[str, list[str]] = {}
    for pattern in patterns:
        hits = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
        if not hits:
            groups = sorted(layer_groups(model, depth=1))
            raise EdgeStereoError(
                f"--keep-float {pattern!r} matches no node; node names look like {names[0]!r}; layer groups: "
                f"{', '.join(g + '/*' for g in groups[:12] if g != _TOP_LEVEL)}{' …' if len(groups) > 12 else ''}"
            )
        matched[pattern] = hits
    return matched


def _group_of(name: str, depth: int) -> str:
    parts = [p for p in name.split("/") if p]
    # The last part is the operator ("Conv", "Relu_1"); a node directly under the root has no module.
    modules = parts[:-1]
    return "/" + "/".join(modules[:depth]) if modules else _TOP_LEVEL


def layer_groups(model: str | Path | onnx.ModelProto, depth: int = 1) -> dict[str, list[str]]:
    """Node names grouped by the first ``depth`` parts of their module path, in graph order:
    ``/backbone/stages.1/stages.1.0/widen/widen.0/Conv`` is in group ``/backbone`` at depth 1 and
    ``/backbone/stages.1`` at depth 2.
    Nodes directly under the root (input normalisation, post-processing) form the group "(top level)".
    A module called twice is named ``name`` and ``name_1`` by the exporter: at that depth, one group each."""
    if depth < 1:
        raise EdgeStereoError(f"group depth must be ≥ 1, got {depth}")
    groups: dict[str, list[str]] = {}
    for node in _load(model).graph.node:
        if node.name:
            groups.setdefault(_group_of(node.name, depth), []).append(node.name)
    return groups


# --------------------------------------------------------------------------- calibration feeds


def _pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h,w,3) → (1,3,height,width) float32, edge-padded evenly on both sides as the predictors do."""
    h, w = image.shape[:2]
    pad_h, pad_w = height - h, width - w
    padding = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
    padded = np.pad(image, padding, mode="edge") if pad_h or pad_w else image
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)


def calibration_feeds(
    samples: Iterable[dict[str, Any]], height: int, width: int, num_samples: int | None = None
) -> list[dict[str, np.ndarray]]:
    """ONNX Runtime feeds ``{"left", "right"}`` (1,3,height,width) float32 in [0,255] from up to
    ``num_samples`` data-set samples, centre-cropped or edge-padded to the graph's size. Fewer
    samples than asked is not an error: the caller reports how many were used."""
    feeds = []
    for index, sample in enumerate(samples):
        if num_samples is not None and index >= num_samples:
            break
        fitted = fit_sample(sample, height, width)
        feeds.append({"left": _pad_to(fitted["left"], height, width), "right": _pad_to(fitted["right"], height, width)})
    return feeds


class _FeedReader:
    """ONNX Runtime's CalibrationDataReader protocol over prepared feeds, renamed to the graph's inputs."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]], input_names: Sequence[str]) -> None:
        self._feeds = feeds
        self._names = list(input_names)
        self._iterator: Iterator[dict[str, np.ndarray]] = iter(())
        self.rewind()

    def rewind(self) -> None:
        self._iterator = iter({name: feed[key] for name, key in zip(self._names, ("left", "right"))}
                              for feed in self._feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iterator, None)

    def __len__(self) -> int:
        return len(self._feeds)


# --------------------------------------------------------------------------- quantization


def _ort_quantization_args(options: QuantizeOptions) -> dict[str, Any]:
    from onnxruntime.quantization import CalibrationMethod, QuantType

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[options.method]
    extra: dict[str, Any] = {
        # Symmetric int8 activations are what S8S8 kernels and most NPUs expect.
        "ActivationSymmetric": options.activation_type == "int8",
        "CalibPercentile": options.percentile,
    }
    return {
        "calibrate_method": method,
        "activation_type": QuantType.QUInt8 if options.activation_type == "uint8" else QuantType.QInt8,
        "weight_type": QuantType.QInt8,
        "per_channel": options.per_channel,
        "reduce_range": options.reduce_range,
        "extra_options": extra,
    }


def _preprocess(source: Path, work: Path) -> Path:
    """ONNX Runtime's pre-processing (shape inference, graph clean-up); node names are kept."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = work / "preprocessed.onnx"
    quant_pre_process(str(source), str(out))
    return out


def _int8_metadata(source: onnx.ModelProto, options: QuantizeOptions, num: int) -> OnnxMetadata:
    """The float file's metadata, marked int8 with how it was calibrated (ONNX Runtime's own
    ``onnx.quant*`` entries are dropped)."""
    metadata = OnnxMetadata.of(source)
    return dataclasses.replace(
        metadata, precision="int8", extra={k: v for k, v in metadata.extra.items() if not k.startswith("onnx.quant")},
        quantization=f"ort-qdq {options.method} activations={options.activation_type} "
                     f"per_channel={options.per_channel} reduce_range={options.reduce_range} samples={num}")


def _quantize_preprocessed(
    preprocessed: Path,
    output: Path,
    feeds: Sequence[dict[str, np.ndarray]],
    options: QuantizeOptions,
    exclude: Sequence[str],
    cache: Path,
    include: Sequence[str] | None = None,
    range_overrides: dict[str, tuple[float, float]] | None = None,
) -> None:
    """Run ONNX Runtime's quantize_static; ranges come from ``cache`` once it exists (one calibration
    serves every variant the sensitivity analysis tries). ``range_overrides``: tensor → (min, max)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, quantize_static

    args = _ort_quantization_args(options)
    if range_overrides:
        args["extra_options"]["TensorQuantOverrides"] = {
            name: [{"rmin": np.float32(low), "rmax": np.float32(high)}]
            for name, (low, high) in range_overrides.items()
        }
    input_names = [i.name for i in onnx.load(str(preprocessed), load_external_data=False).graph.input]
    reader = _FeedReader(feeds, input_names) if feeds else None
    # ONNX Runtime logs through the root logger at WARNING for things users cannot act on here
    # (pre-processing advice, per-tensor fallbacks); errors still raise.
    quant_logger = logging.getLogger()
    level = quant_logger.level
    quant_logger.setLevel(logging.ERROR)
    # the histogram calibrators print their progress to stdout, which is the CLI's report channel
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(preprocessed), str(output), reader, quant_format=QuantFormat.QDQ,
                            nodes_to_exclude=list(exclude), nodes_to_quantize=list(include) if include else None,
                            calibration_cache_path=str(cache), **args)
    finally:
        quant_logger.setLevel(level)


def _count_quantized(proto: onnx.ModelProto) -> int:
    """Nodes that read a DequantizeLinear output, i.e. run on quantized data (weights or activations)."""
    dq_outputs = {o for node in proto.graph.node if node.op_type == "DequantizeLinear" for o in node.output}
    return sum(1 for node in proto.graph.node
               if node.op_type not in QUANTIZED_OPS and any(i in dq_outputs for i in node.input))


def require_float_graph(source: str | Path) -> onnx.ModelProto:
    """The graph of ``source``; EdgeStereoError if it is already quantized."""
    proto = _load(source)
    if is_quantized(proto):
        raise EdgeStereoError(f"{source}: the graph is already quantized (it has "
                              f"{', '.join(sorted({n.op_type for n in proto.graph.node} & QUANTIZED_OPS))}); "
                              "quantize the float export instead")
    return proto


def quantize_onnx(
    source: str | Path,
    output: str | Path,
    feeds: Sequence[dict[str, np.ndarray]],
    options: QuantizeOptions | None = None,
    *,
    requested_samples: int | None = None,
    range_overrides: dict[str, tuple[float, float]] | None = None,
) -> QuantizeReport:
    """Quantize the float ONNX file ``source`` to a QDQ int8 file ``output``.

    feeds: calibration inputs from :func:`calibration_feeds` ({"left", "right"} (1,3,H,W) float32).
    requested_samples: how many the user asked for, to say so when there were fewer.
    range_overrides: tensor name → (min, max), replacing the calibrated range (QAT ranges).
    Raises EdgeStereoError for a graph that is already quantized, no calibration data, or a
    ``keep_float`` pattern that matches no node.
    """
    import onnx

    from edgestereo.data.io import atomic_path

    options = options or QuantizeOptions()
    source, output = Path(source), Path(output)
    check_output_path(source, output)
    start = time.perf_counter()
    proto = require_float_graph(source)
    graph_input_size(proto, str(source))
    if not feeds:
        raise EdgeStereoError("no calibration pair: the calibration data set is empty")
    notes = []
    if requested_samples is not None and len(feeds) < requested_samples:
        notes.append(f"asked for {requested_samples} calibration pairs, the data set has {len(feeds)}: used them all")
    with tempfile.TemporaryDirectory(prefix="edgestereo-quant-") as work:
        preprocessed = _preprocess(source, Path(work))
        kept = match_nodes(preprocessed, options.keep_float)
        exclude = sorted({name for names in kept.values() for name in names})
        staged = Path(work) / "quantized.onnx"
        _quantize_preprocessed(preprocessed, staged, feeds, options, exclude, Path(work) / "ranges.json",
                               range_overrides=range_overrides)
        quantized = onnx.load(str(staged))
    _int8_metadata(proto, options, len(feeds)).write(quantized)
    with atomic_path(output) as tmp:
        onnx.save_model(quantized, str(tmp))
    return QuantizeReport(str(source), str(output), options, len(feeds), kept, _count_quantized(quantized),
                          len(proto.graph.node), time.perf_counter() - start, notes)


# --------------------------------------------------------------------------- sensitivity


@dataclass(frozen=True)
class GroupCost:
    """One layer group quantized alone: its EPE and the cost over float (px)."""

    group: str
    nodes: int
    epe: float
    cost: float


@dataclass
class SensitivityReport:
    """What :func:`analyze_sensitivity` found."""

    float_epe: float
    int8_epe: float
    target_epe: float
    groups: list[GroupCost]
    #: groups to keep in float, most sensitive first, and the EPE with them kept.
    keep_float: list[str]
    mixed_epe: float
    met_target: bool
    #: ``--keep-float`` patterns for the proposed set (a module group's ``/path/*``, or the names of
    #: top-level nodes, which have no module path to match).
    patterns: list[str] = field(default_factory=list)

    def format(self) -> str:
        width = max([len(g.group) for g in self.groups] + [5])
        lines = [f"float EPE {self.float_epe:.4f} px; all int8 EPE {self.int8_epe:.4f} px "
                 f"(+{self.int8_epe - self.float_epe:.4f}); target ≤ {self.target_epe:.4f} px", "",
                 f"{'group':<{width}}  nodes  EPE int8 alone  cost (px)",
                 f"{'-' * width}  -----  --------------  ---------"]
        lines += [f"{g.group:<{width}}  {g.nodes:>5}  {g.epe:>14.4f}  {g.cost:>+9.4f}"
                  for g in sorted(self.groups, key=lambda g: -g.cost)]
        lines.append("")
        if not self.keep_float:
            lines.append(f"all int8 meets the target: nothing needs to stay float (EPE {self.int8_epe:.4f} px)")
        else:
            verdict = "meets" if self.met_target else "does NOT meet"
            lines.append("keep float: " + " ".join(f"'{p}'" for p in self.patterns))
            lines.append(f"EPE with those in float {self.mixed_epe:.4f} px: {verdict} the target")
        return "\n".join(lines)


def _group_patterns_to_nodes(groups: dict[str, list[str]], chosen: Iterable[str]) -> list[str]:
    return sorted({name for group in chosen for name in groups[group]})


def analyze_sensitivity(
    source: str | Path,
    feeds: Sequence[dict[str, np.ndarray]],
    samples: Sequence[dict[str, Any]],
    options: QuantizeOptions | None = None,
    *,
    target_ratio: float = 1.03,
    depth: int = 1,
    threads: int | None = None,
    log: Any = None,
) -> SensitivityReport:
    """Quantize one layer group at a time and score each on ``samples`` (with ground truth).

    The proposal is greedy: groups are kept in float in order of decreasing cost until the EPE of
    the mixed graph is within ``target_ratio`` × the float EPE (each step measured, not assumed).
    ``options.keep_float`` groups stay float throughout. log: a callable for progress lines.
    """
    options = options or QuantizeOptions()
    source = Path(source)
    require_float_graph(source)
    if not feeds:
        raise EdgeStereoError("no calibration pair: the calibration data set is empty")
    say = log or (lambda _line: None)
    with tempfile.TemporaryDirectory(prefix="edgestereo-sens-") as work_dir:
        work = Path(work_dir)
        preprocessed = _preprocess(source, work)
        cache = work / "ranges.json"
        forced = sorted({n for names in match_nodes(preprocessed, options.keep_float).values() for n in names})
        groups = {g: [n for n in names if n not in forced] for g, names in layer_groups(preprocessed, depth).items()}
        groups = {g: names for g, names in groups.items() if names}

        def epe_of(exclude: Sequence[str], include: Sequence[str] | None = None, tag: str = "q") -> float:
            out = work / f"{tag}.onnx"
            _quantize_preprocessed(preprocessed, out, feeds, options, exclude, cache, include=include)
            return score_onnx(out, samples, threads=threads)["epe"]

        float_epe = score_onnx(preprocessed, samples, threads=threads)["epe"]
        say(f"float EPE {float_epe:.4f} px")
        int8_epe = epe_of(forced)
        say(f"int8 EPE {int8_epe:.4f} px")
        target = float_epe * target_ratio
        costs = []
        for index, (group, names) in enumerate(groups.items(), 1):
            epe = epe_of(forced, include=names, tag=f"group{index}")
            costs.append(GroupCost(group, len(names), epe, epe - float_epe))
            say(f"[{index}/{len(groups)}] {group}: EPE {epe:.4f} px ({epe - float_epe:+.4f})")
        keep: list[str] = []
        mixed = int8_epe
        for cost in sorted(costs, key=lambda c: -c.cost):
            if mixed <= target or cost.cost <= 0:
                break
            keep.append(cost.group)
            mixed = epe_of([*forced, *_group_patterns_to_nodes(groups, keep)], tag="mixed")
            say(f"keep float {', '.join(keep)}: EPE {mixed:.4f} px")
        patterns = [p for group in keep for p in ([f"{group}/*"] if group != _TOP_LEVEL else groups[group])]
    return SensitivityReport(float_epe, int8_epe, target, costs, keep, mixed, mixed <= target, patterns)
