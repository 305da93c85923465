"""Latency and throughput of a stereo network, the same way for every runtime.

A :class:`BenchRunner` splits one frame into three timed steps: ``prepare`` (uint8 images → the
runtime's input tensors), ``infer`` (the network alone) and ``postprocess`` (the network output →
an (H,W) float32 disparity and its colour picture, what an application does next). :func:`benchmark`
warms up, times ``iters`` single-stream runs (median, p90, max), then runs ``streams`` threads at
once on the same loaded model (as an NPU vendor's multi-thread perf tool does) for the aggregate
FPS, while a sampler records the peak resident memory. :func:`environment` records the machine,
library versions and thread settings, so figures from two machines can be compared honestly.
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgestereo.errors import EdgeStereoError

__all__ = [
    "BenchResult",
    "BenchRunner",
    "LatencyStats",
    "OnnxBenchRunner",
    "TorchBenchRunner",
    "benchmark",
    "benchmark_network",
    "calibrate_batchnorm",
    "environment",
    "format_results",
    "peak_memory_added",
    "random_pair",
]

#: CPU features that decide which int8 / bf16 kernels a runtime can use.
_CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")


class BenchRunner(Protocol):
    """One model on one runtime, ready to time."""

    name: str
    runtime: str
    precision: str
    #: (H, W) the network takes.
    input_size: tuple[int, int]

    def prepare(self, left: np.ndarray, right: np.ndarray) -> Any:
        """left, right: (H,W,3) uint8 RGB → the runtime's inputs."""
        ...

    def infer(self, inputs: Any) -> Any:
        """The network alone; returns once the output is computed (device synchronised)."""
        ...

    def postprocess(self, output: Any) -> np.ndarray:
        """Network output → (H,W) float32 disparity in pixels."""
        ...

    def for_stream(self) -> BenchRunner:
        """A runner that may run in another thread at the same time as this one."""
        ...


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds over the timed iterations."""

    median_ms: float
    p90_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> LatencyStats:
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        return cls(float(np.median(ms)), float(np.percentile(ms, 90)), float(ms.max()), float(ms.mean()))


@dataclass
class BenchResult:
    """What :func:`benchmark` measured; ``to_json()`` is what ``edgestereo bench --json`` writes."""

    name: str
    runtime: str
    precision: str
    height: int
    width: int
    threads: int | None
    streams: int
    iters: int
    warmup: int
    #: the network alone, one stream.
    latency: LatencyStats
    #: uint8 images → runtime inputs.
    preprocess: LatencyStats
    #: network output → (H,W) float32 disparity and its colour picture.
    postprocess: LatencyStats
    #: 1000 / median network latency.
    fps_single: float
    #: frames per second over all streams together (network only), ``streams`` threads at once.
    fps_streams: float
    #: peak resident memory of the process while benchmarking, MiB (None where it cannot be read).
    peak_rss_mb: float | None
    #: peak CUDA memory allocated by PyTorch, MiB (CUDA runs only).
    peak_cuda_mb: float | None = None
    environment: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def calibrate_batchnorm(model: Any, left: Any, right: Any) -> Any:
    """Give every BatchNorm of ``model`` the exact statistics of one training-mode pass on the (B,3,H,W)
    tensors ``left``, ``right``, then switch it to eval and return it. A random network with fresh
    statistics (mean 0, var 1) saturates its softmax, and then any two computations of it agree
    trivially: parity figures on it mean nothing."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one batch sets the statistics exactly
    model.train()
    with torch.no_grad():
        model(left, right)
    return model.eval()


def benchmark_network(name: str, config: dict[str, Any] | None = None) -> Any:
    """The network the benchmark scripts time: the default model with its packaged weights, any other
    with seeded random weights (timing does not depend on them) whose BatchNorm statistics were moved by
    two training-mode passes on its example pair (64×128, batch 2), so outputs are not saturated."""
    import torch

    from edgestereo import DEFAULT_MODEL
    from edgestereo.runtime.factory import load_network

    if name == DEFAULT_MODEL:
        return load_network(name)
    torch.manual_seed(0)
    model = load_network(name, random_weights=True, config=config or {})
    left, right = model.example_inputs(64, 128, batch=2)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(left, right)
    return model.eval()


