"""Stereo calibration files, rectification and chessboard calibration.

A calibration file says one of two things:

* the two cameras are *not* rectified: an OpenCV stereo calibration (``K1, D1, K2, D2, R, T`` and
  the image size, as ``cv::stereoCalibrate`` produces them; YAML written by ``cv::FileStorage`` or
  plain YAML/JSON). Frames are then remapped so that matching points share a row;
* the images are *already* rectified (OAK-D, ZED and most stereo products deliver them so):
  ``fx, fy, cx, cy, baseline`` (optionally ``doffs``, ``width``, ``height``, ``unit``) as JSON or
  YAML, or a Middlebury ``calib.txt``.

:func:`read_calibration` reads either into a :class:`StereoSetup`; :meth:`StereoSetup.rectifier`
gives the :class:`Rectifier` for a frame size, which remaps pairs and carries the
:class:`~edgestereo.geometry.StereoCalibration` of its output for depth and point clouds.
:func:`calibrate_stereo` calibrates a rig from chessboard pairs and :func:`write_calibration`
saves the result in the form :func:`read_calibration` reads (OpenCV-compatible YAML, or JSON).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from edgestereo.data.io import atomic_path, read_image, whole_number
from edgestereo.errors import EdgeStereoError, ReadError
from edgestereo.geometry import StereoCalibration

__all__ = [
    "ChessboardCalibration",
    "FocalBaseline",
    "Rectifier",
    "StereoRig",
    "StereoSetup",
    "calibrate_stereo",
    "find_chessboard",
    "pair_calibration",
    "read_calibration",
    "write_calibration",
]

#: accepted spellings of each rig entry (OpenCV's stereo_calib sample writes M1/M2, most scripts K1/K2).
_RIG_ALIASES = {
    "K1": ("K1", "M1", "cameraMatrix1", "camera_matrix_left"),
    "D1": ("D1", "distCoeffs1", "dist1", "dist_coeffs_left"),
    "K2": ("K2", "M2", "cameraMatrix2", "camera_matrix_right"),
    "D2": ("D2", "distCoeffs2", "dist2", "dist_coeffs_right"),
    "R": ("R",),
    "T": ("T",),
}
_RECTIFIED_KEYS = ("fx", "cx", "cy", "baseline")


# --------------------------------------------------------------------------- data
@dataclass(frozen=True, eq=False)
class StereoRig:
    """Two calibrated cameras before rectification, in OpenCV's convention: a point ``X`` in the
    left camera frame is ``R @ X + T`` in the right one (so ``T[0] < 0`` for a right camera on the right).

    K1, K2: (3,3) camera matrices, pixels; D1, D2: distortion coefficients in OpenCV's order (4, 5,
    8, 12 or 14 values); R: (3,3); T: (3,) in the unit depth should have; image_size: (W, H) pixels
    of the frames the calibration was made with, or None when the file does not say.
    """

    K1: np.ndarray
    D1: np.ndarray
    K2: np.ndarray
    D2: np.ndarray
    R: np.ndarray
    T: np.ndarray
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        shapes = {"K1": (3, 3), "K2": (3, 3), "R": (3, 3), "T": (3,)}
        for name, shape in shapes.items():
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.size != int(np.prod(shape)):
                raise EdgeStereoError(f"{name} must have {int(np.prod(shape))} values, got shape {value.shape}")
            object.__setattr__(self, name, value.reshape(shape))
        for name in ("D1", "D2"):
            value = np.asarray(getattr(self, name), dtype=np.float64).ravel()
            if value.size not in (0, 4, 5, 8, 12, 14):
                raise EdgeStereoError(f"{name} must have 4, 5, 8, 12 or 14 distortion coefficients, got {value.size}")
            object.__setattr__(self, name, value)

    @property
    def baseline(self) -> float:
        """Distance between the optical centres, in the unit of ``T``."""
        return float(np.linalg.norm(self.T))

    def rectify(self, image_size: tuple[int, int], alpha: float = 0.0) -> Rectifier:
        """Remap tables for frames of ``image_size`` (W, H). ``alpha`` 0 crops to valid pixels only,
        1 keeps every source pixel (black borders), as in ``cv2.stereoRectify``."""
        if not 0.0 <= alpha <= 1.0:
            raise EdgeStereoError(f"rectification alpha must be in [0, 1], got {alpha}")
        R1, R2, P1, P2, Q, _, _ = cv2.stereoRectify(
            self.K1, self.D1, self.K2, self.D2, image_size, self.R, self.T.reshape(3, 1),
            flags=cv2.CALIB_ZERO_DISPARITY, alpha=alpha,
        )
        if abs(P2[1, 3]) > abs(P2[0, 3]):
            raise EdgeStereoError("the cameras are stacked vertically (T is mostly along y); "
                                  "edgestereo handles side-by-side rigs only")
        if P2[0, 3] > 0:
            raise EdgeStereoError("left and right look swapped: T[0] > 0 puts the right camera on the left; "
                                  "swap the two views (or the two calibrations)")
        calibration = StereoCalibration(
            fx=float(P1[0, 0]), fy=float(P1[1, 1]), cx=float(P1[0, 2]), cy=float(P1[1, 2]),
            baseline=float(-P2[0, 3] / P2[0, 0]), doffs=float(P2[0, 2] - P1[0, 2]),
        )
        left_maps = cv2.initUndistortRectifyMap(self.K1, self.D1, R1, P1, image_size, cv2.CV_16SC2)
        right_maps = cv2.initUndistortRectifyMap(self.K2, self.D2, R2, P2, image_size, cv2.CV_16SC2)
        return Rectifier(image_size, calibration, (left_maps, right_maps),
                         {"R1": R1, "R2": R2, "P1": P1, "P2": P2, "Q": Q})


@dataclass(frozen=True, eq=False)
class Rectifier:
    """Makes a stereo pair of one size row-aligned; ``calibration`` describes its output.

    ``maps`` is None for frames that arrive rectified (the pair passes through unchanged).
    ``matrices`` holds R1, R2, P1, P2, Q of ``cv2.stereoRectify`` when there are maps.
    """

    image_size: tuple[int, int]
    calibration: StereoCalibration
    maps: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    matrices: dict[str, np.ndarray] = field(default_factory=dict)

    def __call__(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """left, right: (H,W,3) uint8 → the rectified (H,W,3) uint8 pair."""
        for what, image in (("left", left), ("right", right)):
            if (image.shape[1], image.shape[0]) != self.image_size:
                w, h = self.image_size
                raise EdgeStereoError(f"{what} frame is {image.shape[1]}x{image.shape[0]}, "
                                      f"the calibration is for {w}x{h}")
        if self.maps is None:
            return left, right
        (lx, ly), (rx, ry) = self.maps
        return (cv2.remap(left, lx, ly, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT),
                cv2.remap(right, rx, ry, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))


@dataclass(frozen=True)
class StereoSetup:
    """What a calibration file says: a ``rig`` to rectify, or the ``rectified`` intrinsics of views
    that need no remapping. ``unit`` names the unit of depth ("m", "mm", or "" when unknown);
    ``image_size`` (W, H) is the frame size the file is for, when it says."""

    rig: StereoRig | None = None
    rectified: StereoCalibration | None = None
    unit: str = ""
    image_size: tuple[int, int] | None = None
    source: str = ""

    def rectifier(self, image_size: tuple[int, int], alpha: float = 0.0) -> Rectifier:
        """The :class:`Rectifier` for frames of ``image_size`` (W, H); raises if the file is for another size."""
        if self.image_size is not None and tuple(image_size) != tuple(self.image_size):
            w, h = self.image_size
            raise EdgeStereoError(f"{self.source or 'calibration'} is for {w}x{h} frames, these are "
                                  f"{image_size[0]}x{image_size[1]}; calibrate at the resolution the camera delivers")
        if self.rig is not None:
            return self.rig.rectify(tuple(image_size), alpha)
        if self.rectified is None:
            raise EdgeStereoError("a StereoSetup needs a rig or rectified intrinsics")
        return Rectifier(tuple(image_size), self.rectified)


@dataclass(frozen=True)
class FocalBaseline:
    """Views that arrive rectified, described by a focal length (pixels) and a baseline only
    (``--focal``/``--baseline``/``--doffs``): the principal point is the frame's centre, so the
    intrinsics follow the frame size. Used where a :class:`StereoSetup` is."""

    focal: float
    baseline: float
    doffs: float = 0.0
    unit: str = ""
    image_size: tuple[int, int] | None = None

    def rectifier(self, image_size: tuple[int, int], alpha: float = 0.0) -> Rectifier:
        """The pass-through :class:`Rectifier` for frames of ``image_size`` (W, H) (``alpha`` does not apply)."""
        del alpha
        width, height = image_size
        return Rectifier(tuple(image_size),
                         StereoCalibration.from_focal(self.focal, self.baseline, width, height, self.doffs))


def pair_calibration(source: StereoSetup | FocalBaseline, image_size: tuple[int, int]) -> StereoCalibration:
    """The calibration of one pair of ``image_size`` (W, H) taken as it is (no remapping): a file that
    describes cameras still to rectify, or one made for another image size, is refused."""
    if isinstance(source, StereoSetup) and source.rectified is None:
        raise EdgeStereoError(f"{source.source or 'the calibration'}: describes unrectified cameras; rectify the "
                              "pair first (`edgestereo batch --calib` does)")
    return source.rectifier(image_size).calibration


# --------------------------------------------------------------------------- reading
class _OpenCVYamlLoader(yaml.SafeLoader):
    """Safe YAML loader that also understands cv::FileStorage's ``!!opencv-matrix`` mappings."""


