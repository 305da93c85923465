"""Stereo file formats: PFM, KITTI 16-bit PNG disparity, Middlebury ``calib.txt``, ``.npy``,
8/16-bit images and binary PLY point clouds.

Every writer is atomic (a temporary file in the destination folder, renamed into place), so an
interrupted run never leaves a partial file, and a failed write (a full disk …) raises
:class:`~edgestereo.errors.OutputError` naming the file; :func:`check_output_dir` and
:func:`check_output_file` say before any work whether an output can be written, creating nothing.
Every reader raises :class:`~edgestereo.errors.ReadError` naming the file and the problem, and keeps
what OpenCV's codecs print on stderr for that message (:func:`native_messages`).
"""

from __future__ import annotations

import contextlib
import errno
import io as pyio
import json
import math
import os
import re
import sys
import tempfile
import threading
import tokenize
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgestereo.errors import EdgeStereoError, OutputError, ReadError

__all__ = [
    "MIN_IMAGE_SIDE",
    "MiddleburyCalib",
    "as_rgb8",
    "atomic_path",
    "atomic_paths",
    "check_output_dir",
    "check_output_file",
    "check_pair_size",
    "load_pair",
    "missing_folders",
    "native_messages",
    "prepare_output_dir",
    "read_calib_txt",
    "read_disparity",
    "read_image",
    "read_kitti_disparity",
    "read_manifest",
    "read_pfm",
    "read_ply",
    "remove_empty_folders",
    "whole_number",
    "write_calib_txt",
    "write_disparity",
    "write_errors_named",
    "write_image",
    "write_kitti_disparity",
    "write_manifest",
    "write_npy",
    "write_pfm",
    "write_ply",
]


# --------------------------------------------------------------------------- atomic writes
_UMASK = os.umask(0)
os.umask(_UMASK)

#: errors of writing a file (as opposed to a bug), reported as an :class:`OutputError` naming the file.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES,
                           errno.EPERM, errno.EISDIR, errno.ENOTDIR})


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _unwritable(folder: Path) -> str | None:
    """Why no file can be written in ``folder`` (which need not exist yet), or None; creates nothing."""
    missing = missing_folders(folder.absolute())
    existing = missing[-1].parent if missing else folder.absolute()
    if not existing.is_dir():
        return f"{existing} is a file"
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=existing)
    except OSError as exc:
        return f"{exc.strerror or exc} in {existing}"
    os.close(fd)
    os.unlink(probe)
    return None


def check_output_dir(path: str | Path) -> Path:
    """Raise :class:`OutputError` unless ``path`` is a writable folder or could be created as one.

    Creates nothing, so a run that fails later leaves no empty folder behind.
    """
    path = Path(path)
    problem = _unwritable(path)
    if problem:
        raise OutputError(path, f"output folder cannot be written ({problem}); choose another folder")
    return path


def check_output_file(path: str | Path) -> Path:
    """Raise :class:`OutputError` unless the file ``path`` can be written (it is no folder and its
    folder is writable or can be created); creates nothing."""
    path = Path(path)
    problem = "it is a folder" if path.is_dir() else _unwritable(path.parent if str(path.parent) else Path("."))
    if problem:
        raise OutputError(path, f"cannot be written ({problem}); give another file name")
    return path


def prepare_output_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that files can be written in it."""
    path = check_output_dir(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_empty_folders(folders: Sequence[Path]) -> None:
    """Remove those of ``folders`` that are empty, in order (give the deepest first)."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextlib.contextmanager
