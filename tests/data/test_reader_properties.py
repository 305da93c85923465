"""Property-based tests of the readers: random bytes, valid files with bytes flipped, cut, inserted or
removed, and structured files with random values raise nothing but the project's error type (or
read as what the reader promises)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgestereo.calibration import StereoRig, read_calibration, write_calibration
from edgestereo.data import io
from edgestereo.errors import EdgeStereoError

#: small and deterministic: `make test` runs them every time on two cores.
PROPERTIES = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


def _edit(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, position, chunk in edits:
        at = position % (len(out) + 1)
        if kind == "flip" and out:
            out[at % len(out)] ^= chunk[0] or 1
        elif kind == "cut":
            del out[at:]
        elif kind == "insert":
            out[at:at] = chunk
        elif kind == "delete":
            del out[at : at + len(chunk)]
    return bytes(out)


_EDITS = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "delete"]), st.integers(0, 1 << 16),
                            st.binary(min_size=1, max_size=8)), min_size=1, max_size=6)


def mutations(*seeds: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, and the valid ``seeds`` edited a few times."""
    edited = st.builds(_edit, st.sampled_from(seeds), _EDITS)
    return st.one_of(st.binary(max_size=400), edited, edited)


def _encoded(suffix: str, image: np.ndarray) -> bytes:
    return cv2.imencode(suffix, image)[1].tobytes()


_RNG = np.random.default_rng(0)
_RGB = _RNG.integers(0, 256, (12, 20, 3), dtype=np.uint8)
_IMAGES = tuple(_encoded(suffix, _RGB) for suffix in (".png", ".jpg", ".bmp", ".tiff", ".ppm", ".webp"))
_KITTI = _encoded(".png", (_RNG.random((12, 20)) * 40000).astype(np.uint16))
def _npy(array: np.ndarray) -> bytes:
    import io as pyio

    buffer = pyio.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _pfm(array: np.ndarray, little_endian: bool) -> bytes:
    rows = np.flipud(array).astype("<f4" if little_endian else ">f4").tobytes()
    kind = "PF" if array.ndim == 3 else "Pf"
    return f"{kind}\n{array.shape[1]} {array.shape[0]}\n{-1.0 if little_endian else 1.0}\n".encode() + rows


CALIB_TXT = (b"cam0=[400 0 63.5; 0 400 23.5; 0 0 1]\ncam1=[400 0 63.5; 0 400 23.5; 0 0 1]\n"
             b"doffs=0\nbaseline=100\nwidth=128\nheight=48\nndisp=32\nvmin=1\nvmax=30\n")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _reads_or_refuses(read, path, data: bytes):
    """``read(path)`` for a file holding ``data``: its result, or None when it raised the project's error."""
    path.write_bytes(data)
    try:
        return read(path)
    except EdgeStereoError:
        return None


@PROPERTIES
@given(content=mutations(_pfm(_RNG.random((5, 7)), True), _pfm(_RNG.random((4, 3, 3)), False)))
def test_pfm(folder, content):
    result = _reads_or_refuses(io.read_pfm, folder / "x.pfm", content)
    assert result is None or (result.dtype == np.float32 and result.ndim in (2, 3))


@PROPERTIES
@given(content=mutations(_KITTI, *_IMAGES[:1]))
def test_kitti_png(folder, content):
    result = _reads_or_refuses(io.read_kitti_disparity, folder / "x.png", content)
    assert result is None or (result.dtype == np.float32 and result.ndim == 2)


@PROPERTIES
@given(content=mutations(*_IMAGES), suffix=st.sampled_from([".png", ".jpg", ".tiff", ".bmp"]))
def test_images(folder, content, suffix):
    result = _reads_or_refuses(io.read_image, folder / f"x{suffix}", content)
    assert result is None or (result.dtype == np.uint8 and result.ndim == 3 and result.shape[2] == 3)


@PROPERTIES
@given(content=mutations(_npy(_RNG.random((5, 6)).astype(np.float32)), _npy(np.arange(6, dtype=np.int16)),
                         _npy(np.array(["ab", "c"])), _npy(np.zeros((2, 3), dtype=[("a", "<f4"), ("b", "<i8")]))))
def test_npy_disparity(folder, content):
    result = _reads_or_refuses(io.read_disparity, folder / "x.npy", content)
    assert result is None or (result.dtype == np.float32 and result.ndim == 2)


_CALIB_KEYS = ["cam0", "cam1", "doffs", "baseline", "width", "height", "ndisp", "vmin", "vmax"]
_VALUES = st.one_of(st.text(max_size=30), st.sampled_from(["nan", "inf", "-inf", "1e999", "-3", "0", "[1 2 3]",
                                                           "[1 0 0; 0 1 0; 0 0 1]", "[1 0; 0 1]", "12.5"]))


@PROPERTIES
@given(content=st.one_of(mutations(CALIB_TXT),
                         st.dictionaries(st.sampled_from(_CALIB_KEYS), _VALUES, max_size=9).map(
                             lambda values: "".join(f"{key}={value}\n" for key, value in values.items()).encode(
                                 "utf-8", "surrogatepass"))))
def test_middlebury_calib_txt(folder, content):
    result = _reads_or_refuses(read_calibration, folder / "calib.txt", content)
    assert result is None or result.rectified is not None


_JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30),
                                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)),
                            lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=4),
                            max_leaves=12)
_CALIBRATION_KEYS = ["K1", "D1", "K2", "D2", "R", "T", "M1", "fx", "fy", "cx", "cy", "baseline", "doffs", "unit",
                     "image_size", "image_width", "image_height", "width", "height", "size"]
_MATRIX_LIKE = st.one_of(_JSON_VALUES, st.fixed_dictionaries(
    {"rows": _JSON_VALUES, "cols": _JSON_VALUES, "data": st.lists(st.floats() | st.text(max_size=3), max_size=9)}))


def _rig_seeds() -> tuple[bytes, ...]:
    """An OpenCV stereo calibration as cv::FileStorage YAML and as JSON, as write_calibration writes them."""
    import tempfile
    from pathlib import Path

    eye = np.eye(3) * 400 + np.array([[0, 0, 320], [0, 0, 240], [0, 0, 0]])
    rig = StereoRig(eye, np.zeros(5), eye, np.zeros(5), np.eye(3), np.array([-0.1, 0, 0]), image_size=(640, 480))
    with tempfile.TemporaryDirectory() as folder:
        for suffix in (".yaml", ".json"):
            write_calibration(Path(folder) / f"rig{suffix}", rig, unit="m")
        return tuple((Path(folder) / f"rig{suffix}").read_bytes() for suffix in (".yaml", ".json"))


_STRUCTURED = st.dictionaries(st.sampled_from(_CALIBRATION_KEYS), _MATRIX_LIKE, max_size=10)


@PROPERTIES
@given(content=st.one_of(mutations(*_rig_seeds()), _STRUCTURED.map(lambda d: json.dumps(d).encode()),
                         _STRUCTURED.map(lambda d: yaml.safe_dump(d).encode())),
       suffix=st.sampled_from([".yaml", ".json"]))
def test_stereo_calibration_yaml_and_json(folder, content, suffix):
    result = _reads_or_refuses(read_calibration, folder / f"calib{suffix}", content)
    assert result is None or (result.rig is None) != (result.rectified is None)