def random_pair(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured (H,W,3) uint8 pair at a 4 px shift: content does not change timing, only size does."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height, width + 4, 3), dtype=np.uint8)
    return np.ascontiguousarray(base[:, 4:]), np.ascontiguousarray(base[:, :width])


def _colour(disparity: np.ndarray) -> np.ndarray:
    from edgestereo.viz import colorize_disparity

    return colorize_disparity(disparity)


class TorchBenchRunner:
    """A :class:`~edgestereo.models.StereoModel` in PyTorch at ``precision`` "fp32", "bf16" (autocast,
    CPU or CUDA) or "fp16" (autocast, CUDA). H and W must be multiples of ``model.divisor``."""

    runtime = "torch"

    def __init__(self, model: Any, height: int, width: int, *, device: str | None = "cpu",
                 precision: str = "fp32", model_factory: Callable[[], Any] | None = None) -> None:
        import torch

        from edgestereo.runtime.predictor import resolve_device

        _check_size(model.model_name or type(model).__name__, height, width, model.divisor)
        if precision not in ("fp32", "bf16", "fp16"):
            raise EdgeStereoError(f"precision {precision!r} does not run in PyTorch (fp32, bf16, fp16); "
                                  "int8 runs in ONNX Runtime: edgestereo quantize, then bench --onnx FILE")
        if precision != "fp32" and not model.exportable:
            raise EdgeStereoError(f"{model.model_name or type(model).__name__} is not a neural network; "
                                  f"only fp32 applies, not {precision}")
        self.device = resolve_device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise EdgeStereoError("fp16 autocast needs a CUDA device; use bf16 on the CPU")
        self.model = model.to(self.device).eval()
        self.precision = precision
        self.name = model.model_name or type(model).__name__
        self.input_size = (height, width)
        self._dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self._model_factory = model_factory

    def prepare(self, left: np.ndarray, right: np.ndarray) -> tuple[Any, Any]:
        from edgestereo.runtime.predictor import to_tensor

        return to_tensor(left, self.device), to_tensor(right, self.device)

    def infer(self, inputs: tuple[Any, Any]) -> Any:
        import torch

        with torch.inference_mode():
            if self._dtype is None:
                out = self.model(*inputs)
            else:
                with torch.autocast(self.device.type, dtype=self._dtype):
                    out = self.model(*inputs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return out

    def postprocess(self, output: Any) -> np.ndarray:
        disparity = output[0, 0].float().cpu().numpy()
        _colour(disparity)
        return disparity

    def for_stream(self) -> TorchBenchRunner:
        # A network in inference mode can be called from several threads; a model holding a native
        # matcher with scratch buffers (SGBM) gets its own instance per stream.
        if self.model.exportable or self._model_factory is None:
            return self
        clone = TorchBenchRunner(self._model_factory(), *self.input_size, device=str(self.device),
                                 precision=self.precision, model_factory=self._model_factory)
        clone.name = self.name
        return clone


class OnnxBenchRunner:
    """An ONNX file in ONNX Runtime (or OpenVINO with ``runtime="openvino"``, at ``precision``); the
    graph's precision is read from it (QDQ → int8, float16 weights → fp16, else fp32). ONNX Runtime
    streams share one session (its run is thread-safe); OpenVINO streams one compiled graph, each with
    its own infer request."""

    def __init__(self, path: str | Path, *, threads: int | None = None, device: str | None = "cpu",
                 runtime: str = "onnxruntime", precision: str = "fp32") -> None:
        from edgestereo.runtime.factory import create_predictor

        self.predictor = create_predictor(onnx=path, threads=threads, device=device, runtime=runtime,
                                          precision=precision)
        height, width = self.predictor.input_size
        if height is None or width is None:
            raise EdgeStereoError(f"{path}: the graph has a dynamic input size; export it at a fixed size")
        self.input_size = (height, width)
        self.name = self.predictor.name
        self.runtime = self.predictor.runtime
        self.precision = self.predictor.precision
        if runtime == "openvino":
            self.precision = f"{self.precision} ({self.predictor.inference_precision} inference)"

    def prepare(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return tuple(np.ascontiguousarray(im.transpose(2, 0, 1)[None], dtype=np.float32) for im in (left, right))

    def infer(self, inputs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return self.predictor.run_tensors(*inputs)

    def postprocess(self, output: np.ndarray) -> np.ndarray:
        _colour(output)
        return output

    def for_stream(self) -> OnnxBenchRunner:
        if not hasattr(self.predictor, "for_stream"):
            return self
        stream = copy.copy(self)
        stream.predictor = self.predictor.for_stream()
        return stream


def _check_size(name: str, height: int, width: int, divisor: int) -> None:
    if height < 1 or width < 1:
        raise EdgeStereoError(f"--height/--width must be ≥ 1, got {height}x{width}")
    if height % divisor or width % divisor:
        def up(n: int) -> int:
            return -(-n // divisor) * divisor

        raise EdgeStereoError(f"{name} cannot take {width}x{height}: height and width must be multiples of "
                              f"{divisor} (e.g. {up(width)}x{up(height)})")


class _MemorySampler:
    """Peak resident set size of this process while running (Linux /proc; else getrusage's lifetime peak)."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._thread = threading.Thread(target=self._run, name="edgestereo-mem", daemon=True)

    def _rss(self) -> int | None:
        try:
            with open("/proc/self/statm", "rb") as fh:
                return int(fh.read().split()[1]) * self._page
        except (OSError, ValueError, IndexError):
            return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_bytes = max(self.peak_bytes, self._rss() or 0)

    def __enter__(self) -> _MemorySampler:
        self.peak_bytes = self._rss() or 0
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._rss() or 0)

    @property
    def peak_mb(self) -> float | None:
        if self.peak_bytes:
            return self.peak_bytes / 2**20
        try:
            import resource
        except ImportError:  # Windows
            return None
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if platform.system() == "Darwin" else peak / 2**10


def peak_memory_added(call: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``call``; return its result and how many bytes it raised this process's resident memory
    above where it was (sampled every millisecond, Linux). Freed heap memory is handed back to the
    system first, so memory the allocator kept from earlier calls does not hide the rise."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with _MemorySampler(interval_s=0.001) as memory:
        before = memory.peak_bytes
        result = call()
    return result, memory.peak_bytes - before


def _time(step: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = step()
    return time.perf_counter() - start, out


def _run_streams(runner: BenchRunner, inputs: Any, streams: int, iters: int) -> float:
    """Frames per second with ``streams`` threads each running ``iters`` inferences at once."""
    runners = [runner.for_stream() for _ in range(streams)]
    barrier = threading.Barrier(streams + 1)
    errors: list[BaseException] = []

    def work(stream_runner: BenchRunner) -> None:
        try:
            stream_runner.infer(inputs)  # per-thread warm-up (allocators, thread-local caches)
            barrier.wait()
            for _ in range(iters):
                stream_runner.infer(inputs)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(r,), name=f"edgestereo-stream-{i}") for i, r in enumerate(runners)]
    for thread in threads:
        thread.start()
    # a worker that failed breaks the barrier; its exception is raised below
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return streams * iters / elapsed


def benchmark(
    runner: BenchRunner,
    *,
    iters: int = 20,
    warmup: int = 3,
    streams: int = 1,
    threads: int | None = None,
    images: tuple[np.ndarray, np.ndarray] | None = None,
) -> BenchResult:
    """Warm up, time ``iters`` frames one at a time (pre, network, post separately), then ``streams``
    concurrent threads × ``iters`` frames for the aggregate FPS. ``threads`` is recorded (set it
    on the runtime before building the runner). images: an (H,W,3) uint8 pair of the runner's size;
    random texture by default."""
    if iters < 1 or warmup < 0 or streams < 1:
        raise EdgeStereoError(f"iters and streams must be ≥ 1 and warmup ≥ 0 (got iters={iters}, "
                              f"streams={streams}, warmup={warmup})")
    height, width = runner.input_size
    left, right = images if images is not None else random_pair(height, width)
    if left.shape[:2] != (height, width):
        raise EdgeStereoError(f"images are {left.shape[1]}x{left.shape[0]}, {runner.name} takes {width}x{height}")
    cuda = _cuda_device(runner)
    if cuda is not None:
        import torch

        torch.cuda.reset_peak_memory_stats(cuda)
    pre_s: list[float] = []
    infer_s: list[float] = []
    post_s: list[float] = []
    with _MemorySampler() as memory:
        for _ in range(warmup):
            runner.postprocess(runner.infer(runner.prepare(left, right)))
        for _ in range(iters):
            seconds, inputs = _time(lambda: runner.prepare(left, right))
            pre_s.append(seconds)
            seconds, output = _time(lambda inputs=inputs: runner.infer(inputs))
            infer_s.append(seconds)
            seconds, _ = _time(lambda output=output: runner.postprocess(output))
            post_s.append(seconds)
        latency = LatencyStats.of(infer_s)
        fps_streams = 1e3 / latency.median_ms if streams == 1 else _run_streams(runner, inputs, streams, iters)
    peak_cuda = None
    if cuda is not None:
        import torch

        peak_cuda = torch.cuda.max_memory_allocated(cuda) / 2**20
    return BenchResult(
        name=runner.name, runtime=runner.runtime, precision=runner.precision, height=height, width=width,
        threads=threads, streams=streams, iters=iters, warmup=warmup, latency=latency,
        preprocess=LatencyStats.of(pre_s), postprocess=LatencyStats.of(post_s),
        fps_single=1e3 / latency.median_ms, fps_streams=fps_streams, peak_rss_mb=memory.peak_mb,
        peak_cuda_mb=peak_cuda, environment=environment(threads),
    )


def _cuda_device(runner: BenchRunner) -> Any:
    device = getattr(runner, "device", None)
    return device if device is not None and getattr(device, "type", "") == "cuda" else None


def _cpu_model_and_features() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return model, [f for f in _CPU_FEATURES if f in flags]


def _versions() -> dict[str, str]:
    from importlib import metadata

    from edgestereo import __version__

    versions = {"edgestereo": __version__, "python": platform.python_version()}
    for package in ("numpy", "torch", "onnxruntime", "openvino", "onnx", "opencv-python-headless", "torchao"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment(threads: int | None = None) -> dict[str, Any]:
    """Machine, library versions and thread settings, for the JSON beside every figure."""
    import torch

    cpu, features = _cpu_model_and_features()
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_features": features,
        "logical_cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": _versions(),
        "threads": {
            "requested": threads,
            "torch_intra_op": torch.get_num_threads(),
            **{name: os.environ[name] for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ORT_NUM_THREADS")
               if name in os.environ},
        },
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info


def format_results(results: list[BenchResult]) -> str:
    """One table row per result: latency (median, p90, max), FPS, pre/post-processing, memory."""
    header = ("model", "runtime", "prec", "size", "thr", "K", "median ms", "p90 ms", "max ms", "FPS",
              "FPS×K", "pre ms", "post ms", "peak MiB")
    rows = [header]
    for r in results:
        memory = r.peak_cuda_mb if r.peak_cuda_mb is not None else r.peak_rss_mb
        rows.append((r.name, r.runtime, r.precision, f"{r.width}x{r.height}", str(r.threads or "-"), str(r.streams),
                     f"{r.latency.median_ms:.1f}", f"{r.latency.p90_ms:.1f}", f"{r.latency.max_ms:.1f}",
                     f"{r.fps_single:.2f}", f"{r.fps_streams:.2f}", f"{r.preprocess.median_ms:.2f}",
                     f"{r.postprocess.median_ms:.2f}", "-" if memory is None else f"{memory:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
