"""Data throughput: the synthetic generator, and loading a pre-generated set from files vs from LMDB.

1. generator: pairs/s of ``render_pair`` in one process at 256x512 and 384x640 (default settings),
   by the wall clock and per second of CPU time (what one free core would give);
2. writes N synthetic samples at 256x512 with ``write_synthetic`` (PNG + PFM files), packs them with
   ``pack_dataset`` (LMDB, PNG-coded and raw images), timing both;
3. reads every sample from the files, from each pack and generated on the fly: CPU milliseconds per
   sample in one process (``dataset[i]``; CPU time moves less than wall time on a busy machine), and
   samples/s through a DataLoader (batch 8, ``collate_stereo``) with 0 and 2 workers.

Files are read warm (the page cache holds them after writing), as they would be in a training run
whose set fits in memory. Prints Markdown tables; the load average is printed beside them because
on a shared machine the figures move with it.

usage:
  .venv/bin/python benchmarks/bench_data.py            # 1,000 samples
  .venv/bin/python benchmarks/bench_data.py --quick    # 48 samples: a smoke run
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from edgestereo.data import collate_stereo, create_dataset
from edgestereo.data.lmdb import pack_dataset
from edgestereo.data.synthetic import SyntheticConfig, render_pair
from edgestereo.data.synthetic.dataset import write_synthetic

SIZE = (256, 512)
MAX_DISP = 192


def load_average() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def generator_rates(height: int, width: int, count: int) -> tuple[float, float]:
    """(pairs per wall-clock second, pairs per CPU second)."""
    config = SyntheticConfig(height=height, width=width, max_disp=MAX_DISP)
    render_pair(config, 0, 0)  # loads the photographs once
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(count):
        render_pair(config, 1, index)
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def loader_rate(dataset, workers: int) -> float:
    loader = DataLoader(dataset, batch_size=8, num_workers=workers, collate_fn=collate_stereo,
                        persistent_workers=False)
    start = time.perf_counter()
    seen = sum(batch["left"].shape[0] for batch in loader)
    assert seen == len(dataset)
    return seen / (time.perf_counter() - start)


def read_cpu_ms(dataset) -> float:
    """CPU time of ``dataset[i]`` for every i, in this process, per sample, after one pass that brings
    the files into the page cache (a first pass from disk would count page faults and I/O)."""
    for index in range(len(dataset)):
        dataset[index]
    start = time.process_time()
    for index in range(len(dataset)):
        dataset[index]
    return (time.process_time() - start) / len(dataset) * 1e3


def folder_size(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="48 samples, fewer generator pairs")
    parser.add_argument("--num", type=int, default=1000, help="samples in the set (default 1000)")
    parser.add_argument("--workdir", default=None, help="where to write the set (default: a temporary folder)")
    args = parser.parse_args()
    num = 48 if args.quick else args.num
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores, load average {load_average()} (1/5/15 min)\n")

    print("| generator (one process) | pairs/s | pairs per CPU second |")
    print("|---|---|---|")
    for height, width in ((256, 512), (384, 640)):
        wall, cpu = generator_rates(height, width, 8 if args.quick else 60)
        print(f"| {height}x{width}, max disparity {MAX_DISP} | {wall:.1f} | {cpu:.1f} |")
    print(f"\n(load average {load_average()})\n")

    work = Path(tempfile.mkdtemp(prefix="edgestereo-bench-", dir=args.workdir))
    try:
        config = SyntheticConfig(height=SIZE[0], width=SIZE[1], max_disp=MAX_DISP)
        timings = {}
        start = time.perf_counter()
        write_synthetic(work / "files", num, config, seed=0, workers=2)
        timings["write files (2 workers)"] = (time.perf_counter() - start, folder_size(work / "files"))
        for codec in ("png", "raw"):
            start = time.perf_counter()
            pack_dataset("synthetic", work / f"lmdb-{codec}", root=work / "files", image_codec=codec, workers=2)
            timings[f"pack LMDB, {codec} images (2 workers)"] = (time.perf_counter() - start,
                                                                 folder_size(work / f"lmdb-{codec}"))
        print(f"| {num} samples at {SIZE[0]}x{SIZE[1]} | seconds | samples/s | size (MiB) |")
        print("|---|---|---|---|")
        for name, (seconds, size) in timings.items():
            print(f"| {name} | {seconds:.1f} | {num / seconds:.1f} | {size:.0f} |")
        print(f"\n(load average {load_average()})\n")

        sources = {
            "files (PNG + PFM)": create_dataset("synthetic", work / "files"),
            "LMDB, PNG images": create_dataset("lmdb", work / "lmdb-png"),
            "LMDB, raw images": create_dataset("lmdb", work / "lmdb-raw"),
            # rendering is far slower than reading: a slice keeps the run short
            f"generated on the fly ({min(num, 96)} samples)": create_dataset("synthetic", num=min(num, 96), size=SIZE,
                                                                           max_disp=MAX_DISP, seed=0),
        }
        print("| reading the set | CPU ms per sample | DataLoader (batch 8), 0 workers: samples/s | 2 workers: "
              "samples/s |")
        print("|---|---|---|---|")
        for name, dataset in sources.items():
            # generating on the fly costs what the generator table above says
            cpu = "—" if "fly" in name else f"{read_cpu_ms(dataset):.1f}"
            rates = [loader_rate(dataset, workers) for workers in (0, 2)]
            print(f"| {name} | {cpu} | {rates[0]:.0f} | {rates[1]:.0f} |")
        print(f"\n(load average {load_average()})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
