"""Property-based tests of the readers: random bytes, valid files as they are and with bytes flipped,
cut, inserted or removed, and valid structured files with some values replaced by random ones raise
nothing but the project's error type, or read as what the reader promises."""

from __future__ import annotations

import io as pyio
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
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
    """Random bytes, the valid ``seeds``, and the seeds edited a few times."""
    edited = st.builds(_edit, st.sampled_from(seeds), _EDITS)
    return st.one_of(st.binary(max_size=400), st.sampled_from(seeds), edited, edited)


_DROP = object()


def _replaced(valid: dict, values: st.SearchStrategy) -> st.SearchStrategy[dict]:
    """``valid`` with one or two of its entries replaced by ``values`` or left out."""
    changes = st.dictionaries(st.sampled_from(sorted(valid)), st.one_of(st.just(_DROP), values), min_size=1,
                              max_size=2)
    return changes.map(lambda change: {key: change.get(key, value) for key, value in valid.items()
                                       if change.get(key) is not _DROP})


_RNG = np.random.default_rng(0)
_RGB = _RNG.integers(0, 256, (12, 20, 3), dtype=np.uint8)
_IMAGES = tuple(cv2.imencode(suffix, _RGB)[1].tobytes() for suffix in (".png", ".jpg", ".bmp", ".tiff", ".ppm"))
_KITTI = cv2.imencode(".png", (_RNG.random((12, 20)) * 40000).astype(np.uint16))[1].tobytes()
#: a BMP header 16 million pixels wide: OpenCV raised cv2.error on it instead of returning None
_WIDE_BMP = b"BM" + bytes(15) + b"\x01\x00\x00\x00\x01\x01" + bytes(5) + b"\x18" + bytes(21)


def _npy(array: np.ndarray) -> bytes:
    buffer = pyio.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _pfm(array: np.ndarray, little_endian: bool) -> bytes:
    rows = np.flipud(array).astype("<f4" if little_endian else ">f4").tobytes()
    kind = "PF" if array.ndim == 3 else "Pf"
    return f"{kind}\n{array.shape[1]} {array.shape[0]}\n{-1.0 if little_endian else 1.0}\n".encode() + rows


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
@given(content=mutations(_KITTI, _IMAGES[0]))
def test_kitti_png(folder, content):
    result = _reads_or_refuses(io.read_kitti_disparity, folder / "x.png", content)
    assert result is None or (result.dtype == np.float32 and result.ndim == 2)


@PROPERTIES
@given(content=mutations(*_IMAGES), suffix=st.sampled_from([".png", ".jpg", ".tiff", ".bmp"]))
@example(content=_WIDE_BMP, suffix=".bmp")
def test_images(folder, content, suffix):
    result = _reads_or_refuses(io.read_image, folder / f"x{suffix}", content)
    assert result is None or (result.dtype == np.uint8 and result.ndim == 3 and result.shape[2] == 3)


@PROPERTIES
@given(content=mutations(_npy(_RNG.random((5, 6)).astype(np.float32)), _npy(np.arange(6, dtype=np.int16)),
                         _npy(np.array(["ab", "c"])), _npy(np.zeros((2, 3), dtype=[("a", "<f4"), ("b", "<i8")]))))
def test_npy_disparity(folder, content):
    result = _reads_or_refuses(io.read_disparity, folder / "x.npy", content)
    assert result is None or (result.dtype == np.float32 and result.ndim == 2)


_CALIB_TXT = {"cam0": "[400 0 63.5; 0 400 23.5; 0 0 1]", "cam1": "[400 0 63.5; 0 400 23.5; 0 0 1]", "doffs": "0",
              "baseline": "100", "width": "128", "height": "48", "ndisp": "32", "vmin": "1", "vmax": "30"}
_TEXT_VALUES = st.one_of(st.text(max_size=30), st.sampled_from(["nan", "inf", "-inf", "1e999", "-3", "0", "12.5",
                                                                "[1 2 3]", "[1 0; 0 1]", "[a b c; 0 1 0; 0 0 1]"]))


def _calib_txt(values: dict) -> bytes:
    return "".join(f"{key}={value}\n" for key, value in values.items()).encode("utf-8", "surrogatepass")


@PROPERTIES
@given(content=st.one_of(mutations(_calib_txt(_CALIB_TXT)), _replaced(_CALIB_TXT, _TEXT_VALUES).map(_calib_txt)))
def test_middlebury_calib_txt(folder, content):
    result = _reads_or_refuses(read_calibration, folder / "calib.txt", content)
    assert result is None or result.rectified is not None


_JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30),
                                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)),
                            lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=4),
                            max_leaves=12)
_MATRIX_LIKE = st.one_of(_JSON_VALUES, st.fixed_dictionaries(
    {"rows": _JSON_VALUES, "cols": _JSON_VALUES, "data": st.lists(st.floats() | st.text(max_size=3), max_size=9)}))
_EYE = [[400.0, 0.0, 320.0], [0.0, 400.0, 240.0], [0.0, 0.0, 1.0]]
_RIG = {"K1": _EYE, "D1": [0.0] * 5, "K2": _EYE, "D2": [0.0] * 5, "R": np.eye(3).tolist(), "T": [-0.1, 0.0, 0.0],
        "image_width": 640, "image_height": 480, "unit": "m"}
_RECTIFIED = {"fx": 400.0, "fy": 400.0, "cx": 320.0, "cy": 240.0, "baseline": 0.1, "doffs": 0.0,
              "image_size": [640, 480]}


def _written_rig() -> tuple[bytes, ...]:
    """The rig as write_calibration writes it: cv::FileStorage YAML and JSON."""
    rig = StereoRig(*(np.array(_RIG[key]) for key in ("K1", "D1", "K2", "D2", "R", "T")), image_size=(640, 480))
    with tempfile.TemporaryDirectory() as folder:
        for suffix in (".yaml", ".json"):
            write_calibration(Path(folder) / f"rig{suffix}", rig, unit="m")
        return tuple((Path(folder) / f"rig{suffix}").read_bytes() for suffix in (".yaml", ".json"))


_STRUCTURED = st.one_of(_replaced(_RIG, _MATRIX_LIKE), _replaced(_RECTIFIED, _MATRIX_LIKE))


@PROPERTIES
@given(content=st.one_of(mutations(*_written_rig()), _STRUCTURED.map(lambda d: json.dumps(d).encode()),
                         _STRUCTURED.map(lambda d: yaml.safe_dump(d).encode())),
       suffix=st.sampled_from([".yaml", ".json"]))
def test_stereo_calibration_yaml_and_json(folder, content, suffix):
    result = _reads_or_refuses(read_calibration, folder / f"calib{suffix}", content)
    assert result is None or (result.rig is None) != (result.rectified is None)
