"""Compile an exported ONNX stereo graph for a Rockchip NPU with rknn-toolkit2, and run the result in
the toolkit's simulator.

rknn-toolkit2 pins its own torch, numpy, onnx and protobuf, so it lives in an environment of its own
(``make rknn-env`` creates ``.venv-rknn``) and never in edgestereo's. This module only finds that
environment and runs :mod:`edgestereo.export.rknn_worker` there as a subprocess; the two sides talk
through .npy files and JSON. What the toolkit printed is parsed for its error and warning lines and
for the layer table that says which operators the compiler left on the CPU.

>>> python = find_rknn_python()                                   # doctest: +SKIP
>>> build = build_rknn("default.onnx", "default.rknn", python, probes=[(left, right)])  # doctest: +SKIP
>>> build.cpu_ops                                                  # doctest: +SKIP
Counter({'Exp': 1})
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgestereo.errors import EdgeStereoError

__all__ = [
    "ENV_VARIABLE",
    "RKNN_TARGETS",
    "SETUP_COMMAND",
    "RknnBuild",
    "RknnBuildError",
    "build_rknn",
    "find_rknn_python",
    "parse_rknn_log",
]

#: NPUs the compile command builds for (the ones tested; rknn-toolkit2 knows more).
RKNN_TARGETS = ("rk3588",)
#: names the rknn-toolkit2 environment (a venv folder) when it is not ``.venv-rknn``.
ENV_VARIABLE = "EDGESTEREO_RKNN_ENV"
DEFAULT_ENV = ".venv-rknn"
#: the one command that creates the environment, from a source checkout.
SETUP_COMMAND = "make rknn-env"
_WORKER = Path(__file__).with_name("rknn_worker.py")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: a row of the toolkit's "Network Layer Information Table": ID, op type, data type, target.
_LAYER_ROW = re.compile(r"^D RKNN: \[[^\]]*\]\s+\d+\s+(\w+)\s+\w+\s+(CPU|NPU|GPU)\s")
_MESSAGE = re.compile(r"^(E|W) (?:RKNN: \[[^\]]*\] |build: |load_onnx: |config: |init_runtime: )?(.*)$")
#: warnings of the toolkit's verbose log that say nothing about the graph.
_NOISE = ("need parameter qtype", "mean_values is None", "std_values is None", "temperate env",
          "default output dtype")


class RknnBuildError(EdgeStereoError):
    """A toolkit stage failed (not a user error of edgestereo's): ``stage`` names it."""

    def __init__(self, stage: str, detail: str) -> None:
        super().__init__(f"rknn-toolkit2 failed at {stage}: {detail}")
        self.stage = stage
        self.detail = detail


@dataclass
class RknnBuild:
    """What one toolkit run gave: the build, the simulator's outputs and the log's findings."""

    #: rknn-toolkit2 version, target platform, and "fp16" or "int8".
    toolkit: str
    target: str
    precision: str
    build_s: float
    simulate_s: float
    #: simulator disparity of each probe pair, (H,W) float32 pixels.
    outputs: list[np.ndarray]
    #: operators the compiler left on the CPU (op type → count) and the number it put on the NPU.
    cpu_ops: Counter[str] = field(default_factory=Counter)
    npu_ops: int = 0
    #: the toolkit's error and warning lines ("E …"/"W …"), with how often each came.
    messages: Counter[str] = field(default_factory=Counter)

    @property
    def errors(self) -> list[str]:
        return [message for message in self.messages if message.startswith("E ")]


def find_rknn_python(env: str | Path | None = None) -> Path:
    """The Python of the rknn-toolkit2 environment: ``env`` (a venv folder), else $EDGESTEREO_RKNN_ENV,
    else ``.venv-rknn`` in the current folder or in the source checkout edgestereo runs from.
    Raises EdgeStereoError naming :data:`SETUP_COMMAND` when there is none."""
    if env is None:
        env = os.environ.get(ENV_VARIABLE)
    if env is not None:
        candidates = [Path(env)]
    else:
        checkout = Path(__file__).resolve().parents[3]  # src/edgestereo/export/rknn.py → the checkout
        candidates = list(dict.fromkeys([Path.cwd() / DEFAULT_ENV, checkout / DEFAULT_ENV]))
    for folder in candidates:
        python = folder / "bin" / "python"
        if python.is_file():
            return python
    where = " or ".join(str(c) for c in candidates)
    raise EdgeStereoError(f"no rknn-toolkit2 environment at {where}: create it with `{SETUP_COMMAND}` in the "
                          f"edgestereo checkout (or name one with --rknn-env / ${ENV_VARIABLE})")


def parse_rknn_log(text: str) -> tuple[Counter[str], int, Counter[str]]:
    """(CPU op type → count, number of NPU ops, error/warning line → count) from a toolkit log.

    Only the layer table of the last build counts (the toolkit prints one per build); input and
    output operators are not counted. Progress bars (carriage returns) and colours are removed.
    """
    cpu: Counter[str] = Counter()
    npu = 0
    messages: Counter[str] = Counter()
    for raw in _ANSI.sub("", text).replace("\r", "\n").splitlines():
        line = raw.strip()
        row = _LAYER_ROW.match(line)
        if row:
            op, target = row.groups()
            if op in ("InputOperator", "OutputOperator"):
                continue
            if target == "NPU":
                npu += 1
            else:
                cpu[op] += 1
            continue
        message = _MESSAGE.match(line)
        if message and not any(noise in line for noise in _NOISE):
            # timestamps and addresses differ from line to line; the text is what repeats
            messages[f"{message.group(1)} {message.group(2).strip()}"] += 1
    return cpu, npu, messages


def _save_pair(folder: Path, name: str, left: np.ndarray, right: np.ndarray) -> list[str]:
    paths = []
    for side, array in (("left", left), ("right", right)):
        path = folder / f"{name}_{side}.npy"
        np.save(path, np.ascontiguousarray(array, dtype=np.float32))
        paths.append(str(path))
    return paths


def build_rknn(
    onnx_path: str | Path,
    out: str | Path,
    python: Path,
    *,
    probes: Sequence[tuple[np.ndarray, np.ndarray]],
    target: str = "rk3588",
    calibration: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    quantized_algorithm: str = "normal",
    float_subgraphs: Sequence[tuple[str, str]] = (),
    log_path: str | Path | None = None,
) -> RknnBuild:
    """Compile ``onnx_path`` to ``out`` with the toolkit of ``python`` and run the simulator on ``probes``.

    probes, calibration: (left, right) pairs, each (1,3,H,W) float32 RGB in [0,255]. A non-empty
    ``calibration`` builds int8 (the toolkit's own quantizer, ``quantized_algorithm`` normal, mmse or
    kl_divergence), an empty one fp16. float_subgraphs: (input tensor, output tensor) pairs of an int8
    build whose subgraphs between them stay float16 (the toolkit's hybrid quantization; tensor names
    of the ONNX graph). log_path keeps the toolkit's full log. ``out`` is written
    directly: callers that want it atomic pass a temporary name. Raises :class:`RknnBuildError` when
    a toolkit stage fails.
    """
    if target not in RKNN_TARGETS:
        raise EdgeStereoError(f"unknown target {target!r} (choose from {', '.join(RKNN_TARGETS)})")
    if float_subgraphs and not calibration:
        raise EdgeStereoError("float subgraphs are part of an int8 build: give calibration pairs")
    with tempfile.TemporaryDirectory(prefix="edgestereo-rknn-") as work:
        folder = Path(work)
        dataset = None
        if calibration:
            dataset = folder / "dataset.txt"
            lines = [" ".join(_save_pair(folder, f"calib{i}", *pair)) for i, pair in enumerate(calibration)]
            dataset.write_text("\n".join(lines) + "\n", encoding="utf-8")
        request = {
            "onnx": str(Path(onnx_path).resolve()),
            "out": str(Path(out).resolve()),
            "target": target,
            "int8": bool(calibration),
            "dataset": str(dataset) if dataset else None,
            "quantized_algorithm": quantized_algorithm,
            "custom_hybrid": [list(pair) for pair in float_subgraphs],
            "probes": [_save_pair(folder, f"probe{i}", *pair) for i, pair in enumerate(probes)],
            "outputs": [str(folder / f"out{i}.npy") for i in range(len(probes))],
            "result": str(folder / "result.json"),
        }
        (folder / "request.json").write_text(json.dumps(request), encoding="utf-8")
        log = folder / "rknn.log"
        with open(log, "wb") as handle:
            # The toolkit's log is long (verbose: the layer table): it goes to a file, not the terminal.
            # -I: the worker's folder (beside this module, named rknn.py) must not shadow the toolkit's package.
            subprocess.run([str(python), "-I", str(_WORKER), str(folder / "request.json")], stdout=handle,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
        text = log.read_text(encoding="utf-8", errors="replace")
        if log_path is not None:
            Path(log_path).write_text(text, encoding="utf-8")
        cpu, npu, messages = parse_rknn_log(text)
        result_file = Path(request["result"])
        if not result_file.is_file():
            tail = _ANSI.sub("", text).strip().splitlines()[-1:] or ["no output"]
            raise RknnBuildError("start-up", tail[0][:200])
        result = json.loads(result_file.read_text(encoding="utf-8"))
        if not result["ok"]:
            errors = [m for m in messages if m.startswith("E ")]
            detail = result.get("error") or (errors[-1][2:][:200] if errors else "see the toolkit's log")
            raise RknnBuildError(result["stage"], detail)
        outputs = [np.load(path).reshape(probe[0].shape[-2:]) for path, probe in zip(request["outputs"], probes)]
    return RknnBuild(toolkit=f"rknn-toolkit2 {result['toolkit']}", target=target,
                     precision="int8" if calibration else "fp16", build_s=result["build_s"],
                     simulate_s=result["simulate_s"], outputs=outputs, cpu_ops=cpu, npu_ops=npu, messages=messages)
