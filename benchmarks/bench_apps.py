"""End-to-end FPS of `edgestereo batch` (decode + infer + encode, overlapped) against inference alone.

For each model: N frame pairs are written as PNG (crops of the Middlebury motorcycle pair that
scikit-image ships, resized so every frame differs a little), then
  * inference alone: the predictor the apps use, on already decoded arrays, median over N runs,
    in a worker thread as the pipeline's infer step runs it (on a busy machine PyTorch's OpenMP
    pool behaves very differently in the main thread, which would skew the comparison);
  * batch: `edgestereo batch --dir … --video out.mp4` with the same warm predictor, which reads the
    PNGs, infers, writes disparity .pfm + coloured .png per frame and encodes the MP4.
Models run in their default configurations with random weights (the timing does not depend on
them). Prints a Markdown table.

usage:
  .venv/bin/python benchmarks/bench_apps.py            # 384x640, 10 frames
  .venv/bin/python benchmarks/bench_apps.py --quick    # 96x160, 3 frames: a smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from edgestereo.data.io import write_image
from edgestereo.data.samples import load_motorcycle
from edgestereo.models import list_models
from edgestereo.runtime.batch_runner import BatchOptions, list_pairs, run_batch
from edgestereo.runtime.factory import DEFAULT_THREADS, create_predictor

MODELS = ("sgbm", "stereonet-plus", "raft-stereo-realtime")


def write_frames(folder: Path, count: int, height: int, width: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` (left, right) (height,width,3) uint8 pairs, each a shifted crop of the motorcycle pair,
    written to folder/left and folder/right; returns them decoded."""
    left_full, right_full, _ = load_motorcycle()
    margin = 16
    pairs = []
    for side in ("left", "right"):
        (folder / side).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        offset = (i * 3) % margin
        views = []
        for side, image in (("left", left_full), ("right", right_full)):
            resized = cv2.resize(image, (width + margin, height + margin), interpolation=cv2.INTER_AREA)
            view = np.ascontiguousarray(resized[offset : offset + height, offset : offset + width])
            write_image(folder / side / f"{i:04d}.png", view)
            views.append(view)
        pairs.append((views[0], views[1]))
    return pairs


def bench_model(name: str, pairs, folder: Path, threads: int) -> dict[str, float]:
    out = folder / f"out-{name}"
    options = BatchOptions(out=out, video=out / "batch.mp4", overwrite=True)
    predictor = create_predictor(name, random_weights=True, threads=threads)
    latencies: list[float] = []

    def time_inference() -> None:
        predictor(*pairs[0])  # warm-up: allocator, kernels, lazy initialisation
        for left, right in pairs:
            start = time.perf_counter()
            predictor(left, right)
            latencies.append((time.perf_counter() - start) * 1e3)

    worker = threading.Thread(target=time_inference)
    worker.start()
    worker.join()
    summary = run_batch(list_pairs(folder=folder), predictor, options, progress=False)
    if summary.failed:
        raise RuntimeError(f"{name}: batch frames failed: {summary.failed}")
    infer_ms = statistics.median(latencies)
    return {"infer_ms": infer_ms, "infer_fps": 1e3 / statistics.fmean(latencies),
            "batch_fps": summary.frames_per_second, "batch_infer_ms": statistics.median(summary.latencies_ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="96x160, 3 frames")
    parser.add_argument("--frames", type=int, default=None, help="frames per model (default 10, quick 3)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="frame size (default 384 640, quick 96 160)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"intra-op threads (default {DEFAULT_THREADS}, as the commands)")
    opts = parser.parse_args()
    height, width = opts.size or ((96, 160) if opts.quick else (384, 640))
    count = opts.frames or (3 if opts.quick else 10)
    known = set(list_models())
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-apps-") as tmp:
        folder = Path(tmp)
        pairs = write_frames(folder, count, height, width)
        for name in opts.models:
            if name not in known:
                rows.append(f"| {name} | {height}x{width} | not registered | | | | |")
                continue
            r = bench_model(name, pairs, folder, opts.threads)
            rows.append(f"| {name} | {height}x{width} | {r['infer_ms']:.1f} | {r['infer_fps']:.2f} | "
                        f"{r['batch_infer_ms']:.1f} | {r['batch_fps']:.2f} | {r['batch_fps'] / r['infer_fps']:.2f} |")
    load = os.getloadavg()
    threads = __import__("torch").get_num_threads()
    print(f"\n{count} frames per model (default configurations), torch threads {threads}, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print("| model | H x W | inference alone, median (ms) | inference alone (FPS) | inference inside batch, "
          "median (ms) | batch end to end (FPS) | batch / alone |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
