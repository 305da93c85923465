"""Where an exported network spends its time in ONNX Runtime: per module group and per operator type.

Exports the model's npu4d graph (or takes ``--onnx``), runs it with ONNX Runtime's profiler on a random
pair (one warm-up run, then ``--runs`` profiled runs), and prints the kernel time per frame of each
module group (the first ``--depth`` parts of the node names' module paths, as ``edgestereo quantize
--analyze`` groups them) and of each operator type, with its share of the summed kernel time. Kernel times add
up to a little less than the frame's latency (the rest is the session's own work between nodes).

usage:
  .venv/bin/python benchmarks/profile_onnx.py --model stereonet-plus-small --height 384 --width 640 --threads 1
  .venv/bin/python benchmarks/profile_onnx.py --model gwcnet-gc --height 128 --width 256 --set max_disp=48
  .venv/bin/python benchmarks/profile_onnx.py --onnx model.onnx --depth 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgestereo.export.exporter import export_onnx
from edgestereo.models import create_model
from edgestereo.runtime.benchmark import environment


def parse_config(pairs: list[str]) -> dict:
    config = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        config[key] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    return config


def profile(path: Path, runs: int, threads: int) -> tuple[dict[str, float], dict[str, str], float]:
    """node name → kernel µs per frame, node name → op type, and the median frame time (ms)."""
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads = threads
    options.profile_file_prefix = str(path.with_suffix(""))
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.random.default_rng(0).uniform(0, 255, i.shape).astype(np.float32)
             for i in session.get_inputs()}
    for _ in range(runs + 1):
        session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    frames = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    start = frames[1]["ts"]  # after the warm-up run
    kernel_us: dict[str, float] = defaultdict(float)
    op_types: dict[str, str] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] >= start:
            node = event["name"].removesuffix("_kernel_time")
            kernel_us[node] += event["dur"] / runs
            op_types[node] = event["args"].get("op_name", "?")
    return kernel_us, op_types, float(np.median([f["dur"] for f in frames[1:]])) / 1000


def group_of(node: str, depth: int) -> str:
    """The module group of a profiled node: the first ``depth`` parts of its module path. ONNX Runtime
    renames the nodes it rewrites after their output (``…/Conv_output_0_nchwc``) or the fusion
    (``…/Slice_1/GatherSliceToSplitFusion``); nodes it adds have no path at all."""
    if not node.startswith("/"):
        return "(added by ONNX Runtime)"
    name = re.sub(r"(_output_\d+)?_nchwc$", "", node)
    name = re.sub(r"/\w+Fusion$", "", name)
    modules = [part for part in name.split("/") if part][:-1]  # the last part is the operator
    return "/" + "/".join(modules[:depth]) if modules else "(top level)"


def shares(times: dict[str, float], title: str) -> str:
    total = sum(times.values())
    width = max(len(title), *(len(k) for k in times))
    lines = [f"{title:<{width}}  ms/frame  share", f"{'-' * width}  --------  -----"]
    for key, value in sorted(times.items(), key=lambda kv: -kv[1]):
        lines.append(f"{key:<{width}}  {value / 1000:>8.2f}  {100 * value / total:>4.1f} %")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="export this model's npu4d graph (random weights)")
    source.add_argument("--onnx", type=Path, help="profile this file")
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="model config fields")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--depth", type=int, default=1, help="module path parts per group (default 1)")
    args = parser.parse_args()
    env = environment(args.threads)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"cpu: {env['cpu']} ({env['logical_cpus']} logical); onnxruntime {ort.__version__}; "
          f"{args.threads} thread(s); load average before: {load}")
    with tempfile.TemporaryDirectory(prefix="profile-onnx-") as work:
        path = args.onnx
        if path is None:
            model = create_model(args.model, **parse_config(args.set))
            path = export_onnx(model, Path(work) / f"{args.model}.onnx", args.height, args.width)
        else:
            path = Path(work) / args.onnx.name
            path.write_bytes(args.onnx.read_bytes())
        kernel_us, op_types, frame_ms = profile(path, args.runs, args.threads)
    by_group: dict[str, float] = defaultdict(float)
    by_op: dict[str, float] = defaultdict(float)
    for node, us in kernel_us.items():
        by_group[group_of(node, args.depth)] += us
        by_op[op_types[node]] += us
    print(f"{args.model or args.onnx}: median frame {frame_ms:.1f} ms over {args.runs} profiled runs, "
          f"kernels {sum(kernel_us.values()) / 1000:.1f} ms\n")
    print(shares(by_group, "module group"))
    print()
    print(shares(by_op, "operator"))
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