_OpenCVYamlLoader.add_constructor(
    "tag:yaml.org,2002:opencv-matrix", lambda loader, node: loader.construct_mapping(node, deep=True)
)


def _load_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReadError(path, "file not found") from None
    except IsADirectoryError:
        raise ReadError(path, "is a folder, expected a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReadError(path, f"cannot read ({exc})") from None
    if not text.strip():
        raise ReadError(path, "file is empty")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            # cv::FileStorage starts with "%YAML:1.0" (OpenCV 4) or "%YAML 1.2" (OpenCV 5); PyYAML reads neither.
            if text.lstrip().startswith("%YAML"):
                text = text.lstrip().split("\n", 1)[1] if "\n" in text.lstrip() else ""
            data = yaml.load(text, Loader=_OpenCVYamlLoader)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # ValueError: JSON, and YAML values (dates …)
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise ReadError(path, f"not valid {kind} ({(str(exc).splitlines() or [type(exc).__name__])[0][:120]})") \
            from None
    if not isinstance(data, dict):
        raise ReadError(path, "expected a mapping of calibration entries at the top level")
    return data


def _matrix(path: Path, key: str, value: Any) -> np.ndarray:
    """A nested list, a flat list or an OpenCV matrix mapping (rows, cols, data) as a float64 array."""
    try:
        if isinstance(value, dict) and "data" in value:
            data = np.asarray(value["data"], dtype=np.float64)
            rows, cols = int(value.get("rows", 1)), int(value.get("cols", data.size))
            if data.size != rows * cols:
                raise ReadError(path, f"{key}: {data.size} values for a {rows}x{cols} matrix")
            return data.reshape(rows, cols)
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ReadError(path, f"{key} is not a matrix of numbers: {repr(value)[:80]}") from None


def _number(path: Path, data: dict[str, Any], key: str) -> float:
    try:
        return float(data[key])
    except (TypeError, ValueError, OverflowError):
        raise ReadError(path, f"{key} is not a number: {repr(data[key])[:80]}") from None


def _image_size(path: Path, data: dict[str, Any]) -> tuple[int, int] | None:
    for key in ("image_size", "imageSize", "size"):
        if key in data:
            size = _matrix(path, key, data[key]).ravel()
            if size.size != 2:
                raise ReadError(path, f"{key} must be [width, height], got {repr(data[key])[:80]}")
            return whole_number(path, key, size[0]), whole_number(path, key, size[1])
    for w_key, h_key in (("image_width", "image_height"), ("width", "height")):
        if w_key in data and h_key in data:
            return (whole_number(path, w_key, _number(path, data, w_key)),
                    whole_number(path, h_key, _number(path, data, h_key)))
    return None


def _first_key(data: dict[str, Any], names: Sequence[str]) -> str | None:
    return next((name for name in names if name in data), None)


def read_calibration(path: str | Path) -> StereoSetup:
    """Read a stereo calibration: OpenCV stereo YAML/JSON (a rig to rectify), rectified intrinsics
    YAML/JSON (``fx, fy, cx, cy, baseline``), or by any other suffix a Middlebury ``calib.txt``
    (baseline in mm)."""
    path = Path(path)
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        from edgestereo.data.io import read_calib_txt

        calib = read_calib_txt(path)
        cam = calib.cam0
        rectified = StereoCalibration(cam[0, 0], cam[1, 1], cam[0, 2], cam[1, 2], calib.baseline, calib.doffs)
        return StereoSetup(rectified=rectified, unit="mm", image_size=(calib.width, calib.height), source=str(path))
    data = _load_mapping(path)
    unit = str(data.get("unit", ""))
    size = _image_size(path, data)
    found = {name: _first_key(data, aliases) for name, aliases in _RIG_ALIASES.items()}
    if any(found.values()):
        missing = [name for name, key in found.items() if key is None]
        if missing:
            raise ReadError(path, f"stereo calibration is missing {', '.join(missing)} "
                                  "(needs K1, D1, K2, D2, R, T and the image size)")
        try:
            rig = StereoRig(**{name: _matrix(path, key, data[key]) for name, key in found.items()}, image_size=size)
        except EdgeStereoError as exc:
            raise ReadError(path, str(exc)) from None
        return StereoSetup(rig=rig, unit=unit, image_size=size, source=str(path))
    if all(key in data for key in _RECTIFIED_KEYS):
        fx = _number(path, data, "fx")
        fy = _number(path, data, "fy") if "fy" in data else fx
        doffs = _number(path, data, "doffs") if "doffs" in data else 0.0
        try:
            rectified = StereoCalibration(fx, fy, _number(path, data, "cx"), _number(path, data, "cy"),
                                          _number(path, data, "baseline"), doffs)
        except EdgeStereoError as exc:
            raise ReadError(path, str(exc)) from None
        return StereoSetup(rectified=rectified, unit=unit, image_size=size, source=str(path))
    raise ReadError(path, "not a stereo calibration: expected K1, D1, K2, D2, R, T (unrectified cameras) "
                          "or fx, cx, cy, baseline (rectified images)")


# --------------------------------------------------------------------------- writing
def write_calibration(path: str | Path, rig: StereoRig, *, unit: str = "", extra: dict[str, Any] | None = None,
                      rectifier: Rectifier | None = None) -> None:
    """Write ``rig`` (and the rectification matrices R1, R2, P1, P2, Q of ``rectifier``) atomically.

    ``.yaml``/``.yml`` is written by ``cv2.FileStorage`` so OpenCV programs read it too; ``.json``
    holds plain nested lists. ``extra`` adds scalar entries (e.g. the reprojection error).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise EdgeStereoError(f"{path}: calibration files are .yaml, .yml or .json")
    matrices: dict[str, np.ndarray] = {"K1": rig.K1, "D1": rig.D1[None], "K2": rig.K2, "D2": rig.D2[None],
                                       "R": rig.R, "T": rig.T[:, None]}
    if rectifier is not None:
        matrices.update(rectifier.matrices)
    scalars: dict[str, Any] = {}
    if rig.image_size is not None:
        scalars["image_width"], scalars["image_height"] = rig.image_size
    if unit:
        scalars["unit"] = unit
    scalars.update(extra or {})
    with atomic_path(path) as tmp:
        if suffix == ".json":
            payload = {key: value.tolist() for key, value in matrices.items()} | scalars
            tmp.write_text(json.dumps(payload, indent=2) + "\n")
            return
        storage = cv2.FileStorage(str(tmp), cv2.FILE_STORAGE_WRITE)
        for key, value in matrices.items():
            storage.write(key, np.asarray(value, dtype=np.float64))
        for key, value in scalars.items():
            if isinstance(value, str):
                storage.write(key, value)
            elif isinstance(value, (int, np.integer)):
                storage.write(key, int(value))
            else:
                storage.write(key, float(value))
        storage.release()


# --------------------------------------------------------------------------- chessboard calibration
def find_chessboard(image: np.ndarray, board: tuple[int, int]) -> np.ndarray | None:
    """Inner corners of a chessboard with ``board`` = (columns, rows) inner corners, or None.

    image: (H,W,3) uint8 RGB or (H,W) grey → (columns·rows, 1, 2) float32 pixels, row by row,
    refined to sub-pixel accuracy by OpenCV's sector-based detector.
    """
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    found, corners = cv2.findChessboardCornersSB(grey, board, flags=cv2.CALIB_CB_NORMALIZE_IMAGE)
    return corners.astype(np.float32).reshape(-1, 1, 2) if found else None


@dataclass(frozen=True, eq=False)
class ChessboardCalibration:
    """What :func:`calibrate_stereo` found: the rig, the RMS reprojection error of the stereo
    fit (pixels), the pairs it used and those it skipped with the reason."""

    rig: StereoRig
    rms: float
    used: list[str]
    skipped: list[tuple[str, str]]


def _board_points(board: tuple[int, int], square: float) -> np.ndarray:
    cols, rows = board
    grid = np.zeros((rows * cols, 3), np.float32)
    grid[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * square
    return grid


def calibrate_stereo(
    pairs: Sequence[tuple[Any, Any]],
    board: tuple[int, int],
    square: float,
    *,
    names: Sequence[str] | None = None,
    min_pairs: int = 3,
) -> ChessboardCalibration:
    """Calibrate a stereo rig from chessboard views.

    pairs: (left, right) images, each a path or an (H,W,3) uint8 RGB array, all the same size;
    board: (columns, rows) of inner corners; square: side of one square, in the unit ``T`` and
    depth should have. Each camera is calibrated alone first, then both jointly with the relative
    pose (``cv2.stereoCalibrate`` starting from the single-camera intrinsics).
    """
    if square <= 0:
        raise EdgeStereoError(f"square size must be positive, got {square}")
    if min(board) < 2:
        raise EdgeStereoError(f"a chessboard needs at least 2x2 inner corners, got {board[0]}x{board[1]}")
    names = list(names) if names is not None else [f"pair {i}" for i in range(len(pairs))]
    object_points, left_points, right_points, used, skipped = [], [], [], [], []
    size: tuple[int, int] | None = None
    for name, (left, right) in zip(names, pairs):
        try:
            left_img = read_image(left) if isinstance(left, (str, Path)) else left
            right_img = read_image(right) if isinstance(right, (str, Path)) else right
        except EdgeStereoError as exc:
            skipped.append((name, str(exc)))
            continue
        pair_size = (left_img.shape[1], left_img.shape[0])
        if (right_img.shape[1], right_img.shape[0]) != pair_size:
            skipped.append((name, "left and right differ in size"))
            continue
        if size is None:
            size = pair_size
        elif pair_size != size:
            skipped.append((name, f"{pair_size[0]}x{pair_size[1]}, the first pair is {size[0]}x{size[1]}"))
            continue
        corners_left, corners_right = find_chessboard(left_img, board), find_chessboard(right_img, board)
        if corners_left is None or corners_right is None:
            where = "either view" if corners_left is None and corners_right is None else \
                "the left view" if corners_left is None else "the right view"
            skipped.append((name, f"no {board[0]}x{board[1]} chessboard found in {where}"))
            continue
        object_points.append(_board_points(board, square))
        left_points.append(corners_left)
        right_points.append(corners_right)
        used.append(name)
    if len(used) < min_pairs:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped[:3])
        raise EdgeStereoError(f"the chessboard was found in {len(used)} pair(s), calibration needs at least "
                              f"{min_pairs}" + (f" ({reasons})" if reasons else ""))
    _, K1, D1, _, _ = cv2.calibrateCamera(object_points, left_points, size, None, None)
    _, K2, D2, _, _ = cv2.calibrateCamera(object_points, right_points, size, None, None)
    criteria = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-6)
    rms, K1, D1, K2, D2, R, T, _, _ = cv2.stereoCalibrate(
        object_points, left_points, right_points, K1, D1, K2, D2, size,
        flags=cv2.CALIB_USE_INTRINSIC_GUESS, criteria=criteria,
    )
    rig = StereoRig(K1, D1, K2, D2, R, T.ravel(), image_size=size)
    return ChessboardCalibration(rig, float(rms), used, skipped)
