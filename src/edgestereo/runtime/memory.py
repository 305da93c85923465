"""How much memory running a network on a pair takes, checked before it runs.

:func:`estimate_bytes` adds up the network's tensors (:meth:`~edgestereo.models.StereoModel.inference_bytes`,
traced without running it), the copies of the input and output around them, and a margin for the
scratch space of kernels and the allocator. :func:`check_memory` refuses a pair whose estimate is
over the limit with a :class:`MemoryLimitError` that names the largest ``scale`` that fits, so a
12-MP photograph is refused in a second instead of exhausting the machine. Importing this module
loads neither torch nor OpenCV.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from edgestereo.errors import EdgeStereoError

if TYPE_CHECKING:
    import torch

    from edgestereo.models import StereoModel

__all__ = ["DEFAULT_MAX_MEMORY_GB", "Fit", "MemoryLimitError", "available_memory", "check_memory", "check_scale",
           "estimate_bytes", "memory_limit", "scaled_size"]

#: the limit of one inference on the CPU when none is given (GB), lowered to 80 % of the memory
#: available when that is less.
DEFAULT_MAX_MEMORY_GB = 4.0
#: convolution scratch space and allocator slack: the measured peak was 0.96-1.37 times the traced
#: tensors and copies (benchmarks/memory_estimate.py: stereonet-plus-small and stereonet-plus2-small,
#: 640x384 to 2560x1536, Intel Xeon, one thread).
_MARGIN = 1.5
#: what does not grow with the image (kernels' cached buffers, the interpreter's share): a 640x384 pass
#: of stereonet-plus-small measured 51-72 MB, its traced tensors and copies with the margin 61 MB.
_FIXED = 50_000_000
#: the scales a refusal may propose, largest first.
_SCALES = (0.75, 0.5, 0.375, 0.25, 0.125, 0.0625)


def check_scale(scale: float) -> None:
    """Raise unless ``scale`` is a resize factor in (0, 4]."""
    if not 0 < scale <= 4:
        raise EdgeStereoError(f"--scale must be in (0, 4], got {scale:g}")


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(W, H) of an image of ``width`` x ``height`` resized by ``scale``."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def estimate_bytes(model: StereoModel, height: int, width: int) -> int:
    """Peak bytes one inference of a height x width pair takes in a predictor: the network's tensors
    at the padded size, the float and padded copies of both views and the disparity, with a margin,
    and what does not grow with the image."""
    step = model.divisor
    padded_h, padded_w = -(-height // step) * step, -(-width // step) * step
    copies = 4 * (6 * height * width + 6 * padded_h * padded_w + 2 * height * width)
    return int(_MARGIN * (model.inference_bytes(padded_h, padded_w) + copies)) + _FIXED


def available_memory() -> int | None:
    """Bytes of memory this process can still take (MemAvailable, capped by a cgroup limit), or None
    where that cannot be read."""
    try:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        available = int(meminfo["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return available
    return available if limit == "max" else min(available, int(limit) - used)


def memory_limit(max_memory: float | None = None, device: torch.device | None = None) -> int:
    """Bytes one inference may take: ``max_memory`` GB when given; on a GPU 80 % of its free memory;
    on the CPU :data:`DEFAULT_MAX_MEMORY_GB`, or 80 % of the available memory when that is less."""
    if max_memory is not None:
        if not max_memory > 0:
            raise EdgeStereoError(f"--max-memory must be a positive number of GB, got {max_memory:g}")
        return int(max_memory * 1e9)
    if device is not None and device.type == "cuda":
        import torch

        return int(0.8 * torch.cuda.mem_get_info(device)[0])
    available = available_memory()
    default = int(DEFAULT_MAX_MEMORY_GB * 1e9)
    return default if available is None else min(default, int(0.8 * available))


class Fit(NamedTuple):
    """A scale at which the pair fits: the scale, the size it runs at and its estimate (bytes)."""

    scale: float
    size: tuple[int, int]
    needed: int


def _amount(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


class MemoryLimitError(EdgeStereoError):
    """A pair too large to run within the memory limit: ``size`` (W, H) it would run at, ``needed``
    and ``limit`` in bytes, ``fit`` the largest proposed scale that fits (None: none does); ``scale``
    and ``original`` describe a pair already resized (by ``--scale``) from an ``original`` size."""

    def __init__(self, model_name: str, size: tuple[int, int], needed: int, limit: int, fit: Fit | None,
                 scale: float = 1.0, original: tuple[int, int] | None = None) -> None:
        self.model_name, self.size, self.needed, self.limit, self.fit = model_name, size, needed, limit, fit
        self.scale, self.original = scale, original or size
        image = f"image {self.original[0]}x{self.original[1]}"
        if scale != 1:
            image += f" at --scale {scale:g} ({size[0]}x{size[1]})"
        way_out = "allow more with --max-memory GB (Python: scale=…, max_memory=…)"
        if fit is not None:
            way_out = (f"run it at --scale {scale * fit.scale:g} ({fit.size[0]}x{fit.size[1]}, about "
                       f"{_amount(fit.needed)}) or {way_out}")
        super().__init__(f"{image} needs about {_amount(needed)} to run {model_name}, more than the {_amount(limit)} "
                         f"allowed; {way_out}")

    def at_scale(self, scale: float, original: tuple[int, int]) -> MemoryLimitError:
        """The same refusal, for a pair of size ``original`` that was resized by ``scale``."""
        return MemoryLimitError(self.model_name, self.size, self.needed, self.limit, self.fit, scale, original)


def check_memory(model: StereoModel, height: int, width: int, limit: int, name: str = "") -> int:
    """The estimate (bytes) for a height x width pair; :class:`MemoryLimitError` when it is over ``limit``."""
    from edgestereo.data.io import MIN_IMAGE_SIDE

    needed = estimate_bytes(model, height, width)
    if needed <= limit:
        return needed
    fit = None
    for scale in _SCALES:
        size = scaled_size(width, height, scale)
        if min(size) < MIN_IMAGE_SIDE:
            break
        estimate = estimate_bytes(model, size[1], size[0])
        if estimate <= limit:
            fit = Fit(scale, size, estimate)
            break
    raise MemoryLimitError(name or model.model_name or type(model).__name__, (width, height), needed, limit, fit)
