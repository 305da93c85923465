"""What each network exports to, reference path against deploy path, and how close the graphs compute.

For each model: the reference path (the published computation, exported with the model's own choice
of path overridden) and the deploy path (the npu4d export). Per graph it prints the operators NPUs
refuse (GridSample, Einsum, ScatterND), the highest tensor rank, the number of npu4d violations,
and |Δ| (mean / max, px) of ONNX Runtime against PyTorch's reference path on the model's example
pair. Then PyTorch's deploy path against its reference path at batch 1 and 2 (and, for iterative
models, after the first refinement step). Seeded random weights with BatchNorm statistics from the
example pair (a fresh network's softmax saturates, which would make any two computations agree);
the PyTorch output's standard deviation is printed, so a degenerate comparison shows.

Op counts and ranks are properties of the graphs (the same on any CPU); the |Δ| figures depend on the
CPU's float kernels in the last digits.

usage:
  .venv/bin/python benchmarks/export_report.py         # raft-stereo-realtime, gwcnet-gc, stereonet-plus-small
  .venv/bin/python benchmarks/export_report.py --models raft-stereo-realtime --quick
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from edgestereo.export.check import check_onnx
from edgestereo.export.exporter import export_onnx
from edgestereo.models import create_model
from edgestereo.runtime.benchmark import calibrate_batchnorm, environment
from edgestereo.runtime.onnx_predictor import OnnxPredictor

#: model → (height, width, config) of the full run and of --quick
CASES = {
    "raft-stereo-realtime": ((256, 512, {"iters": 7}), (128, 256, {"iters": 2})),
    "gwcnet-gc": ((128, 256, {"max_disp": 48}), (64, 128, {"max_disp": 32})),
    "stereonet-plus-small": ((384, 640, {}), (64, 128, {})),
}
REFUSED_OPS = ("GridSample", "Einsum", "ScatterND")


def calibrated(name: str, height: int, width: int, config: dict) -> torch.nn.Module:
    """Seeded random weights; every BatchNorm's statistics from the example pair (batch 2)."""
    torch.manual_seed(0)
    model = create_model(name, **config)
    return calibrate_batchnorm(model, *model.example_inputs(height, width, batch=2))


def run(model, left: torch.Tensor, right: torch.Tensor, deploy: bool) -> np.ndarray:
    with torch.no_grad():
        return model.deploy(deploy)(left, right).float().numpy()


def graph_row(model, path: Path, reference: np.ndarray, left, right) -> list[str]:
    proto = onnx.load(str(path))
    ops = [node.op_type for node in proto.graph.node]
    report = check_onnx(path, "npu4d")
    got = OnnxPredictor(path, threads=2).run_tensors(left.numpy(), right.numpy())
    delta = np.abs(got.astype(np.float64) - reference[0, 0])
    verdict = "ok" if report.ok else f"{len(report.violations)} violations"
    return [*(str(ops.count(op)) for op in REFUSED_OPS), str(report.max_rank), verdict,
            f"{delta.mean():.1e} / {delta.max():.1e}"]


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    return "\n".join([*lines, *("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--quick", action="store_true", help="small sizes and 2 refinement steps: a smoke run")
    args = parser.parse_args()
    torch.set_num_threads(2)
    env = environment(2)
    print(f"cpu: {env['cpu']} ({env['logical_cpus']} logical); torch {torch.__version__}; 2 threads")

    graph_rows, torch_rows = [], []
    with tempfile.TemporaryDirectory(prefix="export-report-") as work:
        for name in args.models:
            height, width, config = CASES[name][1 if args.quick else 0]
            model = calibrated(name, height, width, config)
            left, right = model.example_inputs(height, width)
            reference = run(model, left, right, deploy=False)
            size = f"{width}x{height}"
            model.export_uses_deploy = lambda profile: False  # this instance: the published computation
            for label, profile in (("reference", "generic"), ("deploy", "npu4d")):
                try:
                    path = export_onnx(model, Path(work) / f"{name}-{label}.onnx", height, width, profile=profile)
                except Exception as exc:  # a reference path the TorchScript exporter cannot trace
                    reason = str(exc).strip().splitlines()[0][:60]
                    graph_rows.append([name, size, label, "–", "–", "–", "–", f"does not export ({reason})", "–"])
                    continue
                graph_rows.append([name, size, label, *graph_row(model, path, reference, left, right)])
            for batch in (1, 2):
                pair = model.example_inputs(height, width, batch=batch)
                expected, deployed = run(model, *pair, deploy=False), run(model, *pair, deploy=True)
                delta = np.abs(deployed.astype(np.float64) - expected)
                torch_rows.append([name, size, str(config.get("iters", "–")), str(batch), f"{expected.std():.2f}",
                                   f"{delta.mean():.1e}", f"{delta.max():.1e}"])
            if "iters" in config:
                first = calibrated(name, height, width, {**config, "iters": 1})
                expected, deployed = run(first, left, right, deploy=False), run(first, left, right, deploy=True)
                delta = np.abs(deployed.astype(np.float64) - expected)
                torch_rows.append([name, size, "1", "1", f"{expected.std():.2f}", f"{delta.mean():.1e}",
                                   f"{delta.max():.1e}"])
            print(f"  {name} done", flush=True)

    print("\nexported graphs (ONNX Runtime |Δ| against PyTorch's reference path, px):\n")
    print(table(["model", "size", "path", *REFUSED_OPS, "max rank", "npu4d", "ORT |Δ| mean / max"], graph_rows))
    print("\nPyTorch deploy path against reference path (px):\n")
    print(table(["model", "size", "steps", "batch", "output std", "mean |Δ|", "max |Δ|"], torch_rows))


if __name__ == "__main__":
    main()
