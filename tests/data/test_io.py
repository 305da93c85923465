import numpy as np
import pytest

from edgestereo.data import io
from edgestereo.errors import EdgeStereoError, ReadError


def _values(shape=(5, 7), seed=0):
    values = np.random.default_rng(seed).normal(size=shape).astype(np.float32) * 50
    values.flat[0] = np.inf
    values.flat[1] = np.nan
    values.flat[2] = -np.inf
    return values


@pytest.mark.parametrize("little_endian", [True, False])
@pytest.mark.parametrize("shape", [(5, 7), (4, 6, 3)])
def test_pfm_round_trip_keeps_values_orientation_and_specials(tmp_path, little_endian, shape):
    values = _values(shape)
    path = tmp_path / "d.pfm"
    io.write_pfm(path, values, little_endian=little_endian)
    back = io.read_pfm(path)
    assert back.shape == values.shape and back.dtype == np.float32
    np.testing.assert_array_equal(back, values)  # NaN positions compare equal in assert_array_equal


def test_pfm_rows_are_stored_bottom_up(tmp_path):
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = tmp_path / "d.pfm"
    io.write_pfm(path, values)
    raw = path.read_bytes()
    body = np.frombuffer(raw[raw.index(b"-1.0\n") + 5 :], "<f4")
    np.testing.assert_array_equal(body[:3], [3, 4, 5])  # first stored row is the bottom row


def test_pfm_big_endian_written_by_hand_is_read(tmp_path):
    values = np.array([[1.5, -2.0], [3.25, 4.0]], dtype=np.float32)
    path = tmp_path / "be.pfm"
    path.write_bytes(b"Pf\n2 2\n1.0\n" + np.flipud(values).astype(">f4").tobytes())
    np.testing.assert_array_equal(io.read_pfm(path), values)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"P6\n2 2\n-1\n" + bytes(16), "bad PFM header"),
        (b"Pf\n2 2\n-1.0\n" + bytes(8), "truncated PFM data"),
        (b"Pf\n2 2\n0\n" + bytes(16), "scale must not be 0"),
    ],
)
def test_pfm_errors_name_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "bad.pfm"
    path.write_bytes(content)
    with pytest.raises(ReadError, match=problem) as info:
        io.read_pfm(path)
    assert str(path) in str(info.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ReadError, match="file not found"):
        io.read_pfm(tmp_path / "nope.pfm")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ReadError, match="file is empty"):
        io.read_image(tmp_path / "empty.png")


