"""Build an RKNN file and run it in the toolkit's simulator: the half of ``edgestereo compile`` that
runs inside the rknn-toolkit2 environment (``make rknn-env``), as a script of its own.

It imports only the standard library, numpy and rknn-toolkit2, never edgestereo (whose environment
rknn-toolkit2's pinned torch/numpy/onnx cannot share). Usage: ``python rknn_worker.py REQUEST.json``.
The request (JSON) names the ONNX file, the target platform, the file to write, ``int8`` with a
calibration list in rknn's dataset format (one line per pair: ``left.npy right.npy``, each
(1,3,H,W) float32), optionally ``custom_hybrid`` (``[[input tensor, output tensor], …]``: the
subgraphs between them stay in float16, the toolkit's two-step hybrid quantization), and probe
pairs (``[left.npy, right.npy]``) whose simulator outputs are saved as .npy files (disparity,
float32 pixels). The answer (JSON, ``result`` path of the request) holds
the build time in seconds, the toolkit version and, on failure, the stage that failed (and the
exception's last line when the toolkit raised instead of returning an error code). The toolkit
prints its log (verbose, with the layer table that says which op runs on the CPU or NPU) to stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
from importlib import metadata


def _answer(path: str, **fields: object) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(fields, handle)


def main(request_path: str) -> int:
    """Run one request; 0 on success, 1 when a toolkit stage failed (named in the answer)."""
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    result = request["result"]
    progress = {"stage": "start-up", "toolkit": "unknown"}
    try:
        return _run(request, progress)
    except Exception as exc:  # the toolkit raises from inside a stage as often as it returns non-zero
        lines = str(exc).strip().splitlines() or [""]
        _answer(result, ok=False, error=f"{type(exc).__name__}: {lines[-1]}"[:200], **progress)
        return 1


def _run(request: dict, progress: dict) -> int:
    import numpy as np
    from rknn.api import RKNN

    result = request["result"]
    version = progress["toolkit"] = metadata.version("rknn-toolkit2")
    zeros, ones = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]

    def configured() -> RKNN:
        rknn = RKNN(verbose=True)
        rknn.config(target_platform=request["target"], mean_values=[zeros, zeros], std_values=[ones, ones],
                    quantized_algorithm=request.get("quantized_algorithm", "normal"))
        return rknn

    rknn = configured()
    progress["stage"] = "load_onnx"
    if rknn.load_onnx(model=request["onnx"]) != 0:
        _answer(result, ok=False, stage="load_onnx", toolkit=version)
        return 1
    start = time.perf_counter()
    if request.get("custom_hybrid"):
        # step 1 quantizes and writes <model>.model/.data/.quantization.cfg (the named subgraphs marked
        # float16) into the working directory; step 2 builds from those files in a fresh instance.
        progress["stage"] = "hybrid_quantization_step1"
        os.chdir(os.path.dirname(os.path.abspath(result)))
        status = rknn.hybrid_quantization_step1(dataset=request["dataset"], custom_hybrid=request["custom_hybrid"])
        rknn.release()
        if status == 0:
            stem = os.path.splitext(os.path.basename(request["onnx"]))[0]
            progress["stage"] = "hybrid_quantization_step2"
            rknn = configured()
            status = rknn.hybrid_quantization_step2(model_input=f"{stem}.model", data_input=f"{stem}.data",
                                                    model_quantization_cfg=f"{stem}.quantization.cfg")
    else:
        progress["stage"] = "build"
        status = rknn.build(do_quantization=bool(request["int8"]), dataset=request.get("dataset"))
    build_s = time.perf_counter() - start
    if status != 0:
        _answer(result, ok=False, stage=progress["stage"], build_s=build_s, toolkit=version)
        return 1
    progress["stage"] = "export_rknn"
    if rknn.export_rknn(request["out"]) != 0:
        _answer(result, ok=False, stage="export_rknn", build_s=build_s, toolkit=version)
        return 1
    progress["stage"] = "init_runtime"
    if rknn.init_runtime() != 0:  # no target: the simulator
        _answer(result, ok=False, stage="init_runtime", build_s=build_s, toolkit=version)
        return 1
    progress["stage"] = "inference"
    start = time.perf_counter()
    for (left_path, right_path), output_path in zip(request["probes"], request["outputs"]):
        outputs = rknn.inference(inputs=[np.load(left_path), np.load(right_path)], data_format="nchw")
        if outputs is None:
            _answer(result, ok=False, stage="inference", build_s=build_s, toolkit=version)
            return 1
        np.save(output_path, np.asarray(outputs[0], dtype=np.float32))
    rknn.release()
    _answer(result, ok=True, build_s=build_s, simulate_s=time.perf_counter() - start, toolkit=version)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