def write_errors_named(path: str | Path) -> Iterator[None]:
    """Turn a failed write inside the block (a full disk, no permission …) into an :class:`OutputError`
    naming ``path``; other exceptions pass unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _WRITE_ERRNOS:
            raise OutputError(path, f"cannot write ({exc.strerror or exc})") from None
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); rename it onto ``path`` on success.

    On any exception the temporary file is removed, ``path`` is left untouched and the folders
    created for it are removed again; a failed write (full disk, no permission) becomes an
    :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    created = missing_folders(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=folder)
    except OSError as exc:
        remove_empty_folders(created)
        raise OutputError(path, f"cannot write here ({exc.strerror or exc})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with write_errors_named(path):
            yield tmp
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
            os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        remove_empty_folders(created)
        if isinstance(exc, OutputError) and exc.path == tmp:  # an atomic writer given this temporary path
            raise OutputError(path, exc.problem) from None
        raise


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | Path]) -> Iterator[list[Path]]:
    """Temporary paths for files that must appear together or not at all: all are renamed into
    place when the block succeeds, none when it fails (see :func:`atomic_path`). When one rename
    fails after others succeeded (its name is taken by a folder, say), those files are removed again."""
    paths = [Path(path) for path in paths]
    created = sorted({f for path in paths for f in missing_folders(path.parent)}, key=lambda f: -len(f.parts))
    placed: list[Path] = []

    def placed_if_no_error(path: Path):
        def record(exc_type, exc, traceback) -> bool:
            if exc_type is None:
                placed.append(path)
            return False
        return record

    try:
        with contextlib.ExitStack() as stack:
            temporaries = []
            for path in paths:
                stack.push(placed_if_no_error(path))  # runs after this path's rename (exits are LIFO)
                temporaries.append(stack.enter_context(atomic_path(path)))
            yield temporaries
    except BaseException:
        for path in placed:
            path.unlink(missing_ok=True)
        remove_empty_folders(created)
        raise


# --------------------------------------------------------------------------- native libraries' messages
_OPENCV_LOG_PREFIX = re.compile(r"^\[\s*\w+:[^\]]*\]\s*(global\s+\S+\s+\S+\s+)?")
#: one thread at a time redirects the stderr descriptor; a forked child (a data-loader worker) starts
#: with a lock of its own, never one a thread of its parent held at the fork.
_NATIVE_STDERR = threading.Lock()


def _new_native_stderr_lock() -> None:
    global _NATIVE_STDERR
    _NATIVE_STDERR = threading.Lock()


os.register_at_fork(after_in_child=_new_native_stderr_lock)


@contextlib.contextmanager
def native_messages() -> Iterator[list[str]]:
    """Keep what native code (OpenCV, libpng, libjpeg, FFmpeg) prints on stderr inside the block off
    the terminal: the yielded list receives those lines (OpenCV's log prefix removed) when the block
    ends, for an error message to quote. What other threads print in that moment goes the same way."""
    lines: list[str] = []
    with _NATIVE_STDERR, tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to keep clean
            yield lines
            return
        os.dup2(capture.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            lines.extend(_OPENCV_LOG_PREFIX.sub("", line.strip()) for line in text.splitlines() if line.strip())


def _read_bytes(path: str | Path) -> bytes:
    path = Path(path)
    if not path.exists():
        raise ReadError(path, "file not found")
    if path.is_dir():
        raise ReadError(path, "is a folder, expected a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReadError(path, f"cannot read ({exc.strerror or exc})") from None
    if not data:
        raise ReadError(path, "file is empty")
    return data


# --------------------------------------------------------------------------- PFM
_PFM_HEADER = re.compile(rb"^(PF|Pf)\s+(\d+)\s+(\d+)\s+([-+0-9.eE]+)\s", re.DOTALL)


def read_pfm(path: str | Path) -> np.ndarray:
    """Read a PFM file: ``(H,W)`` float32 for ``Pf``, ``(H,W,3)`` for ``PF``; top row first.

    Both byte orders are read (negative scale = little endian); inf and NaN are kept.
    """
    data = _read_bytes(path)
    match = _PFM_HEADER.match(data)
    if match is None:
        raise ReadError(path, "bad PFM header (expected 'PF' or 'Pf', width height, scale)")
    kind, width, height, scale_text = match.groups()
    try:
        scale = float(scale_text)
    except ValueError:
        raise ReadError(path, f"bad PFM header: scale {scale_text.decode(errors='replace')!r}") from None
    if scale == 0:
        raise ReadError(path, "bad PFM header: scale must not be 0")
    channels = 3 if kind == b"PF" else 1
    w, h = int(width), int(height)
    if w <= 0 or h <= 0:
        raise ReadError(path, f"bad PFM header: size {w}x{h}")
    expected = w * h * channels * 4
    payload = data[match.end() :]
    if len(payload) < expected:
        raise ReadError(path, f"truncated PFM data: {len(payload)} of {expected} bytes")
    dtype = np.dtype("<f4") if scale < 0 else np.dtype(">f4")
    array = np.frombuffer(payload[:expected], dtype=dtype).astype(np.float32)
    shape = (h, w, 3) if channels == 3 else (h, w)
    return np.ascontiguousarray(np.flipud(array.reshape(shape)))


def write_pfm(path: str | Path, array: np.ndarray, *, little_endian: bool = True) -> None:
    """Write ``(H,W)`` or ``(H,W,3)`` float data as PFM (rows stored bottom-up), atomically."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise EdgeStereoError(f"{path}: PFM holds (H,W) or (H,W,3) data, got shape {array.shape}")
    kind = "PF" if array.ndim == 3 else "Pf"
    h, w = array.shape[:2]
    scale = -1.0 if little_endian else 1.0
    body = np.flipud(array).astype("<f4" if little_endian else ">f4").tobytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(f"{kind}\n{w} {h}\n{scale}\n".encode() + body)


# --------------------------------------------------------------------------- images
def read_image(path: str | Path, *, rgb8: bool = True) -> np.ndarray:
    """Read an image file.

    With ``rgb8`` (default) the result is ``(H,W,3)`` uint8 RGB: grey is replicated to three
    channels, alpha dropped and 16-bit data scaled to 8 bits. With ``rgb8=False`` the stored
    values are returned unchanged (uint8 or uint16, ``(H,W)`` or ``(H,W,C)``, RGB order).
    """
    data = _read_bytes(path)
    with native_messages() as messages:
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:  # a header OpenCV refuses outright (an image size over its limits …)
            image = None
            messages.append(str(exc).partition("error: ")[2].strip() or "OpenCV refused its header")
    if image is None:
        detail = f"; {messages[0][:120]}" if messages else ""
        raise ReadError(path, f"not an image (or an image format OpenCV cannot decode){detail}")
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        image = cv2.cvtColor(image, code)
    if not rgb8:
        return image
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ReadError(path, f"unsupported image data type {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def as_rgb8(image: Any, what: str = "image") -> np.ndarray:
    """A path, (H,W[,C]) uint8/uint16 array, or (3,H,W)/(1,3,H,W) tensor in [0,255] → (H,W,3) uint8 RGB."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if hasattr(image, "detach"):  # torch tensor
        tensor = image.detach().cpu().float()
        if tensor.dim() == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
            raise EdgeStereoError(f"{what}: expected a (3,H,W) tensor, got shape {tuple(image.shape)}")
        image = tensor.clamp(0, 255).round().byte().permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.dtype == np.uint16:
        array = (array.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if array.dtype != np.uint8:
        raise EdgeStereoError(f"{what}: expected uint8 image data, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise EdgeStereoError(f"{what}: expected an (H,W,3) image, got shape {array.shape}")
    return np.ascontiguousarray(array[:, :, :3])


#: the smallest height and width of a stereo pair that disparity is estimated for (pixels).
MIN_IMAGE_SIDE = 16


def check_pair_size(left: np.ndarray, right: np.ndarray) -> None:
    """Raise unless the (H,W,…) views have one size of at least :data:`MIN_IMAGE_SIDE` per side."""
    if left.shape[:2] != right.shape[:2]:
        raise EdgeStereoError(f"left {left.shape[1]}x{left.shape[0]} and right {right.shape[1]}x{right.shape[0]} "
                              "images differ in size")
    height, width = left.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise EdgeStereoError(f"images of {width}x{height} pixels are too small for stereo: give a pair of at least "
                              f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}")


def load_pair(left: Any, right: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both views as (H,W,3) uint8 RGB (grey is converted); raises if their sizes differ or are too
    small (:func:`check_pair_size`)."""
    left_rgb, right_rgb = as_rgb8(left, "left"), as_rgb8(right, "right")
    check_pair_size(left_rgb, right_rgb)
    return left_rgb, right_rgb


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write a uint8/uint16 image, ``(H,W)`` grey or ``(H,W,3)`` RGB, atomically (format from suffix)."""
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise EdgeStereoError(f"{path}: images are written from uint8 or uint16 data, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim != 2:
        raise EdgeStereoError(f"{path}: expected (H,W) or (H,W,3) image, got shape {image.shape}")
    try:
        encoded, data = cv2.imencode(Path(path).suffix, image)
    except cv2.error:
        encoded = False
    if not encoded:
        raise EdgeStereoError(f"{path}: OpenCV cannot encode an image as {Path(path).suffix or 'this name'}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())


# --------------------------------------------------------------------------- KITTI disparity
def read_kitti_disparity(path: str | Path) -> np.ndarray:
    """Read a KITTI 16-bit PNG disparity: ``(H,W)`` float32 pixels, NaN where the file stores 0."""
    raw = read_image(path, rgb8=False)
    if raw.dtype != np.uint16 or raw.ndim != 2:
        depth = "16-bit grey" if raw.ndim == 2 else f"{raw.shape[2]}-channel"
        got = f"{raw.dtype.itemsize * 8}-bit" if raw.dtype != np.uint16 else depth
        raise ReadError(path, f"wrong bit depth for a KITTI disparity PNG: expected 16-bit grey, got {got}")
    disparity = raw.astype(np.float32) / 256.0
    disparity[raw == 0] = np.nan
    return disparity


def write_kitti_disparity(path: str | Path, disparity: np.ndarray) -> None:
    """Write ``(H,W)`` disparity in pixels as KITTI 16-bit PNG (value·256; 0 where invalid or ≤ 0)."""
    disparity = np.asarray(disparity, dtype=np.float64)
    valid = np.isfinite(disparity) & (disparity > 0)
    scaled = np.clip(np.round(np.where(valid, disparity, 0) * 256.0), 1, 65535)
    write_image(path, np.where(valid, scaled, 0).astype(np.uint16))


# --------------------------------------------------------------------------- npy and dispatch
def write_npy(path: str | Path, array: np.ndarray) -> None:
    """Write a ``.npy`` file atomically."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)


def _read_npy(path: str | Path) -> np.ndarray:
    """A ``.npy`` file of numbers, read without unpickling and without allocating more than it holds."""
    data = _read_bytes(path)
    stream = pyio.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in header:
            raise ReadError(path, f"unsupported .npy version {version[0]}.{version[1]}")
        shape, fortran_order, dtype = header[version](stream)
    except (ValueError, SyntaxError, tokenize.TokenError, EOFError, OverflowError) as exc:
        raise ReadError(path, f"not a valid .npy file ({(str(exc).splitlines() or [type(exc).__name__])[0][:80]})") \
            from None
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise ReadError(path, f"holds {dtype} data, expected numbers")
    count = math.prod(shape)
    if count * dtype.itemsize > len(data) - stream.tell():
        raise ReadError(path, f"truncated .npy data: {len(data) - stream.tell()} of {count * dtype.itemsize} bytes")
    array = np.frombuffer(data, dtype, count=count, offset=stream.tell())
    return array.reshape(shape, order="F" if fortran_order else "C")


def read_disparity(path: str | Path) -> np.ndarray:
    """Read a disparity map by suffix: ``.pfm``, ``.png`` (KITTI 16-bit) or ``.npy``.

    Returns ``(H,W)`` float32 pixels; invalid pixels are NaN or inf as stored (KITTI 0 becomes NaN).
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".pfm":
        disparity = read_pfm(path)
    elif suffix == ".png":
        disparity = read_kitti_disparity(path)
    elif suffix == ".npy":
        disparity = _read_npy(path).astype(np.float32)
    else:
        raise ReadError(path, f"unknown disparity format {suffix!r} (expected .pfm, .png or .npy)")
    if disparity.ndim == 3:
        disparity = disparity[:, :, 0]
    if disparity.ndim != 2:
        raise ReadError(path, f"expected a (H,W) disparity map, got shape {disparity.shape}")
    return disparity


def write_disparity(path: str | Path, disparity: np.ndarray) -> None:
    """Write ``(H,W)`` disparity by suffix: ``.pfm``, ``.png`` (KITTI 16-bit) or ``.npy``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".pfm":
        write_pfm(path, disparity)
    elif suffix == ".png":
        write_kitti_disparity(path, disparity)
    elif suffix == ".npy":
        write_npy(path, np.asarray(disparity, dtype=np.float32))
    else:
        raise EdgeStereoError(f"{path}: unknown disparity format {suffix!r} (expected .pfm, .png or .npy)")


# --------------------------------------------------------------------------- Middlebury calib.txt
@dataclass(frozen=True)
class MiddleburyCalib:
    """Middlebury ``calib.txt``: camera matrices (3×3), ``doffs`` (px), ``baseline`` (mm), sizes (px)."""

    cam0: np.ndarray
    cam1: np.ndarray
    doffs: float
    baseline: float
    width: int
    height: int
    ndisp: int
    vmin: float | None = None
    vmax: float | None = None


_CALIB_REQUIRED = ("cam0", "cam1", "doffs", "baseline", "width", "height", "ndisp")


def _parse_matrix(path: str | Path, key: str, text: str) -> np.ndarray:
    rows = [row.split() for row in text.strip().strip("[]").split(";")]
    try:
        matrix = np.array([[float(v) for v in row] for row in rows], dtype=np.float64)
    except ValueError:
        raise ReadError(path, f"{key} is not a 3x3 matrix: {text.strip()!r}") from None
    if matrix.shape != (3, 3):
        raise ReadError(path, f"{key} is not a 3x3 matrix: {text.strip()!r}")
    return matrix


def whole_number(path: str | Path, key: str, value: float) -> int:
    """``value`` as an int ≥ 1 (a size in pixels, a count); ReadError naming ``path`` and ``key`` otherwise."""
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise ReadError(path, f"{key} must be a whole number ≥ 1, got {value:g}")
    return int(value)


def read_calib_txt(path: str | Path) -> MiddleburyCalib:
    """Read a Middlebury ``calib.txt`` (``key=value`` lines; ``cam0=[f 0 cx; 0 f cy; 0 0 1]``)."""
    text = _read_bytes(path).decode("utf-8", errors="replace")
    values: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    missing = [key for key in _CALIB_REQUIRED if key not in values]
    if missing:
        raise ReadError(path, f"calibration is missing keys: {', '.join(missing)}")

    def number(key: str) -> float:
        try:
            return float(values[key])
        except ValueError:
            raise ReadError(path, f"{key} is not a number: {values[key]!r}") from None

    optional = {key: number(key) if key in values else None for key in ("vmin", "vmax")}
    return MiddleburyCalib(
        cam0=_parse_matrix(path, "cam0", values["cam0"]),
        cam1=_parse_matrix(path, "cam1", values["cam1"]),
        doffs=number("doffs"),
        baseline=number("baseline"),
        width=whole_number(path, "width", number("width")),
        height=whole_number(path, "height", number("height")),
        ndisp=whole_number(path, "ndisp", number("ndisp")),
        **optional,
    )


def write_calib_txt(path: str | Path, calib: MiddleburyCalib) -> None:
    """Write a Middlebury ``calib.txt`` atomically."""

    def matrix(m: np.ndarray) -> str:
        return "[" + "; ".join(" ".join(f"{v:.10g}" for v in row) for row in m) + "]"

    lines = [
        f"cam0={matrix(calib.cam0)}",
        f"cam1={matrix(calib.cam1)}",
        f"doffs={calib.doffs:.10g}",
        f"baseline={calib.baseline:.10g}",
        f"width={calib.width}",
        f"height={calib.height}",
        f"ndisp={calib.ndisp}",
    ]
    lines += [f"{key}={value:.10g}" for key, value in (("vmin", calib.vmin), ("vmax", calib.vmax)) if value is not None]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- PLY
_PLY_XYZ = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
_PLY_RGB = [("red", "u1"), ("green", "u1"), ("blue", "u1")]


def write_ply(path: str | Path, points: np.ndarray, colors: np.ndarray | None = None) -> None:
    """Write a binary little-endian PLY: ``points`` (N,3) float, optional ``colors`` (N,3) uint8."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    fields = _PLY_XYZ + (_PLY_RGB if colors is not None else [])
    vertices = np.empty(len(points), dtype=fields)
    vertices["x"], vertices["y"], vertices["z"] = points.T
    if colors is not None:
        colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        if len(colors) != len(points):
            raise EdgeStereoError(f"{path}: {len(points)} points but {len(colors)} colours")
        vertices["red"], vertices["green"], vertices["blue"] = colors.T
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(points)}"]
    header += ["property float x", "property float y", "property float z"]
    if colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header.append("end_header")
    with atomic_path(path) as tmp:
        tmp.write_bytes(("\n".join(header) + "\n").encode("ascii") + vertices.tobytes())


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a binary little-endian PLY written by :func:`write_ply`: ``(points, colors or None)``."""
    data = _read_bytes(path)
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise ReadError(path, "not a PLY file")
    header = data[:end].decode("ascii", errors="replace").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise ReadError(path, "only binary little-endian PLY is supported")
    count = next((int(line.split()[2]) for line in header if line.startswith("element vertex")), None)
    if count is None:
        raise ReadError(path, "PLY has no vertex element")
    has_color = "property uchar red" in header
    dtype = np.dtype(_PLY_XYZ + (_PLY_RGB if has_color else []))
    body = data[end + len(b"end_header\n") :]
    if len(body) < count * dtype.itemsize:
        raise ReadError(path, f"truncated PLY data: {len(body)} of {count * dtype.itemsize} bytes")
    vertices = np.frombuffer(body[: count * dtype.itemsize], dtype=dtype)
    points = np.stack([vertices["x"], vertices["y"], vertices["z"]], axis=1).astype(np.float32)
    colors = np.stack([vertices[c] for c in ("red", "green", "blue")], axis=1) if has_color else None
    return points, colors


# --------------------------------------------------------------------------- folder manifests
def read_manifest(root: str | Path, expected_format: str, what: str, how: str) -> dict:
    """``root/manifest.json`` of a folder edgestereo wrote; errors say the folder is not ``what``
    (e.g. "an edgestereo pack") and ``how`` to make one."""
    root = Path(root)
    path = root / "manifest.json"
    if not path.is_file():
        raise EdgeStereoError(f"{root}: not {what} (no manifest.json); create one with {how}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EdgeStereoError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != expected_format:
        raise EdgeStereoError(f"{root}: not {what} (manifest format is not {expected_format!r})")
    return manifest


def write_manifest(root: str | Path, manifest: dict, default: Callable | None = None) -> None:
    """Write ``root/manifest.json`` atomically (``default`` as in :func:`json.dumps`)."""
    with atomic_path(Path(root) / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, default=default) + "\n")