def test_text_file_named_png_is_not_an_image(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("hello, I am text")
    with pytest.raises(ReadError, match="not an image"):
        io.read_image(path)


def test_kitti_png_round_trip_and_invalid(tmp_path):
    disparity = np.array([[0.0, 1.5, 255.99], [np.nan, -3.0, 17.25]], dtype=np.float32)
    path = tmp_path / "disp.png"
    io.write_kitti_disparity(path, disparity)
    raw = io.read_image(path, rgb8=False)
    assert raw.dtype == np.uint16
    assert raw[0, 1] == 384 and raw[0, 0] == 0 and raw[1, 0] == 0 and raw[1, 1] == 0
    back = io.read_kitti_disparity(path)
    np.testing.assert_allclose(back[[0, 0, 1], [1, 2, 2]], [1.5, 256 * 255.99 // 1 / 256, 17.25], atol=1 / 256)
    assert np.isnan(back[0, 0]) and np.isnan(back[1, 0]) and np.isnan(back[1, 1])


def test_kitti_png_that_is_8_bit_is_refused(tmp_path):
    path = tmp_path / "disp8.png"
    io.write_image(path, np.full((4, 4), 9, np.uint8))
    with pytest.raises(ReadError, match="wrong bit depth"):
        io.read_kitti_disparity(path)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3])
def test_image_round_trip_8_and_16_bit(tmp_path, dtype, channels):
    rng = np.random.default_rng(1)
    shape = (6, 9) if channels == 1 else (6, 9, 3)
    image = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    path = tmp_path / "im.png"
    io.write_image(path, image)
    np.testing.assert_array_equal(io.read_image(path, rgb8=False), image)
    rgb = io.read_image(path)
    assert rgb.shape == (6, 9, 3) and rgb.dtype == np.uint8
    expected = image if dtype == np.uint8 else (image.astype(np.float32) / 257 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(rgb[..., 0], expected if channels == 1 else expected[..., 0])


def test_npy_and_disparity_dispatch(tmp_path):
    values = _values()
    for suffix in (".npy", ".pfm"):
        path = tmp_path / f"d{suffix}"
        io.write_disparity(path, values)
        np.testing.assert_array_equal(io.read_disparity(path), values)
    with pytest.raises(ReadError, match="unknown disparity format"):
        io.read_disparity(tmp_path / "d.exr")


CALIB = """cam0=[3979.911 0 1244.772; 0 3979.911 1019.507; 0 0 1]
cam1=[3979.911 0 1369.115; 0 3979.911 1019.507; 0 0 1]
doffs=124.343
baseline=193.001
width=2964
height=1988
ndisp=270
isint=0
vmin=23
vmax=245
dyavg=0
dymax=0
"""


def test_calib_txt_read_and_round_trip(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text(CALIB)
    calib = io.read_calib_txt(path)
    assert calib.cam0[0, 0] == pytest.approx(3979.911) and calib.cam1[0, 2] == pytest.approx(1369.115)
    assert (calib.doffs, calib.baseline, calib.width, calib.height, calib.ndisp) == (124.343, 193.001, 2964, 1988, 270)
    assert (calib.vmin, calib.vmax) == (23, 245)
    io.write_calib_txt(tmp_path / "again.txt", calib)
    again = io.read_calib_txt(tmp_path / "again.txt")
    np.testing.assert_allclose(again.cam0, calib.cam0)
    assert again.doffs == calib.doffs and again.ndisp == calib.ndisp


def test_calib_txt_missing_keys_are_named(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text("\n".join(line for line in CALIB.splitlines() if not line.startswith(("baseline", "ndisp"))))
    with pytest.raises(ReadError, match="missing keys: baseline, ndisp"):
        io.read_calib_txt(path)


def test_ply_round_trip_with_and_without_colour(tmp_path):
    rng = np.random.default_rng(2)
    points = rng.normal(size=(50, 3)).astype(np.float32)
    colors = rng.integers(0, 256, size=(50, 3), dtype=np.uint8)
    io.write_ply(tmp_path / "c.ply", points, colors)
    back, back_colors = io.read_ply(tmp_path / "c.ply")
    np.testing.assert_array_equal(back, points)
    np.testing.assert_array_equal(back_colors, colors)
    io.write_ply(tmp_path / "p.ply", points)
    back, no_colors = io.read_ply(tmp_path / "p.ply")
    np.testing.assert_array_equal(back, points)
    assert no_colors is None


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.png"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("blocked", [0, 1, 2])
def test_files_written_together_appear_together_or_not_at_all(tmp_path, blocked):
    """A rename that fails after others succeeded (the name is taken by a folder) removes those again,
    and the folder made for them."""
    names = ["a.pfm", "b.png", "c.ply"]
    out = tmp_path / "new" / "out"
    with io.atomic_paths([out / name for name in names]) as temporaries:
        for tmp in temporaries:
            tmp.write_bytes(b"complete")
    assert sorted(p.name for p in out.iterdir()) == names
    for name in names:
        (out / name).unlink()
    (out / names[blocked]).mkdir()
    with pytest.raises(EdgeStereoError, match=rf"{names[blocked]}: cannot write \(Is a directory\)"), \
            io.atomic_paths([out / name for name in names]) as temporaries:
        for tmp in temporaries:
            tmp.write_bytes(b"complete")
    assert [p.name for p in out.iterdir()] == [names[blocked]] and (out / names[blocked]).is_dir()
    (out / names[blocked]).rmdir()
    with pytest.raises(RuntimeError), io.atomic_paths([out / "x" / name for name in names]) as temporaries:
        temporaries[0].write_bytes(b"partial")
        raise RuntimeError("interrupted")
    assert list(out.iterdir()) == []  # nor the folder x made for them


def test_atomic_write_replaces_target_and_keeps_permissions(tmp_path):
    target = tmp_path / "d.pfm"
    io.write_pfm(target, np.zeros((2, 2)))
    io.write_pfm(target, np.ones((2, 2)))
    assert [p.name for p in tmp_path.iterdir()] == ["d.pfm"]
    assert io.read_pfm(target).sum() == 4
    assert target.stat().st_mode & 0o044  # readable by others, not mkstemp's 0600


def test_writing_into_an_unwritable_place_is_a_clean_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EdgeStereoError, match="cannot write here"):
        io.write_pfm(blocker / "sub" / "d.pfm", np.zeros((2, 2)))
